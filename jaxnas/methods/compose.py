"""The one reader of the config blocks that choose a method's parts (``jaxnas.parts``): the
alpha-step schedule, the alpha regularizers and the pruning mask.

Config fields (``configs/default.py``):

* schedule: ``config.arch_schedule.name`` = ``'every_k'`` (k = ``config.arch_every``, phase
  ``arch_schedule.phase``: -1 = 0 with ``step_order='arch_first'``, k - 1 with
  ``'weights_first'``; ``arch_schedule.restart_every_epoch`` restarts the count every epoch;
  ``arch_schedule.start_epoch``: none before that epoch) or
  ``'dynamic_fisher'`` (``arch_schedule.k``, ``fisher_ewma``, ``init_threshold``,
  ``threshold_multiplier``);
* regularizers, summed in this order: GAEA's entropy (``config.arch_optimizer.entropy_reg`` > 0),
  then ``config.arch_regularizer.names`` (comma-separated ``prox``, ``admm``; options ``rho``,
  ``prox_epochs``, ``admm_freq``, ``admm_dual_decay``);
* forward transforms: the sampler ``config.arch_sampler.name`` = ``'none'``, ``'gumbel_hard'``
  (GDAS: ``tau_max``, ``tau_min``, ``warmup_epochs``, ``tau_epochs``; a parametrization with
  probability rows: ``'softmax'`` or ``'simplex'``), ``'gumbel_soft'`` (SNAS) or one a method
  registers (``register_sampler``: DrNAS' ``'dirichlet'``), then the transforms methods register
  (``register_transform``: DARTS-' ``config.auxiliary_skip``, SDARTS' ``config.arch_perturbation``);
* regularizers by name (``register_regularizer``: ``prox``, ``admm`` here; the methods' own);
* pruning: ``config.prune_arch`` (DARTS-PRIME's permanent mask; needs ``parametrization='clamp'``);
* weight phase: ``config.joint_step`` (SNAS' single-level joint step, ``jaxnas.methods.snas``);
* supernet stages (``register_stages``, ``read_stages``): DrNAS' widening of the partial channels
  (``config.drnas.stage2_partial_channels``).

A method whose config block predates these fields maps it in its own reader, registered with
``register_reader``: ``config.method='darts_prime'`` reads ``config.darts_prime.*``
(``jaxnas.methods.darts_prime.read_parts``); ``config.method='rarts'`` adds its weight phase from
``config.rarts.*`` to the generic parts (``jaxnas.methods.rarts.read_parts``).
"""
from __future__ import annotations

from typing import Any, Callable

import ml_collections

from jaxnas import parts
from jaxnas import spaces


def cell_projection(config: ml_collections.ConfigDict, space: spaces.SearchSpace,
                    include_none: bool = False) -> parts.CellProjection:
  """Z(A) of the configured space: its own ``discretize`` on its ``cell_keys()``."""
  del config
  return parts.CellProjection(space=space, include_none=include_none)


def check_prune(config: ml_collections.ConfigDict, prune: bool, field: str) -> None:
  """Pruning masks alpha <= 0 forever: only the clamp activation reads alpha <= 0 as 'off'."""
  if prune and config.parametrization != "clamp":
    raise ValueError(f"config.{field}=True masks every alpha <= 0 forever, which means 'op off' "
                     f"only for parametrization='clamp' (not {config.parametrization!r}); set "
                     f"config.parametrization='clamp' or {field}=False.")


def check_clamp_ops(config: ml_collections.ConfigDict, space: spaces.SearchSpace) -> None:
  """The clamp activation does not normalise an edge's weights, so 'none' (a zero output) is an
  inert op whose alpha gets no loss gradient: Maile et al. remove it."""
  if config.parametrization == "clamp" and "none" in space.ops:
    raise ValueError(
        f"config.space.ops={config.space.ops!r} is not valid for parametrization='clamp': the "
        "clamp activation needs an op set without 'none', e.g. --config.space.ops="
        + ",".join(op for op in space.ops if op != "none") + ".")


