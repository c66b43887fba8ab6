"""NAO-V2's search, run by the one driver (``NAOProgram``), for ``config.method='nao_v2'``.

NAO-V2 (Luo, Qin, Chen, "Balanced One-shot Neural Architecture Optimization", arXiv 1909.10815;
``renqianluo/NAO_pytorch`` ``NAO_V2/train_search.py``; ``shared/spec/methods.md`` §5). Not a
gradient-on-alpha method: architectures are token sequences, a weight-sharing supernet scores
them, and a controller (``jaxnas.nao.controller``) proposes new ones. Per iteration i = 0..I-1:

1. **Train the supernet** for ``child_epochs`` epochs on the current child pool: every step samples
   one architecture, ``P(a) = |theta_a| / sum_b |theta_b|`` with ``|theta_a|`` the parameter count
   of ``a``'s stand-alone network (``sampling='size'``, NAO-V2's balanced sampling) or uniformly
   (``sampling='uniform'``, NAO-V1), and takes one SGD step (momentum 0.9, L2 3e-4, gradient-norm
   clip 5) on that sub-network. The cosine learning rate restarts every iteration (weights and
   momentum carry over); the drop-path ramp restarts too.
2. **Score**: the child pool joins the cumulative pool; every architecture in it gets the top-1
   accuracy of the supernet on one random validation batch (500 images), BatchNorm in train mode.
3. **Train the controller** (i < I-1) on the pool, targets min-max normalised accuracies, with
   NAO's symmetric-swap augmentation; then **generate** new architectures by gradient ascent in
   the embedding space from the top 100 (step sizes 1, 2, ...), keeping only unseen ones; they
   are the next child pool.

After the last iteration the top ``rerank_top`` architectures (by supernet score) are optionally
re-ranked by training each stand-alone network for ``rerank_epochs`` epochs (NAO's final step).

Resumable at every stage: the whole search (supernet, momentum, controller, pools, scores, stage
and step counters, PRNG key) is one pytree checkpointed with ``jaxnas.checkpoint``; batches, the
architecture sampled at each step and every host-side random choice are pure functions of
(seed, iteration, step), so a resumed search equals an uninterrupted one.

Differences from the reference code (each a documented choice):
* Weights the sampled architecture does not use get exactly zero gradient. The reference ran on
  PyTorch 1.x, whose ``zero_grad()`` zeroes gradients, so once used a weight keeps receiving weight
  decay and momentum on every later step; ``nao.update_unused=True`` (default) does that for every
  weight from the first step (in a real search every weight is used early, so they agree).
  ``update_unused=False`` is PyTorch >= 2.0's behaviour (gradients set to ``None``, such
  parameters skipped): weights with an exactly-zero gradient keep value and momentum. This is
  elementwise; PyTorch's granularity is a whole parameter tensor.
* The pools live in fixed-size arrays (``seed_archs + (iterations-1) * new_archs`` rows) so that
  one compiled step serves every iteration.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxnas import backends
from jaxnas import data as data_lib
from jaxnas import metrics as metrics_lib
from jaxnas import optim
from jaxnas import program
from jaxnas import search as search_lib
from jaxnas import sharding
from jaxnas import spaces
from jaxnas import workdir as workdir_lib
from jaxnas.nao import controller as controller_lib

TRAIN, SCORE, CONTROLLER, RERANK, DONE = range(5)
PHASE_NAMES = ("train supernet", "score pool", "train controller", "re-rank", "done")
TRAIN_STREAM, SCORE_STREAM = 0, 2
ITERATIONS_LOG = "nao_iterations.jsonl"
SAMPLING_MODES = ("size", "uniform")


# ------------------------------------------------------------------------------------------------
# State


@flax.struct.dataclass
class NAOState:
  """Everything a NAO search needs to continue bit for bit.

  Attributes:
    iteration, phase, child_step: where the search is (``phase`` in TRAIN..DONE; ``child_step``
      = supernet steps done in this iteration).
    progress: a counter of completed units of work (steps and phase transitions): the
      checkpoint step, strictly increasing.
    weights, model_state, momentum: supernet parameters, BatchNorm statistics, SGD momentum.
    controller: the controller's parameters (persist across iterations, as in the reference).
    pool_tokens, pool_scores, pool_size: the cumulative pool (rows beyond ``pool_size`` unused).
    child_tokens, child_probs, child_size: the pool the supernet trains on in this iteration and
      its sampling distribution (zero probability on unused rows).
    rerank_scores: stand-alone accuracies of the re-ranked top architectures (-1 = not yet).
    key: raw PRNG key data.
  """
  iteration: jax.Array
  phase: jax.Array
  child_step: jax.Array
  progress: jax.Array
  weights: Any
  model_state: Any
  momentum: Any
  controller: Any
  pool_tokens: jax.Array
  pool_scores: jax.Array
  pool_size: jax.Array
  child_tokens: jax.Array
  child_probs: jax.Array
  child_size: jax.Array
  rerank_scores: jax.Array
  key: jax.Array


def _int(value: int) -> jax.Array:
  return jnp.asarray(value, jnp.int32)


# ------------------------------------------------------------------------------------------------
# Architecture sampling (NAO-V2's balanced sampling)


def sampling_probs(num_params: np.ndarray, mode: str) -> np.ndarray:
  """The probability of training each architecture of the child pool at a step.

  ``'size'`` (NAO-V2): ``p_a = |theta_a| / sum_b |theta_b|``, so large architectures, which
  converge more slowly, get proportionally more updates. ``'uniform'`` (NAO-V1): ``1 / n``.
  """
  num_params = np.asarray(num_params, np.float64)
  if mode == "size":
    if np.any(num_params <= 0):
      raise ValueError("Size-proportional sampling needs positive parameter counts.")
    probs = num_params / num_params.sum()
  elif mode == "uniform":
    probs = np.full(len(num_params), 1.0 / len(num_params))
  else:
    raise ValueError(f"Unknown nao.sampling {mode!r}; valid: {', '.join(SAMPLING_MODES)}.")
  return probs.astype(np.float32)


def sample_arch(key: jax.Array, tokens: jax.Array, probs: jax.Array) -> jax.Array:
  """One architecture of ``tokens`` drawn with probabilities ``probs`` (on device, jit-able)."""
  index = jax.random.choice(key, probs.shape[0], p=probs)
  return tokens[index]


# ------------------------------------------------------------------------------------------------
# Ranking quality


def kendall_tau(x: np.ndarray, y: np.ndarray) -> float:
  """Kendall's tau-b between two score vectors (ties in either count as in tau-b).

  ``tau_b = (C - D) / sqrt((n0 - n1) (n0 - n2))`` over all pairs, with C/D the concordant and
  discordant pairs, ``n0 = n(n-1)/2`` and ``n1``, ``n2`` the pairs tied in x, in y.
  """
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  if x.shape != y.shape or x.ndim != 1:
    raise ValueError(f"kendall_tau needs two vectors of equal length, got {x.shape}, {y.shape}.")
  dx = np.sign(x[:, None] - x[None, :])
  dy = np.sign(y[:, None] - y[None, :])
  upper = np.triu_indices(len(x), k=1)
  dx, dy = dx[upper], dy[upper]
  n0 = len(dx)
  denom = math.sqrt(float(n0 - np.sum(dx == 0)) * float(n0 - np.sum(dy == 0)))
  return float(np.sum(dx * dy) / denom) if denom > 0 else float("nan")


# ------------------------------------------------------------------------------------------------
# Building blocks


def build_token_space(config: ml_collections.ConfigDict, num_classes: int):
  """The token form (``TokenSpace``) of the space ``config.space.name`` names in
  ``spaces.SPACES``: NAO's cells ('nao'), NAS-Bench-201 ('nb201'), or any registered space with
  a ``token_space(config, num_classes)`` method."""
  cls = spaces.space_class(config.space.name)
  if not hasattr(cls, "token_space"):
    tokens = sorted(name for name, c in spaces.SPACES.items() if hasattr(c, "token_space"))
    raise ValueError(f"NAO-V2 searches spaces with a token form ({', '.join(map(repr, tokens))}); "
                     f"got config.space.name={config.space.name!r}.")
  return cls.from_config(config).token_space(config, num_classes)


def build_supernet(config: ml_collections.ConfigDict, space, num_classes: int):
  """The one-shot supernet module of ``space`` at the config's sizes, with the loops and kernels
  of ``config.backend`` (``space.supernet_from``)."""
  return space.supernet_from(config, backends.resolve(config), num_classes)


def validate(config: ml_collections.ConfigDict) -> None:
  """Fails fast, naming the field and the fix, on a NAO config that cannot run."""
  nao = config.nao
  if nao.sampling not in SAMPLING_MODES:
    raise ValueError(f"config.nao.sampling must be one of {SAMPLING_MODES}, got "
                     f"{nao.sampling!r}.")
  for field in ("iterations", "seed_archs", "child_epochs", "score_batch_size"):
    if int(nao[field]) < 1:
      raise ValueError(f"config.nao.{field} must be >= 1, got {nao[field]}.")
  if nao.iterations > 1 and nao.new_archs < 1:
    raise ValueError("config.nao.new_archs must be >= 1 when config.nao.iterations > 1.")
  if nao.seed_archs < 2:
    raise ValueError("config.nao.seed_archs must be >= 2 (the controller's targets are min-max "
                     f"normalised pool scores), got {nao.seed_archs}.")
  if nao.rerank_top < 0 or nao.rerank_epochs < 0:
    raise ValueError("config.nao.rerank_top and config.nao.rerank_epochs must be >= 0.")
  if not 0.0 < nao.drop_path_keep_prob <= 1.0:
    raise ValueError(f"config.nao.drop_path_keep_prob must be in (0, 1], got "
                     f"{nao.drop_path_keep_prob}.")
  unsupported = {"backend.remat=True": backends.resolve(config).remat,
                 f"compute_dtype={config.compute_dtype!r}": config.compute_dtype != "float32",
                 f"num_seeds={config.num_seeds}": config.num_seeds != 1}
  for setting, used in unsupported.items():
    if used:
      raise ValueError(f"config.{setting} is not supported by NAO-V2's driver (gradient methods "
                       "only); leave it at its default with config.method='nao_v2'.")


@dataclasses.dataclass
class NAOSearch:
  """Everything built from the config (host-side objects)."""
  config: ml_collections.ConfigDict
  space: Any
  module: Any
  controller: controller_lib.Controller
  splits: data_lib.SearchSplits
  dataset: data_lib.ImageDataset
  steps_per_epoch: int
  steps_per_iteration: int
  pool_capacity: int
  child_capacity: int
  lr: optax.Schedule
  parallel: sharding.DataParallel


def build(config: ml_collections.ConfigDict) -> NAOSearch:
  """Validates the config, loads the data, builds space, supernet and controller (no compile)."""
  validate(config)
  dataset, splits = search_lib.load_splits(config)
  space = build_token_space(config, dataset.num_classes)
  module = build_supernet(config, space, dataset.num_classes)
  c = config.nao.controller
  controller = controller_lib.Controller(
      vocab_size=space.vocab_size, seq_len=space.seq_len, tokens_per_step=c.tokens_per_step,
      emb_size=c.emb_size, hidden_size=c.hidden_size, mlp_layers=c.mlp_layers,
      mlp_hidden_size=c.mlp_hidden_size, mlp_dropout=c.mlp_dropout)
  if config.batch_size > len(splits.weights):
    raise ValueError(f"config.batch_size={config.batch_size} exceeds the {len(splits.weights)} "
                     "training examples; lower it or raise config.data.max_examples.")
  if config.nao.score_batch_size > len(splits.arch):
    raise ValueError(f"config.nao.score_batch_size={config.nao.score_batch_size} exceeds the "
                     f"{len(splits.arch)} validation examples; lower it.")
  parallel = sharding.from_config(config)
  parallel.check_batch_sizes(sharding.batch_sizes(config))
  per_epoch = data_lib.steps_per_epoch(len(splits.weights), config.batch_size)
  wopt = config.weights_optimizer
  lr = optim.cosine_schedule(wopt.learning_rate, wopt.min_learning_rate, config.nao.child_epochs,
                             per_epoch, epoch_offset=wopt.epoch_offset)
  nao = config.nao
  capacity = nao.seed_archs + (nao.iterations - 1) * nao.new_archs
  return NAOSearch(config, space, module, controller, splits, dataset, per_epoch,
                   per_epoch * nao.child_epochs, capacity, max(nao.seed_archs, nao.new_archs), lr,
                   parallel)


def fingerprint(search: NAOSearch) -> dict[str, Any]:
  """What a checkpoint must agree with to be resumed."""
  config = search.config
  return {"method": config.method, "space": config.space.name,
          "space_sizes": search_lib.space_sizes(config),
          "nao": config.nao.to_dict(), "dataset": config.data.name,
          "split": config.data.split, "train_portion": config.data.train_portion,
          "max_examples": config.data.max_examples, "batch_size": config.batch_size,
          "seed": config.seed, "weights_optimizer": config.weights_optimizer.to_dict()}


# ------------------------------------------------------------------------------------------------
# The supernet step


def _apply(search: NAOSearch, weights, model_state, images, tokens, *, train: bool,
           drop_key: jax.Array | None = None, drop_path_keep: jax.Array | None = None):
  """Supernet logits and updated BatchNorm statistics for one architecture."""
  kwargs: dict[str, Any] = {}
  rngs = None
  if drop_path_keep is not None:
    kwargs["drop_path_keep_prob"] = drop_path_keep
    rngs = {"dropout": drop_key}
  logits, updates = search.module.apply({"params": weights, **model_state}, images, tokens,
                                        train=train, mutable=list(model_state), rngs=rngs,
                                        **kwargs)
  return logits, updates


def drop_path_keep(search: NAOSearch, child_step: jax.Array) -> jax.Array | None:
  """NAO's drop-path keep probability at this step of the iteration (None when disabled).

  The reference ramps ``keep = 1 - (step + 1) / steps (1 - keep_prob)`` over an iteration's steps
  (its global step restarts every iteration); the supernet applies the per-layer ramp on top.
  Only the NAO cell space has drop-path.
  """
  keep = search.config.nao.drop_path_keep_prob
  if not getattr(search.space, "drop_path", False) or keep >= 1.0:
    return None
  from jaxnas.spaces import nao as nao_space
  return nao_space.step_keep_prob(keep, child_step.astype(jnp.float32),
                                  search.steps_per_iteration)


def masked_sgd(params, momentum, grads, lr, *, momentum_coef: float, weight_decay: float,
               update_unused: bool):
  """PyTorch SGD with L2: ``d = g + wd w; m <- mu m + d; w <- w - lr m``.

  With ``update_unused=False`` entries whose gradient is exactly zero (weights of ops and inputs the
  sampled architecture does not use) keep their value and momentum, as PyTorch >= 2.0 leaves
  parameters without a gradient untouched; ``True`` updates every entry (PyTorch 1.x after a
  parameter's first use, the reference's behaviour).
  """
  def one(w, m, g):
    new_m = momentum_coef * m + g + weight_decay * w
    new_w = w - lr * new_m
    if update_unused:
      return new_w, new_m
    used = g != 0
    return jnp.where(used, new_w, w), jnp.where(used, new_m, m)

  pairs = jax.tree.map(one, params, momentum, grads)
  is_pair = lambda x: isinstance(x, tuple)
  return (jax.tree.map(lambda p: p[0], pairs, is_leaf=is_pair),
          jax.tree.map(lambda p: p[1], pairs, is_leaf=is_pair))


def child_step(state: NAOState, images: jax.Array, labels: jax.Array, *, search: NAOSearch
               ) -> tuple[NAOState, dict[str, jax.Array]]:
  """One supernet step on one sampled architecture of the child pool (jitted, donates state)."""
  config = search.config
  key = jax.random.fold_in(jax.random.fold_in(jax.random.wrap_key_data(state.key),
                                              state.iteration), state.child_step)
  k_arch, k_aug, k_drop = jax.random.split(key, 3)
  tokens = sample_arch(k_arch, state.child_tokens, state.child_probs)
  x = data_lib.augment(k_aug, images, mean=search.dataset.mean, std=search.dataset.std,
                       crop_padding=config.data.crop_padding, flip=config.data.flip,
                       cutout=config.data.cutout)
  keep = drop_path_keep(search, state.child_step)

  def loss_fn(weights):
    logits, updates = _apply(search, weights, state.model_state, x, tokens, train=True,
                             drop_key=k_drop, drop_path_keep=keep)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    return loss, (logits, updates)

  (loss, (logits, updates)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.weights)
  wopt = config.weights_optimizer
  if wopt.clip_norm:
    grads, _ = optax.clip_by_global_norm(wopt.clip_norm).update(grads, optax.EmptyState())
  lr = search.lr(state.child_step)
  weights, momentum = masked_sgd(state.weights, state.momentum, grads, lr,
                                 momentum_coef=wopt.momentum, weight_decay=wopt.weight_decay,
                                 update_unused=config.nao.update_unused)
  state = state.replace(weights=weights, momentum=momentum, model_state=updates,
                        child_step=state.child_step + 1, progress=state.progress + 1)
  accuracy = jnp.mean((jnp.argmax(logits, -1) == labels).astype(jnp.float32))
  return state, {"train/loss": loss, "train/accuracy": accuracy, "lr/weights": lr}


def score_arch(weights, model_state, tokens, images, labels, *, search: NAOSearch) -> jax.Array:
  """Top-1 accuracy of one architecture on one batch, BatchNorm with batch statistics (NAO)."""
  x = data_lib.normalize(images, search.dataset.mean, search.dataset.std)
  logits, _ = _apply(search, weights, model_state, x, tokens, train=True)
  return jnp.mean((jnp.argmax(logits, -1) == labels).astype(jnp.float32))


# ------------------------------------------------------------------------------------------------
# Pools (host side)


def _pad_rows(rows: np.ndarray, capacity: int, seq_len: int) -> np.ndarray:
  out = np.ones((capacity, seq_len), np.int32)  # token 1 is valid at every position of any space
  out[:len(rows)] = rows
  return out


def seed_pool(search: NAOSearch) -> np.ndarray:
  """The random seed architectures (distinct; a pure function of the seed)."""
  rng = np.random.default_rng([search.config.seed, 11])
  archs: list[np.ndarray] = []
  seen: set[tuple[int, ...]] = set()
  attempts = 0
  while len(archs) < search.config.nao.seed_archs:
    arch = np.asarray(search.space.random_arch(rng), np.int32)
    attempts += 1
    if tuple(arch) not in seen:
      seen.add(tuple(arch))
      archs.append(arch)
    if attempts > 100 * search.config.nao.seed_archs:
      raise ValueError(f"Could not draw {search.config.nao.seed_archs} distinct architectures "
                       "from the space; lower config.nao.seed_archs.")
  return np.stack(archs)


def arch_params(search: NAOSearch, tokens: np.ndarray) -> int:
  """The parameter count of an architecture's stand-alone network at the search's sizes."""
  return search.space.num_params_from(search.config, tokens, search.dataset.num_classes)


def child_pool_arrays(search: NAOSearch, archs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """The padded child-pool tokens and its sampling probabilities (zero on padding)."""
  counts = np.asarray([arch_params(search, a) for a in archs], np.float64)
  probs = np.zeros(search.child_capacity, np.float32)
  probs[:len(archs)] = sampling_probs(counts, search.config.nao.sampling)
  return _pad_rows(archs, search.child_capacity, search.space.seq_len), probs


def init_state(search: NAOSearch) -> NAOState:
  """A fresh search: random supernet and controller, the seed pool as the first child pool."""
  config = search.config
  key = jax.random.key(config.seed)
  k_net, k_ctrl, k_run = jax.random.split(key, 3)
  size = search.dataset.image_shape
  sample_x = jnp.zeros((2,) + tuple(size), jnp.float32)
  sample_tokens = jnp.ones((search.space.seq_len,), jnp.int32)
  variables = jax.jit(functools.partial(search.module.init, train=False))(k_net, sample_x,
                                                                        sample_tokens)
  weights = variables.pop("params")
  variables = dict(variables)
  controller = controller_lib.init_controller(search.controller, k_ctrl)
  child_tokens, child_probs = child_pool_arrays(search, seed_pool(search))
  return NAOState(
      iteration=_int(0), phase=_int(TRAIN), child_step=_int(0), progress=_int(0),
      weights=weights, model_state=variables, momentum=jax.tree.map(jnp.zeros_like, weights),
      controller=controller,
      pool_tokens=jnp.asarray(_pad_rows(np.zeros((0, search.space.seq_len), np.int32),
                                        search.pool_capacity, search.space.seq_len)),
      pool_scores=jnp.zeros((search.pool_capacity,), jnp.float32), pool_size=_int(0),
      child_tokens=jnp.asarray(child_tokens), child_probs=jnp.asarray(child_probs),
      child_size=_int(config.nao.seed_archs),
      rerank_scores=-jnp.ones((config.nao.rerank_top,), jnp.float32),
      key=jax.random.key_data(k_run))


def pool(state: NAOState) -> tuple[np.ndarray, np.ndarray]:
  """The cumulative pool's tokens and scores (host copies of the used rows)."""
  n = int(state.pool_size)
  return np.asarray(state.pool_tokens)[:n], np.asarray(state.pool_scores)[:n]


