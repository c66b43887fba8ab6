r"""Hypergradient estimators for the bilevel problem
:math:`\min_\alpha L_{out}(w^*(\alpha), \alpha)` subject to
:math:`w^*(\alpha) = \arg\min_w L_{in}(w, \alpha)`.

Pure math, no NAS knowledge: ``weights`` and ``arch`` are arbitrary pytrees and the losses are plain
functions ``loss(weights, arch, batch) -> scalar``. Every estimator is a small frozen dataclass with
one call signature,

  ``estimator(problem, weights, arch, inner_batch, outer_batch) -> arch_gradient``,

and is registered as a pytree: its float hyperparameters (``xi``, ``eps``, ``lam``, ``step``,
``damping``, ``weight_decay``) are *data* leaves and everything else (step counts, modes, the inner
optax optimizer) is static metadata. So an estimator can be closed over by a jitted step (constants)
or passed into it as an argument, and ``dataclasses.replace(est, xi=current_lr)`` inside ``jit``
gives a schedule-dependent :math:`\xi` without recompiling.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Protocol

import jax
import jax.numpy as jnp
import optax

from jaxnas.hypergrad import _tree

PyTree = Any
Loss = Callable[[PyTree, PyTree, Any], jax.Array]
MIXED_TERMS = ("fd", "exact")
SECOND_ORDER_MODES = ("hvp", "reverse")
MILENAS_WEIGHTINGS = ("paper", "code")  # MixedLevel.from_options: option milenas_weighting
VIRTUAL_STEPS = ("reference", "optimizer")  # Unrolled.from_options: option virtual_step


@dataclasses.dataclass(frozen=True)
class BilevelProblem:
  """The (inner, outer) pair of a bilevel problem.

  Attributes:
    inner_loss: ``f(weights, arch, batch) -> scalar``, the loss the weights minimise (training
      loss).
    outer_loss: ``f(weights, arch, batch) -> scalar``, the loss the architecture minimises
      (validation loss).
  """
  inner_loss: Loss
  outer_loss: Loss


class HypergradEstimator(Protocol):
  """Protocol of every estimator: returns an approximation of :math:`dL_{out}/d\\alpha`."""

  def __call__(self, problem: BilevelProblem, weights: PyTree, arch: PyTree, inner_batch: Any,
               outer_batch: Any) -> PyTree:
    ...


@dataclasses.dataclass(frozen=True)
class BuildContext:
  r"""What a caller tells an estimator about the inner problem's optimizer when it builds the
  estimator from options (``from_options``); nothing else of the caller is visible.

  The inner optimizer is PyTorch SGD without clipping,
  :math:`m \leftarrow \mu m + \nabla_w L_{in} + \lambda_{wd} w,\ w \leftarrow w - \eta_t m`.

  Attributes:
    inner_step: ``inner_step(nesterov) -> optax.GradientTransformation``, the inner optimizer's
      step (learning-rate schedule :math:`\eta_t` included, no clipping) whose state has the
      layout of the caller's live state, so an estimator can continue that state.
    momentum: μ of the inner optimizer.
    weight_decay: λ_wd of the inner optimizer.
    nesterov: whether the inner optimizer uses Nesterov momentum.
    prefix: how error messages name an option field, e.g. ``'config.hypergrad_options.'``.
  """
  inner_step: Callable[[bool], optax.GradientTransformation]
  momentum: float = 0.0
  weight_decay: float = 0.0
  nesterov: bool = False
  prefix: str = ""


@dataclasses.dataclass(frozen=True)
class PerStep:
  r"""An estimator built from options, and the per-step quantities its caller fills in each step.

  With :math:`\eta_t` the inner learning rate of the step and :math:`s_t` the inner optimizer's
  live state, the estimator of step t is ``replace(estimator, lr_field=η_t,
  momentum_buffer=m_t)`` (each only if declared), called with ``inner_opt_state=s_t`` when
  ``inner_optimizer`` is set.

  Attributes:
    estimator: the estimator (a frozen dataclass with the protocol's call signature).
    lr_field: the estimator field set to :math:`\eta_t` each step (e.g. ``'xi'``), or None.
    reads_momentum: the estimator's ``momentum_buffer`` field is set to the inner optimizer's
      momentum buffer :math:`m_t` (a pytree like ``weights``) each step.
    inner_optimizer: the optimizer the estimator steps with (from ``BuildContext.inner_step``);
      its ``__call__`` then takes ``inner_opt_state=s_t``. None: no live state is passed.
  """
  estimator: Any
  lr_field: str | None = None
  reads_momentum: bool = False
  inner_optimizer: optax.GradientTransformation | None = None


def option_choice(options: Any, field: str, valid: tuple[str, ...], context: BuildContext) -> str:
  """``options[field]`` if it is one of ``valid``; else a one-line ValueError naming the field."""
  value = options[field]
  if value not in valid:
    raise ValueError(f"{context.prefix}{field}={value!r} is not valid; choose one of: "
                     f"{', '.join(valid)}.")
  return value


def option_at_least(options: Any, field: str, low: float, context: BuildContext, *,
                    strict: bool = False, integer: bool = False) -> Any:
  """``options[field]`` if ``>= low`` (``> low`` when ``strict``; an int when ``integer``); else a
  one-line ValueError naming the field, the valid range and the value."""
  value = options[field]
  kind = isinstance(value, int) and not isinstance(value, bool) if integer else (
      isinstance(value, (int, float)) and not isinstance(value, bool))
  if not kind or value < low or (strict and value == low):
    what = "an integer" if integer else "a number"
    raise ValueError(f"{context.prefix}{field}={value!r} is not valid; use {what} "
                     f"{'>' if strict else '>='} {low}.")
  return value


def _pytree_dataclass(data_fields: tuple[str, ...]):
  """Frozen dataclass registered as a pytree whose ``data_fields`` are leaves, the rest static."""
  def wrap(cls):
    cls = dataclasses.dataclass(frozen=True)(cls)
    meta = [f.name for f in dataclasses.fields(cls) if f.name not in data_fields]
    return jax.tree_util.register_dataclass(cls, data_fields=list(data_fields), meta_fields=meta)
  return wrap


# --------------------------------------------------------------------------- shared derivatives


def _outer_grads(problem: BilevelProblem, weights, arch, batch):
  """``(∂_α L_out, ∇_w L_out)`` at ``(weights, arch)`` from one backward pass."""
  return jax.grad(problem.outer_loss, argnums=(1, 0))(weights, arch, batch)


def _grad_arch(loss: Loss, weights, arch, batch):
  return jax.grad(loss, argnums=1)(weights, arch, batch)


def _grad_weights(loss: Loss, weights, arch, batch):
  return jax.grad(loss, argnums=0)(weights, arch, batch)


def _hvp(loss: Loss, weights, arch, batch, direction):
  r"""Exact Hessian-vector product :math:`\nabla^2_{ww} L(w, \alpha)\, u` (jvp of the grad)."""
  return jax.jvp(lambda w: _grad_weights(loss, w, arch, batch), (weights,), (direction,))[1]


def _grad_weights_hvp_vjp(loss: Loss, weights, arch, batch):
  r""":math:`\nabla_w L(w, \alpha; B)`, differentiable in ``(weights, arch)`` by forward-over-reverse
  Hessian-vector products (``_hvp_vjp_gradient``); what ``loss`` closes over (e.g. BatchNorm
  state) is hoisted into data by ``jax.closure_convert``."""
  converted, consts = jax.closure_convert(loss, weights, arch, batch)
  data_loss = lambda w, a, data: converted(w, a, data[0], *data[1])  # noqa: E731
  return _hvp_vjp_gradient(data_loss)(weights, arch, (batch, consts))


def _hvp_vjp_gradient(loss: Loss):
  r"""``g(w, α, batch) = ∇_w L(w, α; batch)`` whose VJP is a forward-over-reverse Hessian-vector
  product.

  The VJP of a gradient is a Hessian-vector product, and the Hessian of a scalar loss is symmetric:

  .. math::
    \big(\tfrac{\partial \nabla_w L}{\partial w}\big)^{\!\top} u = \nabla^2_{ww} L\, u,\qquad
    \big(\tfrac{\partial \nabla_w L}{\partial \alpha}\big)^{\!\top} u =
    \nabla^2_{\alpha w} L\, u,

  which is one ``jvp`` of :math:`(\nabla_w L, \nabla_\alpha L)` along :math:`(u, 0)`. Autodiff
  would instead transpose the backward pass (reverse-over-reverse), and JAX transposes a
  convolution's weight-gradient convolution into a convolution whose *kernel* is an activation
  (a 32x32 "kernel" slid over a zero-padded 3x3 input): 7.7x the multiply-adds of the whole
  one-step hypergradient on a small NB201 supernet (``experiments/README.md``). The ``jvp`` keeps every convolution in its
  forward / input-gradient / weight-gradient form. The backward pass recomputes the gradient (no
  residuals beyond ``(w, α, batch)``).

  The batch is data for *this* differentiation: differentiating ``g`` w.r.t. the batch in the same
  ``grad`` raises ValueError. (Differentiating the resulting hypergradient again, w.r.t. the batch
  or the weights, is fine: the backward pass is ordinary JAX code.)
  """
  def grad_weights(w, a, batch):
    return jax.grad(loss, argnums=0)(w, a, batch)

  def full_gradient(w, a, batch):
    return jax.grad(loss, argnums=(0, 1))(w, a, batch)

  fn = jax.custom_vjp(grad_weights)

  def fwd(w, a, batch):
    if any(p.perturbed for p in jax.tree.leaves(batch)):
      raise ValueError("Unrolled(second_order='hvp') treats the inner batch and the values the "
                       "inner loss closes over as data; to differentiate w.r.t. them use "
                       "second_order='reverse'.")
    # Static flag (in the residuals' tree structure): the first unrolled step starts from
    # weights that do not depend on α, and then only ∇²_{αw} L u is needed (one cheaper jvp).
    need_w = _Static(any(p.perturbed for p in jax.tree.leaves(w)))
    w, a, batch = jax.tree.map(lambda p: p.value, (w, a, batch))
    return grad_weights(w, a, batch), (w, a, batch, need_w)

  def bwd(residuals, u):
    w, a, batch, need_w = residuals
    u = jax.tree.map(_instantiate, u, w)
    zero_a = jax.tree.map(jnp.zeros_like, a)
    if need_w.value:
      _, (h_w, h_a) = jax.jvp(lambda w_, a_: full_gradient(w_, a_, batch), (w, a), (u, zero_a))
    else:
      h_w = None
      _, h_a = jax.jvp(lambda w_: jax.grad(loss, argnums=1)(w_, a, batch), (w,), (u,))
    return h_w, h_a, None

  fn.defvjp(fwd, bwd, symbolic_zeros=True)
  return fn


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True)
class _Static:
  """A Python value carried as pytree structure (no leaves), e.g. in custom-VJP residuals."""
  value: Any


def _instantiate(cotangent, primal):
  """A dense cotangent for a possibly symbolic-zero one."""
  if isinstance(cotangent, jax.custom_derivatives.SymbolicZero):
    return jnp.zeros_like(primal)
  return cotangent


def _mixed_term(loss: Loss, weights, arch, batch, direction, mode: str, eps):
  r"""The mixed second derivative :math:`\nabla^2_{\alpha w} L(w, \alpha)\, u` (a pytree like arch).

  ``mode='exact'``: a ``jvp`` of :math:`\nabla_\alpha L` along ``u`` in weight space.
  ``mode='fd'`` (DARTS/iDARTS): :math:`[\nabla_\alpha L(w + \hat\epsilon u) -
  \nabla_\alpha L(w - \hat\epsilon u)] / (2\hat\epsilon)`, :math:`\hat\epsilon = \epsilon / \|u\|`,
  perturbing *all* weights and reusing the same batch for both evaluations.
  """
  if mode == "exact":
    return jax.jvp(lambda w: _grad_arch(loss, w, arch, batch), (weights,), (direction,))[1]
  norm = _tree.global_norm(direction)
  # Numerical safeguard: a zero direction gives a zero mixed term instead of 0/0.
  safe = jnp.where(norm > 0, norm, jnp.ones_like(norm))
  eps_hat = jnp.asarray(eps, norm.dtype) / safe
  g_plus = _grad_arch(loss, _tree.axpy(eps_hat, direction, weights), arch, batch)
  g_minus = _grad_arch(loss, _tree.axpy(-eps_hat, direction, weights), arch, batch)
  return _tree.scale(1.0 / (2.0 * eps_hat), _tree.sub(g_plus, g_minus))


def _loop(body, carry, xs, length: int, *, python: bool):
  """``lax.scan(body, carry, xs, length)``'s final carry, or the same as a Python loop.

  A Python loop puts ``length`` copies of ``body`` in the graph; ``lax.scan`` one. XLA:CPU runs
  convolutions (and their gradients) inside loop bodies on a slow path: the exact one-step DARTS
  hypergradient of a small NB201 supernet took 3.8x as long under a length-1 scan (``unroll=True``
  did not help) as in straight-line code (``experiments/README.md``).
  """
  if not python:
    return jax.lax.scan(body, carry, xs, length=length)[0]
  for k in range(length):
    carry, _ = body(carry, None if xs is None else jax.tree.map(lambda x: x[k], xs))
  return carry


def _check_mode(mode: str) -> None:
  if mode not in MIXED_TERMS:
    raise ValueError(f"mixed_term must be one of {MIXED_TERMS}, got {mode!r}.")


# --------------------------------------------------------------------------- first-order family


@_pytree_dataclass(data_fields=())
class FirstOrder:
  r"""First-order DARTS: ignore the dependence of :math:`w` on :math:`\alpha`.

  .. math:: g = \nabla_\alpha L_{out}(w, \alpha)

  Reference: Liu, Simonyan, Yang, "DARTS: Differentiable Architecture Search", ICLR 2019 (ξ = 0).
  ``inner_batch`` is unused.
  """

  @classmethod
  def from_options(cls, options: Any, context: BuildContext) -> PerStep:
    """No options, nothing per step."""
    del options, context
    return PerStep(cls())

  def __call__(self, problem, weights, arch, inner_batch, outer_batch):
    del inner_batch
    return _grad_arch(problem.outer_loss, weights, arch, outer_batch)


@_pytree_dataclass(data_fields=("lam", "inner_weight"))
class MixedLevel:
  r"""MiLeNAS first-order mixed-level gradient (paper Eq. 6).

  .. math::
    g = \nabla_\alpha L_{in}(w, \alpha; B_{in}) + \lambda\,\nabla_\alpha L_{out}(w, \alpha; B_{out})

  Reference: He, Ye, Shen, Zhang, "MiLeNAS: Efficient Neural Architecture Search via Mixed-Level
  Reformulation", CVPR 2020. The official code (``step_milenas``) computes
  :math:`\nabla_\alpha L_{out} + \lambda \nabla_\alpha L_{in}` instead, i.e. it weights the *train*
  term; both coincide for the default λ = 1 (for λ ≠ 1 the code equals λ · ``MixedLevel(lam=1/λ)``).

  Attributes:
    lam: weight λ ≥ 0 of the outer (validation) term.
    inner_weight: weight of the inner (training) term; 1 in the paper. The official code's
      weighting is ``MixedLevel(lam=1, inner_weight=λ)``.
  """
  lam: float = 1.0
  inner_weight: float = 1.0

  @classmethod
  def from_options(cls, options: Any, context: BuildContext) -> PerStep:
    """λ = ``mixed_level_lambda``; ``milenas_weighting='paper'``: ``MixedLevel(lam=λ)``,
    ``'code'``: ``MixedLevel(lam=1, inner_weight=λ)`` (the official code). Nothing per step."""
    lam = options.mixed_level_lambda
    if option_choice(options, "milenas_weighting", MILENAS_WEIGHTINGS, context) == "paper":
      return PerStep(cls(lam=lam, inner_weight=1.0))
    return PerStep(cls(lam=1.0, inner_weight=lam))

  def __call__(self, problem, weights, arch, inner_batch, outer_batch):
    g_in = _grad_arch(problem.inner_loss, weights, arch, inner_batch)
    g_out = _grad_arch(problem.outer_loss, weights, arch, outer_batch)
    return _tree.axpy(self.lam, g_out, _tree.scale(self.inner_weight, g_in))


# --------------------------------------------------------------------------- unrolled / DARTS-2nd


@_pytree_dataclass(data_fields=())
class Unrolled:
  r"""Exact hypergradient through ``steps`` real inner optimizer steps (reverse-mode unroll).

  .. math::
    w_0 = w,\quad (u_k, s_{k+1}) = \mathrm{opt.update}(\nabla_w L_{in}(w_k, \alpha; B_k), s_k, w_k),
    \quad w_{k+1} = w_k + u_k,\qquad g = \frac{d}{d\alpha} L_{out}(w_K(\alpha), \alpha)

  differentiated by autodiff through a ``lax.scan``; the optimizer state starts fresh from
  ``opt.init(w)`` unless a live state is passed as ``inner_opt_state`` (e.g. the momentum buffer of
  the weight optimizer, as in DARTS' virtual step).
  Reference: Maclaurin et al., ICML 2015; Franceschi et al., "Forward and Reverse Gradient-Based
  Hyperparameter Optimization", ICML 2017; one SGD step is DARTS' unrolled objective (ICLR 2019).

  Attributes:
    steps: K ≥ 1, number of inner steps.
    inner_optimizer: optax transformation of the inner steps (``None`` means ``optax.sgd(0.01)``).
    checkpoint: rematerialise each step (``jax.checkpoint``) to save memory in the backward pass.
    second_order: how the backward pass differentiates each step's weight gradient:
      ``'hvp'`` (default) — a forward-over-reverse Hessian-vector product, using the symmetry
      of the Hessian (``_hvp_vjp_gradient``); ``'reverse'`` — plain autodiff
      (reverse-over-reverse; JAX transposes convolution weight gradients into convolutions with
      activation-sized kernels: 7.7x the multiply-adds on an NB201 supernet). Same value
      up to rounding, also under further differentiation (w.r.t. the batch or the weights).
    max_python_steps: K ≤ this runs as a Python loop (K copies of the step in the graph), larger
      K under ``lax.scan`` (one copy; XLA:CPU runs convolutions in loop bodies on a slow path).
    stacked_batches: ``inner_batch`` has a leading axis of size K (one batch per step); otherwise
      the same batch is reused at every step.
  """
  steps: int = 1
  inner_optimizer: optax.GradientTransformation | None = None
  checkpoint: bool = False
  stacked_batches: bool = False
  second_order: str = "hvp"
  max_python_steps: int = 8

  @classmethod
  def from_options(cls, options: Any, context: BuildContext) -> PerStep:
    r"""K = ``unrolled_steps`` steps of ``context.inner_step``, continuing the live inner state.

    ``virtual_step='reference'``: the reference codes' virtual step
    :math:`w' = w - \xi(\mu m + \nabla_w L_{in} + \lambda_{wd} w)`, plain momentum even for a
    Nesterov inner optimizer (quark0/darts ``cnn/architect.py:20-29``; AutoDL
    ``exps/NAS-Bench-201-algos/DARTS-V2.py:61-83``), i.e. ``FiniteDifference`` with the mixed term
    exact; K > 1 repeats it, updating m as PyTorch SGD does. ``'optimizer'``: the inner
    optimizer's own step, for Nesterov
    :math:`w' = w - \xi[(1+\mu)(\nabla_w L_{in} + \lambda_{wd} w) + \mu^2 m]`; the two differ
    only for a Nesterov inner optimizer. Options ``unrolled_checkpoint``,
    ``unrolled_second_order``. Per step: the live inner state (``inner_opt_state``).
    """
    virtual = option_choice(options, "virtual_step", VIRTUAL_STEPS, context)
    mode = option_choice(options, "unrolled_second_order", SECOND_ORDER_MODES, context)
    steps = option_at_least(options, "unrolled_steps", 1, context, integer=True)
    # Both continue the live state: its layout does not depend on nesterov.
    body = context.inner_step(context.nesterov and virtual == "optimizer")
    est = cls(steps=steps, inner_optimizer=body, checkpoint=options.unrolled_checkpoint,
              second_order=mode)
    return PerStep(est, inner_optimizer=body)

  def __call__(self, problem, weights, arch, inner_batch, outer_batch, inner_opt_state=None):
    """As the protocol; ``inner_opt_state`` optionally continues a live optimizer state (e.g. the
    weight optimizer's momentum buffer, as DARTS' virtual step does) instead of ``opt.init(w)``."""
    if self.steps < 1:
      raise ValueError(f"Unrolled needs steps >= 1, got {self.steps}.")
    if self.second_order not in SECOND_ORDER_MODES:
      raise ValueError(f"Unrolled second_order must be one of {SECOND_ORDER_MODES}, got "
                       f"{self.second_order!r}.")
    opt = self.inner_optimizer if self.inner_optimizer is not None else optax.sgd(0.01)
    if self.stacked_batches:
      sizes = {jnp.shape(x)[0] if jnp.ndim(x) else None for x in jax.tree.leaves(inner_batch)}
      if sizes != {self.steps}:
        raise ValueError(f"stacked_batches=True needs a leading axis of size steps={self.steps} "
                         f"on every inner_batch leaf, got sizes {sizes}.")

    def step(carry, batch, arch):
      w, state = carry
      b = batch if self.stacked_batches else inner_batch
      if self.second_order == "hvp":
        g = _grad_weights_hvp_vjp(problem.inner_loss, w, arch, b)
      else:
        g = _grad_weights(problem.inner_loss, w, arch, b)
      updates, state = opt.update(g, state, w)
      return (optax.apply_updates(w, updates), state), None

    body = jax.checkpoint(step) if self.checkpoint else step

    state0 = opt.init(weights) if inner_opt_state is None else inner_opt_state

    def unrolled_outer(arch):
      xs = inner_batch if self.stacked_batches else None
      w_k, _ = _loop(lambda c, b: body(c, b, arch), (weights, state0), xs, self.steps,
                     python=self.steps <= self.max_python_steps)
      return problem.outer_loss(w_k, arch, outer_batch)

    return jax.grad(unrolled_outer)(arch)


@_pytree_dataclass(data_fields=("xi", "eps", "weight_decay", "momentum", "momentum_buffer"))
class FiniteDifference:
  r"""DARTS' second-order approximation (one virtual SGD step, mixed term by central differences).

  .. math::
    w' = w - \xi\,(\mu m + \nabla_w L_{in}(w, \alpha) + \lambda_{wd} w),\qquad
    v = \nabla_{w'} L_{out}(w', \alpha)

    g = \nabla_\alpha L_{out}(w', \alpha) - \xi\,
        \frac{\nabla_\alpha L_{in}(w^+, \alpha) - \nabla_\alpha L_{in}(w^-, \alpha)}{2\hat\epsilon},
    \quad w^\pm = w \pm \hat\epsilon v,\quad \hat\epsilon = \epsilon / \|v\|_2

  The difference quotient is evaluated at the *original* ``w`` with the same inner batch as the
  virtual step. ``mixed_term='exact'`` replaces it by :math:`\nabla^2_{\alpha w} L_{in}(w,\alpha) v`
  (a ``jvp``), which makes ``g`` exactly the gradient of :math:`L_{out}(w'(\alpha), \alpha)`,
  i.e. ``Unrolled(steps=1, inner_optimizer=optax.sgd(xi))`` when ``weight_decay=0`` and
  ``momentum_buffer=None``.
  Reference: Liu, Simonyan, Yang, "DARTS", ICLR 2019, Eq. 7-8; code ``cnn/architect.py``, whose
  virtual step is one exact PyTorch SGD step: pass the weight optimizer's momentum buffer m (a
  pytree like ``weights``, e.g. ``dataclasses.replace(est, momentum_buffer=trace)`` inside the
  jitted step) and μ = 0.9, λ_wd = 3e-4. Neither term depends on α; they only shift w'.

  Attributes:
    xi: virtual step size ξ (DARTS: the current weight learning rate).
    eps: relative perturbation, :math:`\hat\epsilon = \epsilon/\|v\|`.
    weight_decay: L2 coefficient λ_wd added to the virtual-step gradient (DARTS: 3e-4).
    momentum: μ, the SGD momentum of the weight optimizer (used only with ``momentum_buffer``).
    momentum_buffer: m, a pytree like ``weights`` or ``None`` (no momentum term).
    mixed_term: ``'fd'`` (reference) or ``'exact'``.
  """
  xi: float = 0.025
  eps: float = 0.01
  weight_decay: float = 0.0
  momentum: float = 0.9
  momentum_buffer: Any = None
  mixed_term: str = "fd"

  @classmethod
  def from_options(cls, options: Any, context: BuildContext) -> PerStep:
    """ε = ``fd_eps``, ``mixed_term``; μ, λ_wd of the inner optimizer. Per step: ξ = η_t and
    m = the live momentum buffer (DARTS' ``_compute_unrolled_model``)."""
    est = cls(xi=0.0, eps=option_at_least(options, "fd_eps", 0, context, strict=True),
              weight_decay=context.weight_decay, momentum=context.momentum,
              mixed_term=option_choice(options, "mixed_term", MIXED_TERMS, context))
    return PerStep(est, lr_field="xi", reads_momentum=True)

  def __call__(self, problem, weights, arch, inner_batch, outer_batch):
    _check_mode(self.mixed_term)
    g_w = _grad_weights(problem.inner_loss, weights, arch, inner_batch)
    g_w = _tree.axpy(self.weight_decay, weights, g_w)
    if self.momentum_buffer is not None:
      g_w = _tree.axpy(self.momentum, self.momentum_buffer, g_w)
    w_virtual = _tree.axpy(-self.xi, g_w, weights)
    d_arch, v = _outer_grads(problem, w_virtual, arch, outer_batch)
    mixed = _mixed_term(problem.inner_loss, weights, arch, inner_batch, v, self.mixed_term,
                        self.eps)
    return _tree.axpy(-self.xi, mixed, d_arch)


# --------------------------------------------------------------------------- implicit (IFT)


def _implicit(problem, weights, arch, inner_batch, outer_batch, inverse_hvp, mode, eps):
  r""":math:`\partial_\alpha L_{out} - \nabla^2_{\alpha w} L_{in}\, H^{-1} \nabla_w L_{out}`."""
  d_arch, v = _outer_grads(problem, weights, arch, outer_batch)
  hvp = lambda u: _hvp(problem.inner_loss, weights, arch, inner_batch, u)  # noqa: E731
  s = inverse_hvp(hvp, v)
  mixed = _mixed_term(problem.inner_loss, weights, arch, inner_batch, s, mode, eps)
  return _tree.sub(d_arch, mixed)


@_pytree_dataclass(data_fields=("step", "eps"))
class ImplicitNeumann:
  r"""iDARTS: implicit function theorem with a truncated Neumann series for the inverse Hessian.

  .. math::
    g = \nabla_\alpha L_{out}(w, \alpha) - \nabla^2_{\alpha w} L_{in}(w, \alpha)\, H^{-1}
        \nabla_w L_{out}(w, \alpha),\qquad
    H^{-1} \approx \gamma \sum_{k=0}^{K} (I - \gamma H)^k,\quad H = \nabla^2_{ww} L_{in}(w, \alpha)

  ``w`` is assumed to be (approximately) :math:`w^*(\alpha)`. Hessian-vector products are exact
  (``jvp`` of the weight gradient); the series converges for SPD H when γ < 2/λ_max(H).
  Reference: Zhang et al., "iDARTS: Differentiable Architecture Search with Stochastic Implicit
  Gradients", ICML 2021, Alg. 1 (code: K = 2, γ = current weight LR, mixed term by finite
  differences with :math:`\hat\epsilon = 0.01/\|s\|`, here on the Neumann sum s itself).

  Attributes:
    terms: K, the series has K + 1 terms (k = 0..K).
    step: γ.
    mixed_term: ``'exact'`` (default) or ``'fd'`` (central difference along s).
    eps: relative perturbation of the ``'fd'`` mixed term.
    max_python_terms: K ≤ this runs the series as a Python loop, larger K under ``lax.scan``
      (as ``Unrolled.max_python_steps``).
  """
  terms: int = 2
  step: float = 0.01
  mixed_term: str = "exact"
  eps: float = 0.01
  max_python_terms: int = 8

  @classmethod
  def from_options(cls, options: Any, context: BuildContext) -> PerStep:
    """K = ``neumann_terms``, γ = ``neumann_step`` (0: γ = η_t each step, the reference),
    ``mixed_term``, ε = ``fd_eps``."""
    step = option_at_least(options, "neumann_step", 0, context) or 0.0
    est = cls(terms=option_at_least(options, "neumann_terms", 0, context, integer=True),
              step=step, mixed_term=option_choice(options, "mixed_term", MIXED_TERMS, context),
              eps=option_at_least(options, "fd_eps", 0, context, strict=True))
    return PerStep(est, lr_field=None if step else "step")

  def _inverse_hvp(self, hvp, v):
    def body(carry, _):
      p, total = carry
      p = _tree.axpy(-self.step, hvp(p), p)  # p <- (I - γH) p
      return (p, _tree.add(total, p)), None
    _, total = _loop(body, (v, v), None, self.terms, python=self.terms <= self.max_python_terms)
    return _tree.scale(self.step, total)

  def __call__(self, problem, weights, arch, inner_batch, outer_batch):
    _check_mode(self.mixed_term)
    if self.terms < 0:
      raise ValueError(f"ImplicitNeumann needs terms >= 0, got {self.terms}.")
    return _implicit(problem, weights, arch, inner_batch, outer_batch, self._inverse_hvp,
                     self.mixed_term, self.eps)


@_pytree_dataclass(data_fields=("damping", "eps"))
class ImplicitCG:
  r"""Implicit function theorem; :math:`(H + \delta I)^{-1} \nabla_w L_{out}` by CG.

  .. math::
    g = \nabla_\alpha L_{out}(w, \alpha) - \nabla^2_{\alpha w} L_{in}(w, \alpha)\,
        (H + \delta I)^{-1} \nabla_w L_{out}(w, \alpha),\quad H = \nabla^2_{ww} L_{in}(w, \alpha)

  ``w`` is assumed to be (approximately) :math:`w^*(\alpha)`; CG needs H + δI SPD.
  Reference: Pedregosa, "Hyperparameter optimization with approximate gradient", ICML 2016;
  Rajeswaran et al., "Meta-Learning with Implicit Gradients", NeurIPS 2019; Blondel et al.,
  "Efficient and Modular Implicit Differentiation", NeurIPS 2022.

  Attributes:
    maxiter: maximum number of CG iterations.
    damping: δ ≥ 0 (Tikhonov damping of the Hessian).
    tol: relative residual tolerance of ``jax.scipy.sparse.linalg.cg``.
    mixed_term: ``'exact'`` (default) or ``'fd'``.
    eps: relative perturbation of the ``'fd'`` mixed term.
  """
  maxiter: int = 100
  damping: float = 0.0
  tol: float = 1e-10
  mixed_term: str = "exact"
  eps: float = 0.01

  @classmethod
  def from_options(cls, options: Any, context: BuildContext) -> PerStep:
    """``cg_maxiter``, δ = ``cg_damping``, ``cg_tol``, ``mixed_term``, ε = ``fd_eps``. Nothing
    per step."""
    est = cls(maxiter=option_at_least(options, "cg_maxiter", 1, context, integer=True),
              damping=option_at_least(options, "cg_damping", 0, context), tol=options.cg_tol,
              mixed_term=option_choice(options, "mixed_term", MIXED_TERMS, context),
              eps=option_at_least(options, "fd_eps", 0, context, strict=True))
    return PerStep(est)

  def _inverse_hvp(self, hvp, v):
    matvec = lambda u: _tree.axpy(self.damping, u, hvp(u))  # noqa: E731
    s, _ = jax.scipy.sparse.linalg.cg(matvec, v, tol=self.tol, atol=0.0, maxiter=self.maxiter)
    return s

  def __call__(self, problem, weights, arch, inner_batch, outer_batch):
    _check_mode(self.mixed_term)
    return _implicit(problem, weights, arch, inner_batch, outer_batch, self._inverse_hvp,
                     self.mixed_term, self.eps)


# --------------------------------------------------------------------------- registry


# The one registry of estimator names (``config.hypergrad`` names a key). A registered class is a
# frozen dataclass with the protocol's ``__call__`` and a classmethod
# ``from_options(options, context: BuildContext) -> PerStep`` that reads its options, checks them
# (``option_choice``, ``option_at_least``: one-line ValueErrors naming the field) and declares what
# it reads per step. Adding an estimator is its class and one line here (or ``register``).
HYPERGRADS: dict[str, type] = {
    "first_order": FirstOrder,
    "mixed_level": MixedLevel,
    "unrolled": Unrolled,
    "finite_difference": FiniteDifference,
    "implicit_neumann": ImplicitNeumann,
    "implicit_cg": ImplicitCG,
}


def register(name: str, estimator_class: type, *, replace: bool = False) -> type:
  """Registers ``estimator_class`` as ``name`` in ``HYPERGRADS``; returns the class.

  Raises:
    ValueError: the class has no ``from_options`` classmethod, or ``name`` is taken (and not
      ``replace``).
  """
  if not callable(getattr(estimator_class, "from_options", None)):
    raise ValueError(f"Estimator class {estimator_class.__name__} has no from_options(options, "
                     "context) classmethod returning a hypergrad.PerStep; define one.")
  if name in HYPERGRADS and HYPERGRADS[name] is not estimator_class and not replace:
    raise ValueError(f"A hypergradient estimator is already registered as {name!r} "
                     f"({HYPERGRADS[name].__name__}); pick another name or pass replace=True.")
  HYPERGRADS[name] = estimator_class
  return estimator_class


def from_options(name: str, options: Any, context: BuildContext) -> PerStep:
  """The estimator registered as ``name`` built from ``options`` (its ``from_options``).

  Raises:
    ValueError: unknown ``name`` (the message lists the registered names) or an invalid option.
  """
  if name not in HYPERGRADS:
    raise ValueError(f"Unknown hypergradient {name!r}; valid names: {', '.join(HYPERGRADS)}.")
  return HYPERGRADS[name].from_options(options, context)


def get(name: str, **kwargs) -> HypergradEstimator:
  """Builds the estimator registered as ``name``.

  Args:
    name: a key of ``HYPERGRADS``.
    **kwargs: the estimator's fields (e.g. ``xi=0.025`` for ``'finite_difference'``).
  Returns:
    The estimator instance.
  """
  if name not in HYPERGRADS:
    raise ValueError(f"Unknown hypergradient {name!r}; valid names: {sorted(HYPERGRADS)}.")
  return HYPERGRADS[name](**kwargs)
