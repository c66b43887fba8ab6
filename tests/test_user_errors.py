"""A user's mistakes are caught before any data is loaded or anything compiled (issue #31, item 4).

The first tests run the entry point as a user does (``python -m jaxnas.train`` in a subprocess) and
check what the user sees and has afterwards: a non-zero exit, one line ``error: ...`` naming the
field and the fix, no traceback, and a workdir left as it was (not created; a file left unchanged).
Each run stops before JAX compiles anything (a few seconds, mostly imports). The rest test the
checks in-process.
"""
import glob
import math
import os
import subprocess
import sys

import ml_collections
import pytest

from jaxnas import config_checks
from jaxnas import driver
from jaxnas import config_help
import repo_files

ROOT = repo_files.ROOT

SMOKE = "--config=configs/quickstart.py:smoke"
EVAL_SMOKE = "--config=configs/eval_cifar10.py:smoke"


def run_train(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
  """``python -m jaxnas.train ARGS`` from the repository root, CPU only."""
  env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
  env["JAX_PLATFORMS"] = "cpu"
  return subprocess.run([sys.executable, "-m", "jaxnas.train", *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(out: subprocess.CompletedProcess, *expected: str) -> str:
  """Exit status 2, stderr one line 'error: ...' holding every ``expected`` text, no traceback."""
  assert out.returncode == 2, (out.returncode, out.stdout[-2000:], out.stderr[-2000:])
  lines = [line for line in out.stderr.splitlines() if line.strip()]
  assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr[-3000:]
  assert "Traceback" not in out.stderr + out.stdout
  for text in expected:
    assert text in lines[0], lines[0]
  return lines[0]


# (case, extra args, texts the one line must hold: the field, the valid values or the fix)
CASES = [
    ("benchmark dataset typo", [SMOKE, "--config.benchmark.dataset=cifar1000"],
     ["config.benchmark.dataset='cifar1000'", "cifar10, cifar100, imagenet16_120",
      "--config.benchmark.dataset=cifar10"]),
    ("NaN learning rate", [SMOKE, "--config.weights_optimizer.learning_rate=nan"],
     ["config.weights_optimizer.learning_rate is NaN", "--config.weights_optimizer.learning_rate="]),
    ("unknown field", [SMOKE, "--config.epoch=2"],
     ["--config.epoch", "no field 'epoch'", 'Did you mean "epochs"?', "--config_help"]),
    ("missing config file", ["--config=configs/nope.py"],
     ["configs/nope.py", "available:", "configs/quickstart.py"]),
    ("eval genotype path missing", [EVAL_SMOKE, "--config.genotype=runs/nope/genotypes.jsonl"],
     ["config.genotype=runs/nope/genotypes.jsonl", "does not exist", "DARTS_V2"]),
]
SLOW_CASES = [
    ("negative alpha learning rate", [SMOKE, "--config.arch_optimizer.learning_rate=-1"],
     ["config.arch_optimizer.learning_rate=-1.0", "> 0", "--config.arch_optimizer.learning_rate="]),
    ("eval learning rate zero", [EVAL_SMOKE, "--config.optimizer.learning_rate=0"],
     ["config.optimizer.learning_rate=0.0", "> 0", "--config.optimizer.learning_rate=0.025"]),
    ("no data directory", ["--config=configs/darts_cifar10.py"],
     ["config.data.name='cifar10'", "cifar-10-binary.tar.gz", "--config.data.data_dir=DIR"]),
    ("benchmark table missing", [SMOKE, "--config.benchmark.path=/nonexistent/nats_bench.csv"],
     ["config.benchmark.path=/nonexistent/nats_bench.csv", "does not exist"]),
    ("unknown variant", ["--config=configs/quickstart.py:smok"],
     ["Unknown config variant 'smok'", "smoke"]),
    ("value of the wrong type", [SMOKE, "--config.epochs=abc"],
     ["--config.epochs=abc", "invalid literal for int()", "--config_help"]),
]


@pytest.mark.parametrize(
    "args,expected",
    [pytest.param(a, e, id=c) for c, a, e in CASES]
    + [pytest.param(a, e, id=c, marks=pytest.mark.slow) for c, a, e in SLOW_CASES])
def test_user_error_is_one_line_and_leaves_no_workdir(tmp_path, args, expected):
  workdir = tmp_path / "run"
  out = run_train(*args, f"--workdir={workdir}")
  assert_one_line_error(out, *expected)
  assert not workdir.exists()  # nothing made: no config.json, no checkpoints/


def test_workdir_that_is_a_file_is_refused_and_left_unchanged(tmp_path):
  notes = tmp_path / "notes.txt"
  notes.write_text("my notes\n")
  before = os.stat(notes)
  out = run_train(SMOKE, f"--workdir={notes}")
  assert_one_line_error(out, f"--workdir={notes} is a file; choose a directory")
  assert notes.read_text() == "my notes\n" and os.stat(notes).st_mtime_ns == before.st_mtime_ns
  assert sorted(os.listdir(tmp_path)) == ["notes.txt"]


def test_help_lists_every_config_field_with_its_meaning():
  out = run_train("--help", SMOKE, "--config.epochs=7")
  assert out.returncode == 0, out.stderr[-3000:]
  assert "--config_help" in out.stdout and "--traceback" in out.stdout
  assert "epochs = 7  # search epochs" in out.stdout  # the loaded config's value, with its meaning
  assert "benchmark.dataset = 'cifar10'  # which benchmark dataset to report" in out.stdout
  assert "weights_optimizer.learning_rate = " in out.stdout


@pytest.mark.slow
def test_traceback_flag_reraises(tmp_path):
  out = run_train(SMOKE, "--config.benchmark.dataset=cifar1000", "--traceback",
                  f"--workdir={tmp_path / 'run'}")
  assert out.returncode != 0 and "Traceback" in out.stderr
  assert "ValueError: config.benchmark.dataset='cifar1000'" in out.stderr


# ------------------------------------------------------------------------------------------------
# In-process: the checks themselves.


def smoke_config(name: str = "quickstart", variant: str = "smoke") -> ml_collections.ConfigDict:
  """A config of ``configs/<name>.py``, unlocked for the test to change."""
  config = repo_files.load_module(f"configs/{name}.py").get_config(variant)
  config.unlock()
  return config


def test_every_shipped_config_passes(tmp_path):
  """Every config file and variant passes ``validate_before_compute`` (given a data directory)."""
  checked = 0
  for path in sorted(glob.glob(os.path.join(ROOT, "configs", "*.py"))):
    name = os.path.basename(path)[:-3]
    if name == "__init__":
      continue
    module = repo_files.load_module(f"configs/{name}.py")
    for variant in (None, "smoke", *getattr(module, "VARIANTS", {})):
      config = module.get_config(variant)
      if config.data.name in config_checks.FILE_DATASETS and not config.data.data_dir:
        with config.unlocked():
          config.data.data_dir = str(tmp_path)
      driver.validate_before_compute(config, str(tmp_path / "run"))
      checked += 1
  assert checked > 40


@pytest.mark.parametrize("field,value,message", [
    ("weights_optimizer.learning_rate", math.inf, "must be a finite number > 0"),
    ("weights_optimizer.learning_rate", -0.1, "must be a finite number > 0"),
    ("arch_optimizer.learning_rate", 0.0, "must be a finite number > 0"),
    ("weights_optimizer.min_learning_rate", -1e-3, "must be a finite number >= 0"),
    ("weights_optimizer.min_learning_rate", math.nan, "is NaN"),
    ("nao.controller.learning_rate", -1.0, "must be a finite number > 0"),
    ("rarts.beta", math.nan, "is NaN"),
])
def test_bad_numbers_are_refused(field, value, message):
  config = smoke_config()
  *parents, leaf = field.split(".")
  node = config
  for part in parents:
    node = node[part]
  node[leaf] = value
  with pytest.raises(ValueError, match=f"config.{field}.*{message}"):
    driver.validate_before_compute(config)


def test_infinite_rarts_beta_stays_allowed():
  """``rarts.beta = inf`` means tied networks (configs/default.py): only NaN is refused there."""
  config = smoke_config()
  config.rarts.beta = math.inf
  config_checks.check_numbers(config)


def test_eval_learning_rates_are_checked():
  config = smoke_config("eval_cifar10")
  config.optimizer.min_learning_rate = -1.0
  with pytest.raises(ValueError, match="config.optimizer.min_learning_rate=-1.0 must be"):
    driver.validate_before_compute(config)


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100", "imagenet16_120", "ImageNet16-120"])
def test_benchmark_datasets_and_aliases_pass(dataset):
  config = smoke_config()
  config.benchmark.dataset = dataset
  config_checks.check_benchmark(config)


def test_data_paths(tmp_path):
  config = smoke_config()
  config.data.name = "cifar100"
  with pytest.raises(FileNotFoundError, match="cifar-100-binary.tar.gz.*--config.data.data_dir"):
    config_checks.check_data_paths(config)
  config.data.data_dir = str(tmp_path / "missing")
  with pytest.raises(FileNotFoundError, match="config.data.data_dir=.*missing does not exist"):
    config_checks.check_data_paths(config)
  config.data.data_dir = str(tmp_path)
  config.data.nb201_split_file = str(tmp_path / "cifar100-test-split.txt")
  with pytest.raises(FileNotFoundError, match="config.data.nb201_split_file=.* is not a file"):
    config_checks.check_data_paths(config)
  (tmp_path / "cifar100-test-split.txt").write_text("")
  config_checks.check_data_paths(config)


def test_genotype_paths_and_names(tmp_path):
  config = smoke_config("eval_cifar10")
  config.genotype = "NB201_BEST_CIFAR10"
  config_checks.check_genotype(config)
  config.genotype = str(tmp_path / "run")  # a workdir that is not there
  with pytest.raises(FileNotFoundError, match="looks like a path but does not exist"):
    config_checks.check_genotype(config)
  (tmp_path / "empty").mkdir()
  config.genotype = str(tmp_path / "empty")  # a directory that is no search workdir
  with pytest.raises(FileNotFoundError, match="is a directory without genotypes.jsonl"):
    config_checks.check_genotype(config)
  config.genotype = "NOT_A_GENOTYPE"
  with pytest.raises(ValueError):
    config_checks.check_genotype(config)


def test_workdir_checks(tmp_path):
  config_checks.check_workdir(str(tmp_path))                  # an existing directory: resume
  config_checks.check_workdir(str(tmp_path / "new" / "run"))  # to be made
  (tmp_path / "f").write_text("")
  with pytest.raises(NotADirectoryError, match="is a file; choose a directory"):
    config_checks.check_workdir(str(tmp_path / "f"))
  with pytest.raises(NotADirectoryError, match="is inside the file"):
    config_checks.check_workdir(str(tmp_path / "f" / "run"))
  with pytest.raises(ValueError, match="--workdir is empty"):
    config_checks.check_workdir("")


def test_unknown_mode_is_refused():
  config = smoke_config()
  config.mode = "evaluate"
  with pytest.raises(ValueError, match="config.mode='evaluate' is not valid; choose one of"):
    driver.validate_before_compute(config)


def test_config_help_has_a_meaning_for_every_default_field():
  """Every field of ``configs/default.py`` has a meaning (its trailing comment) in the listing."""
  listing = config_help.config_help(None, None)
  fields = [f for f, _ in config_checks.leaves(smoke_config("default", None))
            if f not in config_help.RETIRED]
  lines = {line.split(" = ")[0]: line for line in listing.splitlines() if " = " in line}
  assert set(fields) <= set(lines)
  assert [f for f in fields if "  # " not in lines[f]] == []
  notes, _ = config_help.meanings(config_help.default_config_path())
  assert notes["backend.unroll"].startswith("True: unroll")  # not smoke()'s comment
  assert "T weight steps per alpha step" in notes["epoch_unit"]  # continuation lines joined


def test_config_help_of_an_eval_config_uses_its_own_meanings():
  notes = config_help.merged_meanings(os.path.join(ROOT, "configs", "eval_cifar10.py"))
  assert notes["epochs"] == "training epochs"       # not the search's "search epochs"
  assert notes["backend.platform"].startswith("whose defaults")  # inherited from default.py
