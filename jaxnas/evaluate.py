"""Training a found architecture from scratch (``TrainingProgram``, run by ``jaxnas.driver``).

``python -m jaxnas.train --config=configs/eval_cifar10.py --config.genotype=DARTS_V2 --workdir=DIR``
(any config with ``config.mode = 'eval'``). ``config.genotype`` is a registered name
(``jaxnas.genotypes``), a genotype string, or the path of a search's ``genotypes.jsonl`` / workdir
(its last genotype); the space (DARTS, NB201 or NAO) follows from the genotype.

The DARTS evaluation protocol (quark0/darts ``cnn/train.py``; ``shared/spec/methods.md`` §1.3):
the whole training set (50k), batch 96, 600 epochs, SGD momentum 0.9, learning rate 0.025 cosine
to 0 per epoch (the reference's ``scheduler.step()`` at the start of each epoch: epoch e uses
lr(e + 1)), L2 weight decay 3e-4 on every weight, gradient-norm clip 5, random crop (pad 4) +
flip + cutout 16, auxiliary loss weight 0.4, drop-path probability ``0.2 * epoch / epochs``; the
test set is evaluated (running BatchNorm statistics) after every epoch. ImageNet mobile
(``train_imagenet.py``): batch 128, 250 epochs, lr 0.1 times 0.97 per epoch, wd 3e-5, label
smoothing 0.1 (``configs/eval_imagenet.py``).

NAO architectures (space ``'nao'``: ``NAONET_V2``, ``"nao:1 1 0 1 ..."``;
``configs/eval_cifar10.py:naonet`` is NAO-V2's ``train_NAONet_V2_36_cifar10.sh``) train
``model.NASNetworkCIFAR`` of ``renqianluo/NAO_pytorch`` (``jaxnas.spaces.nao.NAONetwork``, cells
concatenated): C = ``network.channels``, N = ``network.cells_per_stage`` (3N+2 cells;
``network.layers`` is not used), the auxiliary head with ``network.auxiliary``, dropout before the
classifier with probability ``config.dropout_prob`` (the reference's ``keep_prob = 1 -
dropout_prob``; only NAO networks have it). Drop-path keep probability ``1 - p`` for the ramped
``p`` below, times NAO's per-cell ramp (cell k of K keeps ``1 - (k+1)/K * p``), on every node input
including identities, as the reference does. ``config.drop_path_ramp``: ``'epoch'`` (DARTS: ``p =
drop_path_prob * epoch / epochs``) or ``'step'`` (NAO: ``p = drop_path_prob * (step + 1) /
total_steps``, total = epochs x steps per epoch).

Differences from the reference, on purpose: batches are a pure function of (seed, step) and the
last partial batch of an epoch is dropped (the reference keeps it: 521 vs 520 steps per epoch on
CIFAR-10), so a resumed run sees exactly the data of an uninterrupted one. Checkpoints hold the
whole ``EvalState`` (weights, BN statistics, optimizer, PRNG key).

Outputs in the workdir: ``config.json``, ``evaluation.jsonl`` (per epoch: test loss/accuracy),
``result.json`` (genotype, parameters with and without the auxiliary head, multiply-adds, the
final test accuracy -- no maximum over epochs, which would pick the epoch on test data),
``tensorboard/``, ``checkpoints/``, and with ``config.plots`` the picture
``genotype.png`` (DARTS and NB201 cells; NAO archs are not drawn). Multiply-adds: convolution and
dense layers of the eval-mode forward (``reports.count_macs``; for NAO networks, whose layers are
plain ``lax`` calls, the same count read off the forward's jaxpr, ``reports.jaxpr_macs``).
"""
from __future__ import annotations

import collections
import dataclasses
import functools
import json
import math
import os
from typing import Any, Callable

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxnas import backends
from jaxnas import config_checks
from jaxnas import data as data_lib
from jaxnas import genotypes as genotypes_lib
from jaxnas import metrics as metrics_lib
from jaxnas import optim
from jaxnas import program
from jaxnas import reports
from jaxnas import sharding
from jaxnas import spaces
from jaxnas.spaces import nao as nao_lib

