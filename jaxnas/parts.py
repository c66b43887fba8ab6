"""The typed parts a search method is composed of (``shared/DESIGN.md`` §7), besides the
parametrization (``jaxnas.parametrize``), the hypergradient estimator (``jaxnas.methods.estimators``)
and the optimizers (``jaxnas.optim``):

* **alpha-step schedules** -- when the step skeleton (``jaxnas.steps.search_step``) takes an alpha
  step: ``EveryK`` (every k steps at a phase, optionally restarting its count every epoch) and
  ``DynamicFisher`` (DARTS-PRIME's Fisher-trace threshold);
* **alpha regularizers** -- terms added to the alpha objective, each with its own typed state and
  metric: ``Entropy`` (GAEA), ``Prox`` and ``Admm`` (DARTS-PRIME / constrained DARTS); a tuple of
  them composes (the sum of their terms);
* **forward transforms** -- what the training forwards of a step see instead of the deterministic
  mixing (``jaxnas.steps.transformed``; derivation, evaluation and the regularizers keep the
  deterministic mixing): the samplers ``Gumbel`` (GDAS' hard straight-through Gumbel-max sample,
  SNAS' relaxed one) at a temperature annealed per epoch, and the others below. A transform is a
  frozen object with ``name``, ``forwards`` (which training forwards it applies to: ``'weights'``,
  ``'arch'``), ``wrap(mix, ctx) -> mix`` (``mix``: ``arch -> mixing``; ``ctx``:
  ``ForwardContext``) and ``metrics(step)``;
* **pruning** -- a mask over the ops, kept in ``method_state['mask']`` and folded into the
  parametrization (its own ``with_mask`` where it renormalizes over the kept ops, else
  ``mixing * mask``): ``SignPrune`` (DARTS-PRIME: off forever once alpha <= 0) and ``TopKPrune``
  (DrNAS: each edge keeps its k best ops after a stage); alpha of pruned ops is held at 0;
* **supernet stages** -- from a step on, the supernet rebuilt with other ``config.space`` options
  and the state mapped onto it (``SupernetStage``: DrNAS' partial channels K 6 -> 4, its weights
  widened by Net2Wider, ``jaxnas.spaces.net2wider``); the search program switches its compiled
  step there (``jaxnas.search.SearchProgram``), so each stage is one program;
* **cell projections** -- Z(A), the one-hot matrices of the cell derived from mixing weights, which
  prox and ADMM pull toward (``CellProjection``: the space's own ``discretize`` on the leaves it
  names in ``cell_keys()``).

A regularizer is any frozen object with ``name``, ``init(arch, ctx) -> state``,
``penalty(arch, state, ctx) -> scalar`` (differentiated with respect to the raw alpha; ``ctx`` gives
the activation, the step and the mask) and ``advance(state, arch, due, ctx) -> (state, metrics)``
(after the weight step): a FLOPs or latency penalty is ``penalty = lam * sum(ctx.activate(arch) *
op_cost)`` with ``NoState``, added to the tuple next to the others.

Every part is a small frozen dataclass that checks its own options in ``__post_init__`` (a one-line
ValueError naming the config field, the valid values and the fix) and is static under ``jit``; its
state is a NamedTuple pytree kept in ``SearchState.method_state`` and checkpointed with it.
``jaxnas.methods.compose.read_parts`` builds them from the config.
"""
from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from jaxnas.optim.mirror_descent import entropy_regularizer
from jaxnas.spaces import darts as darts_space
from jaxnas.spaces import nb201 as nb201_space


def _fail(field: str, value: Any, fix: str) -> None:
  raise ValueError(f"config.{field}={value!r} is not valid: {fix}")


def _int_at_least(field: str, value: Any, low: int) -> None:
  if isinstance(value, bool) or not isinstance(value, int) or value < low:
    _fail(field, value, f"use an integer >= {low}.")


class NoState(NamedTuple):
  """The state of a stateless part (no leaves: checkpoints of methods without stateful parts keep
  their layout)."""