def ranked(state: NAOState) -> tuple[np.ndarray, np.ndarray]:
  """The pool sorted by score, best first (stable: ties keep pool order)."""
  tokens, scores = pool(state)
  order = np.argsort(-scores, kind="stable")
  return tokens[order], scores[order]


# ------------------------------------------------------------------------------------------------
# Stages


def log_child_step(search: NAOSearch, logger, child_done: int, iteration: int, metrics,
                   perf: dict[str, float]) -> None:
  """The console line and TensorBoard scalars of a supernet step (ETA: this iteration's)."""
  total = search.steps_per_iteration
  global_step = iteration * total + child_done
  values = {k: float(v) for k, v in jax.device_get(metrics).items()}
  rate = perf["perf/steps_per_second"]
  perf = {**perf, "perf/eta_seconds": (total - child_done) / rate if rate > 0 else math.nan}
  logger.scalars(global_step, {**values, **perf})
  epoch = child_done / search.steps_per_epoch
  logger.info(f"iteration {iteration} step {child_done:6d}/{total} epoch {epoch:6.2f}"
              f"  train loss {values['train/loss']:.4f} acc {values['train/accuracy']:.3f}"
              f"  lr {values['lr/weights']:.5f}  {metrics_lib.speed(perf)}")


def child_batch(search: NAOSearch, iteration: int, child_step: int):
  """The training batch of supernet step ``child_step`` of ``iteration`` (pure in the seed)."""
  config = search.config
  idx = data_lib.batch_indices(config.seed, iteration * search.steps_per_iteration + child_step,
                               len(search.splits.weights), config.batch_size,
                               stream=TRAIN_STREAM, with_replacement=False)
  return search.parallel.put_examples(search.splits.weights, idx)