def read_generic(config: ml_collections.ConfigDict, space: spaces.SearchSpace,
                 steps_per_epoch: int, step_order: str | None = None) -> dict[str, Any]:
  """The parts from ``config.arch_schedule``, ``config.arch_regularizer``, ``config.prune_arch``
  and ``config.arch_optimizer.entropy_reg``; ``step_order``: the order a weight phase fixes
  (RARTS'), which the schedule's automatic phase follows (None: ``config.step_order``); also
  ``'weight_phase'`` where a registered reader sets one (SNAS' ``config.joint_step``).
  """
  sched = config.arch_schedule
  if sched.name == "every_k":
    k = config.arch_every
    phase = sched.phase
    if phase == -1:
      phase = parts.EveryK.auto_phase(k, step_order or config.step_order)
    schedule = parts.EveryK(k=k, phase=phase, field="arch_every",
                            steps_per_epoch=steps_per_epoch if sched.restart_every_epoch else 0,
                            start=int(sched.get("start_epoch", 0)) * steps_per_epoch)
  elif sched.name == "dynamic_fisher":
    schedule = parts.DynamicFisher(k=sched.k, ewma=float(sched.fisher_ewma),
                                   init_threshold=float(sched.init_threshold),
                                   multiplier=float(sched.threshold_multiplier))
  else:
    raise ValueError(f"config.arch_schedule.name={sched.name!r} is not valid; choose one of: "
                     f"{', '.join(parts.SCHEDULES)}.")
  regularizers: list[Any] = []
  if config.arch_optimizer.entropy_reg:
    regularizers.append(parts.Entropy(float(config.arch_optimizer.entropy_reg)))
  block = config.arch_regularizer
  names = [n.strip() for n in block.names.split(",") if n.strip()]
  for name in names:
    if name not in _REGULARIZERS or names.count(name) > 1:
      raise ValueError(f"config.arch_regularizer.names={block.names!r} is not valid: use a "
                       f"comma-separated list of distinct names among "
                       f"{', '.join(_REGULARIZERS)} ('' = none; GAEA's entropy term is "
                       "config.arch_optimizer.entropy_reg).")
    regularizers.append(_REGULARIZERS[name](config, space, steps_per_epoch))
  check_prune(config, bool(config.prune_arch), "prune_arch")
  check_clamp_ops(config, space)
  found = {"schedule": schedule, "regularizers": tuple(regularizers),
           "pruning": parts.SignPrune() if config.prune_arch else None,
           "transforms": read_transforms(config, space, steps_per_epoch)}
  return {**found, **read_weight_phase(config, schedule, step_order)}


def read_weight_phase(config: ml_collections.ConfigDict, schedule: Any,
                      method_order: str | None = None) -> dict[str, Any]:
  """``{'weight_phase': phase}`` if a registered reader builds one from the config, else ``{}``."""
  for reader in _WEIGHT_PHASES:
    phase = reader(config, schedule, method_order)
    if phase is not None:
      return {"weight_phase": phase}
  return {}


WeightPhaseReader = Callable[[ml_collections.ConfigDict, Any, "str | None"], Any]
_WEIGHT_PHASES: list[WeightPhaseReader] = []


def register_weight_phase(reader: WeightPhaseReader) -> None:
  """Adds a weight phase read from the config: ``reader(config, schedule, method_order)`` returns
  it, or None when the config leaves it off (``method_order``: the order of a method's own weight
  phase, e.g. RARTS', which it must refuse to replace); SNAS' ``config.joint_step``."""
  _WEIGHT_PHASES.append(reader)


def read_prox(config: ml_collections.ConfigDict, space: spaces.SearchSpace,
              steps_per_epoch: int) -> parts.Prox:
  block = config.arch_regularizer
  return parts.Prox(rho=float(block.rho),
                    horizon=int(block.prox_epochs or config.epochs) * steps_per_epoch,
                    project=cell_projection(config, space))


def read_admm(config: ml_collections.ConfigDict, space: spaces.SearchSpace,
              steps_per_epoch: int) -> parts.Admm:
  del steps_per_epoch
  block = config.arch_regularizer
  return parts.Admm(rho=float(block.rho), freq=block.admm_freq,
                    dual_decay=float(block.admm_dual_decay),
                    project=cell_projection(config, space))


PartReader = Callable[[ml_collections.ConfigDict, spaces.SearchSpace, int], Any]
_REGULARIZERS: dict[str, PartReader] = {"prox": read_prox, "admm": read_admm}


def register_regularizer(name: str, reader: PartReader) -> None:
  """Makes ``name`` valid in ``config.arch_regularizer.names``: ``reader(config, space, steps per
  epoch)`` builds the regularizer (its options: fields of ``config.arch_regularizer``)."""
  _REGULARIZERS[name] = reader


def read_sampler(config: ml_collections.ConfigDict, steps_per_epoch: int) -> Any:
  """The sampler of ``config.arch_sampler`` (``parts.Gumbel``), or None for ``'none'``."""
  block = config.arch_sampler
  if block.name == "none":
    if config.space.get("sampled_forward", False):
      raise ValueError("config.space.sampled_forward=True computes only the sampled op of each "
                       "edge, which needs an architecture sampler: set "
                       "config.arch_sampler.name='gumbel_hard' or sampled_forward=False.")
    return None
  reader = _SAMPLERS.get(block.name)
  if reader is None:
    raise ValueError(f"config.arch_sampler.name={block.name!r} is not valid; choose one of: "
                     f"{', '.join(('none', *_SAMPLERS))}.")
  if block.name != "gumbel_hard":
    check_every_op_computed(config, f"config.arch_sampler.name={block.name!r}",
                            "mixes every op with weights that are not one-hot")
  return reader(config, max(int(steps_per_epoch), 1))


