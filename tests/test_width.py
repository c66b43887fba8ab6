"""The channel-width space: masks vs physically narrower layers, derivation, counts, smoke + resume."""
import functools
import itertools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnas
from jaxnas import checkpoint as checkpoint_lib
from jaxnas import driver
from jaxnas import search as search_lib
from jaxnas import supernet
from jaxnas.spaces import width
from test_loop import ROOT, load_config

CONFIG = os.path.join(ROOT, "configs", "rarts_width_cifar10.py")
# XLA's CPU backend spends ~90% of these tiny programs' compile time optimising LLVM code that runs
# for milliseconds: compile them unoptimised (about 10x faster to compile, same HLO semantics).
fast_compile = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})


def test_mixed_mask_weights_each_channel_by_the_candidates_that_contain_it():
  # C = 8, fractions 1/4, 1/2, 1 -> widths 2, 4, 8.
  mask = width.mixed_mask(jnp.array([0.2, 0.3, 0.5]), ("0.25", "0.5", "1"), 8)
  np.testing.assert_allclose(mask, [1, 1, 0.8, 0.8, 0.5, 0.5, 0.5, 0.5], rtol=1e-6)
  # Widths are ceil(f C), exact for decimal fractions (0.1 * 30 is 3, not 4).
  assert width.candidate_widths(("0.1", "1/3", "0.75"), 30) == (3, 10, 23)
  assert width.candidate_widths(("0.25",), 2) == (1,)


def random_variables(module, *args, seed=0):
  """Random weights and BN statistics of the module's variable shapes (numpy: no compile). BN
  biases are non-zero, so a mask placed before BatchNorm would leak beta into dropped channels."""
  shapes = jax.eval_shape(lambda: module.init(jax.random.key(0), *args, train=False))
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    value = rng.normal(0.0, 0.5, leaf.shape).astype(np.float32)
    return np.abs(value) + 0.5 if "var" in jax.tree_util.keystr(path) else value

  return jax.tree_util.tree_map_with_path(draw, shapes)


def test_one_hot_masks_equal_the_physically_narrower_network():
  # Two blocks per stage: the first block and the scanned rest; widths from every candidate.
  space = jaxnas.spaces.get("width", channels=4, blocks_per_stage=2)
  genotype = space.parse_genotype("3:1,4|4:8,2|16:12,4")
  module = space.supernet(num_classes=3, unroll=False)
  net = space.network(genotype, num_classes=3)
  mixing = jax.tree.map(jnp.asarray, space.one_hot_mixing(genotype))
  x = jnp.asarray(np.random.default_rng(1).normal(size=(4, 8, 8, 3)), jnp.float32)
  variables = random_variables(module, x, mixing)

  @fast_compile
  def run(variables):  # one compiled program: compile time dominates these tiny networks
    narrow = width.narrow_variables(variables, genotype)
    out = {}
    # Training mode: batch statistics of the kept channels, and their running-average updates.
    out["train_super"], new_super = module.apply(variables, x, mixing, train=True,
                                                 mutable=["batch_stats"])
    out["train_narrow"], new_narrow = net.apply(narrow, x, train=True, mutable=["batch_stats"])
    out["stats_super"] = width.narrow_variables(new_super, genotype)["batch_stats"]
    out["stats_narrow"] = new_narrow["batch_stats"]
    # Evaluation mode with the running statistics.
    out["eval_super"] = module.apply(variables, x, mixing, train=False)
    out["eval_narrow"] = net.apply(narrow, x, train=False)
    return out, supernet.num_params(narrow["params"])

  out, narrow_params = run(variables)
  assert narrow_params == genotype.num_params(3)
  close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  close(out["train_super"], out["train_narrow"])
  jax.tree.map(close, out["stats_super"], out["stats_narrow"])
  close(out["eval_super"], out["eval_narrow"])


