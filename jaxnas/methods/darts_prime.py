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

Schedules: ``fixed``: an alpha step when ``(s + 1) % k == 0``, s the step within its epoch (the
count restarts every epoch, as the reference's ``step % schedfreq == schedfreq - 1`` over
``enumerate(train_queue)``; ``darts_prime.restart_every_epoch=False``: s = the global step, 3555
instead of 3550 alpha steps in 50 epochs of 711 steps). ``dynamic``: an alpha step iff
``0 < FI_ewma < threshold``, where after every weight step ``FI_ewma <- 0.2 FI + 0.8 FI_ewma``
(initialised to the first FI) and after every decision ``threshold <- threshold * 1.05^-k`` if an
alpha step was taken, else ``threshold * 1.05``. The decision is a ``lax.cond`` inside the jitted
step; FI_ewma, the threshold, the alpha-step count, the mask and Z, U live in ``method_state`` and
are checkpointed.

DARTS-PRIME is a preset: ``read_parts`` maps ``config.darts_prime.*`` onto the parts of
``jaxnas.parts`` (schedule ``EveryK`` / ``DynamicFisher``, regularizer ``Prox`` / ``Admm``, pruning
with the clamp parametrization) and the one step skeleton ``jaxnas.steps.search_step`` runs them.
Metrics: ``schedule/*`` (arch_step, arch_steps, fisher_trace, fisher_ewma, threshold), ``reg/prox``
or ``reg/admm`` (+ ``reg/admm_update``), ``mask/pruned_fraction``.

The dynamic split (``dynamic_split``): train portion 1 - 1/(1 + k) of the training set, alpha
batches an epoch-wise shuffled stream without replacement
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

from typing import Any

import ml_collections

from jaxnas import parts
from jaxnas import spaces
from jaxnas.methods import base
from jaxnas.methods import compose
# The math lives with the parts; these names stay importable from here.
from jaxnas.parts import (admm_penalty, admm_update, darts_cell_one_hot, dynamic_due,  # noqa: F401
                          fisher_ewma_update, nb201_cell_one_hot, prox_penalty, prune_update,
                          safe_norm, threshold_update)
from jaxnas.steps import MaskedParametrization  # noqa: F401

REGULARIZERS = ("none", "prox", "admm")
SCHEDULES = ("fixed", "dynamic")


def dynamic_train_portion(schedule_freq: int) -> float:
  """The dynamic split's weight share of the training set: ``1 - 1/(1 + k)`` (10/11 for k = 10)."""
  return 1.0 - 1.0 / (1.0 + schedule_freq)


def _fail(field: str, value: Any, fix: str) -> None:
  raise ValueError(f"config.{field}={value!r} is not valid for method='darts_prime': {fix}")


def read_parts(config: ml_collections.ConfigDict, space: spaces.SearchSpace,
               steps_per_epoch: int) -> dict[str, Any]:
  """The DARTS-PRIME preset: ``config.darts_prime.*`` mapped onto the parts.

  * ``schedule='fixed'``: ``EveryK(k=schedule_freq, phase=k - 1)``, its count restarting every
    epoch unless ``restart_every_epoch=False``; ``'dynamic'``: ``DynamicFisher(k=schedule_freq,
    fisher_ewma, init_threshold, threshold_multiplier)``;
  * ``regularizer='prox'``: ``Prox(rho, prox_epochs (0 = epochs) * steps/epoch)``; ``'admm'``:
    ``Admm(rho, admm_freq, admm_dual_decay, quirks)``; both toward Z = ``CellProjection`` (with
    ``quirk_z_includes_none``);
  * pruning with ``parametrization='clamp'`` (Maile et al. v1's activation).
  """
  block = config.darts_prime
  k = block.schedule_freq
  if block.schedule == "fixed":
    schedule = parts.EveryK(k=k, phase=k - 1 if isinstance(k, int) and k >= 1 else 0,
                            field="darts_prime.schedule_freq",
                            steps_per_epoch=steps_per_epoch if block.restart_every_epoch else 0)
  elif block.schedule == "dynamic":
    schedule = parts.DynamicFisher(k=k, ewma=float(block.fisher_ewma),
                                   init_threshold=float(block.init_threshold),
                                   multiplier=float(block.threshold_multiplier),
                                   prefix="darts_prime")
  else:
    raise AssertionError(block.schedule)  # checked by build
  regularizers: tuple[Any, ...] = ()
  if block.regularizer in ("prox", "admm"):
    project = compose.cell_projection(config, space, bool(block.quirk_z_includes_none))
  if block.regularizer == "prox":
    regularizers = (parts.Prox(rho=float(block.rho), horizon=int(block.prox_epochs or config.epochs)
                               * steps_per_epoch, project=project, prefix="darts_prime"),)
  elif block.regularizer == "admm":
    regularizers = (parts.Admm(rho=float(block.rho), freq=block.admm_freq,
                               dual_decay=float(block.admm_dual_decay), project=project,
                               quirk_off_by_one=bool(block.quirk_admm_off_by_one),
                               quirk_raw_alpha=bool(block.quirk_admm_raw_alpha),
                               quirk_init_z_alpha=bool(block.quirk_admm_init_z_alpha),
                               prefix="darts_prime"),)
  compose.check_clamp_ops(config, space)
  return {"schedule": schedule, "regularizers": regularizers,
          "pruning": parts.SignPrune() if config.parametrization == "clamp" else None,
          "transforms": compose.read_transforms(config, space, steps_per_epoch),
          **compose.read_weight_phase(config, schedule)}


def build(config: ml_collections.ConfigDict) -> base.SearchMethod:
  """The DARTS-PRIME method (the skeleton with the parts of ``read_parts``) after the checks the
  parts cannot make alone: names, the one schedule, the dynamic split; ValueErrors name the field
  and the fix. Validates the parts by building them."""
  block = config.darts_prime
  if block.regularizer not in REGULARIZERS:
    _fail("darts_prime.regularizer", block.regularizer, f"choose one of {', '.join(REGULARIZERS)}.")
  if block.schedule not in SCHEDULES:
    _fail("darts_prime.schedule", block.schedule, f"choose one of {', '.join(SCHEDULES)}.")
  for field in ("admm_freq", "schedule_freq"):
    value = block[field]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      _fail(f"darts_prime.{field}", value, "use an integer >= 1.")
  if block.prox_epochs < 0:
    _fail("darts_prime.prox_epochs", block.prox_epochs, "use >= 0 (0 = config.epochs).")
  if config.arch_every != 1:
    _fail("arch_every", config.arch_every,
          "leave it at 1; DARTS-PRIME's schedule is config.darts_prime.schedule.")
  if config.arch_schedule.name != "every_k" or config.arch_regularizer.names or config.prune_arch:
    _fail("arch_schedule / arch_regularizer / prune_arch", "set",
          "method='darts_prime' reads its parts from config.darts_prime; leave the generic "
          "fields at their defaults, or compose with method='darts' and the generic fields.")
  # Builds the parts once: each checks its own options (one-line errors naming the field; the
  # cell projection asks the space for its discretize).
  read_parts(config, spaces.from_config(config), 1)
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
  return base.SearchMethod(name="darts_prime")


base.register("darts_prime", build)
compose.register_reader("darts_prime", read_parts)