def join_pool(state: NAOState) -> NAOState:
  """After the iteration's supernet steps: the child pool joins the cumulative pool (once: the
  transition TRAIN -> SCORE)."""
  n, c = int(state.pool_size), int(state.child_size)
  pool_tokens = state.pool_tokens.at[n:n + c].set(state.child_tokens[:c])
  return state.replace(pool_tokens=pool_tokens, pool_size=_int(n + c), phase=_int(SCORE),
                       progress=state.progress + 1)


def score_pool(search: NAOSearch, state: NAOState, score_fn, table, logger) -> NAOState:
  """Scores every pool architecture on its own random validation batch (NAO's ``child_valid``)."""
  config = search.config
  iteration = int(state.iteration)
  tokens, _ = pool(state)
  scores = np.zeros(len(tokens), np.float32)
  for i, arch in enumerate(tokens):
    idx = data_lib.batch_indices(config.seed, iteration * search.pool_capacity + i,
                                 len(search.splits.arch), config.nao.score_batch_size,
                                 stream=SCORE_STREAM, with_replacement=True)
    scores[i] = float(score_fn(state.weights, state.model_state, jnp.asarray(arch),
                               *search.parallel.put_examples(search.splits.arch, idx)))
  pool_scores = state.pool_scores.at[:len(scores)].set(jnp.asarray(scores))
  last = iteration == config.nao.iterations - 1
  state = state.replace(pool_scores=pool_scores, progress=state.progress + 1,
                        phase=_int(RERANK if last else CONTROLLER))
  report_pool(search, state, table, logger)
  return state


