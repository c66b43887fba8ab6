"""Hypergradient estimators bound to the search state: the config -> estimator glue.

The estimators of ``jaxnas.hypergrad`` know nothing about NAS; here each one gets the per-step
quantities the reference codes use, read from the search state inside the jitted step:

* ``finite_difference`` (DARTS 2nd order): ξ = the current weight learning rate, and the weight
  optimizer's momentum buffer and weight decay in the virtual step
  ``w' = w − ξ(μ m + ∇_w L_train + λ_wd w)`` (no clipping), as quark0/darts' ``_compute_unrolled_model``.
* ``unrolled`` (exact): K inner steps without clipping, continuing the weight optimizer's live state
  (momentum buffer, schedule count), differentiated by autodiff. ``hypergrad_options.virtual_step``
  picks the inner step. ``'reference'``: the reference codes' virtual step
  ``w' = w − ξ(μ m + ∇_w L_train + λ_wd w)``, plain momentum even for a Nesterov weight optimizer
  (quark0/darts ``cnn/architect.py:20-29``; AutoDL ``exps/NAS-Bench-201-algos/DARTS-V2.py:61-83``),
  i.e. ``finite_difference``'s formula with the mixed term exact; K > 1 repeats it, updating m as
  PyTorch SGD does. ``'optimizer'``: the configured weight optimizer's own step, for
  ``nesterov=True`` ``w' = w − ξ[(1+μ)(∇_w L_train + λ_wd w) + μ² m]``. The two differ only when
  ``weights_optimizer.nesterov`` is True.
* ``implicit_neumann`` (iDARTS): γ = the current weight learning rate when ``neumann_step=0``.
* ``first_order``, ``mixed_level`` (MiLeNAS), ``implicit_cg``: nothing per step.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import optax

from jaxnas import hypergrad
from jaxnas import optim

ESTIMATORS = ("first_order", "mixed_level", "finite_difference", "unrolled", "implicit_neumann",
              "implicit_cg")
MILENAS_WEIGHTINGS = ("paper", "code")
VIRTUAL_STEPS = ("reference", "optimizer")


@dataclasses.dataclass(frozen=True)
class ArchGradient:
  """An estimator plus how to bind its per-step hyperparameters (static; closed over by the step)."""
  name: str
  estimator: Any
  bind: Callable[[Any, jax.Array, Any], Callable]  # (estimator, lr, weights_opt_state) -> est fn

  def __call__(self, problem, weights, arch, inner_batch, outer_batch, *, lr, weights_opt_state):
    """The hypergradient of ``problem`` at ``(weights, arch)`` for this step."""
    return self.bind(self.estimator, lr, weights_opt_state)(problem, weights, arch, inner_batch,
                                                            outer_batch)


def _unbound(estimator, lr, opt_state):
  del lr, opt_state
  return estimator


def build_arch_gradient(config, *, lr_schedule: optax.Schedule, weights_clipped: bool
                        ) -> ArchGradient:
  """The configured estimator (``config.hypergrad`` and ``config.hypergrad_options``).

  Args:
    config: the search config.
    lr_schedule: the weight learning-rate schedule (the unrolled steps use it too).
    weights_clipped: whether the weight optimizer starts with a gradient clip (its state layout).
  """
  name, opts = config.hypergrad, config.hypergrad_options
  wopt = config.weights_optimizer
  if name == "first_order":
    return ArchGradient(name, hypergrad.FirstOrder(), _unbound)
  if name == "mixed_level":
    lam = opts.mixed_level_lambda
    if opts.milenas_weighting == "paper":
      est = hypergrad.MixedLevel(lam=lam, inner_weight=1.0)
    else:
      est = hypergrad.MixedLevel(lam=1.0, inner_weight=lam)
    return ArchGradient(name, est, _unbound)
  if name == "finite_difference":
    est = hypergrad.FiniteDifference(xi=0.0, eps=opts.fd_eps, weight_decay=wopt.weight_decay,
                                     momentum=wopt.momentum, mixed_term=opts.mixed_term)

    def bind_fd(est, lr, opt_state):
      buffer = optim.momentum_buffer(optim.unclipped_state(opt_state, weights_clipped))
      return dataclasses.replace(est, xi=lr, momentum_buffer=buffer)
    return ArchGradient(name, est, bind_fd)
  if name == "unrolled":
    if opts.virtual_step not in VIRTUAL_STEPS:
      raise ValueError(f"config.hypergrad_options.virtual_step={opts.virtual_step!r} is not valid; "
                       f"choose one of: {', '.join(VIRTUAL_STEPS)}.")
    # Both continue the live sgd_body state: its layout does not depend on nesterov.
    nesterov = wopt.nesterov and opts.virtual_step == "optimizer"
    body = optim.sgd_body(lr_schedule, momentum=wopt.momentum,
                          weight_decay=wopt.weight_decay, nesterov=nesterov)
    est = hypergrad.Unrolled(steps=opts.unrolled_steps, inner_optimizer=body,
                             checkpoint=opts.unrolled_checkpoint,
                             second_order=opts.unrolled_second_order)

    def bind_unrolled(est, lr, opt_state):
      del lr
      state = optim.unclipped_state(opt_state, weights_clipped)
      return lambda *args: est(*args, inner_opt_state=state)
    return ArchGradient(name, est, bind_unrolled)
  if name == "implicit_neumann":
    est = hypergrad.ImplicitNeumann(terms=opts.neumann_terms, step=opts.neumann_step or 0.0,
                                    mixed_term=opts.mixed_term, eps=opts.fd_eps)
    if opts.neumann_step:
      return ArchGradient(name, est, _unbound)
    return ArchGradient(name, est, lambda est, lr, s: dataclasses.replace(est, step=lr))
  if name == "implicit_cg":
    est = hypergrad.ImplicitCG(maxiter=opts.cg_maxiter, damping=opts.cg_damping, tol=opts.cg_tol,
                               mixed_term=opts.mixed_term, eps=opts.fd_eps)
    return ArchGradient(name, est, _unbound)
  raise ValueError(f"config.hypergrad={name!r} is not valid; choose one of: "
                   f"{', '.join(ESTIMATORS)}.")
