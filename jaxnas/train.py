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

``--help`` (or ``--config_help``) lists every config field with its value and meaning (those of
``--config``'s file when given). The config is checked before any data is loaded or anything is
compiled (``jaxnas.driver.validate_before_compute``); a user error (a bad value, a missing
file, an unknown field, a workdir that is a file) prints one line ``error: <what is wrong and the
fix>`` to stderr and exits with status 2; ``--traceback`` shows the full traceback instead.
"""
import glob
import os
import re
import sys
from typing import NoReturn

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from jaxnas import backends
from jaxnas import checkpoint
from jaxnas import config_checks
from jaxnas import config_help
from jaxnas import driver
from jaxnas import program
from jaxnas import sharding

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to a config file, optionally with ':smoke'.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and genotypes.")
_CONFIG_HELP = flags.DEFINE_bool(
    "config_help", False, "List every config field with its value and meaning (those of --config "
    "when given), then exit. --help does the same.")
_TRACEBACK = flags.DEFINE_bool(
    "traceback", False, "On a user error, raise it with its traceback instead of one line.")

# The errors a user's input causes: printed as one line, exit status 2 (--traceback: raised).
USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, checkpoint.CheckpointError,
               program.RunError)
EXIT_USER_ERROR = 2
_HELP_ARGS = ("--help", "-help", "-h", "-?", "--helpshort", "-helpshort")


def fail(message: str) -> NoReturn:
  """Prints ``error: <message>`` (one line) to stderr and exits with status 2."""
  print(f"error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
  sys.exit(EXIT_USER_ERROR)


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, but a bad flag, config file or config field is one line (exit 2).

  ``--help`` is taken as ``--config_help``: the flags and every config field.
  """
  argv = ["--config_help" if arg in _HELP_ARGS else arg for arg in argv]
  check_config_file(argv)
  try:
    rest = flags.FLAGS(argv)
  except (flags.Error, AttributeError, KeyError, OSError, ValueError, TypeError) as e:
    if wants_traceback(argv):
      raise
    fail(flag_error_message(e, argv))
  return rest


def wants_traceback(argv: list[str]) -> bool:
  """Whether ``argv`` sets ``--traceback`` (read before the flags are parsed)."""
  return any(arg.lstrip("-") in ("traceback", "traceback=true", "traceback=True", "traceback=1")
             for arg in argv)


def check_config_file(argv: list[str]) -> None:
  """The file of ``--config=FILE[:variants]`` exists; else one line listing the available ones."""
  for i, arg in enumerate(argv):
    if arg in ("--config", "-config") and i + 1 < len(argv):
      value = argv[i + 1]
    elif arg.startswith(("--config=", "-config=")):
      value = arg.split("=", 1)[1]
    else:
      continue
    path = value.split(":", 1)[0]
    if not os.path.isfile(path):
      available = sorted(p for p in glob.glob(os.path.join("configs", "*.py"))
                         if not p.endswith("__init__.py"))
      fail(f"--config={value}: no config file {path!r} (paths are relative to {os.getcwd()}); "
           f"available: {', '.join(available) or 'none in ./configs'}.")


def flag_error_message(error: Exception, argv: list[str]) -> str:
  """One line for an error of flag parsing: the flag, what is wrong, and the fix."""
  text = str(error)
  if isinstance(error, (AttributeError, KeyError)):  # --config.<unknown field>=...
    names = re.findall(r"[\w]+", text.split("Did you mean")[0])
    field = names[0] if names else "?"
    hint = re.search(r'Did you mean "([\w.]+)"', text.replace("\\", ""))
    flag = next((a.split("=")[0] for a in argv
                 if a.lstrip("-").startswith("config.") and field in a.split("=")[0].split(".")),
                f"--config.{field}")
    suggestion = f' Did you mean "{hint.group(1)}"?' if hint else ""
    return (f"{flag}: the config has no field {field!r}.{suggestion} "
            "--config_help lists every field.")
  if "Error whilst parsing config file" in text:  # the config's get_config raised
    last = [line for line in text.splitlines() if line.strip()][-1].strip()
    return f"{text.split(': Error whilst')[0]}: {last}"
  if text.startswith("flag --config."):  # a value of the wrong type
    return (f"{text}; give a value of the field's type (--config_help lists every field with its "
            "value).")
  return text


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if _CONFIG_HELP.value:
    print_help()
    return
  for name, value in (("config", _CONFIG.value), ("workdir", _WORKDIR.value)):
    if value is None:
      fail(f"--{name} is required: python -m jaxnas.train --config=configs/<file>.py[:smoke] "
           "--workdir=DIR (--help lists the config fields).")
  try:
    run(_CONFIG.value, _WORKDIR.value)
  except USER_ERRORS as e:
    if _TRACEBACK.value:
      raise
    fail(str(e))


def print_help() -> None:
  """The command's usage and flags, then every config field (``jaxnas.config_help``)."""
  print(__doc__)
  print(flags.FLAGS.main_module_help())
  print()
  config_path = (config_flags.get_config_filename(flags.FLAGS["config"]).split(":")[0]
                 if _CONFIG.value is not None else None)
  print(config_help.config_help(_CONFIG.value, config_path))


def run(config, workdir: str) -> None:
  """Checks ``config`` and ``workdir`` (no data, no compilation), then runs the program."""
  config_checks.check_workdir(workdir)
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # progress goes to stdout; --verbosity=0 for absl INFO
  sharding.initialize_distributed(config)  # multi-host: before any other JAX call
  cpu_devices = backends.configure_cpu_devices(config)  # before the backend starts
  backend = backends.resolve(config)  # starts JAX's backend: after the CPU split
  if jax.process_index() == 0:
    print(cpu_devices, flush=True)
    print(backend.describe(), flush=True)
  driver.train_and_evaluate(config, workdir)


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
