"""One process of the 2-process loopback test (tests/test_multihost.py), not a test itself.

Usage: python tests/multihost_worker.py PORT PROCESS_ID WORKDIR
Runs the quickstart smoke search as process PROCESS_ID of 2 (each with the virtual CPU devices of
JAX_NUM_CPU_DEVICES), then writes this process's final alpha to WORKDIR/arch_<PROCESS_ID>.npz.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from jaxnas import loop  # noqa: E402
from jaxnas import sharding  # noqa: E402
from test_loop import load_config  # noqa: E402


def main(port: str, process_id: str, workdir: str) -> None:
  config = load_config(os.path.join(ROOT, "configs", "quickstart.py"), "smoke",
                       **{"space.ops": "none,skip_connect"})  # 2 ops: a short compile
  config.distributed.enabled = True
  config.distributed.coordinator_address = f"127.0.0.1:{port}"
  config.distributed.num_processes = 2
  config.distributed.process_id = int(process_id)
  sharding.initialize_distributed(config)
  assert jax.process_count() == 2, jax.process_count()
  summary = loop.train_and_evaluate(config, workdir)
  search = loop.build_search(config)
  abstract = jax.eval_shape(lambda: loop.init_state(search))
  state, _, resumed = loop.restore_or_start(config, workdir, abstract, loop.fingerprint(search),
                                            search.parallel)
  assert resumed
  arch = {k: np.asarray(v) for k, v in jax.device_get(state.arch).items()}
  np.savez(os.path.join(workdir, f"arch_{process_id}.npz"), **arch)
  print(f"process {process_id}: devices={jax.device_count()} local={jax.local_device_count()} "
        f"step={summary['step']} final={summary.get('final_genotype')}")


if __name__ == "__main__":
  main(*sys.argv[1:])
