"""Multi-host: a 2-process search on loopback (2 virtual CPU devices each, Gloo collectives).

Both processes run the same program on a 4-device mesh, each feeding only its own rows of every
batch; they must finish the smoke search and hold the same alpha, equal to a one-process run's.
"""
import os
import socket
import subprocess
import sys

import jax
import numpy as np

from jaxnas import loop
from test_loop import ROOT, load_config

WORKER = os.path.join(ROOT, "tests", "multihost_worker.py")


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_two_processes_on_loopback_finish_a_search_with_identical_alpha(tmp_path):
  port = free_port()
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_NUM_CPU_DEVICES": "2"}
  env["XLA_FLAGS"] = "--xla_backend_optimization_level=0"
  workers = [subprocess.Popen([sys.executable, WORKER, str(port), str(pid), str(tmp_path)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for pid in (0, 1)]
  outputs = []
  for worker in workers:
    try:
      out, _ = worker.communicate(timeout=600)
    finally:
      worker.kill()
    outputs.append(out)
  for pid, (worker, out) in enumerate(zip(workers, outputs)):
    assert worker.returncode == 0, f"process {pid} failed:\n{out[-4000:]}"
    assert f"process {pid}: devices=4 local=2 step=2" in out
  arch = [np.load(tmp_path / f"arch_{pid}.npz") for pid in (0, 1)]
  assert set(arch[0]) == set(arch[1])
  for name in arch[0]:
    np.testing.assert_array_equal(arch[0][name], arch[1][name])
  # ... and equal to the same search in one process on one device.
  config = load_config(os.path.join(ROOT, "configs", "quickstart.py"), "smoke",
                       **{"space.ops": "none,skip_connect"})  # as in the workers
  search = loop.build_search(config)
  state = loop.start_state(search)
  step_fn = loop.jit_search_step(search)
  for step in range(2):
    state, _ = step_fn(state, loop.step_batches(search, step))
  for name, value in jax.device_get(state.arch).items():
    np.testing.assert_allclose(arch[0][name], value, rtol=1e-4, atol=1e-6)
  # Only process 0 wrote the logs; the checkpoint was written once, by both together.
  assert (tmp_path / "result.json").exists()
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["1", "2"]
