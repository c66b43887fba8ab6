"""Validation of a search config before anything is loaded or compiled: clear errors, early."""
from __future__ import annotations

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
    _positive(_get(config, field), field)
  for field in ("arch_batch_size", "max_steps", "data.max_examples", "eval_max_batches",
                "data.crop_padding", "data.cutout", "diagnostics.every_steps", "mesh.data"):
    _positive(_get(config, field), field, allow_zero=True)
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


def _get(config: ml_collections.ConfigDict, dotted: str):
  value = config
  for part in dotted.split("."):
    value = value[part]
  return value
