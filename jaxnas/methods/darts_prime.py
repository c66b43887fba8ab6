"""Constrained DARTS: Maile, Lecarpentier, Luga, Wilson, "On Constrained Optimization in
Differentiable NAS" (arXiv 2106.11655; v3 "DARTS-PRIME: Regularization and Scheduling Improve
Constrained Optimization in Differentiable NAS"); reference code k8lion/DARTS-PRIME
(``src/train_scheduled_hard_statebn.py``, ``src/model_admm_hard_statebn.py``);
``shared/spec/methods.md`` §4.

One search step (alpha step first, as the reference), with ``A = act(alpha)`` the mixing weights:

  due   = schedule(step, method_state)                                       (fixed or dynamic)
  alpha <- Adam(alpha, grad_alpha [L_val(w, A) + R(A)])   if due             (first order default)
  w     <- SGD(w, clip(grad_w L_train(w, A)))
  FI    = sum ||grad_w L_train||^2       (trace of the empirical Fisher, before clipping)
  mask  <- mask * [alpha > 0];  alpha <- alpha * mask                        (clamp only)
  Z, U  <- ADMM update                   every ``admm_freq`` alpha steps     (admm only)

Regularizers (``R``, added to the alpha objective; unsquared Frobenius norms, as the reference):

* ``prox``:  R = (t/T) * rho/2 * sum_cells ||A_c - Z(A_c)||_2, with Z(A) the one-hot matrix of the
  cell derived from the current A (DARTS: top-2 edges per node by strongest non-``none`` op, then
  that op; NB201: per-edge argmax), recomputed every step under ``stop_gradient``; t = steps done
  + 1 (the reference ticks its clock before the alpha step), T = ``prox_epochs`` * steps/epoch.
* ``admm``:  R = rho/2 * sum_cells ||(A_c - Z_c + U_c) * M_c||_2 with Z, U in ``method_state`` and
  updated every ``admm_freq`` alpha steps by scaled-form ADMM on x = A:
  Z <- Pi(x + U) (the one-hot cell of x + U), U <- (d * U + x - Z) * M, d = ``admm_dual_decay``.

Activation: ``softmax`` (the DARTS-PRIME recipe) or ``clamp`` (Maile et al. v1):
A = clip(alpha, 0, 1) * M with a permanent pruning mask M (alpha <= 0 after a weight step ->
masked forever; masked alpha are held at 0, get exactly zero gradient, and their ops are
multiplied by 0 -- shapes stay static under jit). Use it with an op set without ``none`` and
``config.space.node_batchnorm=True``.

Schedules: ``fixed``: an alpha step when ``(step + 1) % k == 0``. ``dynamic``: an alpha step iff
``0 < FI_ewma < threshold``, where after every weight step ``FI_ewma <- 0.2 FI + 0.8 FI_ewma``
(initialised to the first FI) and after every decision ``threshold <- threshold * 1.05^-k`` if an
alpha step was taken, else ``threshold * 1.05``. The decision is a ``lax.cond`` inside the jitted
step; FI_ewma, the threshold, the alpha-step count, the mask and Z, U live in ``method_state`` and
are checkpointed. The dynamic split (``dynamic_split``): train portion 1 - 1/(1 + k) of the
training set, alpha batches an epoch-wise shuffled stream without replacement
(``data.arch_with_replacement=False``), set by the config and checked by ``build``.

Defaults: the paper's intent; the reference code's quirks that change results are options
(``config.darts_prime.quirk_*``), off by default:

* ``quirk_admm_off_by_one``: the reference updates Z, U when ``(counter + 1) % admm_freq == 0``,
  i.e. after ``admm_freq - 1`` alpha steps; default: after ``admm_freq``.
* ``quirk_admm_raw_alpha``: the reference's Z <- Pi(act(alpha + U)) and U <- U + alpha - Z use the
  RAW alpha; default: x = act(alpha) throughout (A is what R compares with Z).
* ``quirk_admm_init_z_alpha``: the reference starts Z as a copy of raw alpha; default: Z_0 =
  Pi(A_0), a feasible cell.
* ``quirk_z_includes_none``: models no code at the reference's HEAD (``4953e40``), whose
  ``_parse`` (``src/model_admm_hard_statebn.py:221-243``) excludes ``none`` from both the edge
  ranking and the op choice, as the default here (the DARTS rule, the cell ``space.derive``
  reports). It models the reference before its commit ``7107829`` ("prevent none", 2021-03-23),
  whose ``_parse`` let Z pick ``none`` (from the file's first commit ``92cec2a``, 2021-03-11).
* T of the prox ramp: the reference at HEAD divides its clock (epochs, ``tick(1 / batches)``)
  by ``total_epochs`` = ``--epochs`` (default 50; ``model_admm_hard_statebn.py:271``,
  ``train_scheduled_hard_statebn.py:115``); only its commits ``470f1ab``..``feff389``
  (2021-03-22..24, before ``7e9f96e``) hard-coded ``clock / 50.``. Here T = ``prox_epochs``
  (default ``config.epochs``, 50 in the recipe), the same. Its zuewma flag never reaches the
  model (decay 1.0 = our default).
* The alpha stream: the reference draws a validation batch only on alpha steps from a
  persistent iterator; here the alpha batch of step s is batch s of an epoch-wise permutation
  stream (batch indices stay a pure function of the step, so resumes are exact), i.e. alpha steps
  see a subsample of that stream.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections

from jaxnas import parametrize
from jaxnas import spaces
from jaxnas import steps
from jaxnas.methods import base
from jaxnas.spaces import darts as darts_space
from jaxnas.spaces import nb201 as nb201_space
from jaxnas.state import SearchState

REGULARIZERS = ("none", "prox", "admm")
SCHEDULES = ("fixed", "dynamic")
PARAMETRIZATIONS = ("softmax", "clamp")
CELL_KEYS = {"darts": ("normal", "reduce"), "nb201": ("cell",)}


# ------------------------------------------------------------------------------------------ math
def safe_norm(x: jax.Array) -> jax.Array:
  """``||x||_2`` (all entries) with gradient 0 at x = 0 (PyTorch's ``norm`` subgradient)."""
  sq = jnp.sum(jnp.square(x))
  positive = sq > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def darts_cell_one_hot(weights: jax.Array, ops: tuple[str, ...], nodes: int,
                       include_none: bool = False) -> jax.Array:
  """Z: the one-hot (edges, ops) matrix of the DARTS cell derived from ``weights``, in JAX: the
  DARTS space's discretisation (``spaces.darts.cell_one_hot``, ``DartsSpace.discretize``);
  ``include_none``: the reference before its commit ``7107829``."""
  return darts_space.cell_one_hot(weights, ops, nodes, include_none)


def nb201_cell_one_hot(weights: jax.Array) -> jax.Array:
  """Z: the one-hot (6, ops) matrix of the NB201 cell (``spaces.nb201.cell_one_hot``,
  ``NB201Space.discretize``). Jit-able."""
  return nb201_space.cell_one_hot(weights)


def prox_penalty(mixing: dict[str, jax.Array], targets: dict[str, jax.Array], rho: float,
                 progress: jax.Array | float) -> jax.Array:
  """``R_prox = progress * rho/2 * sum_c ||A_c - Z_c||_2`` (Maile et al. §prox; reference
  ``prox_loss``: ``clock/total_epochs * rho/2 * (act(x) - disc).norm()``, summed over cells).

  ``targets`` (Z) are treated as constants: pass them through ``stop_gradient``.
  """
  total = sum(safe_norm(mixing[k] - targets[k]) for k in sorted(targets))
  return jnp.asarray(progress).astype(total.dtype) * rho / 2 * total


def admm_penalty(mixing: dict[str, jax.Array], z: dict[str, jax.Array], u: dict[str, jax.Array],
                 mask: dict[str, jax.Array] | None, rho: float) -> jax.Array:
  """``R_admm = rho/2 * sum_c ||(A_c - Z_c + U_c) * M_c||_2`` (reference ``admm_loss``, unsquared).
  """
  total = 0.0
  for k in sorted(z):
    residual = mixing[k] - z[k] + u[k]
    if mask is not None:
      residual = residual * mask[k]
    total = total + safe_norm(residual)
  return rho / 2 * total


def admm_update(point: dict[str, jax.Array], x: dict[str, jax.Array], u: dict[str, jax.Array],
                mask: dict[str, jax.Array] | None, project: Callable[[dict], dict],
                dual_decay: float = 1.0) -> tuple[dict, dict]:
  """One ADMM (Z, U) update (Boyd et al., scaled form; reference ``update_Z`` then ``update_U``)::

      Z <- project(point)            point = x + U  (paper; reference: act(alpha + U))
      U <- (dual_decay * U + x - Z) * M            x = act(alpha)  (paper; reference: raw alpha)
  """
  z = project(point)
  new_u = {}
  for k in z:
    value = dual_decay * u[k] + x[k] - z[k]
    new_u[k] = value * mask[k] if mask is not None else value
  return z, new_u


def fisher_ewma_update(ewma: jax.Array, fisher: jax.Array, decay: float) -> jax.Array:
  """``FI_ewma <- decay * FI + (1 - decay) * FI_ewma``; a negative ewma (unset, -1 at start, as the
  reference's ``track_FI``) takes the first FI as is."""
  return jnp.where(ewma < 0, fisher, decay * fisher + (1 - decay) * ewma).astype(ewma.dtype)


def dynamic_due(ewma: jax.Array, threshold: jax.Array) -> jax.Array:
  """The dynamic schedule's decision: an alpha step iff ``0 < FI_ewma < threshold``."""
  return (ewma > 0) & (ewma < threshold)


def threshold_update(threshold: jax.Array, took_step: jax.Array, multiplier: float,
                     k: int) -> jax.Array:
  """``threshold * multiplier^-k`` after an alpha step, else ``threshold * multiplier``
  (reference: ``threshold_divider = exp(-ln(multiplier) * schedfreq)``)."""
  shrink = float(multiplier) ** (-float(k))
  return jnp.where(took_step, threshold * shrink, threshold * multiplier).astype(threshold.dtype)


def fixed_due(step: jax.Array, k: int) -> jax.Array:
  """The fixed schedule: an alpha step when ``(step + 1) % k == 0`` (one per k weight steps)."""
  return (step + 1) % k == 0


def prune_update(arch: dict[str, jax.Array], mask: dict[str, jax.Array]) -> tuple[dict, dict]:
  """Permanent pruning after a weight step (reference ``mask_alphas``): ``M <- M * [alpha > 0]``,
  ``alpha <- alpha * M`` (so pruned alpha are exactly 0 and stay masked forever)."""
  new_mask = jax.tree.map(lambda a, m: m * (a > 0).astype(m.dtype), arch, mask)
  new_arch = jax.tree.map(lambda a, m: jnp.where(m > 0, a, jnp.zeros_like(a)), arch, new_mask)
  return new_arch, new_mask


@dataclasses.dataclass(frozen=True)
class MaskedParametrization(parametrize.Parametrization):
  """``activate(arch) = base.activate(arch) * mask`` (the pruning mask, a traced pytree)."""
  name: str = "masked"
  base: parametrize.Parametrization = parametrize.Clamp()
  mask: Any = None

  def init_leaf(self, key, shape, dtype):
    return self.base.init_leaf(key, shape, dtype)

  def activate(self, arch: Any) -> Any:
    return jax.tree.map(lambda a, m: self.base.activate_leaf(a) * m.astype(a.dtype), arch,
                        self.mask)


# ---------------------------------------------------------------------------------------- method
@dataclasses.dataclass(frozen=True)
class DartsPrime(base.SearchMethod):
  """DARTS-PRIME / constrained DARTS (module docstring); hyperparameters: ``config.darts_prime``."""
  name: str = "darts_prime"
  space: str = "darts"
  ops: tuple[str, ...] = darts_space.DARTS_OPS
  nodes: int = 4
  regularizer: str = "prox"
  rho: float = 0.1
  prox_epochs: int = 50
  admm_freq: int = 10
  admm_dual_decay: float = 1.0
  schedule: str = "dynamic"
  schedule_freq: int = 10
  fisher_ewma: float = 0.2
  init_threshold: float = 1.0
  threshold_multiplier: float = 1.05
  prune: bool = False  # the clamp parametrization's permanent mask
  quirk_admm_off_by_one: bool = False
  quirk_admm_raw_alpha: bool = False
  quirk_admm_init_z_alpha: bool = False
  quirk_z_includes_none: bool = False

  # ------------------------------------------------------------------ pieces
  def one_hot(self, mixing: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """Z for every cell of ``mixing`` (the derived cell as one-hot matrices), in JAX."""
    if self.space == "nb201":
      return {k: nb201_cell_one_hot(mixing[k]) for k in CELL_KEYS[self.space]}
    return {k: darts_cell_one_hot(mixing[k], self.ops, self.nodes, self.quirk_z_includes_none)
            for k in CELL_KEYS[self.space]}

  def masked_components(self, components: steps.SearchComponents,
                        method_state: Any) -> steps.SearchComponents:
    """The components with the pruning mask folded into the parametrization (clamp only)."""
    if not self.prune:
      return components
    return dataclasses.replace(components, parametrization=MaskedParametrization(
        base=components.parametrization, mask=method_state["mask"]))

  def schedule_due(self, step: jax.Array, method_state: Any) -> jax.Array:
    """Whether this step takes an alpha step (bool scalar)."""
    if self.schedule == "fixed":
      return fixed_due(step, self.schedule_freq)
    return dynamic_due(method_state["fisher_ewma"], method_state["threshold"])

  def schedule_advance(self, method_state: Any, due: jax.Array, fisher: jax.Array) -> Any:
    """The schedule's variables after a step: threshold (dynamic only), FI_ewma, alpha steps."""
    new = dict(method_state)
    if self.schedule == "dynamic":
      new["threshold"] = threshold_update(method_state["threshold"], due,
                                          self.threshold_multiplier, self.schedule_freq)
    new["fisher_ewma"] = fisher_ewma_update(method_state["fisher_ewma"], fisher,
                                            self.fisher_ewma)
    new["arch_steps"] = method_state["arch_steps"] + due.astype(jnp.int32)
    return new

  def admm_advance(self, components: steps.SearchComponents, arch: Any, admm: dict,
                   mask: Any, due: jax.Array) -> tuple[dict, jax.Array]:
    """Counts alpha steps; every ``admm_freq`` of them (or, with the off-by-one quirk, whenever
    ``(counter + 1) % admm_freq == 0``, checked every step as the reference) updates Z, U."""
    counter = admm["counter"] + due.astype(jnp.int32)
    if self.quirk_admm_off_by_one:
      fire = (counter + 1) % self.admm_freq == 0
    else:
      fire = counter >= self.admm_freq
    activate = components.parametrization.activate  # masked when pruning
    x_act = activate(arch)
    if self.quirk_admm_raw_alpha:
      point = activate(jax.tree.map(jnp.add, arch, admm["u"]))
      x = arch
    else:
      point = jax.tree.map(jnp.add, x_act, admm["u"])
      x = x_act
    z, u = admm_update(point, x, admm["u"], mask, self.one_hot, self.admm_dual_decay)
    pick = lambda new, old: jax.tree.map(lambda n, o: jnp.where(fire, n, o), new, old)
    return {"z": pick(z, admm["z"]), "u": pick(u, admm["u"]),
            "counter": jnp.where(fire, 0, counter).astype(jnp.int32)}, fire

  def arch_regularizer(self, components: steps.SearchComponents, step: jax.Array,
                       method_state: Any) -> Callable[[Any], jax.Array] | None:
    """``R(alpha)`` of this step (a closure over Z, U, the mask and the prox ramp), or None."""
    activate = components.parametrization.activate
    if self.regularizer == "prox":
      horizon = self.prox_epochs * components.steps_per_epoch
      if horizon <= 0:
        raise ValueError("The prox regularizer ramps over prox_epochs * steps_per_epoch steps; "
                         "build the components with steps_per_epoch > 0 (loop.build_search "
                         "does).")
      progress = (step + 1) / horizon  # float32 (float64 under x64), cast to alpha's dtype

      def prox(arch):
        mixing = activate(arch)
        target = self.one_hot(jax.lax.stop_gradient(mixing))
        return prox_penalty(mixing, jax.lax.stop_gradient(target), self.rho, progress)
      return prox
    if self.regularizer == "admm":
      admm = method_state["admm"]
      return lambda arch: admm_penalty(activate(arch), admm["z"], admm["u"],
                                       method_state.get("mask"), self.rho)
    return None

  # ------------------------------------------------------------------ SearchMethod interface
  def init_method_state(self, components: steps.SearchComponents, state: SearchState) -> Any:
    """Schedule variables, the pruning mask (clamp) and ADMM's Z, U, counter."""
    ms: dict[str, Any] = {"arch_steps": jnp.zeros((), jnp.int32),
                          "fisher_ewma": jnp.full((), -1.0, jnp.float32),
                          "threshold": jnp.full((), self.init_threshold, jnp.float32)}
    if self.prune:
      ms["mask"] = jax.tree.map(lambda a: (a > 0).astype(a.dtype), state.arch)
    if self.regularizer == "admm":
      if self.quirk_admm_init_z_alpha:
        z = {k: jnp.array(state.arch[k]) for k in CELL_KEYS[self.space]}
      else:
        z = self.one_hot(self.masked_components(components, ms).parametrization.activate(
            state.arch))
      ms["admm"] = {"z": z, "u": jax.tree.map(jnp.zeros_like, z),
                    "counter": jnp.zeros((), jnp.int32)}
    return ms

  def search_step(self, state: SearchState, batches, *, components: steps.SearchComponents):
    """One DARTS-PRIME step (module docstring); metrics add ``prime/*`` to the DARTS ones."""
    ms = state.method_state
    comps = self.masked_components(components, ms)
    key = jax.random.wrap_key_data(state.key)
    key, key_train, key_val = jax.random.split(key, 3)
    train_batch = (steps.augment(comps, key_train, batches["train"][0]), batches["train"][1])
    val_batch = (steps.augment(comps, key_val, batches["val"][0]), batches["val"][1])
    lr = comps.weights_lr(state.step)
    due = self.schedule_due(state.step, ms)
    regularizer = self.arch_regularizer(comps, state.step, ms)

    def take(s):
      s, m = steps.arch_update(comps, s, train_batch, val_batch, lr, arch_regularizer=regularizer)
      reg = m.pop("arch/regularizer", jnp.zeros((), jnp.float32))
      if self.prune:  # masked alpha stay exactly 0 (Adam's moments would move them)
        s = s.replace(arch=jax.tree.map(lambda a, k: a * k, s.arch, ms["mask"]))
      return s, {**m, "prime/reg": jnp.asarray(reg, jnp.float32)}

    def skip(s):
      reg = regularizer(s.arch) if regularizer is not None else jnp.zeros((), jnp.float32)
      return s, {"val/loss": jnp.float32(jnp.nan), "val/accuracy": jnp.float32(jnp.nan),
                 "prime/reg": jnp.asarray(reg, jnp.float32)}

    state, arch_metrics = jax.lax.cond(due, take, skip, state)
    state, weight_metrics = steps.weights_update(comps, state, *train_batch)
    fisher = jnp.square(weight_metrics["train/grad_norm"])  # sum ||grad_w||^2 before clipping
    new_ms = self.schedule_advance(ms, due, fisher)
    extra = {}
    if self.prune:
      arch, new_ms["mask"] = prune_update(state.arch, ms["mask"])
      state = state.replace(arch=arch)
      leaves = jax.tree.leaves(new_ms["mask"])
      extra["prime/pruned_fraction"] = 1.0 - (sum(jnp.sum(m) for m in leaves)
                                              / sum(m.size for m in leaves))
    if self.regularizer == "admm":
      masked = self.masked_components(components, new_ms)
      new_ms["admm"], fire = self.admm_advance(masked, state.arch, ms["admm"],
                                               new_ms.get("mask"), due)
      extra["prime/admm_update"] = fire.astype(jnp.float32)
    state = state.replace(step=state.step + 1, key=jax.random.key_data(key), method_state=new_ms)
    return state, {**arch_metrics, **weight_metrics, "lr/weights": lr,
                   "prime/arch_step": due.astype(jnp.float32),
                   "prime/arch_steps": new_ms["arch_steps"].astype(jnp.float32),
                   "prime/fisher_trace": fisher,
                   "prime/fisher_ewma": ms["fisher_ewma"],  # the value this step's decision read
                   "prime/threshold": ms["threshold"], **extra}

  def mixing(self, components: steps.SearchComponents, state: SearchState) -> Any:
    """``act(alpha) * mask``: what the genotype is derived from."""
    return self.masked_components(components, state.method_state).parametrization.activate(
        state.arch)

  def eval_step(self, state: SearchState, images: jax.Array, labels: jax.Array, *,
                components: steps.SearchComponents) -> dict[str, jax.Array]:
    """The supernet evaluation with the masked mixing weights."""
    return steps.eval_step(state, images, labels,
                           components=self.masked_components(components, state.method_state))


# --------------------------------------------------------------------------------------- builder
def dynamic_train_portion(schedule_freq: int) -> float:
  """The dynamic split's weight share of the training set: ``1 - 1/(1 + k)`` (10/11 for k = 10)."""
  return 1.0 - 1.0 / (1.0 + schedule_freq)


def _fail(field: str, value: Any, fix: str) -> None:
  raise ValueError(f"config.{field}={value!r} is not valid for method='darts_prime': {fix}")


def build(config: ml_collections.ConfigDict) -> DartsPrime:
  """``DartsPrime`` from ``config.darts_prime`` (and the space); ValueErrors name field and fix."""
  block = config.darts_prime
  if block.regularizer not in REGULARIZERS:
    _fail("darts_prime.regularizer", block.regularizer, f"choose one of {', '.join(REGULARIZERS)}.")
  if block.schedule not in SCHEDULES:
    _fail("darts_prime.schedule", block.schedule, f"choose one of {', '.join(SCHEDULES)}.")
  for field in ("admm_freq", "schedule_freq"):
    value = block[field]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      _fail(f"darts_prime.{field}", value, "use an integer >= 1.")
  if block.rho < 0:
    _fail("darts_prime.rho", block.rho, "use rho >= 0.")
  if not 0 < block.fisher_ewma <= 1:
    _fail("darts_prime.fisher_ewma", block.fisher_ewma, "use a weight in (0, 1] (1 = no EWMA).")
  if block.init_threshold <= 0:
    _fail("darts_prime.init_threshold", block.init_threshold, "use a threshold > 0.")
  if block.threshold_multiplier <= 0:
    _fail("darts_prime.threshold_multiplier", block.threshold_multiplier, "use a value > 0.")
  if block.prox_epochs < 0:
    _fail("darts_prime.prox_epochs", block.prox_epochs, "use >= 0 (0 = config.epochs).")
  if config.parametrization not in PARAMETRIZATIONS:
    _fail("parametrization", config.parametrization,
          "DARTS-PRIME uses 'softmax' (the recipe) or 'clamp' (Maile et al.'s activation).")
  if config.space.name not in CELL_KEYS:
    _fail("space.name", config.space.name, f"choose one of {', '.join(CELL_KEYS)}.")
  if config.space.name == "darts" and config.space.edge_normalization:
    _fail("space.edge_normalization", True, "set it to False (no PC-DARTS edge weights).")
  if config.arch_every != 1:
    _fail("arch_every", config.arch_every,
          "leave it at 1; DARTS-PRIME's schedule is config.darts_prime.schedule.")
  if config.step_order != "arch_first":
    _fail("step_order", config.step_order, "DARTS-PRIME takes the alpha step first; set "
          "'arch_first'.")
  options: dict[str, Any] = {}
  if config.space.ops:
    options["ops"] = tuple(op.strip() for op in config.space.ops.split(",") if op.strip())
  if config.space.name == "darts":
    options["nodes"] = config.space.nodes
  ops = spaces.get(config.space.name, **options).ops
  if config.parametrization == "clamp" and "none" in ops:
    _fail("space.ops", config.space.ops, "the clamp activation needs an op set without 'none', "
          "e.g. --config.space.ops=" + ",".join(op for op in ops if op != "none") + ".")
  if block.dynamic_split:
    portion = dynamic_train_portion(block.schedule_freq)
    if config.data.split != "darts" or abs(config.data.train_portion - portion) > 1e-9:
      _fail("data.train_portion", config.data.train_portion,
            f"darts_prime.dynamic_split=True needs data.split='darts' and data.train_portion = "
            f"1 - 1/(1 + schedule_freq) = {portion!r} (schedule_freq={block.schedule_freq}); set "
            "them, or set darts_prime.dynamic_split=False.")
    if config.data.arch_with_replacement:
      _fail("data.arch_with_replacement", True, "darts_prime.dynamic_split=True draws alpha "
            "batches from an epoch-wise stream; set it to False.")
  return DartsPrime(
      space=config.space.name, ops=ops, nodes=config.space.nodes,
      regularizer=block.regularizer, rho=float(block.rho),
      prox_epochs=int(block.prox_epochs or config.epochs), admm_freq=block.admm_freq,
      admm_dual_decay=float(block.admm_dual_decay), schedule=block.schedule,
      schedule_freq=block.schedule_freq, fisher_ewma=float(block.fisher_ewma),
      init_threshold=float(block.init_threshold),
      threshold_multiplier=float(block.threshold_multiplier),
      prune=config.parametrization == "clamp",
      quirk_admm_off_by_one=bool(block.quirk_admm_off_by_one),
      quirk_admm_raw_alpha=bool(block.quirk_admm_raw_alpha),
      quirk_admm_init_z_alpha=bool(block.quirk_admm_init_z_alpha),
      quirk_z_includes_none=bool(block.quirk_z_includes_none))


base.register("darts_prime", build)
