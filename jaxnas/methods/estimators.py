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

# The one registry of estimator names: ``jaxnas.hypergrad.HYPERGRADS`` (``config.hypergrad``).
ESTIMATORS = tuple(hypergrad.HYPERGRADS)
MILENAS_WEIGHTINGS = ("paper", "code")
VIRTUAL_STEPS = ("reference", "optimizer")


@dataclasses.dataclass(frozen=True)
class ArchGradient:
  """An estimator and the per-step quantities it reads from the search state (static; closed over
  by the step).

  Attributes:
    name: the estimator's name in ``hypergrad.HYPERGRADS``.
    estimator: the ``jaxnas.hypergrad`` estimator (its per-step fields filled in by ``bind``).
    inner_optimizer: the weight step the estimator differentiates through (``unrolled``: the sgd
      body it runs, continuing the live weight optimizer's state), or None.
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
    if self.inner_optimizer is not None:
      fields["inner_optimizer"] = self.inner_optimizer
    if fields:
      est = dataclasses.replace(est, **fields)
    if self.inner_optimizer is not None:
      state = live()
      return lambda *args: est(*args, inner_opt_state=state)
    return est

  def __call__(self, problem, weights, arch, inner_batch, outer_batch, *, lr, weights_opt_state):
    """The hypergradient of ``problem`` at ``(weights, arch)`` for this step."""
    return self.bind(lr, weights_opt_state)(problem, weights, arch, inner_batch, outer_batch)


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
    return ArchGradient(name, hypergrad.FirstOrder())
  if name == "mixed_level":
    lam = opts.mixed_level_lambda
    if opts.milenas_weighting == "paper":
      est = hypergrad.MixedLevel(lam=lam, inner_weight=1.0)
    else:
      est = hypergrad.MixedLevel(lam=1.0, inner_weight=lam)
    return ArchGradient(name, est)
  if name == "finite_difference":
    est = hypergrad.FiniteDifference(xi=0.0, eps=opts.fd_eps, weight_decay=wopt.weight_decay,
                                     momentum=wopt.momentum, mixed_term=opts.mixed_term)
    return ArchGradient(name, est, weights_clipped=weights_clipped, lr_field="xi",
                        reads_momentum=True)
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
    return ArchGradient(name, est, inner_optimizer=body, weights_clipped=weights_clipped)
  if name == "implicit_neumann":
    est = hypergrad.ImplicitNeumann(terms=opts.neumann_terms, step=opts.neumann_step or 0.0,
                                    mixed_term=opts.mixed_term, eps=opts.fd_eps)
    return ArchGradient(name, est, lr_field=None if opts.neumann_step else "step")
  if name == "implicit_cg":
    est = hypergrad.ImplicitCG(maxiter=opts.cg_maxiter, damping=opts.cg_damping, tol=opts.cg_tol,
                               mixed_term=opts.mixed_term, eps=opts.fd_eps)
    return ArchGradient(name, est)
  raise ValueError(f"config.hypergrad={name!r} is not valid; choose one of: "
                   f"{', '.join(ESTIMATORS)}.")
