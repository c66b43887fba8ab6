"""Data parallelism: every method's step on 8 virtual CPU devices equals its 1-device step.

The state is replicated and the batches are split over the mesh's 'data' axis; the partitioned
program must compute the same numbers (global-batch means in the loss, BatchNorm and gradients) up
to the order of floating-point reductions, keep the state replicated, and compile once.
"""
import functools
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from jaxnas import backends
from jaxnas import search as search_lib
from jaxnas import sharding
from jaxnas.backends import cpu
from test_loop import ROOT, load_config

DEVICES = 8
STEPS = 2

# One smoke config per method, with a 2-op (NB201) or 3-op (DARTS) subset without cell
# convolutions: the partitioned programs are what is tested (the stems, preprocessing and
# reduction blocks still convolve), and they compile in seconds.
METHOD_CONFIGS = {
    "darts_first_order": ("quickstart.py", "darts,smoke"),
    "darts_second_order_unrolled": ("darts_nb201.py", "second_order,smoke"),
    "gaea": ("quickstart.py", "smoke"),
    "milenas": ("milenas_cifar10.py", "smoke"),
    "idarts": ("idarts_nb201.py", "smoke"),
    "darts_prime": ("darts_prime_nb201.py", "smoke"),
    "rarts": ("rarts_nb201.py", "smoke"),
    "gdas": ("gdas_nb201.py", "smoke"),
    "gdas_darts_space": ("gdas_cifar10.py", "smoke"),
    "milenas_gdas": ("milenas_gdas_cifar10.py", "smoke"),
    "gaea_gdas": ("gaea_gdas_nb201.py", "smoke"),
    "snas": ("snas_nb201.py", "resource,smoke"),
    "drnas": ("drnas_nb201.py", "kl,smoke"),
    "drnas_pruning": ("drnas_cifar10.py", "smoke"),
    "fair_darts": ("fairdarts_nb201.py", "smoke"),
    "sdarts_adv": ("sdarts_nb201.py", "adversarial,smoke"),
    "beta_darts": ("betadarts_nb201.py", "smoke"),
    "darts_minus": ("dartsminus_nb201.py", "smoke"),
}
SMALL_OPS = {"nb201": "none,skip_connect", "darts": "none,skip_connect,max_pool_3x3"}
# For the methods whose op set has no 'none' (Fair-DARTS' sigmoid, DrNAS' DARTS space).
SMALL_OPS_WITHOUT_NONE = {"nb201": "skip_connect,avg_pool_3x3", "darts": "skip_connect,max_pool_3x3"}


def method_config(method: str):
  name, variant = METHOD_CONFIGS[method]
  config = load_config(os.path.join(ROOT, "configs", name), variant)
  with_none = "none" in (config.space.ops or "none")  # '' = the space's default ops (with none)
  config.space.ops = (SMALL_OPS if with_none else SMALL_OPS_WITHOUT_NONE)[config.space.name]
  config.arch_every = min(config.arch_every, STEPS)  # iDARTS (T=5): an alpha step within STEPS
  return config


def run_steps(config, devices: int):
  """``STEPS`` search steps on a ``devices``-device mesh: (final state on the host, step_fn)."""
  config.mesh.data = devices
  search = search_lib.build_search(config)
  state = search_lib.start_state(search)
  step_fn = search_lib.jit_search_step(search)
  for step in range(STEPS):
    state, _ = step_fn(state, search_lib.step_batches(search, step))
  assert all(leaf.sharding.is_fully_replicated for leaf in jax.tree.leaves(state))
  assert {d for leaf in jax.tree.leaves(state) for d in leaf.sharding.device_set} == set(
      search.parallel.mesh.devices.flat)
  return jax.device_get(state), step_fn


def assert_states_close(sharded, single):
  for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(sharded)[0],
                          jax.tree.leaves(single)):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5,
                               err_msg=jax.tree_util.keystr(path))


