"""Vmapped seeds: seed i of one ``num_seeds=S`` run equals the single search with seed i."""
import json
import os

import jax
import numpy as np
import pytest

from jaxnas import driver
from jaxnas import search as search_lib
from jaxnas import seeds
from test_loop import ROOT, load_config, restore_final_state

QUICKSTART = os.path.join(ROOT, "configs", "quickstart.py")


def single_run_state(config, seed: int, num_steps: int):
  """``num_steps`` steps of the plain (unvmapped) search with ``seed``, on the host."""
  config = config.copy_and_resolve_references()
  config.seed, config.num_seeds = seed, 1
  search = search_lib.build_search(config)
  state = search_lib.start_state(search)
  step_fn = search_lib.jit_search_step(search)
  for step in range(num_steps):
    state, _ = step_fn(state, search_lib.step_batches(search, step))
  return jax.device_get(state)


# Slow (a 2-seed search, then each seed alone); the vmapped-seeds multihost run is also slow.
@pytest.mark.slow
def test_each_vmapped_seed_equals_its_single_run(tmp_path):
  config = load_config(QUICKSTART, "smoke", num_seeds=2)
  report = driver.train_and_evaluate(config, str(tmp_path))
  assert report["seeds"] == [config.seed, config.seed + 1]
  # The stacked final state, restored from the run's checkpoint.
  stacked, manager, resumed = driver.restore_or_start(seeds.SeedsProgram.from_config(config),
                                                      str(tmp_path))
  manager.close()
  assert resumed
  stacked = jax.device_get(stacked)
  for i, seed in enumerate(report["seeds"]):
    single = single_run_state(config, seed, report["step"])
    for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(seeds.unstack(stacked, i))[0],
                            jax.tree.leaves(single)):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=f"seed {seed} "
                                 f"{jax.tree_util.keystr(path)}")
  # The seeds are really different searches.
  assert not np.allclose(stacked.arch["cell"][0], stacked.arch["cell"][1])
  # Outputs: each seed's own log and result, and the spread.
  written = json.load(open(tmp_path / seeds.SEEDS_FILE))
  assert written["spread"]["num_seeds"] == 2
  assert written["splits"]["eval_role"] in ("validation", "test")   # result.json says what eval is
  for seed in report["seeds"]:
    result = json.load(open(tmp_path / f"seed_{seed}" / "result.json"))
    assert result["final_genotype"] == report["per_seed"][str(seed)]["final_genotype"]
  # Rerunning resumes (nothing left to do) and reports the same.
  assert driver.train_and_evaluate(config, str(tmp_path))["spread"] == report["spread"]


@pytest.mark.slow
def test_each_vmapped_seed_widens_as_its_single_run(tmp_path):
  """DrNAS' supernet stages under vmapped seeds (``drnas_cifar10:smoke``: K 6 -> 4 after step 2):
  each seed's final state, widened with its own draws, equals its single run's."""
  config = load_config(os.path.join(ROOT, "configs", "drnas_cifar10.py"), "smoke", num_seeds=2)
  report = driver.train_and_evaluate(config, str(tmp_path / "seeds"))
  stacked, manager, _ = driver.restore_or_start(seeds.SeedsProgram.from_config(config),
                                                str(tmp_path / "seeds"))
  manager.close()
  stacked = jax.device_get(stacked)
  for i, seed in enumerate(report["seeds"]):
    single_config = config.copy_and_resolve_references()
    single_config.seed, single_config.num_seeds = seed, 1
    driver.train_and_evaluate(single_config, str(tmp_path / f"seed_{seed}"))
    single = restore_final_state(str(tmp_path / f"seed_{seed}"), single_config)
    for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(seeds.unstack(stacked, i))[0],
                            jax.tree.leaves(single)):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=f"seed {seed} "
                                 f"{jax.tree_util.keystr(path)}")
  mixed = stacked.weights["cell_0"]["front"]["mixed"]["dil_conv_3x3"]["pointwise"]["kernel"]
  assert mixed.shape[-2:] == (3, 3)  # widened: 12 / 4 channels


def test_spread_counts_distinct_genotypes_and_accuracy_statistics():
  summaries = [
      {"final_genotype": "a", "final_record": {"eval/accuracy": 0.5, "benchmark/test_accuracy": 90.0}},
      {"final_genotype": "b", "final_record": {"eval/accuracy": 0.7, "benchmark/test_accuracy": 94.0}},
      {"final_genotype": "a", "final_record": {"eval/accuracy": 0.6, "benchmark/test_accuracy": 92.0}},
  ]
  report = seeds.spread(summaries)
  assert report["distinct_final_genotypes"] == 2
  assert report["final_genotype_counts"] == {"a": 2, "b": 1}
  assert report["eval/accuracy"]["mean"] == pytest.approx(0.6)
  assert report["eval/accuracy"]["std"] == pytest.approx(np.std([0.5, 0.7, 0.6]))
  assert report["benchmark/test_accuracy"]["min"] == 90.0
  assert report["benchmark/test_accuracy"]["max"] == 94.0


@pytest.mark.parametrize("field,value,match", [
    ("milenas.early_stopping", True, "early_stopping"),
    ("diagnostics.every_steps", 5, "diagnostics"),
    ("num_seeds", 0, "num_seeds"),
])
def test_unsupported_multi_seed_settings_fail_fast(field, value, match, tmp_path):
  config = load_config(QUICKSTART, "smoke", **{"num_seeds": 2, field: value})
  with pytest.raises(ValueError, match=match):
    driver.train_and_evaluate(config, str(tmp_path))
  assert not os.listdir(tmp_path)


# Every method issue #33 added, as vmapped seeds (slow: a vmapped 2-seed search per config; runs
# in .ci/run after the README's test command). The SDARTS-RS path on the DARTS space is that of
# SDARTS-ADV there without the attack (its golden smoke run is in test_loop).
BASELINE_CONFIGS = (
    ("gdas_nb201.py", "smoke"), ("gdas_cifar10.py", "smoke"), ("milenas_gdas_cifar10.py", "smoke"),
    ("gaea_gdas_nb201.py", "smoke"), ("snas_nb201.py", "smoke"), ("snas_cifar10.py", "smoke"),
    ("drnas_nb201.py", "smoke"), ("drnas_cifar10.py", "smoke"), ("fairdarts_nb201.py", "smoke"),
    ("fairdarts_cifar10.py", "smoke"), ("sdarts_nb201.py", "smoke"),
    ("sdarts_nb201.py", "adversarial,smoke"), ("sdarts_cifar10.py", "adversarial,smoke"),
    ("betadarts_nb201.py", "smoke"), ("betadarts_cifar10.py", "smoke"),
    ("dartsminus_nb201.py", "smoke"), ("dartsminus_cifar10.py", "smoke"))


@pytest.mark.slow
@pytest.mark.parametrize("name,variant", BASELINE_CONFIGS, ids=lambda v: v.replace(",", "+"))
def test_baseline_config_runs_with_vmapped_seeds(name, variant, tmp_path):
  config = load_config(os.path.join(ROOT, "configs", name), variant, num_seeds=2)
  report = driver.train_and_evaluate(config, str(tmp_path))
  assert report["seeds"] == [config.seed, config.seed + 1]
  assert report["step"] == config.max_steps
  for seed in report["seeds"]:  # each seed's own record
    assert os.path.exists(tmp_path / f"seed_{seed}" / "result.json")
