"""Entry point: ``python -m jaxnas.train --config=configs/<file>.py[:smoke] --workdir=DIR``.

Rerunning the same command with the same workdir resumes from the latest checkpoint. Any config
field can be overridden: ``--config.epochs=10 --config.data.data_dir=/data``. A config with
``config.mode = 'eval'`` (``configs/eval_*.py``) trains ``config.genotype`` from scratch
(``jaxnas.evaluate``) instead of searching; ``config.method = 'nao_v2'`` runs NAO-V2
(``jaxnas.nao.search``); ``config.num_seeds > 1`` runs that many seeds as one vmapped program
(``jaxnas.seeds``). Each is a program the one driver runs (``jaxnas.driver``).

Platform-specific settings come from ``config.backend`` (``jaxnas.backends``): on a CPU host the
command first splits XLA's CPU backend into one device per core (``config.backend.cpu_devices``),
and the batch is split over them; it then logs the resolved backend. Multi-host (TPU pod slice, several GPU hosts): run the same command on every host with
``--config.distributed.enabled=true`` (see README, "Scaling out").
"""
from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from jaxnas import backends
from jaxnas import driver
from jaxnas import sharding

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to a config file, optionally with ':smoke'.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and genotypes.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # progress goes to stdout; --verbosity=0 for absl INFO
  sharding.initialize_distributed(_CONFIG.value)  # multi-host: before any other JAX call
  cpu_devices = backends.configure_cpu_devices(_CONFIG.value)  # before the backend starts
  backend = backends.resolve(_CONFIG.value)  # starts JAX's backend: after the CPU split
  if jax.process_index() == 0:
    print(cpu_devices, flush=True)
    print(backend.describe(), flush=True)
  driver.train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)