# ============================================================================ alpha-step schedules


class FisherScheduleState(NamedTuple):
  """``DynamicFisher``'s state: alpha steps, the Fisher-trace EWMA (-1 = unset), the threshold."""
  arch_steps: jax.Array
  fisher_ewma: jax.Array
  threshold: jax.Array


@dataclasses.dataclass(frozen=True)
class EveryK:
  """An alpha step when ``s % k == phase``, ``s`` the step (0-based), or with
  ``steps_per_epoch > 0`` the step within its epoch (``step % steps_per_epoch``): the count
  restarts every epoch.

  * every step (DARTS, MiLeNAS, GAEA, PC-DARTS): ``k = 1``;
  * iDARTS (Zhang et al., ICML 2021): T weight steps per alpha step, ``k = T`` with ``phase = 0``
    (``step_order='arch_first'``: the first step of each group) or ``T - 1`` (``'weights_first'``:
    the alpha step after T weight steps, the reference's ``step % T == T - 1``);
  * DARTS-PRIME's fixed schedule (Maile et al., arXiv 2106.11655): ``phase = k - 1`` and the count
    restarting every epoch, as the reference's ``if step % schedfreq == schedfreq - 1`` over
    ``enumerate(train_queue)`` (711 steps/epoch, k = 10: 71 alpha steps per epoch, 3550 in 50
    epochs; a global count would take 3555);
  * a warm-up without alpha steps (GAEA's EGDAS, ``warmup_epochs: 50``): ``start`` = the first
    step that may take one (0 = from the start).
  """
  k: int = 1
  phase: int = 0
  steps_per_epoch: int = 0
  start: int = 0
  field: str = "arch_schedule.k"  # the config field ``k`` came from (for the error message)
  name: str = "every_k"

  def __post_init__(self):
    _int_at_least(self.field, self.k, 1)
    if not 0 <= self.phase < self.k:
      _fail("arch_schedule.phase", self.phase, f"use a phase in [0, k - 1] = [0, {self.k - 1}] "
            "('auto': 0 with step_order='arch_first', k - 1 with 'weights_first').")
    _int_at_least("steps_per_epoch", self.steps_per_epoch, 0)
    _int_at_least("arch_schedule.start_epoch (times steps per epoch)", self.start, 0)

  @staticmethod
  def auto_phase(k: int, step_order: str) -> int:
    """The phase ``arch_schedule.phase=-1`` picks: 0 with ``'arch_first'`` (the first step of each
    group), ``k - 1`` with ``'weights_first'`` (the alpha step after k weight steps)."""
    return 0 if step_order == "arch_first" else k - 1

  @property
  def always(self) -> bool:
    """Every step takes an alpha step (the skeleton then needs no ``lax.cond``)."""
    return self.k == 1 and self.start == 0

  def init(self) -> NoState:
    """No state: the decision is a function of the step."""
    return NoState()

  def due(self, step: jax.Array, state: NoState) -> jax.Array:
    """Whether step ``step`` takes an alpha step (Python ints, NumPy or traced arrays)."""
    del state
    s = step % self.steps_per_epoch if self.steps_per_epoch else step
    if self.start:
      return (s % self.k == self.phase) & (step >= self.start)
    return s % self.k == self.phase

  def advance(self, state: NoState, due: jax.Array, fisher: jax.Array) -> NoState:
    del due, fisher
    return state

  def metrics(self, state: NoState) -> dict[str, jax.Array]:
    del state
    return {}


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