# The methods whose two programs (1 and 8 devices) take longest to compile are marked slow (run by
# .ci/run's -m slow): MiLeNAS on the DARTS space (about 40 s), iDARTS (30 s), R-DARTS (20 s). The
# default run keeps first- and second-order DARTS, GAEA and DARTS-PRIME: the partitioned loss,
# BatchNorm, gradient, hypergradient and proximal steps.
SLOW_METHODS = {"milenas", "idarts", "rarts", "gdas", "gdas_darts_space", "milenas_gdas",
                "gaea_gdas", "snas", "drnas", "drnas_pruning", "fair_darts", "sdarts_adv",
                "beta_darts", "darts_minus"}


@pytest.mark.parametrize("method", [pytest.param(m, marks=pytest.mark.slow) if m in SLOW_METHODS
                                    else m for m in sorted(METHOD_CONFIGS)])
def test_sharded_step_equals_single_device_step(method):
  single, _ = run_steps(method_config(method), 1)
  sharded, step_fn = run_steps(method_config(method), DEVICES)
  assert step_fn._cache_size() == 1  # no recompilation across steps
  assert_states_close(sharded, single)
  # The steps did something: alpha moved off its initial value.
  search = search_lib.build_search(method_config(method))
  initial = jax.device_get(search_lib.init_state(search))
  moved = [not np.allclose(a, b) for a, b in zip(jax.tree.leaves(sharded.arch),
                                                 jax.tree.leaves(initial.arch))]
  assert any(moved)