def iteration_end(search: NAOSearch, iteration: int) -> int:
  """The global supernet step at the end of ``iteration``: the TensorBoard step of its stage
  scalars (one axis for all of NAO's events)."""
  return (iteration + 1) * search.steps_per_iteration


def report_pool(search: NAOSearch, state: NAOState, table, logger) -> dict[str, Any]:
  """Writes ``arch_pool.<i>`` (best first, as the reference) and one ``nao_iterations.jsonl`` line.

  With a NAS-Bench-201 table: Kendall tau between supernet scores and ground-truth accuracy over
  the whole pool, and the ground truth of the top architecture.
  """
  iteration = int(state.iteration)
  tokens, scores = ranked(state)
  record: dict[str, Any] = {
      "iteration": iteration, "progress": int(state.progress), "pool_size": len(tokens),
      "best_arch": search.space.to_string(
          tokens[0]), "best_score": float(scores[0]), "mean_score": float(scores.mean())}
  if table is not None:
    truth = np.asarray([ground_truth(table, search, t) for t in tokens])
    known = ~np.isnan(truth)
    record["kendall_tau"] = kendall_tau(scores[known], truth[known])
    record["best_arch_benchmark_accuracy"] = float(truth[0])
    record["pool_best_benchmark_accuracy"] = float(np.nanmax(truth))
  if jax.process_index() == 0:
    with open(os.path.join(logger.workdir, f"arch_pool.{iteration}"), "w") as f:
      for arch, score in zip(tokens, scores):
        f.write(f"{search.space.to_string(arch)}\t{score:.4f}\n")
    with open(os.path.join(logger.workdir, ITERATIONS_LOG), "a") as f:
      f.write(json.dumps(record) + "\n")
  logger.scalars(iteration_end(search, iteration), {f"nao/{k}": v for k, v in record.items()
                             if isinstance(v, float)})
  extra = "".join(f"  {k} {record[k]:.4f}" for k in ("kendall_tau", "best_arch_benchmark_accuracy")
                  if k in record)
  logger.info(f"iteration {iteration}: scored {len(tokens)} architectures, best "
              f"{scores[0]:.4f} mean {scores.mean():.4f}{extra}\n  best = {record['best_arch']}")
  return record