@dataclasses.dataclass(frozen=True)
class DynamicFisher:
  """DARTS-PRIME's dynamic schedule (Maile et al., arXiv 2106.11655 v3, §scheduling; reference
  ``train_scheduled_hard_statebn.py``): an alpha step iff ``0 < FI_ewma < threshold``, where after
  every weight step ``FI_ewma <- ewma * FI + (1 - ewma) * FI_ewma`` (initialised to the first FI;
  FI = sum ||grad_w L_train||^2, the empirical Fisher trace before clipping), and after every
  decision ``threshold <- threshold * multiplier^-k`` if an alpha step was taken, else
  ``threshold * multiplier`` (about one alpha step per k weight steps in equilibrium)."""
  k: int = 10
  ewma: float = 0.2
  init_threshold: float = 1.0
  multiplier: float = 1.05
  prefix: str = "arch_schedule"  # the config block the options came from (for the messages)
  name: str = "dynamic_fisher"

  def __post_init__(self):
    _int_at_least(f"{self.prefix}.k", self.k, 1)
    if not 0 < self.ewma <= 1:
      _fail(f"{self.prefix}.fisher_ewma", self.ewma, "use a weight in (0, 1] (1 = no EWMA).")
    if not self.init_threshold > 0:
      _fail(f"{self.prefix}.init_threshold", self.init_threshold, "use a threshold > 0.")
    if not self.multiplier > 0:
      _fail(f"{self.prefix}.threshold_multiplier", self.multiplier, "use a value > 0.")

  always = False

  def init(self) -> FisherScheduleState:
    return FisherScheduleState(jnp.zeros((), jnp.int32), jnp.full((), -1.0, jnp.float32),
                               jnp.full((), self.init_threshold, jnp.float32))

  def due(self, step: jax.Array, state: FisherScheduleState) -> jax.Array:
    del step
    return dynamic_due(state.fisher_ewma, state.threshold)

  def advance(self, state: FisherScheduleState, due: jax.Array,
              fisher: jax.Array) -> FisherScheduleState:
    return FisherScheduleState(
        state.arch_steps + due.astype(jnp.int32),
        fisher_ewma_update(state.fisher_ewma, fisher, self.ewma),
        threshold_update(state.threshold, due, self.multiplier, self.k))

  def metrics(self, state: FisherScheduleState) -> dict[str, jax.Array]:
    """The values this step's decision read."""
    return {"schedule/fisher_ewma": state.fisher_ewma, "schedule/threshold": state.threshold}


SCHEDULES = ("every_k", "dynamic_fisher")
Schedule = EveryK | DynamicFisher


# ============================================================================ forward transforms
@dataclasses.dataclass(frozen=True)
class ForwardContext:
  """What a forward transform sees when it wraps one training forward of a step (traced values).

  Attributes:
    parametrization: the deterministic parametrization (``log_activate``: the Gumbel samplers;
      ``concentration``: DrNAS' Dirichlet sampler).
    key: the transform's own key for this forward.
    step: steps done before this one.
    loss: ``loss(mix, train=True) -> scalar``: the loss of the forward's batch at the current
      weights with the mixing function ``mix`` (BatchNorm in training mode, or with
      ``train=False`` on its running statistics; no statistics updated): SDARTS-ADV's attack.
  """
  parametrization: Any
  key: Any
  step: Any
  loss: Callable[[Callable[[Any], Any]], jax.Array] | None = None


def epoch_progress(step: jax.Array, steps_per_epoch: int, span: int, warmup_epochs: int = 0,
                   hold: bool = True) -> jax.Array:
  """The per-epoch progress of the parts' schedules: ``max(e - warmup_epochs, 0) / span`` for the
  epoch ``e = step // steps_per_epoch`` (0-based; constant within an epoch), held at 1 past the
  span with ``hold`` (float32). GDAS' tau (span = epochs - 1), SDARTS' epsilon (span = epochs),
  DARTS-' beta (span = decay_epochs) and beta-DARTS' lambda (not held) read it."""
  epoch = jnp.asarray(step) // steps_per_epoch
  progress = jnp.maximum(epoch - warmup_epochs, 0).astype(jnp.float32) / max(span, 1)
  return jnp.minimum(progress, 1.0) if hold else progress