def check_every_op_computed(config: ml_collections.ConfigDict, part: str, needs: str) -> None:
  """Refuses GDAS' sampled-op edge (``config.space.sampled_forward``) under a forward transform
  whose mixing is not one-hot: ``part`` (the config field) ``needs`` every op's output."""
  if config.space.get("sampled_forward", False):
    raise ValueError(f"{part} {needs}, which the sampled-op forward "
                     "(config.space.sampled_forward=True: only the argmax op of each edge) does "
                     "not compute; set config.space.sampled_forward=False.")


def read_gumbel(config: ml_collections.ConfigDict, steps_per_epoch: int) -> parts.Gumbel:
  """GDAS' (``gumbel_hard``) or SNAS' (``gumbel_soft``) sampler from ``config.arch_sampler``."""
  block = config.arch_sampler
  if config.parametrization not in ("softmax", "simplex"):
    raise ValueError(f"config.arch_sampler.name={block.name!r} samples from each edge's op "
                     f"distribution, which parametrization={config.parametrization!r} does not "
                     "define; use 'softmax' (GDAS, SNAS) or 'simplex' (GAEA-GDAS).")
  return parts.Gumbel(tau_max=float(block.tau_max), tau_min=float(block.tau_min),
                      epochs=int(block.get("tau_epochs", 0) or config.epochs),
                      steps_per_epoch=steps_per_epoch, warmup_epochs=int(block.warmup_epochs),
                      hard=block.name == "gumbel_hard")


_SAMPLERS: dict[str, Callable[[ml_collections.ConfigDict, int], Any]] = {
    "gumbel_hard": read_gumbel, "gumbel_soft": read_gumbel}


def register_sampler(name: str, reader: Callable[[ml_collections.ConfigDict, int], Any]) -> None:
  """Makes ``config.arch_sampler.name=name`` build its sampler with ``reader(config, steps per
  epoch)``."""
  _SAMPLERS[name] = reader


_TRANSFORMS: list[Callable[[ml_collections.ConfigDict, spaces.SearchSpace, int], Any]] = []


def register_transform(reader: Callable[[ml_collections.ConfigDict, spaces.SearchSpace, int],
                                        Any]) -> None:
  """Adds a forward transform read from the config (``reader(config, space, steps per epoch)``
  returns it, or None when its block leaves it off); transforms apply in registration order,
  after the sampler."""
  _TRANSFORMS.append(reader)


def read_transforms(config: ml_collections.ConfigDict, space: spaces.SearchSpace,
                    steps_per_epoch: int) -> tuple[Any, ...]:
  """The forward transforms: the sampler first (it replaces the mixing), then the registered
  ones that the config turns on."""
  found = [read_sampler(config, steps_per_epoch)]
  found += [reader(config, space, steps_per_epoch) for reader in _TRANSFORMS]
  return tuple(t for t in found if t is not None)


Reader = Callable[[ml_collections.ConfigDict, spaces.SearchSpace, int], dict[str, Any]]
_READERS: dict[str, Reader] = {}


def register_reader(method: str, reader: Reader) -> None:
  """Makes ``config.method=method`` read its parts with ``reader(config, space, steps/epoch)``."""
  _READERS[method] = reader


def read_parts(config: ml_collections.ConfigDict, space: spaces.SearchSpace,
               steps_per_epoch: int) -> dict[str, Any]:
  """``{'schedule', 'regularizers', 'pruning', 'transforms'}`` (and ``'weight_phase'`` where a reader
  sets one: RARTS) for ``steps.SearchComponents``."""
  return _READERS.get(config.method, read_generic)(config, space, steps_per_epoch)


StagesReader = Callable[[ml_collections.ConfigDict, int], tuple[parts.SupernetStage, ...]]
_STAGES: dict[str, StagesReader] = {}


def register_stages(method: str, reader: StagesReader) -> None:
  """Makes ``config.method=method`` run in supernet stages: ``reader(config, steps per epoch)``
  returns the ``parts.SupernetStage`` s after the first (empty: one stage)."""
  _STAGES[method] = reader


def read_stages(config: ml_collections.ConfigDict, steps_per_epoch: int
                ) -> tuple[parts.SupernetStage, ...]:
  """The supernet stages after the first one, in order of their start (none for most methods)."""
  reader = _STAGES.get(config.method)
  stages = tuple(reader(config, steps_per_epoch)) if reader else ()
  starts = [stage.start for stage in stages]
  if starts != sorted(set(starts)):
    raise ValueError(f"supernet stages must start at increasing steps, got {starts}.")
  return stages
