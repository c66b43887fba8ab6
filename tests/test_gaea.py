"""GAEA in the search loop: the ERM data regime and a resumed smoke run."""
import os

import jax
import numpy as np
import pytest

from jaxnas import checkpoint as checkpoint_lib
from jaxnas import data as data_lib
from jaxnas import driver
from jaxnas import search as search_lib
from test_loop import ROOT, load_config


def gaea_smoke(config_file="gaea_nb201.py", **overrides):
  config = load_config(os.path.join(ROOT, "configs", config_file))
  for k, v in overrides.items():
    config[k] = v
  return config


def test_erm_alpha_stream_is_independent_of_the_weight_stream_and_deterministic():
  search = search_lib.build_search(gaea_smoke())
  assert search.splits.weights is search.splits.arch or (
      len(search.splits.weights) == len(search.splits.arch))
  n, batch = len(search.splits.weights), search.config.batch_size

  def indices(step, stream):
    return data_lib.batch_indices(search.config.seed, step, n, batch, stream=stream,
                                  with_replacement=search.config.data.arch_with_replacement)

  for step in range(3):
    w, a = indices(step, search_lib.WEIGHTS_STREAM), indices(step, search_lib.ARCH_STREAM)
    assert not np.array_equal(w, a)
    np.testing.assert_array_equal(a, indices(step, search_lib.ARCH_STREAM))
  # The reference's ERM alpha batch is next(iter(valid_queue)) over a shuffled copy of the
  # training set (gaea_release cnn/train_search.py l. 241): a fresh random batch every step.
  assert search.config.data.arch_with_replacement
  assert not np.array_equal(indices(0, search_lib.ARCH_STREAM), indices(1, search_lib.ARCH_STREAM))
  # The loop feeds exactly these batches.
  batches = search_lib.step_batches(search, 1)
  np.testing.assert_array_equal(batches["val"][1],
                                search.splits.arch.labels[indices(1, search_lib.ARCH_STREAM)])


@pytest.mark.parametrize("config_file", ["gaea_nb201.py", "gaea_pcdarts_cifar10.py"])
def test_gaea_alpha_stays_on_the_simplex_and_resumes_exactly(config_file, tmp_path):
  straight, resumed = str(tmp_path / "a"), str(tmp_path / "b")
  driver.train_and_evaluate(gaea_smoke(config_file, max_steps=3), straight)
  driver.train_and_evaluate(gaea_smoke(config_file, max_steps=2), resumed)
  driver.train_and_evaluate(gaea_smoke(config_file, max_steps=3), resumed)
  states = []
  for workdir in (straight, resumed):
    search = search_lib.build_search(gaea_smoke(config_file, max_steps=3))
    abstract = jax.eval_shape(lambda: search_lib.init_state(search))
    with checkpoint_lib.CheckpointManager(os.path.join(workdir, "checkpoints"),
                                          fingerprint=search_lib.fingerprint(search)) as manager:
      states.append(manager.restore(abstract))
  jax.tree.map(np.testing.assert_array_equal, states[0], states[1])
  initial = search_lib.init_state(search).arch
  for leaf, leaf0 in zip(jax.tree.leaves(states[0].arch), jax.tree.leaves(initial)):
    leaf = np.asarray(leaf)
    np.testing.assert_allclose(leaf.sum(axis=-1), 1.0, rtol=1e-5)
    assert (leaf > 0).all()
  assert not all(np.allclose(a, b) for a, b in zip(jax.tree.leaves(states[0].arch),
                                                    jax.tree.leaves(initial)))


def test_simplex_optimizer_requires_simplex_parametrization(tmp_path):
  import pytest
  config = gaea_smoke()
  config.parametrization = "softmax"
  with pytest.raises(ValueError, match="needs parametrization='simplex'"):
    driver.train_and_evaluate(config, str(tmp_path))