@dataclasses.dataclass(frozen=True)
class Gumbel:
  r"""The Gumbel samplers: every training forward (weight step and alpha step, each its own
  draw) mixes with a sample of each edge's op distribution ``p = activate(alpha)`` (its log from
  the parametrization's ``log_activate``: ``softmax``, GDAS / SNAS; ``simplex``, GAEA-GDAS), one
  sample per edge:

  * ``hard=True``, **GDAS** (Dong & Yang, "Searching for a Robust Neural Architecture in Four GPU
    Hours", CVPR 2019): ``h = parametrize.gumbel_hard(log p, key, tau)``, the one-hot of the
    Gumbel-max sample with the straight-through gradient of the relaxed sample;
  * ``hard=False``, **SNAS** (Xie et al., "SNAS: Stochastic Neural Architecture Search", ICLR
    2019): the relaxed sample itself, ``z = softmax((log p + g) / tau)``, ``g ~ Gumbel(0, 1)``
    (``parametrize.gumbel_soft``).

  Temperature, constant within an epoch e (0-based, ``e = step // steps_per_epoch``)::

      tau(e) = tau_max - (tau_max - tau_min) * max(e - warmup_epochs, 0) / (epochs - 1)

  AutoDL ``exps/NAS-Bench-201-algos/GDAS.py:237-239`` (``set_tau(tau_max - (tau_max - tau_min) *
  epoch / (total_epoch - 1))`` at each epoch start; tau_max = 10, tau_min = 0.1 in
  ``scripts-search/NAS-Bench-201-algos/GDAS.sh``); ``warmup_epochs`` is GAEA's EGDAS variant
  (methods.md §6, 0 in GDAS). Past ``epochs`` (a longer ``max_steps``) tau stays at ``tau_min``;
  ``epochs = 1`` keeps ``tau_max``. Stateless: tau is a function of the step. A sampler replaces
  the mixing: it comes first among the forward transforms.
  """
  tau_max: float = 10.0
  tau_min: float = 0.1
  epochs: int = 1
  steps_per_epoch: int = 1
  warmup_epochs: int = 0
  hard: bool = True
  prefix: str = "arch_sampler"
  forwards: tuple[str, ...] = ("weights", "arch")

  def __post_init__(self):
    if not 0 < self.tau_min <= self.tau_max:
      _fail(f"{self.prefix}.tau_min", self.tau_min,
            f"use temperatures 0 < tau_min <= tau_max (tau_max = {self.tau_max}).")
    _int_at_least("epochs", self.epochs, 1)
    _int_at_least("steps_per_epoch", self.steps_per_epoch, 1)
    _int_at_least(f"{self.prefix}.warmup_epochs", self.warmup_epochs, 0)

  @property
  def name(self) -> str:
    return "gumbel_hard" if self.hard else "gumbel_soft"

  def tau(self, step: jax.Array) -> jax.Array:
    """The temperature of step ``step`` (steps done before it)."""
    progress = epoch_progress(step, self.steps_per_epoch, self.epochs - 1, self.warmup_epochs)
    return jnp.maximum(self.tau_max - (self.tau_max - self.tau_min) * progress, self.tau_min)

  def sample(self, log_probs: Any, key: jax.Array, step: jax.Array) -> Any:
    """Samples of every leaf (its own key per leaf, in leaf order)."""
    from jaxnas.parametrize import gumbel_hard, gumbel_soft  # parametrize imports no parts
    draw = gumbel_hard if self.hard else gumbel_soft
    leaves, treedef = jax.tree.flatten(log_probs)
    keys = jax.random.split(key, len(leaves))
    tau = self.tau(step)
    return jax.tree.unflatten(treedef, [draw(leaf, k, tau.astype(leaf.dtype))
                                        for leaf, k in zip(leaves, keys)])

  def wrap(self, mix: Callable[[Any], Any], ctx: ForwardContext) -> Callable[[Any], Any]:
    """The sample of the distribution ``ctx.parametrization`` defines (``mix`` is replaced)."""
    del mix
    return lambda arch: self.sample(ctx.parametrization.log_activate(arch), ctx.key, ctx.step)

  def metrics(self, step: jax.Array) -> dict[str, jax.Array]:
    return {"sampler/tau": self.tau(step)}