def test_unrolled_supernet_has_the_rolled_layout_and_function():
  # The loop initialises with the rolled module and steps with the unrolled one (config.backend.unroll).
  space = jaxnas.spaces.get("width", channels=4, blocks_per_stage=3)
  mixing = jaxnas.parametrize.get("softmax").activate(
      space.init_arch(jax.random.key(0), "softmax"))
  x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 8, 8, 3)), jnp.float32)
  rolled, unrolled = (space.supernet(num_classes=3, unroll=u) for u in (False, True))
  variables = random_variables(rolled, x, mixing)
  assert (jax.tree.map(np.shape, variables) ==
          jax.tree.map(np.shape, random_variables(unrolled, x, mixing)))
  run = fast_compile(lambda v, module: module.apply(v, x, mixing, train=False),
                     static_argnums=1)
  np.testing.assert_allclose(run(variables, rolled), run(variables, unrolled), rtol=1e-5,
                             atol=1e-6)


def test_derived_widths_follow_the_argmax_of_alpha_and_round_trip():
  space = jaxnas.spaces.get("width", ops=("0.25", "0.5", "1.0"), channels=16, blocks_per_stage=2)
  assert space.arch_shapes() == {"stream": (3, 3), "inner": (6, 3)}
  stream = np.array([[0, 1, 0], [3, 1, 2], [0, 0, 9]], np.float32)      # 1/2, 1/4, 1 of 16/32/64
  inner = np.array([[5, 0, 0], [0, 0, 1], [0, 2, 1], [1, 0, 0], [0, 0, 4], [0, 7, 0]],
                   np.float32)
  mixing = jaxnas.parametrize.get("softmax").activate({"stream": stream, "inner": inner})
  genotype = space.derive(mixing)
  assert genotype == width.WidthGenotype((8, 8, 64), ((4, 16), (16, 8), (64, 32)))
  assert str(genotype) == "8:4,16|8:16,8|64:64,32"
  assert space.parse_genotype(str(genotype)) == genotype
  assert space.derive(space.one_hot_mixing(genotype)) == genotype
  with pytest.raises(ValueError, match="not a candidate"):
    space.parse_genotype("12:4,16|8:16,8|64:64,32")     # 12 = 0.75 * 16 is not in this op set
  with pytest.raises(ValueError, match="Malformed width genotype"):
    space.parse_genotype("8:4,16|8")
  with pytest.raises(ValueError, match="same number"):
    width.WidthGenotype((8, 8, 8), ((4, 16), (16,), (8, 8)))
  with pytest.raises(ValueError, match="outside"):
    jaxnas.spaces.get("width", ops=("0.5", "1.5"))
  with pytest.raises(ValueError, match="not a number"):
    jaxnas.spaces.get("width", ops=("half", "1"))


def test_parameter_count_and_flops_formulas():
  # Full-width ResNet-20: the reference counts (projection shortcuts, 10 classes).
  resnet20 = width.WidthGenotype((16, 32, 64), ((16,) * 3, (32,) * 3, (64,) * 3))
  assert resnet20.num_params(10) == 272_474
  assert resnet20.flops(10) == 40_813_184
  space = jaxnas.spaces.get("width")
  variables = jax.eval_shape(lambda: space.network(resnet20).init(
      jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False))
  assert supernet.num_params(variables["params"]) == 272_474
  # A hand-computed small case: 8x8 input, 3 classes, genotype 2:1|4:3|4:2.
  small = width.WidthGenotype.from_string("2:1|4:3|4:2")
  flops = (8 * 8 * 9 * 3 * 2                                   # stem 3->2 at 8x8
           + 8 * 8 * 9 * (2 * 1 + 1 * 2)                       # stage 1: 2->1->2
           + 4 * 4 * (9 * (2 * 3 + 3 * 4) + 2 * 4)             # stage 2 at 4x4 + 1x1 shortcut 2->4
           + 2 * 2 * (9 * (4 * 2 + 2 * 4) + 4 * 4)             # stage 3 at 2x2 + shortcut 4->4
           + 4 * 3)                                            # linear
  assert flops == 9132 and small.flops(3, image_size=8) == 9132
  params = (27 * 2 + 4 + 18 + 2 + 18 + 4 + 54 + 6 + 108 + 8 + 8 + 8 + 72 + 4 + 72 + 8 + 16 + 8
            + 5 * 3)
  assert params == 487 and small.num_params(3) == 487
  variables = jax.eval_shape(lambda: width.WidthResNet(small, 3).init(
      jax.random.key(0), jnp.zeros((1, 8, 8, 3)), train=False))
  assert supernet.num_params(variables["params"]) == 487


