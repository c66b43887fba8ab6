"""Multi-host: 2-process searches on loopback (2 virtual CPU devices each, Gloo collectives).

Both processes run the same program on a 4-device mesh, each feeding only its own rows of every
batch; they must finish the smoke search, then the same search as 2 vmapped seeds, and hold the
same alpha, equal to a one-process run's. (NAO-V2 runs the same way: ``multihost_worker.py``'s
``nao`` mode, run by hand as recorded in ``experiments/README.md``; not here, it takes a minute.)
"""
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from jaxnas import search as search_lib
from test_loop import ROOT, load_config

WORKER = os.path.join(ROOT, "tests", "multihost_worker.py")


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


# Slow: two processes each start JAX and compile the searches (about a minute).
@pytest.mark.slow
def test_two_processes_on_loopback_finish_a_search_with_identical_alpha(tmp_path):
  port = free_port()
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_NUM_CPU_DEVICES": "2"}
  env["XLA_FLAGS"] = "--xla_backend_optimization_level=0"
  workers = [subprocess.Popen([sys.executable, WORKER, str(port), str(pid), str(tmp_path),
                               "search,seeds"],
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
    for mode in ("search", "seeds"):
      assert f"{mode} process {pid}: devices=4 local=2 step=2" in out
  finals = {mode: [np.load(tmp_path / mode / f"final_{pid}.npz") for pid in (0, 1)]
            for mode in ("search", "seeds")}
  for mode, (a, b) in finals.items():
    assert set(a) == set(b) == {"cell"}
    np.testing.assert_array_equal(a["cell"], b["cell"], err_msg=mode)
  # ... and equal to the same search in one process on one device, which is also seed 0 of the
  # vmapped seeds (seed 1 is another search).
  config = load_config(os.path.join(ROOT, "configs", "quickstart.py"), "smoke",
                       **{"space.ops": "none,skip_connect"})  # as in the workers
  search = search_lib.build_search(config)
  state = search_lib.start_state(search)
  step_fn = search_lib.jit_search_step(search)
  for step in range(2):
    state, _ = step_fn(state, search_lib.step_batches(search, step))
  single = jax.device_get(state.arch)["cell"]
  np.testing.assert_allclose(finals["search"][0]["cell"], single, rtol=1e-4, atol=1e-6)
  seeds_arch = finals["seeds"][0]["cell"]
  np.testing.assert_allclose(seeds_arch[0], single, rtol=1e-4, atol=1e-6)
  assert not np.allclose(seeds_arch[1], single)
  # Only process 0 wrote the logs; the checkpoint was written once, by both together.
  assert (tmp_path / "search" / "result.json").exists()
  assert sorted(os.listdir(tmp_path / "search" / "checkpoints")) == ["1", "2"]
  assert (tmp_path / "seeds" / "seeds.json").exists()
  assert sorted(os.listdir(tmp_path / "seeds" / "seed_1")) == sorted(
      os.listdir(tmp_path / "seeds" / "seed_0"))