# ============================================================================ cell projections
def darts_cell_one_hot(weights: jax.Array, ops: tuple[str, ...], nodes: int,
                       include_none: bool = False) -> jax.Array:
  """Z: the one-hot (edges, ops) matrix of the DARTS cell derived from ``weights``: the DARTS
  space's rule (``spaces.darts.cell_one_hot``, ``DartsSpace.discretize``); ``include_none``: the
  DARTS-PRIME reference before its commit ``7107829``."""
  return darts_space.cell_one_hot(weights, ops, nodes, include_none)


def nb201_cell_one_hot(weights: jax.Array) -> jax.Array:
  """Z: the one-hot (6, ops) matrix of the NB201 cell (``spaces.nb201.cell_one_hot``,
  ``NB201Space.discretize``). Jit-able."""
  return nb201_space.cell_one_hot(weights)


def _discretize_options(space: Any) -> tuple[str, ...]:
  """The keyword options of ``space.discretize`` (DARTS: ``include_none``)."""
  params = inspect.signature(space.discretize).parameters
  return tuple(name for name in params if name != "mixing")


@dataclasses.dataclass(frozen=True)
class CellProjection:
  r"""``Z(A)``: the derived architecture as one-hot rows, by the space's own rule.

  .. math:: Z(A)_c = \mathrm{discretize}(A)_c \quad \text{for each cell } c \in
     \mathrm{space.cell\_keys()},

  i.e. ``space.discretize(mixing)`` (DARTS: top-2 edges per node without ``none``, on alpha ⊙ beta
  with edge normalization; NB201 and width: per-row argmax) restricted to the leaves the space
  names as op-weight cells (``space.cell_keys()``; PC-DARTS' edge weights beta are not projected).
  Any registered space with a ``discretize`` gets prox / ADMM; one without gets a one-line
  ValueError.

  Attributes:
    space: a ``jaxnas.spaces.SearchSpace`` (the configured one), or a registered name (built with
      its default options).
    include_none: DARTS-PRIME's early quirk (``darts_prime.quirk_z_includes_none``): passed as
      ``discretize(mixing, include_none=True)``, for spaces whose ``discretize`` takes it.
  """
  space: Any = "darts"
  include_none: bool = False

  def __post_init__(self):
    space = self.space
    if isinstance(space, str):
      from jaxnas import spaces  # local import: jaxnas.spaces is the registry of every space
      space = spaces.get(space)
      object.__setattr__(self, "space", space)
    if not _overrides(space, "discretize"):
      _fail("space.name", space.name, f"the prox / ADMM regularizers pull alpha toward the "
            f"space's discretize(mixing), which {type(space).__name__} does not define; implement "
            "it (jaxnas.spaces.SearchSpace.discretize) or drop the regularizer.")
    if self.include_none and "include_none" not in _discretize_options(space):
      _fail("darts_prime.quirk_z_includes_none", True, f"the {space.name!r} space's discretize "
            "has no include_none option; set it to False.")

  @property
  def cell_keys(self) -> tuple[str, ...]:
    """The projected leaves: ``space.cell_keys()``."""
    return tuple(self.space.cell_keys())

  def __call__(self, mixing: dict[str, jax.Array]) -> dict[str, jax.Array]:
    options = {"include_none": True} if self.include_none else {}
    target = self.space.discretize(mixing, **options)
    return {k: target[k] for k in self.cell_keys}


def _overrides(space: Any, method: str) -> bool:
  """Whether ``space`` defines ``method`` beyond the ``SearchSpace`` base (which raises)."""
  from jaxnas.spaces import base  # local import, as above
  own = getattr(type(space), method, None)
  return own is not None and own is not getattr(base.SearchSpace, method, None)