def ground_truth(table, search: NAOSearch, tokens: np.ndarray) -> float:
  """The benchmark's test accuracy of an architecture (NaN if the table lacks it)."""
  try:
    result = table.query(search.space.to_string(tokens), search.config.benchmark.dataset)
  except KeyError:
    return float("nan")
  return float(result["test_accuracy"])


def train_controller_and_generate(search: NAOSearch, state: NAOState, logger) -> NAOState:
  """Trains the controller on the scored pool and generates the next child pool."""
  config, c = search.config, search.config.nao.controller
  iteration = int(state.iteration)
  rng = np.random.default_rng([config.seed, 13, iteration])
  key = jax.random.fold_in(jax.random.wrap_key_data(state.key), 1_000_000 + iteration)
  tokens, scores = ranked(state)
  targets = controller_lib.normalize_scores(scores)
  train_x, train_y, valid_x, valid_y = controller_lib.expand_training_set(
      tokens, targets, augment_fn=search.space.augment, expand=c.expand, rng=rng)
  params, metrics = controller_lib.train_controller(
      search.controller, state.controller, train_x, train_y, key, epochs=c.epochs,
      batch_size=c.batch_size, learning_rate=c.learning_rate, grad_bound=c.grad_bound,
      l2_reg=c.l2_reg, trade_off=c.trade_off)
  quality = {}
  if len(valid_x) >= 2:
    predicted = controller_lib.predict_scores(search.controller, params, valid_x)
    quality["controller/valid_kendall_tau"] = kendall_tau(predicted, valid_y)
  new = controller_lib.generate_new_archs(
      search.controller, params, tokens[:c.top_archs], search.space.allowed_tokens(),
      num_new=config.nao.new_archs, max_step_size=c.max_step_size,
      existing={tuple(int(t) for t in row) for row in tokens})
  values = {**{f"controller/{k}": float(v) for k, v in metrics.items()}, **quality,
            "controller/new_archs": float(len(new))}
  logger.scalars(iteration_end(search, iteration), values)
  logger.info(f"iteration {iteration}: controller trained on {len(train_x)} sequences ("
              + "  ".join(f"{k.split('/')[-1]} {v:.4g}" for k, v in values.items())
              + f"); {len(new)} new architectures")
  if len(new) == 0:
    raise RuntimeError("The controller generated no new architecture (all decoded sequences "
                       "were already in the pool); raise config.nao.controller.max_step_size.")
  child_tokens, child_probs = child_pool_arrays(search, np.asarray(new, np.int32))
  return state.replace(controller=params, child_tokens=jnp.asarray(child_tokens),
                       child_probs=jnp.asarray(child_probs), child_size=_int(len(new)),
                       iteration=state.iteration + 1, phase=_int(TRAIN), child_step=_int(0),
                       progress=state.progress + 1)


