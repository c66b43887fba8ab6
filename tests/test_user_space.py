"""A search space and a dataset defined outside the package, registered, and searched through the
public API (``jaxnas.spaces.register``, ``jaxnas.data.register_dataset``,
``search_lib.train_and_evaluate``).

The space is a tiny cell of its own: 2 edges in a chain (input -> node 1 -> node 2), each mixing
2 ops of its own (``identity`` and a 1x1 convolution). Nothing outside this file knows it.
"""
import functools
import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnas
import repo_files
from jaxnas import driver
from jaxnas import search as search_lib
from jaxnas import steps

TINY_OPS = ("identity", "conv_1x1")


class TinyCellSupernet(nn.Module):
  """stem conv + BN -> 2 mixed edges in a chain -> global average pool -> linear."""
  ops: tuple[str, ...]
  channels: int = 4
  num_classes: int = 10

  @nn.compact
  def __call__(self, x, mixing, *, train):
    x = nn.Conv(self.channels, (3, 3), name="stem")(x)
    x = nn.relu(nn.BatchNorm(use_running_average=not train, name="stem_bn")(x))
    for edge in range(2):
      outs = [x if op == "identity" else nn.Conv(self.channels, (1, 1), name=f"edge{edge}_conv")(x)
              for op in self.ops]
      x = functools.reduce(jnp.add, [w * out for w, out in zip(mixing["cell"][edge], outs)])
    return nn.Dense(self.num_classes, name="classifier")(jnp.mean(x, axis=(1, 2)))


class TinySpace(jaxnas.spaces.SearchSpace):
  """The user's space: what ``jaxnas.spaces`` asks of one, nothing more."""
  name = "tiny_chain"
  all_ops = TINY_OPS

  def arch_shapes(self):
    return {"cell": (2, len(self.ops))}

  def supernet(self, *, channels=4, num_classes=10, unroll=True, remat=False, remat_scope="cell",
               kernels="xla"):
    del unroll, remat, remat_scope, kernels  # no loops, tiny activations, flax's own convs
    return TinyCellSupernet(self.ops, channels, num_classes)

  def supernet_sizes(self, space_config):
    return {"channels": space_config.channels}

  def derive(self, mixing):
    return "|".join(self.ops[int(np.argmax(row))] for row in np.asarray(mixing["cell"]))

  def parse_genotype(self, text):
    ops = text.split("|")
    self._check_genotype_ops(ops)
    return text

  def discretize(self, mixing):
    cell = jnp.asarray(mixing["cell"])
    return {"cell": jax.nn.one_hot(jnp.argmax(cell, axis=-1), cell.shape[-1], dtype=cell.dtype)}


def tiny_blobs(data_dir=None):
  """An in-memory dataset: 48 train / 16 test 8x8 RGB images, 2 classes told apart by brightness."""
  del data_dir
  rng = np.random.default_rng(0)
  labels = np.arange(64, dtype=np.int32) % 2
  images = (rng.integers(0, 128, (64, 8, 8, 3)) + 100 * labels[:, None, None, None])
  images = images.astype(np.uint8)
  return jaxnas.data.ImageDataset("tiny_blobs", images[:48], labels[:48], images[48:],
                                  labels[48:], 2, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


@pytest.fixture
def registered():
  jaxnas.spaces.register("tiny_chain", TinySpace)
  jaxnas.data.register_dataset("tiny_blobs", tiny_blobs)
  yield
  del jaxnas.spaces.SPACES["tiny_chain"]
  del jaxnas.data.DATASETS["tiny_blobs"]


def tiny_config():
  default = repo_files.load_module("configs/default.py")
  config = default.smoke(default.get_config())
  config.space.name = "tiny_chain"
  config.space.ops = ""
  config.data.name = "tiny_blobs"
  config.max_steps = 3
  return config


def test_user_space_and_dataset_search_through_the_public_api(registered, tmp_path):
  summary = driver.train_and_evaluate(tiny_config(), str(tmp_path))
  assert summary["step"] == 3
  records = [json.loads(line) for line in open(tmp_path / "genotypes.jsonl")]
  assert records[-1]["step"] == 3
  genotype = jaxnas.spaces.get("tiny_chain").parse_genotype(summary["final_genotype"])
  assert all(op in TINY_OPS for op in genotype.split("|"))
  assert os.listdir(tmp_path / "checkpoints")


def test_user_space_is_built_from_the_config_and_discretized(registered):
  config = tiny_config()
  space = search_lib.build_space(config)
  assert isinstance(space, TinySpace) and space.ops == TINY_OPS
  module = search_lib.build_supernet(config, space, num_classes=2)
  assert module == TinyCellSupernet(TINY_OPS, config.space.channels, 2)
  mixing = {"cell": jnp.array([[0.3, 0.7], [0.9, 0.1]])}
  np.testing.assert_array_equal(space.discretize(mixing)["cell"], [[0, 1], [1, 0]])
  assert space.derive(mixing) == "conv_1x1|identity"


def test_registering_checks_the_name_and_refuses_a_taken_one(registered):
  with pytest.raises(ValueError, match="already registered as 'tiny_chain'"):
    jaxnas.spaces.register("tiny_chain", type("Other", (TinySpace,), {}))
  with pytest.raises(ValueError, match="set name = 'other'"):
    jaxnas.spaces.register("other", TinySpace)
  config = tiny_config()
  config.space.name = "nao"
  with pytest.raises(ValueError, match="token space, searched only by config.method='nao_v2'"):
    search_lib.build_search(config)


def test_user_space_gets_prox_and_admm_from_its_own_discretize(registered):
  """The prox / ADMM target Z(A) is the space's ``discretize`` on its ``cell_keys()``: a space
  registered from a test file gets both regularizers without any code of the package knowing it."""
  config = tiny_config()
  config.arch_regularizer.names = "prox,admm"
  config.arch_regularizer.admm_freq = 1
  search = search_lib.build_search(config)
  prox, admm = search.components.regularizers
  assert (prox.name, admm.name) == ("prox", "admm")
  assert prox.project.cell_keys == ("cell",) and isinstance(prox.project.space, TinySpace)
  step_fn = jax.jit(lambda s, b: steps.search_step(s, b, components=search.components))
  state = search_lib.start_state(search)
  for step in range(2):
    state, metrics = step_fn(state, search_lib.step_batches(search, step))
  assert float(metrics["reg/prox"]) > 0 and float(metrics["reg/admm"]) > 0
  mixing = {"cell": jnp.array([[0.3, 0.7], [0.9, 0.1]])}
  np.testing.assert_array_equal(prox.project(mixing)["cell"], [[0, 1], [1, 0]])


class PlainSpace(TinySpace):
  """A space without ``discretize``: searchable, but with no target for prox / ADMM."""
  name = "tiny_plain"
  discretize = jaxnas.spaces.SearchSpace.discretize


def test_a_space_without_discretize_gets_a_one_line_error_from_prox(registered):
  jaxnas.spaces.register("tiny_plain", PlainSpace)
  try:
    config = tiny_config()
    config.space.name = "tiny_plain"
    config.arch_regularizer.names = "prox"
    with pytest.raises(ValueError, match=r"^config.space.name='tiny_plain' is not valid: the prox "
                                         r"/ ADMM regularizers pull alpha toward the space's "
                                         r"discretize\(mixing\), which PlainSpace does not "
                                         r"define; implement it .* or drop the regularizer.$"):
      search_lib.build_search(config)
  finally:
    del jaxnas.spaces.SPACES["tiny_plain"]