# ============================================================================ alpha regularizers
@dataclasses.dataclass(frozen=True)
class Context:
  """What a regularizer sees in a step (built by the skeleton, traced values inside)."""
  activate: Callable[[Any], Any]  # raw alpha -> mixing weights (the pruning mask folded in)
  step: Any                       # steps done before this one
  mask: Any = None                # the pruning mask, or None


def safe_norm(x: jax.Array) -> jax.Array:
  """``||x||_2`` (all entries) with gradient 0 at x = 0 (PyTorch's ``norm`` subgradient)."""
  sq = jnp.sum(jnp.square(x))
  positive = sq > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


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


class AdmmState(NamedTuple):
  """ADMM's variables: Z (the one-hot target), U (the scaled dual), alpha steps since the last
  update."""
  z: Any
  u: Any
  counter: jax.Array


@dataclasses.dataclass(frozen=True)
class Entropy:
  """GAEA's entropy term (Li et al., ICLR 2021): ``weight * sum alpha log(alpha n)`` on the raw
  alpha (which must lie on the simplex: ``config_checks``). Metric ``reg/entropy``."""
  weight: float = 0.0
  name: str = "entropy"

  def __post_init__(self):
    if not self.weight >= 0:
      _fail("arch_optimizer.entropy_reg", self.weight, "use a weight >= 0 (0 = off).")

  def init(self, arch: Any, ctx: Context) -> NoState:
    del arch, ctx
    return NoState()

  def penalty(self, arch: Any, state: NoState, ctx: Context) -> jax.Array:
    del state, ctx
    return self.weight * entropy_regularizer(arch)

  def advance(self, state: NoState, arch: Any, due: jax.Array, ctx: Context):
    del arch, due, ctx
    return state, {}


@dataclasses.dataclass(frozen=True)
class Prox:
  """The prox term (Maile et al., arXiv 2106.11655, "prox"): ``R = (t/T) * rho/2 * sum_cells
  ||A_c - Z(A_c)||_2`` with A the mixing weights and Z(A) the one-hot matrix of the cell derived from
  the current A, recomputed every step under ``stop_gradient``; t = steps done + 1 (the reference
  ticks its clock before the alpha step), T = ``horizon`` steps (``prox_epochs`` * steps/epoch).
  Metric ``reg/prox``."""
  rho: float = 0.1
  horizon: int = 1
  project: CellProjection = CellProjection()
  prefix: str = "arch_regularizer"
  name: str = "prox"

  def __post_init__(self):
    if not self.rho >= 0:
      _fail(f"{self.prefix}.rho", self.rho, "use rho >= 0.")
    _int_at_least(f"{self.prefix}.prox_epochs (times steps per epoch)", self.horizon, 1)

  def init(self, arch: Any, ctx: Context) -> NoState:
    del arch, ctx
    return NoState()

  def penalty(self, arch: Any, state: NoState, ctx: Context) -> jax.Array:
    del state
    progress = (ctx.step + 1) / self.horizon  # float32 (float64 under x64), cast to alpha's dtype
    mixing = ctx.activate(arch)
    target = self.project(jax.lax.stop_gradient(mixing))
    return prox_penalty(mixing, jax.lax.stop_gradient(target), self.rho, progress)

  def advance(self, state: NoState, arch: Any, due: jax.Array, ctx: Context):
    del arch, due, ctx
    return state, {}