def test_expected_flops_is_the_expectation_over_independent_rows():
  space = jaxnas.spaces.get("width", ops=("0.5", "1"), channels=2, blocks_per_stage=1)
  rows = np.array([[0.3, 0.7], [0.6, 0.4], [0.1, 0.9], [0.5, 0.5], [0.8, 0.2], [0.25, 0.75]],
                  np.float32)
  mixing = {"stream": jnp.asarray(rows[:3]), "inner": jnp.asarray(rows[3:])}
  expected = 0.0
  for choice in itertools.product(range(2), repeat=6):    # all 64 architectures
    one_hot = np.eye(2, dtype=np.float32)[list(choice)]
    genotype = space.derive({"stream": one_hot[:3], "inner": one_hot[3:]})
    expected += np.prod(rows[np.arange(6), list(choice)]) * genotype.flops(3, image_size=8)
  got = space.expected_flops(mixing, num_classes=3, image_size=8)
  np.testing.assert_allclose(got, expected, rtol=1e-5)
  grads = jax.grad(lambda m: space.expected_flops(m, num_classes=3, image_size=8))(mixing)
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
  assert np.all(np.asarray(grads["stream"])[:, 1] > np.asarray(grads["stream"])[:, 0])


def test_gradients_reach_every_alpha_row_and_weight():
  space = jaxnas.spaces.get("width", channels=4, blocks_per_stage=1)
  module = space.supernet(num_classes=3, unroll=False)
  param = jaxnas.parametrize.get("softmax")
  arch = space.init_arch(jax.random.key(0), param)
  x = jnp.asarray(np.random.default_rng(1).normal(size=(4, 8, 8, 3)), jnp.float32)
  variables = random_variables(module, x, param.activate(arch))
  weights, model_state = variables["params"], variables["batch_stats"]

  def loss(weights, arch):
    logits, _ = supernet.apply(module, weights, model_state, x, param.activate(arch), train=True)
    return jnp.mean(jax.nn.logsumexp(logits, axis=-1) - logits[:, 0])

  g_weights, g_arch = fast_compile(jax.grad(loss, argnums=(0, 1)))(weights, arch)
  for path, leaf in jax.tree_util.tree_leaves_with_path(g_weights):
    assert jnp.any(leaf != 0), f"no gradient reaches {jax.tree_util.keystr(path)}"
  for key, leaf in g_arch.items():
    assert jnp.all(jnp.any(leaf != 0, axis=-1)), f"a row of alpha[{key}] gets no gradient"


def width_smoke(variant, **overrides):
  config = load_config(CONFIG, variant)
  for key, value in overrides.items():
    config[key] = value
  return config


def test_rarts_width_search_smoke_resumes_exactly(tmp_path):
  # The config's own method, RARTS (two weight copies in method_state); the ':darts' variant runs
  # the DARTS step, whose resume test_loop.py covers. test_loop.py also runs ':smoke' itself.
  variant = "smoke"
  assert width_smoke(variant).method == "rarts"
  straight, resumed = str(tmp_path / "a"), str(tmp_path / "b")
  summary = driver.train_and_evaluate(width_smoke(variant, max_steps=3), straight)
  driver.train_and_evaluate(width_smoke(variant, max_steps=2), resumed)
  driver.train_and_evaluate(width_smoke(variant, max_steps=3), resumed)
  search = search_lib.build_search(width_smoke(variant, max_steps=3))
  assert search.config.space.name == "width"
  space = search.space
  assert space.parse_genotype(summary["final_genotype"]).blocks_per_stage == 1
  abstract = jax.eval_shape(lambda: search_lib.init_state(search))
  states = []
  for workdir in (straight, resumed):
    with checkpoint_lib.CheckpointManager(os.path.join(workdir, "checkpoints"),
                                          fingerprint=search_lib.fingerprint(search)) as manager:
      states.append(manager.restore(abstract))
  assert int(states[0].step) == int(states[1].step) == 3
  jax.tree.map(np.testing.assert_array_equal, states[0], states[1])
