"""Hypergradient estimators bound to the search state: the config -> estimator glue.

The estimators of ``jaxnas.hypergrad`` know nothing about NAS. Each registered class builds
itself from ``config.hypergrad_options`` (``from_options``, which checks the options it reads) and
declares the per-step quantities it reads (``hypergrad.PerStep``); here they are filled in from
the search state inside the jitted step, for every estimator alike:

* ``lr_field``: the current weight learning rate η_t (``finite_difference``: ξ;
  ``implicit_neumann`` with ``neumann_step=0``: γ);
* ``reads_momentum``: the weight optimizer's momentum buffer (``finite_difference``'s virtual step
  ``w' = w − ξ(μ m + ∇_w L_train + λ_wd w)``, as quark0/darts' ``_compute_unrolled_model``);
* ``inner_optimizer``: the live weight optimizer state without its clip (``unrolled``: K inner
  steps continuing the momentum buffer and schedule count, differentiated by autodiff).

The weight optimizer's settings reach the estimator as a ``hypergrad.BuildContext``: μ, λ_wd,
Nesterov, and ``inner_step(nesterov)`` = ``optim.sgd_body`` on the weight schedule (the weight step
without its clip, the layout of the live state's unclipped part).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import optax

from jaxnas import hypergrad
from jaxnas import optim

OPTIONS_PREFIX = "config.hypergrad_options."


@dataclasses.dataclass(frozen=True)
class ArchGradient:
  """An estimator and the per-step quantities it reads from the search state (static; closed over
  by the step).

  Attributes:
    name: the estimator's name in ``hypergrad.HYPERGRADS``.
    estimator: the ``jaxnas.hypergrad`` estimator (its per-step fields filled in by ``bind``).
    inner_optimizer: the weight step the estimator runs (``unrolled``: the sgd body, continuing
      the live weight optimizer's state, passed as ``inner_opt_state``), or None.
    weights_clipped: whether the live weight optimizer's state starts with a clip (its layout).
    lr_field: the estimator field set to the current weight learning rate each step (``'xi'``:
      finite differences; ``'step'``: iDARTS' Neumann step), or None.
    reads_momentum: finite differences: the weight optimizer's momentum buffer enters the virtual
      step.
  """
  name: str
  estimator: Any
  inner_optimizer: optax.GradientTransformation | None = None
  weights_clipped: bool = False
  lr_field: str | None = None
  reads_momentum: bool = False

  def bind(self, lr: jax.Array, weights_opt_state: Any) -> Callable:
    """The estimator of this step: ``(problem, weights, arch, inner, outer) -> g_arch``."""
    est = self.estimator
    live = lambda: optim.unclipped_state(weights_opt_state, self.weights_clipped)
    fields: dict[str, Any] = {}
    if self.lr_field:
      fields[self.lr_field] = lr
    if self.reads_momentum:
      fields["momentum_buffer"] = optim.momentum_buffer(live())
    if fields:
      est = dataclasses.replace(est, **fields)
    if self.inner_optimizer is not None:
      state = live()
      return lambda *args: est(*args, inner_opt_state=state)
    return est

  def __call__(self, problem, weights, arch, inner_batch, outer_batch, *, lr, weights_opt_state):
    """The hypergradient of ``problem`` at ``(weights, arch)`` for this step."""
    return self.bind(lr, weights_opt_state)(problem, weights, arch, inner_batch, outer_batch)


def build_context(config, lr_schedule: optax.Schedule) -> hypergrad.BuildContext:
  """What an estimator may read of the weight optimizer (``config.weights_optimizer``): μ, λ_wd,
  Nesterov, and its step without the clip on ``lr_schedule`` (``optim.sgd_body``)."""
  wopt = config.weights_optimizer
  inner_step = functools.partial(_sgd_body, lr_schedule, wopt.momentum, wopt.weight_decay)
  return hypergrad.BuildContext(inner_step=inner_step, momentum=wopt.momentum,
                                weight_decay=wopt.weight_decay, nesterov=bool(wopt.nesterov),
                                prefix=OPTIONS_PREFIX)


def _sgd_body(lr_schedule, momentum, weight_decay, nesterov) -> optax.GradientTransformation:
  return optim.sgd_body(lr_schedule, momentum=momentum, weight_decay=weight_decay,
                        nesterov=nesterov)


def build_arch_gradient(config, *, lr_schedule: optax.Schedule, weights_clipped: bool
                        ) -> ArchGradient:
  """The configured estimator: ``hypergrad.HYPERGRADS[config.hypergrad].from_options(
  config.hypergrad_options, build_context(config, lr_schedule))``, with what it reads per step.

  Args:
    config: the search config.
    lr_schedule: the weight learning-rate schedule (the unrolled steps use it too).
    weights_clipped: whether the weight optimizer starts with a gradient clip (its state layout).
  Raises:
    ValueError: an unknown ``config.hypergrad`` or an invalid option (named by the estimator).
  """
  name = config.hypergrad
  if name not in hypergrad.HYPERGRADS:
    raise ValueError(f"config.hypergrad={name!r} is not valid; choose one of: "
                     f"{', '.join(hypergrad.HYPERGRADS)}.")
  built = hypergrad.from_options(name, config.hypergrad_options,
                                 build_context(config, lr_schedule))
  return ArchGradient(name, built.estimator, inner_optimizer=built.inner_optimizer,
                      weights_clipped=weights_clipped, lr_field=built.lr_field,
                      reads_momentum=built.reads_momentum)