@dataclasses.dataclass(frozen=True)
class Admm:
  """ADMM toward the derived cell (Maile et al., arXiv 2106.11655, "ADMM"; scaled form of Boyd et
  al.): ``R = rho/2 * sum_cells ||(A_c - Z_c + U_c) * M_c||_2`` (M the pruning mask, if any), and
  every ``freq`` alpha steps ``Z <- Z(x + U)``, ``U <- (dual_decay U + x - Z) * M`` with x = A.
  Metrics ``reg/admm`` and ``reg/admm_update`` (1 on the steps Z, U were updated).

  Quirks of the reference code (off by default): ``quirk_off_by_one`` updates whenever
  ``(counter + 1) % freq == 0`` (after ``freq - 1`` alpha steps); ``quirk_raw_alpha`` uses
  ``Z <- Z(act(alpha + U))``, ``U <- U + alpha - Z`` with the raw alpha; ``quirk_init_z_alpha``
  starts Z as a copy of the raw alpha (default: the derived cell of A_0)."""
  rho: float = 0.1
  freq: int = 10
  dual_decay: float = 1.0
  project: CellProjection = CellProjection()
  quirk_off_by_one: bool = False
  quirk_raw_alpha: bool = False
  quirk_init_z_alpha: bool = False
  prefix: str = "arch_regularizer"
  name: str = "admm"

  def __post_init__(self):
    if not self.rho >= 0:
      _fail(f"{self.prefix}.rho", self.rho, "use rho >= 0.")
    _int_at_least(f"{self.prefix}.admm_freq", self.freq, 1)

  def init(self, arch: Any, ctx: Context) -> AdmmState:
    if self.quirk_init_z_alpha:
      z = {k: jnp.array(arch[k]) for k in self.project.cell_keys}
    else:
      z = self.project(ctx.activate(arch))
    return AdmmState(z, jax.tree.map(jnp.zeros_like, z), jnp.zeros((), jnp.int32))

  def penalty(self, arch: Any, state: AdmmState, ctx: Context) -> jax.Array:
    return admm_penalty(ctx.activate(arch), state.z, state.u, ctx.mask, self.rho)

  def advance(self, state: AdmmState, arch: Any, due: jax.Array, ctx: Context):
    """Counts alpha steps; every ``freq`` of them (or, with the off-by-one quirk, whenever
    ``(counter + 1) % freq == 0``, checked every step as the reference) updates Z, U."""
    counter = state.counter + jnp.asarray(due).astype(jnp.int32)
    if self.quirk_off_by_one:
      fire = (counter + 1) % self.freq == 0
    else:
      fire = counter >= self.freq
    x_act = ctx.activate(arch)
    if self.quirk_raw_alpha:
      point = ctx.activate(jax.tree.map(jnp.add, arch, state.u))
      x = arch
    else:
      point = jax.tree.map(jnp.add, x_act, state.u)
      x = x_act
    z, u = admm_update(point, x, state.u, ctx.mask, self.project, self.dual_decay)
    pick = lambda new, old: jax.tree.map(lambda n, o: jnp.where(fire, n, o), new, old)
    new = AdmmState(pick(z, state.z), pick(u, state.u),
                    jnp.where(fire, 0, counter).astype(jnp.int32))
    return new, {"reg/admm_update": fire.astype(jnp.float32)}


Regularizer = Entropy | Prox | Admm


# ============================================================================ pruning
def prune_update(arch: dict[str, jax.Array], mask: dict[str, jax.Array]) -> tuple[dict, dict]:
  """Permanent pruning after a weight step (reference ``mask_alphas``): ``M <- M * [alpha > 0]``,
  ``alpha <- alpha * M`` (so pruned alpha are exactly 0 and stay masked forever)."""
  new_mask = jax.tree.map(lambda a, m: m * (a > 0).astype(m.dtype), arch, mask)
  new_arch = jax.tree.map(lambda a, m: jnp.where(m > 0, a, jnp.zeros_like(a)), arch, new_mask)
  return new_arch, new_mask


def init_mask(arch: Any) -> Any:
  """The pruning mask at step 0: ``[alpha > 0]``."""
  return jax.tree.map(lambda a: (a > 0).astype(a.dtype), arch)