def test_batches_are_split_over_the_mesh_and_each_device_holds_its_rows():
  config = load_config(os.path.join(ROOT, "configs", "quickstart.py"), "smoke")
  config.mesh.data = DEVICES
  search = search_lib.build_search(config)
  images, labels = search_lib.step_batches(search, 0)["train"]
  assert images.shape[0] == config.batch_size
  assert images.sharding.spec == jax.sharding.PartitionSpec(sharding.DATA_AXIS)
  shard_rows = sorted(shard.index[0].start for shard in labels.addressable_shards)
  assert shard_rows == list(range(0, config.batch_size, config.batch_size // DEVICES))
  idx = search_lib.data_lib.batch_indices(config.seed, 0, len(search.splits.weights),
                                    config.batch_size, stream=search_lib.WEIGHTS_STREAM,
                                    with_replacement=False)
  np.testing.assert_array_equal(np.asarray(labels), search.splits.weights.labels[idx])


def test_process_rows_of_one_process_are_all_rows():
  parallel = sharding.DataParallel(sharding.make_mesh(DEVICES))
  assert sharding.process_rows(parallel.batch_sharding, 16) == slice(0, 16)
  assert sharding.process_rows(parallel.replicated, 5) == slice(0, 5)


def test_bad_mesh_and_batch_sizes_name_the_fix():
  with pytest.raises(ValueError, match="config.mesh.data=9 devices requested"):
    sharding.make_mesh(9)
  config = load_config(os.path.join(ROOT, "configs", "quickstart.py"), "smoke",
                       **{"mesh.data": DEVICES, "batch_size": 12})
  with pytest.raises(ValueError, match="config.batch_size=12 does not split over the 8 devices"):
    search_lib.build_search(config)


def test_a_partial_batch_is_replicated():
  parallel = sharding.DataParallel(sharding.make_mesh(DEVICES))
  images = np.arange(5 * 2, dtype=np.uint8).reshape(5, 2)
  (out,) = parallel.put_batch(lambda idx: (images[idx],), np.arange(5))
  assert out.sharding.is_fully_replicated
  np.testing.assert_array_equal(np.asarray(out), images)


def nao_child_steps(devices: int):
  """Two NAO-V2 supernet steps (``child_step``) on a ``devices``-device mesh, on the host."""
  from jaxnas.nao import search as nao_search
  config = load_config(os.path.join(ROOT, "configs", "nao_v2_nb201.py"), "smoke")
  config.space.ops = SMALL_OPS["nb201"]
  config.mesh.data = devices
  search = nao_search.build(config)
  state = search.parallel.replicate(nao_search.init_state(search))
  step_fn = jax.jit(functools.partial(nao_search.child_step, search=search), donate_argnums=0,
                    out_shardings=search.parallel.replicated)
  for step in range(STEPS):
    idx = np.arange(step * config.batch_size, (step + 1) * config.batch_size)
    state, _ = step_fn(state, *search.parallel.put_examples(search.splits.weights, idx))
  assert step_fn._cache_size() == 1
  return jax.device_get(state)


# Slow (about 30 s: NAO-V2's supernet step compiled for 1 and 8 devices).
@pytest.mark.slow
def test_nao_supernet_step_sharded_equals_single_device():
  assert_states_close(nao_child_steps(DEVICES), nao_child_steps(1))


# ----------------------------------------------------------------- one XLA device per CPU core
def test_auto_cpu_devices_is_the_largest_core_count_dividing_every_batch():
  assert cpu.MIN_EXAMPLES_PER_CPU_DEVICE == 8
  assert cpu.auto_cpu_devices({"batch_size": 64, "eval_batch_size": 256}, cores=2) == 2
  assert cpu.auto_cpu_devices({"batch_size": 256}, cores=16) == 16
  assert cpu.auto_cpu_devices({"batch_size": 64}, cores=16) == 8    # >= 8 examples each
  assert cpu.auto_cpu_devices({"batch_size": 96, "eval_batch_size": 250}, cores=16) == 2
  assert cpu.auto_cpu_devices({"batch_size": 96}, cores=16) == 12
  assert cpu.auto_cpu_devices({"batch_size": 96}, cores=7) == 6
  assert cpu.auto_cpu_devices({"batch_size": 7}, cores=4) == 1
  assert cpu.auto_cpu_devices({"batch_size": 8}, cores=2) == 1     # the smoke configs
  assert cpu.auto_cpu_devices({"batch_size": 64}, cores=1) == 1


def test_batch_sizes_are_those_the_run_splits():
  search = load_config(os.path.join(ROOT, "configs", "quickstart.py"), "smoke",
                       **{"batch_size": 12, "arch_batch_size": 0, "eval_batch_size": 40})
  assert sharding.batch_sizes(search) == {"batch_size": 12, "arch_batch_size": 12,
                                          "eval_batch_size": 40}
  evaluation = load_config(os.path.join(ROOT, "configs", "eval_cifar10.py"), "smoke")
  assert set(sharding.batch_sizes(evaluation)) == {"batch_size", "eval_batch_size"}
  nao = load_config(os.path.join(ROOT, "configs", "nao_v2_nb201.py"), "smoke")
  assert sharding.batch_sizes(nao) == {"batch_size": nao.batch_size,
                                       "nao.score_batch_size": nao.nao.score_batch_size}


def test_cpu_devices_after_jax_started_keeps_them_or_names_the_fix():
  """In this process JAX runs on DEVICES virtual devices (conftest)."""
  assert jax.device_count() == DEVICES  # the backend has started
  config = load_config(os.path.join(ROOT, "configs", "quickstart.py"), "smoke")
  config.backend.cpu_devices = DEVICES
  assert backends.configure_cpu_devices(config).startswith(f"CPU devices: {DEVICES}")
  config.backend.cpu_devices = 3
  with pytest.raises(RuntimeError, match="config.backend.cpu_devices=3, but JAX's CPU backend "
                     "already started with 8 device"):
    backends.configure_cpu_devices(config)
  config.backend.cpu_devices = -1
  with pytest.raises(ValueError, match="config.backend.cpu_devices=-1 is not valid"):
    backends.configure_cpu_devices(config)
  config.backend.cpu_devices = "auto"
  config.backend.platform = "gpu"  # an accelerator's default: no split
  assert "does not split" in backends.configure_cpu_devices(config)
  config.mesh.cpu_devices = 2  # the name before config.backend
  with pytest.raises(ValueError, match="config.mesh.cpu_devices moved to "
                     "config.backend.cpu_devices: set --config.backend.cpu_devices=2"):
    backends.configure_cpu_devices(config)


CPU_DEVICES_SCRIPT = """
import json, os, sys
sys.path.insert(0, {root!r})
from tests.test_loop import load_config
from jaxnas import backends
os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:{cores}]))
config = load_config(os.path.join({root!r}, "configs", "quickstart.py"), "smoke",
                     **{{"backend.cpu_devices": {wanted}, "mesh.data": {mesh_data},
                        "batch_size": 16, "eval_batch_size": 16}})
message = backends.configure_cpu_devices(config)
import jax
print(json.dumps({{"message": message, "devices": jax.device_count()}}))
"""


def fresh_jax_env(xla_flags: str = "") -> dict[str, str]:
  """This environment for a child process whose JAX starts from scratch: CPU only, no device count
  inherited, ``xla_flags`` as its only XLA flags."""
  env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
  env["JAX_PLATFORMS"] = "cpu"
  if xla_flags:
    env["XLA_FLAGS"] = xla_flags
  return env


def _configure_in_fresh_process(wanted: int, cores: int, xla_flags: str = "",
                                mesh_data: int = 0) -> dict:
  script = CPU_DEVICES_SCRIPT.format(root=ROOT, wanted=wanted, cores=cores, mesh_data=mesh_data)
  out = subprocess.run([sys.executable, "-c", script], env=fresh_jax_env(xla_flags),
                       capture_output=True, text=True, timeout=120, check=True)
  return json.loads(out.stdout.strip().splitlines()[-1])


# Slow: five fresh processes each start JAX (about 40 s); the CLI test below splits the CPU in a
# fresh process in the default run.
@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity (Linux)")
def test_cpu_devices_split_the_host_before_jax_starts():
  cores = len(os.sched_getaffinity(0))
  auto = _configure_in_fresh_process(0, cores=1)
  assert auto["devices"] == 1, auto            # one usable core: one device
  if cores >= 2:
    auto = _configure_in_fresh_process(0, cores=2)
    assert auto["devices"] == 2, auto          # one device per core (8 examples each of 16)
  explicit = _configure_in_fresh_process(3, cores=1)
  assert explicit["devices"] == 3 and explicit["message"].startswith("CPU devices: 3"), explicit
  meshed = _configure_in_fresh_process(0, cores=1, mesh_data=4)
  assert meshed["devices"] == 4, meshed        # auto follows an explicit config.mesh.data
  flagged = _configure_in_fresh_process(0, cores=1,
                                        xla_flags="--xla_force_host_platform_device_count=5")
  assert flagged["devices"] == 5 and "XLA_FLAGS" in flagged["message"], flagged


def test_train_cli_splits_the_cpu_and_searches_on_the_mesh(tmp_path):
  """``python -m jaxnas.train`` applies ``config.backend.cpu_devices`` before JAX starts: the
  search then runs on that many devices (a 2-op smoke search), and logs the resolved backend."""
  env = fresh_jax_env("--xla_backend_optimization_level=0")
  out = subprocess.run(
      [sys.executable, "-m", "jaxnas.train", "--config=configs/quickstart.py:smoke",
       f"--workdir={tmp_path}", "--config.space.ops=none,skip_connect",
       "--config.backend.cpu_devices=2"],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  assert "CPU devices: 2 (config.backend.cpu_devices=2" in out.stdout, out.stdout
  assert "Backend: cpu (kernels=shifted, cpu_devices=2" in out.stdout, out.stdout
  assert "devices=2" in out.stdout, out.stdout
  assert os.path.exists(tmp_path / "result.json")