SCHEDULES = ("cosine", "exponential")
DROP_PATH_RAMPS = ("epoch", "step")


@flax.struct.dataclass
class EvalState:
  """Everything needed to continue training bit for bit (raw PRNG key data in ``key``)."""
  step: jax.Array
  weights: Any
  model_state: Any
  opt_state: Any
  key: jax.Array


@dataclasses.dataclass(frozen=True)
class Trainer:
  """The static pieces the jitted steps close over (built once from the config)."""
  module: nn.Module
  tx: optax.GradientTransformation
  lr: Callable[[jax.Array], jax.Array]
  drop_path: Callable[[jax.Array], jax.Array]
  aux_weight: float
  label_smoothing: float
  num_classes: int
  mean: tuple[float, ...]
  std: tuple[float, ...]
  crop_padding: int
  flip: bool
  cutout: int


def lr_schedule(opt: ml_collections.ConfigDict, epochs: int, steps_per_epoch: int):
  """Per-epoch learning rate: cosine to ``min_learning_rate`` or ``lr * decay_rate**epoch``.

  ``epoch_offset=1`` reproduces the reference's ``scheduler.step()`` at the start of each epoch.
  """
  if opt.schedule == "cosine":
    return optim.cosine_schedule(opt.learning_rate, opt.min_learning_rate, epochs,
                                 steps_per_epoch, epoch_offset=opt.epoch_offset)

  def exponential(count):
    epoch = (count // steps_per_epoch + opt.epoch_offset).astype(jnp.float32)
    return opt.learning_rate * opt.decay_rate**epoch

  return exponential


def drop_path_schedule(prob: float, epochs: int, steps_per_epoch: int, ramp: str = "epoch"):
  """The drop-path probability at a step: ``ramp='epoch'`` is DARTS' ``prob * epoch / epochs``
  during epoch ``epoch`` (0 in the first); ``ramp='step'`` is NAO's per-step ramp
  ``prob * (step + 1) / (epochs * steps_per_epoch)`` (``apply_drop_path``'s ``step_ratio``).

  With ``prob == 0`` the schedule is the Python constant 0.0, so no drop-path masks are drawn.
  """
  if not prob:
    return lambda step: 0.0
  if ramp == "step":
    total = epochs * steps_per_epoch
    return lambda step: prob * (step + 1).astype(jnp.float32) / total

  def schedule(step):
    return prob * (step // steps_per_epoch).astype(jnp.float32) / epochs
  return schedule


def cross_entropy(logits: jax.Array, labels: jax.Array, num_classes: int,
                  smoothing: float = 0.0) -> jax.Array:
  """Per-example softmax cross-entropy, with uniform label smoothing (DARTS ImageNet's)."""
  if not smoothing:
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  targets = optax.smooth_labels(jax.nn.one_hot(labels, num_classes, dtype=logits.dtype), smoothing)
  return optax.softmax_cross_entropy(logits, targets)


def loss_fn(trainer: Trainer, weights, model_state, images, labels, key, drop_prob):
  """Training loss ``CE(logits) + aux_weight * CE(aux_logits)``; aux = (BN state, accuracy).

  One key serves two RNG stream names: DARTS networks draw drop-path masks from ``drop_path``,
  NAO networks drop-path and dropout masks from ``dropout``; no network reads both.
  """
  (logits, aux_logits), updates = trainer.module.apply(
      {"params": weights, "batch_stats": model_state}, images, train=True,
      drop_path_prob=drop_prob, rngs={"drop_path": key, "dropout": key},
      mutable=["batch_stats"])
  loss = jnp.mean(cross_entropy(logits, labels, trainer.num_classes, trainer.label_smoothing))
  if aux_logits is not None and trainer.aux_weight:
    loss = loss + trainer.aux_weight * jnp.mean(
        cross_entropy(aux_logits, labels, trainer.num_classes, trainer.label_smoothing))
  accuracy = jnp.mean((jnp.argmax(logits, -1) == labels).astype(jnp.float32))
  return loss, (updates.get("batch_stats", model_state), accuracy)


def train_step(state: EvalState, images: jax.Array, labels: jax.Array, *, trainer: Trainer
               ) -> tuple[EvalState, dict[str, jax.Array]]:
  """One SGD step on an augmented uint8 batch (augmentation and drop-path keys from the state)."""
  key = jax.random.wrap_key_data(state.key)
  key, key_aug, key_drop = jax.random.split(key, 3)
  x = data_lib.augment(key_aug, images, mean=trainer.mean, std=trainer.std,
                       crop_padding=trainer.crop_padding, flip=trainer.flip,
                       cutout=trainer.cutout)
  drop_prob = trainer.drop_path(state.step)
  grad_fn = jax.value_and_grad(
      lambda w: loss_fn(trainer, w, state.model_state, x, labels, key_drop, drop_prob),
      has_aux=True)
  (loss, (model_state, acc)), grads = grad_fn(state.weights)
  updates, opt_state = trainer.tx.update(grads, state.opt_state, state.weights)
  new = EvalState(step=state.step + 1, weights=optax.apply_updates(state.weights, updates),
                  model_state=model_state, opt_state=opt_state, key=jax.random.key_data(key))
  return new, {"train/loss": loss, "train/accuracy": acc, "lr/weights": trainer.lr(state.step),
               "train/drop_path_prob": drop_prob, "train/grad_norm": optax.tree.norm(grads)}


def eval_step(state: EvalState, images: jax.Array, labels: jax.Array, valid: jax.Array, *,
              trainer: Trainer) -> dict[str, jax.Array]:
  """Sums of loss and correct predictions (eval mode) over the ``valid`` examples of a batch."""
  x = data_lib.normalize(images, trainer.mean, trainer.std)
  logits, _ = trainer.module.apply({"params": state.weights, "batch_stats": state.model_state},
                                   x, train=False)
  losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
  return {"loss_sum": jnp.sum(losses * valid), "correct": jnp.sum(correct * valid)}


def evaluate(eval_fn, state: EvalState, split: data_lib.Split, batch: int,
             parallel: sharding.DataParallel, max_batches: int = 0,
             prefetch: int = 0) -> dict[str, float]:
  """Test loss and accuracy over the whole split (the last batch padded and masked).

  The sums stay on the device until the end (one host transfer per pass, not per batch); the next
  ``prefetch`` batches are gathered and placed on a background thread (``data.prefetch``).
  """
  num_batches = math.ceil(len(split) / batch)
  if max_batches:
    num_batches = min(num_batches, max_batches)

  def place(b: int) -> tuple[jax.Array, ...]:
    idx = np.arange(b * batch, min((b + 1) * batch, len(split)))
    valid = np.zeros(batch, np.float32)
    valid[:len(idx)] = 1.0
    padded = np.concatenate([idx, np.zeros(batch - len(idx), idx.dtype)])
    # Split over the mesh like a training batch (the padding makes every batch full).
    return parallel.put_batch(
        lambda rows: (split.images[padded[rows]], split.labels[padded[rows]].astype(np.int32),
                      valid[rows]), np.arange(batch))

  sums = None
  for placed in data_lib.prefetch(place, range(num_batches), prefetch):
    out = eval_fn(state, *placed)
    sums = out if sums is None else jax.tree.map(jnp.add, sums, out)
  count = min(len(split), num_batches * batch)
  sums = jax.device_get(sums)
  return {"test/loss": float(sums["loss_sum"]) / count,
          "test/accuracy": float(sums["correct"]) / count}


NAOEvalNetwork = nao_lib.NAOEvalNetwork  # moved to the NAO space; the name stays here


def check_space_fields(config: ml_collections.ConfigDict, space: str) -> None:
  """Fields only some spaces' networks support; raises ValueError naming the field."""
  spaces.space_class(space).check_network_config(config)


def build_network(config: ml_collections.ConfigDict, space: str, genotype: Any,
                  num_classes: int) -> nn.Module:
  """The discrete network of ``genotype`` with the sizes of ``config.network``: the space's
  ``network_from`` (``spaces.SPACES[space]``), with the kernels of ``config.backend``.

  NAO: C = ``network.channels``, N = ``network.cells_per_stage``, aux head with
  ``network.auxiliary``, classifier dropout ``config.dropout_prob`` (``NAOEvalNetwork``).
  """
  check_space_fields(config, space)
  return spaces.space_class(space).network_from(config, genotype, num_classes,
                                                backends.resolve(config).kernels)


def load_data(config: ml_collections.ConfigDict) -> tuple[data_lib.ImageDataset,
                                                          data_lib.Split, data_lib.Split]:
  """The dataset and its (train, test) splits, capped at ``data.max_examples`` if set."""
  options: dict[str, Any] = {}
  if config.data.name == "synthetic":
    options = dict(num_train=config.data.synthetic_num_train,
                   num_test=config.data.synthetic_num_test,
                   image_size=config.data.synthetic_image_size,
                   num_classes=config.data.synthetic_num_classes, seed=config.seed)
  elif config.data.name == "imagenet":
    options = data_lib.imagenet.config_options(config.data, config.seed)
  dataset = data_lib.get_dataset(config.data.name, data_dir=config.data.data_dir or None,
                                 **options)
  train = data_lib.Split(dataset.train_images, dataset.train_labels)
  test = data_lib.Split(dataset.test_images, dataset.test_labels)
  if config.data.max_examples:
    cap = slice(0, config.data.max_examples)
    train, test = train.take(cap), test.take(cap)
  return dataset, train, test


def validate(config: ml_collections.ConfigDict) -> None:
  """Names and ranges of the eval fields; raises ValueError naming the field."""
  if config.optimizer.schedule not in SCHEDULES:
    raise ValueError(f"config.optimizer.schedule={config.optimizer.schedule!r} is not valid; "
                     f"choose one of: {', '.join(SCHEDULES)}.")
  if config.data.name not in data_lib.DATASETS:
    raise ValueError(f"config.data.name={config.data.name!r} is not valid; choose one of: "
                     f"{', '.join(data_lib.DATASETS)}.")
  for field in ("epochs", "batch_size", "eval_batch_size", "log_every_steps",
                "checkpoint_every_steps", "eval_every_epochs"):
    if config[field] < 1:
      raise ValueError(f"config.{field} must be >= 1, got {config[field]}.")
  if config.data.name == "imagenet":
    data_lib.imagenet.check_device_augmentation(config.data)
  if not isinstance(config.data.prefetch, int) or config.data.prefetch < 0:
    raise ValueError(f"config.data.prefetch (batches prepared ahead on a background thread; 0 = "
                     f"off) must be an integer >= 0, got {config.data.prefetch!r}.")
  if not 0.0 <= config.drop_path_prob < 1.0:
    raise ValueError(f"config.drop_path_prob must be in [0, 1), got {config.drop_path_prob}.")
  if not 0.0 <= config.get("dropout_prob", 0.0) < 1.0:
    raise ValueError(f"config.dropout_prob must be in [0, 1), got {config.dropout_prob}.")
  ramp = config.get("drop_path_ramp", "epoch")
  if ramp not in DROP_PATH_RAMPS:
    raise ValueError(f"config.drop_path_ramp={ramp!r} is not valid; choose one of: "
                     f"{', '.join(DROP_PATH_RAMPS)}.")


def make_trainer(config, module, dataset, steps_per_epoch: int) -> Trainer:
  """The optimizer chain and schedules of the config (PyTorch SGD after global-norm clipping)."""
  opt = config.optimizer
  lr = lr_schedule(opt, config.epochs, steps_per_epoch)
  tx = optim.sgd_pytorch(lr, momentum=opt.momentum, weight_decay=opt.weight_decay,
                         clip_norm=opt.clip_norm, nesterov=opt.nesterov)
  return Trainer(module=module, tx=tx, lr=lr,
                 drop_path=drop_path_schedule(config.drop_path_prob, config.epochs,
                                              steps_per_epoch,
                                              config.get("drop_path_ramp", "epoch")),
                 aux_weight=config.auxiliary_weight, label_smoothing=config.label_smoothing,
                 num_classes=dataset.num_classes, mean=tuple(dataset.mean),
                 std=tuple(dataset.std), crop_padding=config.data.crop_padding,
                 flip=config.data.flip, cutout=config.data.cutout)


def init_state(seed: int, trainer: Trainer, image_shape: tuple[int, ...]) -> EvalState:
  """Fresh weights, BN statistics and optimizer state from ``seed``."""
  key_init, key_state = jax.random.split(jax.random.key(seed))
  x = jnp.zeros((1,) + tuple(image_shape), jnp.float32)
  variables = trainer.module.init(key_init, x, train=False)
  weights, model_state = variables["params"], variables.get("batch_stats", {})
  return EvalState(step=jnp.zeros((), jnp.int32), weights=weights, model_state=model_state,
                   opt_state=trainer.tx.init(weights), key=jax.random.key_data(key_state))


# Fields that change neither the network nor the training computation (resume-time knobs).
_RUN_FIELDS = ("max_steps", "log_every_steps", "checkpoint_every_steps", "keep_checkpoints",
               "eval_every_epochs", "eval_max_batches", "plots", "genotype", "data.prefetch")
_COMPILED: collections.OrderedDict = collections.OrderedDict()
_COMPILED_MAX = 4


def compiled_steps(config, space: str, genotype, dataset, steps_per_epoch: int,
                   parallel: sharding.DataParallel):
  """``(trainer, train step, eval step, init)``, jitted, for the config; reused within a process.

  Rerunning the same computation in one process (a resumed run in a notebook or a test) then
  skips tracing and compiling again. The key is the config without the run-length and logging
  fields, plus the resolved genotype and the epoch length.
  """
  fields = config.to_dict()
  for name in _RUN_FIELDS:
    *parents, leaf = name.split(".")
    functools.reduce(lambda d, k: d.get(k, {}), parents, fields).pop(leaf, None)
  key = json.dumps([fields, space, str(genotype), steps_per_epoch, str(parallel.mesh),
                    str(backends.resolve(config))], sort_keys=True, default=str)
  if key not in _COMPILED:
    module = build_network(config, space, genotype, dataset.num_classes)
    trainer = make_trainer(config, module, dataset, steps_per_epoch)
    replicated = parallel.replicated  # state and metrics: replicated on the mesh
    _COMPILED[key] = (trainer,
                      jax.jit(functools.partial(train_step, trainer=trainer), donate_argnums=0,
                              out_shardings=replicated),
                      jax.jit(functools.partial(eval_step, trainer=trainer),
                              out_shardings=replicated),
                      jax.jit(functools.partial(init_state, config.seed, trainer),
                              static_argnums=0, out_shardings=replicated))
    while len(_COMPILED) > _COMPILED_MAX:
      _COMPILED.popitem(last=False)
  _COMPILED.move_to_end(key)
  return _COMPILED[key]


def fingerprint(config, space: str, genotype) -> dict[str, Any]:
  """What a checkpoint must agree with to be resumed."""
  return {"mode": "eval", "space": space, "genotype": str(genotype),
          "network": config.network.to_dict(), "dataset": config.data.name,
          "batch_size": config.batch_size, "seed": config.seed}


class TrainingProgram(program.Program):
  """Training ``config.genotype`` from scratch as the driver runs it (``jaxnas.driver``): one unit
  = one training step (batches prefetched); at epoch ends the test split evaluated and logged."""

  def __init__(self, config: ml_collections.ConfigDict):
    validate(config)
    self.space, self.genotype = genotypes_lib.resolve(config.genotype)
    check_space_fields(config, self.space)
    if config.plots:
      reports.pyplot()  # fail now, not after training, if matplotlib is missing
    self.config = config
    self.dataset, self.train_split, self.test_split = load_data(config)
    self.steps_per_epoch = data_lib.steps_per_epoch(len(self.train_split), config.batch_size)
    self.total = config.max_steps or config.epochs * self.steps_per_epoch
    self.parallel = sharding.from_config(config)
    self.parallel.check_batch_sizes(sharding.batch_sizes(config))
    self.trainer, self.step_fn, self.eval_fn, self.init_fn = compiled_steps(
        config, self.space, self.genotype, self.dataset, self.steps_per_epoch, self.parallel)
    self.image_shape = tuple(self.train_split.images.shape[1:])
    self.cadence = metrics_lib.Cadence.of(config, self.steps_per_epoch, self.total)
    self.batches = None

  @classmethod
  def validate(cls, config: ml_collections.ConfigDict) -> None:
    config_checks.check_genotype(config)
    validate(config)

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> "TrainingProgram":
    return cls(config)

  def open(self, workdir: str, position: int) -> None:
    self.workdir = workdir
    self.logger = metrics_lib.EvalLogger(workdir, resume_at=position)

  def fingerprint(self) -> dict[str, Any]:
    return fingerprint(self.config, self.space, self.genotype)

  def fresh_state(self) -> EvalState:
    # init's output is replicated on the mesh, like a restored state: one compile for both.
    return self.init_fn(self.image_shape)

  def abstract_state(self, position: int = 0) -> EvalState:
    del position
    return jax.eval_shape(lambda: self.init_fn(self.image_shape))  # restore: no init computed

  def position(self, state: EvalState) -> int:
    return int(state.step)

  def announce(self, state: EvalState, position: int, resumed: bool) -> None:
    if resumed:
      self.info(f"Resumed from step {position} in {self.workdir}."
                + (f" Removed {self.logger.cut_lines} log line(s) written after that checkpoint."
                   if self.logger.cut_lines else ""))
    module = self.trainer.module
    self.run_info = {"genotype": str(self.genotype), "space": self.space,
                     "params": reports.num_params(state.weights),
                     "params_with_auxiliary": reports.num_params(state.weights, auxiliary=True),
                     "macs": spaces.space_class(self.space).network_macs(module,
                                                                         self.image_shape)}
    info = self.run_info
    self.info(f"genotype = {self.genotype}\nparams {info['params']:,} (with auxiliary head "
              f"{info['params_with_auxiliary']:,})  multiply-adds {info['macs']:,}  "
              f"steps/epoch={self.steps_per_epoch} total_steps={self.total}")

  def place(self, step: int) -> tuple[jax.Array, jax.Array]:
    """The training batch of ``step`` on the mesh (pure in (seed, step))."""
    config = self.config
    idx = data_lib.batch_indices(config.seed, step, len(self.train_split), config.batch_size,
                                 stream=0, with_replacement=False)
    return self.parallel.put_examples(self.train_split, idx)

  def step(self, state: EvalState, position: int):
    if self.batches is None:  # prefetch from the first step this process runs
      self.batches = iter(data_lib.prefetch(self.place, range(position, self.total),
                                            self.config.data.prefetch))
    return self.step_fn(state, *next(self.batches))

  def due(self, done: int) -> program.Due:
    return program.Due(log=self.cadence.log(done), evaluate=self.cadence.evaluate(done),
                       checkpoint=self.cadence.checkpoint(done))

  def log(self, done: int, metrics, perf: dict[str, float]) -> None:
    self.logger.train(done, self.steps_per_epoch, jax.device_get(metrics), perf)

  def evaluate(self, done: int, state: EvalState) -> bool:
    config = self.config
    self.logger.test(done, self.cadence.epoch(done), evaluate(
        self.eval_fn, state, self.test_split, config.eval_batch_size, self.parallel,
        config.eval_max_batches, config.data.prefetch))
    return False

  def finish(self, state: EvalState) -> dict[str, Any]:
    if self.batches is not None:
      self.batches.close()  # stops the prefetch thread (a run that stopped early)
    info = dict(self.run_info)
    if (self.config.plots and spaces.space_class(self.space).plots_genotype
        and jax.process_index() == 0):
      info["genotype_plot"] = reports.plot_genotype(self.genotype,
                                                    os.path.join(self.workdir, "genotype.png"))
    return self.logger.finish_eval(int(state.step), info)