def prune_top_k(alpha: jax.Array, mask: jax.Array, num_keep: int) -> tuple[jax.Array, jax.Array]:
  """Per row, the ``num_keep`` largest alpha among the kept ops stay (their values), every other
  alpha becomes 0; the new mask marks the kept ones (DrNAS ``utils.py`` ``prune``)."""
  scores = jnp.where(mask > 0, alpha, alpha - 1e6)
  _, idx = jax.lax.top_k(scores, num_keep)
  new_mask = jnp.sum(jax.nn.one_hot(idx, alpha.shape[-1], dtype=alpha.dtype), axis=-2)
  return jnp.where(new_mask > 0, alpha, jnp.zeros_like(alpha)), new_mask.astype(mask.dtype)


@dataclasses.dataclass(frozen=True)
class SignPrune:
  """DARTS-PRIME's permanent pruning (Maile et al.; reference ``mask_alphas``, clamp
  parametrization): the mask starts as ``[alpha > 0]`` and after every weight step
  ``M <- M [alpha > 0]``, ``alpha <- alpha M``. Metric ``mask/pruned_fraction``."""
  name: str = "sign"

  def init(self, arch: Any) -> Any:
    return init_mask(arch)

  def update(self, arch: Any, mask: Any, steps_done: jax.Array) -> tuple[Any, Any]:
    del steps_done
    return prune_update(arch, mask)

  def metrics(self, mask: Any) -> dict[str, jax.Array]:
    leaves = jax.tree.leaves(mask)
    return {"mask/pruned_fraction": 1.0 - (sum(jnp.sum(m) for m in leaves)
                                           / sum(m.size for m in leaves))}


@dataclasses.dataclass(frozen=True)
class TopKPrune:
  """DrNAS' progressive pruning (Chen et al., ICLR 2021; ``DARTS-space/train_search.py``, between
  its stages): every op starts kept; after step ``at_step`` (steps done) each edge keeps its
  ``num_keep`` ops of largest alpha (``prune_top_k``; the others' alpha become 0). Metric
  ``mask/kept_ops`` (mean kept ops per edge)."""
  at_step: int
  num_keep: int
  name: str = "top_k"

  def __post_init__(self):
    _int_at_least("drnas.stage_epochs (times steps per epoch)", self.at_step, 1)
    _int_at_least("drnas.num_keep", self.num_keep, 1)

  def init(self, arch: Any) -> Any:
    return jax.tree.map(jnp.ones_like, arch)

  def update(self, arch: Any, mask: Any, steps_done: jax.Array) -> tuple[Any, Any]:
    fire = jnp.asarray(steps_done) == self.at_step
    pruned = jax.tree.map(lambda a, m: prune_top_k(a, m, self.num_keep), arch, mask)
    is_pair = lambda x: isinstance(x, tuple)
    pick = lambda i, old: jax.tree.map(lambda p, o: jnp.where(fire, p[i], o), pruned, old,
                                       is_leaf=is_pair)
    return pick(0, arch), pick(1, mask)

  def metrics(self, mask: Any) -> dict[str, jax.Array]:
    leaves = jax.tree.leaves(mask)
    return {"mask/kept_ops": sum(jnp.sum(m) for m in leaves)
            / sum(m.size // m.shape[-1] for m in leaves)}


Pruning = SignPrune | TopKPrune


@dataclasses.dataclass(frozen=True)
class SupernetStage:
  """From step ``start`` (steps done) on, the supernet is the one ``config.space`` builds with the
  fields ``space`` replaced (e.g. ``(('partial_channels', 4),)``), and the state is mapped onto it
  by Net2Wider (``jaxnas.spaces.net2wider.widen``: grown channel axes copy random channels; alpha,
  its optimizer state and the method state are kept). DrNAS' progressive learning between its
  stages (``model.wider(k)``, D:DARTS-space/train_search.py)."""
  start: int
  space: tuple[tuple[str, Any], ...]

  def __post_init__(self):
    if isinstance(self.start, bool) or not isinstance(self.start, int) or self.start < 1:
      raise ValueError(f"a later supernet stage must start at step 1 or after (the config's own "
                       f"supernet runs from step 0), got start={self.start!r}.")

  def describe(self) -> str:
    return ", ".join(f"space.{k}={v}" for k, v in self.space)