def standalone_network(search: NAOSearch, tokens: np.ndarray):
  """The stand-alone network of an architecture: a module ``(x, *, train) -> logits``."""
  return _FirstOutput(search.space.standalone_network_from(
      search.config, tokens, search.dataset.num_classes, search.module.kernels))


class _FirstOutput(nn.Module):
  """Adapts a network returning ``(logits, aux)`` to return the logits."""
  inner: nn.Module

  def __call__(self, x, *, train: bool):
    return self.inner(x, train=train)[0]


def rerank_one(search: NAOSearch, tokens: np.ndarray, index: int, logger) -> float:
  """Trains one architecture's stand-alone network from scratch; returns its validation accuracy.

  NAO's final step (``train_and_evaluate_top_on_cifar10``): ``rerank_epochs`` epochs (10) of SGD
  with the child's hyperparameters and a cosine schedule over those epochs on the training split,
  then top-1 accuracy on the whole validation split with running BatchNorm statistics. The
  reference also uses an auxiliary head, dropout 0.4 and drop-path 0.2 here; this re-rank does not
  (the same recipe for every candidate, so the ranking is comparable).
  """
  config = search.config
  module = standalone_network(search, tokens)
  key = jax.random.fold_in(jax.random.key(config.seed), 2_000_000 + index)
  k_init, k_aug = jax.random.split(key)
  variables = jax.jit(functools.partial(module.init, train=False))(
      k_init, jnp.zeros((2,) + tuple(search.dataset.image_shape)))
  weights = variables.pop("params")
  model_state = dict(variables)
  momentum = jax.tree.map(jnp.zeros_like, weights)
  # Committed like the step's outputs (and the batches), so the step compiles once.
  weights, model_state, momentum = search.parallel.replicate((weights, model_state, momentum))
  wopt = config.weights_optimizer
  total = config.nao.rerank_epochs * search.steps_per_epoch
  lr_fn = optim.cosine_schedule(wopt.learning_rate, wopt.min_learning_rate,
                                config.nao.rerank_epochs, search.steps_per_epoch,
                                epoch_offset=wopt.epoch_offset)

  @functools.partial(jax.jit, donate_argnums=(0, 1, 2), out_shardings=search.parallel.replicated)
  def train_step(weights, model_state, momentum, images, labels, step):
    x = data_lib.augment(jax.random.fold_in(k_aug, step), images, mean=search.dataset.mean,
                         std=search.dataset.std, crop_padding=config.data.crop_padding,
                         flip=config.data.flip, cutout=config.data.cutout)

    def loss_fn(w):
      logits, updates = module.apply({"params": w, **model_state}, x, train=True,
                                     mutable=list(model_state))
      return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(), updates

    (_, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(weights)
    if wopt.clip_norm:
      grads, _ = optax.clip_by_global_norm(wopt.clip_norm).update(grads, optax.EmptyState())
    weights, momentum = masked_sgd(weights, momentum, grads, lr_fn(step),
                                   momentum_coef=wopt.momentum, weight_decay=wopt.weight_decay,
                                   update_unused=True)
    return weights, updates, momentum

  @jax.jit
  def correct(weights, model_state, images, labels):
    x = data_lib.normalize(images, search.dataset.mean, search.dataset.std)
    logits = module.apply({"params": weights, **model_state}, x, train=False)
    return jnp.sum((jnp.argmax(logits, -1) == labels).astype(jnp.int32))

  for step in range(total):
    idx = data_lib.batch_indices(config.seed + 1 + index, step, len(search.splits.weights),
                                 config.batch_size, stream=TRAIN_STREAM, with_replacement=False)
    images, labels = search.parallel.put_examples(search.splits.weights, idx)
    weights, model_state, momentum = train_step(weights, model_state, momentum, images, labels,
                                                jnp.asarray(step, jnp.int32))
  split, batch = search.splits.arch, config.eval_batch_size
  hits = 0
  for start in range(0, len(split), batch):
    idx = np.arange(start, min(start + batch, len(split)))
    hits += int(correct(weights, model_state, *search.parallel.put_examples(split, idx)))
  accuracy = hits / len(split)
  logger.info(f"re-rank {index + 1}/{config.nao.rerank_top}: {search.space.to_string(tokens)}  "
              f"stand-alone valid acc {accuracy:.4f} after {config.nao.rerank_epochs} epochs")
  return accuracy


def rerank_next(search: NAOSearch, state: NAOState, logger) -> NAOState:
  """Re-ranks the next top architecture not yet re-ranked by stand-alone training (one unit, so a
  resumed search continues with the next one); with none left, the search is done."""
  top, _ = ranked(state)
  top = top[:search.config.nao.rerank_top]
  scores = np.array(state.rerank_scores)  # a writable host copy
  pending = [i for i in range(len(top)) if scores[i] < 0]
  if search.config.nao.rerank_epochs > 0 and pending:
    i = pending[0]
    scores[i] = rerank_one(search, top[i], i, logger)
    return state.replace(rerank_scores=jnp.asarray(scores), progress=state.progress + 1)
  return state.replace(phase=_int(DONE), progress=state.progress + 1)


# ------------------------------------------------------------------------------------------------
# The driver


def summarize(search: NAOSearch, state: NAOState, table, logger) -> dict[str, Any]:
  """The result: the pool's top architectures, the re-rank and the chosen one (``result.json``)."""
  config = search.config
  tokens, scores = ranked(state)
  k = min(len(tokens), max(config.nao.rerank_top, 1))
  top = [{"arch": search.space.to_string(t), "supernet_score": float(s),
          "params": arch_params(search, t)} for t, s in zip(tokens[:k], scores[:k])]
  rerank_scores = np.asarray(state.rerank_scores)[:k]
  reranked = config.nao.rerank_epochs > 0 and config.nao.rerank_top > 0
  for entry, score in zip(top, rerank_scores):
    if reranked:
      entry["rerank_accuracy"] = float(score)
    if table is not None:
      entry["benchmark_test_accuracy"] = ground_truth(table, search, search.space.from_string(
          entry["arch"]))
  best = max(top, key=lambda e: e["rerank_accuracy"]) if reranked else top[0]
  summary = {"step": int(state.progress), "iterations": int(config.nao.iterations),
             "pool_size": len(tokens),
             "best_arch": best["arch"], "chosen_by": "rerank" if reranked else "supernet_score",
             "selected_on": f"the arch split ({search.splits.arch_role} data)",
             "splits": search.splits.describe(), "top": top,
             # what a gradient search's result names its final cell (read by jaxnas.compare)
             "final_genotype": best["arch"],
             "final_record": {"genotype": best["arch"], **search_lib.benchmark_metrics(
                 table, best["arch"], config.benchmark.dataset)}}
  bench = search_lib.benchmark_label(config, search.splits)
  if bench:
    summary["benchmark"] = bench
  logger.info(f"NAO-V2 done: best architecture ({summary['chosen_by']}): {best['arch']}"
              + (f"  benchmark test acc {best['benchmark_test_accuracy']:.2f}"
                 if "benchmark_test_accuracy" in best else ""))
  if jax.process_index() == 0:
    with open(os.path.join(logger.workdir, "arch_pool.final"), "w") as f:
      for entry in sorted(top, key=lambda e: -e.get("rerank_accuracy", e["supernet_score"])):
        f.write(f"{entry['arch']}\t{entry.get('rerank_accuracy', entry['supernet_score']):.4f}\n")
  return logger._write_result_and_close(summary)


class NAOProgram(program.Program):
  """NAO-V2 as the driver runs it (``jaxnas.driver``): one unit of work = one supernet step, the
  pool join, the scoring, the controller stage, or one re-ranked architecture (``state.progress``
  counts them). Checkpoints after every stage unit and every ``checkpoint_every_steps`` supernet
  steps; the phase and the iteration's step are mirrored on the host (read after each stage), so
  supernet steps dispatch without a host sync."""

  def __init__(self, search: NAOSearch):
    self.search, self.config, self.parallel = search, search.config, search.parallel
    self.total = search.config.nao.iterations * search.steps_per_iteration
    self.table = search_lib.load_benchmark(search.config)

  @classmethod
  def validate(cls, config: ml_collections.ConfigDict) -> None:
    validate(config)

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> "NAOProgram":
    return cls(build(config))

  def open(self, workdir: str, position: int) -> None:
    """The logs cut back to the restored unit: ``nao_iterations.jsonl`` by its ``progress``,
    TensorBoard (keyed by the global supernet step) at the restored supernet step."""
    self.workdir = workdir
    workdir_lib.cut_jsonl(os.path.join(workdir, ITERATIONS_LOG), last=position, key="progress")
    self.logger = metrics_lib.Logger(
        workdir, self.search.space,
        resume_at=self.iteration * self.search.steps_per_iteration + self.child_step)

  def fingerprint(self) -> dict[str, Any]:
    return fingerprint(self.search)

  def fresh_state(self) -> NAOState:
    return init_state(self.search)

  def position(self, state: NAOState) -> int:
    self.read_phase(state)
    return int(state.progress)

  def read_phase(self, state: NAOState) -> None:
    """The host's copy of where the search is (after a stage, or at the start)."""
    self.phase, self.iteration = int(state.phase), int(state.iteration)
    self.child_step = int(state.child_step)

  def announce(self, state: NAOState, position: int, resumed: bool) -> None:
    config = self.config
    if resumed:
      self.info(f"Resumed in {self.workdir}: iteration {self.iteration}, stage "
                f"'{PHASE_NAMES[self.phase]}', supernet step {self.child_step}.")
    self.info(f"NAO-V2 on the {self.search.space.name!r} space: supernet params "
              f"{sum(int(np.prod(x.shape)) for x in jax.tree.leaves(state.weights)):,}, "
              f"{config.nao.iterations} iterations x {self.search.steps_per_iteration} steps, "
              f"{config.nao.seed_archs} seed + {config.nao.new_archs} new architectures per "
              f"iteration, sampling={config.nao.sampling!r}")

  def compile(self) -> None:
    replicated = self.parallel.replicated  # state and scores pinned replicated on the mesh
    self.step_fn = jax.jit(functools.partial(child_step, search=self.search), donate_argnums=0,
                           out_shardings=replicated)
    self.score_fn = jax.jit(functools.partial(score_arch, search=self.search),
                            out_shardings=replicated)

  def finished(self, position: int) -> bool:
    return self.phase == DONE

  def step(self, state: NAOState, position: int):
    search = self.search
    self.unit = "stage"
    if self.phase == TRAIN and self.child_step < search.steps_per_iteration:
      state, metrics = self.step_fn(state, *child_batch(search, self.iteration, self.child_step))
      self.child_step += 1
      self.unit = "child"
      return state, metrics
    if self.phase == TRAIN:
      state = join_pool(state)
    elif self.phase == SCORE:
      state = score_pool(search, state, self.score_fn, self.table, self.logger)
    elif self.phase == CONTROLLER:
      state = train_controller_and_generate(search, state, self.logger)
    elif self.phase == RERANK:
      state = rerank_next(search, state, self.logger)
    # Host-built arrays are uncommitted; committing the state (replicated on the mesh) keeps the
    # jitted step's cache key (and so one compilation) across stages and resumes.
    state = self.parallel.replicate(state)
    self.read_phase(state)
    return state, {}

  def due(self, done: int) -> program.Due:
    if self.unit == "stage":
      return program.Due(checkpoint=True)
    total, c = self.search.steps_per_iteration, self.config
    return program.Due(log=self.child_step % c.log_every_steps == 0 or self.child_step == total,
                       checkpoint=self.child_step % c.checkpoint_every_steps == 0
                       and self.child_step < total)

  def log(self, done: int, metrics, perf: dict[str, float]) -> None:
    if self.unit == "child":
      log_child_step(self.search, self.logger, self.child_step, self.iteration, metrics, perf)

  def finish(self, state: NAOState) -> dict[str, Any]:
    return summarize(self.search, state, self.table, self.logger)
