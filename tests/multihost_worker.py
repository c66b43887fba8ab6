"""One process of the 2-process loopback test (tests/test_multihost.py), not a test itself.

Usage: python tests/multihost_worker.py PORT PROCESS_ID WORKDIR [MODES]
Runs, as process PROCESS_ID of 2 (each with the virtual CPU devices of JAX_NUM_CPU_DEVICES), one
smoke search per comma-separated MODE (default ``search``) in WORKDIR/MODE, and writes what the
two processes must agree on to WORKDIR/MODE/final_<PROCESS_ID>.npz:
  search  the quickstart smoke search (2 ops); its final alpha;
  seeds   the same as 2 vmapped seeds (``config.num_seeds = 2``); the stacked alphas;
  nao     the NAO-V2 smoke search on NB201; its final pool's architectures and scores.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from jaxnas import checkpoint as checkpoint_lib  # noqa: E402
from jaxnas import driver  # noqa: E402
from jaxnas import search as search_lib  # noqa: E402
from jaxnas import seeds  # noqa: E402
from jaxnas import sharding  # noqa: E402
from jaxnas.nao import search as nao_search  # noqa: E402
from test_loop import load_config  # noqa: E402


def search_config(port: str, process_id: str, mode: str):
  """The smoke config of ``mode`` as process ``process_id`` of 2, coordinated on ``port``."""
  if mode == "nao":
    config = load_config(os.path.join(ROOT, "configs", "nao_v2_nb201.py"), "smoke")
  else:
    config = load_config(os.path.join(ROOT, "configs", "quickstart.py"), "smoke",
                         **{"space.ops": "none,skip_connect"})  # 2 ops: a short compile
    config.num_seeds = 2 if mode == "seeds" else 1
  config.backend.kernels = "xla"  # the suite's kernels (conftest), as the one-process reference
  config.distributed.enabled = True
  config.distributed.coordinator_address = f"127.0.0.1:{port}"
  config.distributed.num_processes = 2
  config.distributed.process_id = int(process_id)
  return config


def final_values(config, workdir: str, mode: str) -> dict[str, np.ndarray]:
  """What both processes must agree on, read back from the run's last checkpoint: alpha (stacked
  over the seeds for ``seeds``), or NAO's final pool (architectures and scores)."""
  if mode == "nao":
    search = nao_search.build(config)
    abstract = jax.eval_shape(lambda: nao_search.init_state(search))
    with checkpoint_lib.CheckpointManager(os.path.join(workdir, "checkpoints"),
                                          fingerprint=nao_search.fingerprint(search)) as manager:
      state = manager.restore(abstract)
    tokens, scores = nao_search.pool(state)
    return {"pool_tokens": np.asarray(tokens), "pool_scores": np.asarray(scores)}
  program = (seeds.SeedsProgram if mode == "seeds" else search_lib.SearchProgram).from_config(
      config)
  state, manager, resumed = driver.restore_or_start(program, workdir)
  manager.close()
  assert resumed
  return {k: np.asarray(v) for k, v in jax.device_get(state.arch).items()}


def run(port: str, process_id: str, workdir: str, mode: str) -> None:
  """One ``mode`` search in ``workdir``, then its ``final_<process_id>.npz``."""
  config = search_config(port, process_id, mode)
  summary = driver.train_and_evaluate(config, workdir)
  if mode == "nao":
    final, progress = summary["best_arch"], f"pool={summary['pool_size']}"
  else:
    final = summary.get("final_genotype", summary.get("spread"))
    progress = f"step={summary['step']}"
  np.savez(os.path.join(workdir, f"final_{process_id}.npz"),
           **final_values(config, workdir, mode))
  print(f"{mode} process {process_id}: devices={jax.device_count()} "
        f"local={jax.local_device_count()} {progress} final={final}", flush=True)


def main(port: str, process_id: str, workdir: str, modes: str = "search") -> None:
  sharding.initialize_distributed(search_config(port, process_id, "search"))
  assert jax.process_count() == 2, jax.process_count()
  for mode in modes.split(","):
    run(port, process_id, os.path.join(workdir, mode), mode)


if __name__ == "__main__":
  main(*sys.argv[1:])
