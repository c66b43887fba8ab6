r"""RARTS: relaxed architecture search with two cooperating networks (``config.method='rarts'``).

Xue, Qi, Xin, "RARTS: An Efficient First-Order Relaxed Architecture Search Method", IEEE Access 10
(2022), doi 10.1109/ACCESS.2022.3185095; arXiv 2008.03901 (v1 2020: "RARTS: a Relaxed Architecture
Search Method"). No public implementation exists; this is our own (``shared/spec/methods.md`` §7).

**The relaxed problem.** Instead of DARTS' bilevel problem (α on the validation loss of the weights
that minimise the training loss), RARTS solves one single-level problem over *two* weight pytrees
that share one architecture: ``w``, the network trained on the training split, and ``y``, the
network trained on the validation split, coupled by a quadratic penalty. We implement

.. math::
  L(w, y, \alpha) = c_{tr}\, L_{tr}(w, \alpha) + c_{val}\, L_{val}(y, \alpha)
                    + \tfrac{\beta}{2} \|y - w\|^2,

with ``(c_tr, c_val) = (λ, 1)`` for ``lam_on='train'`` (default; the form of methods.md §7,
``L_val(y) + λ L_tr(w) + β/2 ‖y − w‖²``) and ``(1, λ)`` for ``lam_on='val'`` (the form of issue #7,
``L_tr(w) + λ L_val(y) + β/2 ‖y − w‖²``). They coincide at the default λ = 1.

**One Gauss–Seidel pass per step** (first-order gradients only; B_tr, B_val the step's batches):

.. math::
  w^+ &= \mathrm{Opt}_w\big(w,\; a_{tr} \nabla_w L_{tr}(w, \alpha; B_{tr})
                              + \kappa\beta (w - y)\big) \\
  y^+ &= \mathrm{Opt}_y\big(y,\; a_{val} \nabla_y L_{val}(y, \alpha; B_{val})
                              + \beta (y - w^+)\big) \\
  \alpha^+ &= \mathrm{Opt}_\alpha\big(\alpha,\; c_{tr} \nabla_\alpha L_{tr}(w^+, \alpha; B_{tr})
                                   + c_{val} \nabla_\alpha L_{val}(y^+, \alpha; B_{val})\big)

* ``κ = 1`` with ``coupling_in_w_step=True`` (then the w step uses the full ∂L/∂w), else 0
  (default: the w step is DARTS' weight step on the training loss);
* ``(a_tr, a_val) = (c_tr, c_val)`` with ``network_steps='objective'`` (default: each network
  takes the partial gradient of L, so λ also scales its network's loss gradient), ``(1, 1)`` with
  ``'unit'`` (methods.md §7(b): each network descends its own loss, the coupling unchanged);
* ``alpha_gradient_at='updated'`` (default, Gauss–Seidel) takes the α gradient at ``w⁺, y⁺``: two
  more forward/backward passes. ``'current'`` takes it from the network steps' own backward passes,
  at ``w, y`` (four passes become two, the cost of DARTS first order); same fixed points.

``Opt_w`` and ``Opt_y`` are the same weight optimizer chain (clip → L2 → SGD momentum, cosine
schedule; y's learning rate is ``val_lr_scale`` × w's) with separate states; the coupling term is
part of the gradient that is clipped. ``Opt_α`` is the configured α optimizer (Adam + L2).

**Limits.** β → ∞ ties the networks (y = w): the α gradient becomes MiLeNAS' mixed-level gradient
``c_tr ∇_α L_tr(w) + c_val ∇_α L_val(w)`` (the paper's weighting for ``lam_on='val'``, the
reference code's for ``'train'``), and with λ = 0, ``lam_on='train'`` DARTS first order's (the
whole pass is then DARTS first order, w step first, with ``network_steps='unit'``; with
``'objective'`` λ = 0 also stops w's loss gradient). These limits hold for the α gradient; the
fixed point tends to MiLeNAS' only without the coupling in the w step (with it, w and y descend
L jointly and β → ∞ gives the single-level problem on both splits).
λ = 0 drops one network from the α gradient: the validation network with ``lam_on='val'`` (α is
then trained on the training data only, ERM), the training network with ``lam_on='train'``
(which still pulls y through the coupling).
β = 0 decouples the networks.

**In the search.** The two networks are a weight phase (``CoupledNetworks``, a part of
``steps.SearchComponents``), run by the one step skeleton ``steps.search_step``: its update is the
w and y blocks, its ``arch_gradient`` the data term ``c_tr ∇_α L_tr + c_val ∇_α L_val`` of the α
block, to which the skeleton's α step adds the regularizers' gradients before the α optimizer.
``state.weights``/``state.model_state`` are w's; ``state.method_state`` holds y
(``val_weights``), its optimizer state (``val_weights_opt_state``) and its own BatchNorm statistics
(``val_model_state``), all checkpointed. y starts as a copy of w (same initialisation, so the
coupling starts at zero), and its optimizer state fresh. Every training-mode forward updates the
running statistics of the network it runs (as PyTorch would): w's by the w step and by the α
step's training forward, y's by the y step and the α step's validation forward. ``step_order``
does not apply (the order is fixed above); ``hypergrad`` must stay ``'first_order'``. The other
parts compose: with a schedule (``arch_every`` k, the dynamic Fisher schedule, whose trace is
``‖g_w‖²`` of the w step) the w and y blocks run every step and the α block when due (the
validation stream advances once per α step, so with ``arch_every`` k y sees each batch k times);
regularizers (entropy, prox, ADMM) add their gradients to the α block's; pruning masks α as for
one network. The per-epoch evaluation uses w (``eval_network='train'``) or y (``'val'``).

Metrics: ``train/*`` are w's loss and accuracy on the training batch, ``val/*`` y's on the
validation batch (both from the network steps, at the start of the step, as in DARTS), and
``rarts/coupling`` = ‖y − w‖, ``rarts/objective`` = L(w, y, α) at the same point,
``rarts/val_net_grad_norm``, ``lr/val_net``.

**What follows the abstract, and what is our reading.** From the abstract: a single-level
relaxation that uses the whole dataset by data splitting and network splitting; two networks with
different but related weights, one per split, that cooperate in searching one shared architecture;
first-order (no mixed second derivatives) updates by Gauss–Seidel iterations; an analytically
solvable model. Our reading (recalled, UNCONFIRMED against the paper's text, methods.md §7): the
exact objective (which term λ multiplies; the quadratic penalty β/2 ‖y − w‖²), the order w → y → α
within a pass, whether the w step contains the coupling, whether λ scales the network steps, where
the α gradient is taken, y's learning rate, and the default values λ = 1, β = 1 — each a field of
``config.rarts``; and, fixed here, y = w at initialisation, y's optimizer chain being w's, and the
BatchNorm bookkeeping above.

**The analytically solvable model** (``SolvableModel``, below): both losses are ridge regressions
``ℓ(θ, α; X, Z, d) = ½‖Xθ + Zα − d‖² + ½μ‖θ‖²`` with different data, so every method's fixed point
solves a linear system: RARTS' (for any options) next to the bilevel optimum, DARTS first and
second order and MiLeNAS; and one Gauss–Seidel pass with plain gradient steps is an affine map
``z ↦ Tz + t`` whose spectral radius decides convergence. See the README section "RARTS".
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxnas import steps
from jaxnas.methods import base
from jaxnas.methods import compose
from jaxnas.state import SearchState

LAM_ON = ("train", "val")
NETWORK_STEPS = ("objective", "unit")
ALPHA_GRADIENT_AT = ("updated", "current")
EVAL_NETWORKS = ("train", "val")

PyTree = Any
# A loss with auxiliary output: f(weights, arch, batch) -> (scalar, aux).
AuxLoss = Callable[[PyTree, PyTree, Any], tuple[jax.Array, Any]]
Loss = Callable[[PyTree, PyTree, Any], jax.Array]


# --------------------------------------------------------------------------- the relaxation


@dataclasses.dataclass(frozen=True)
class RartsOptions:
  """The relaxed objective and the Gauss–Seidel pass (the fields of ``config.rarts``, see there).

  Attributes:
    lam: λ ≥ 0, the weight of one loss term.
    beta: β ≥ 0, the coupling penalty ``β/2 ‖y − w‖²``.
    lam_on: ``'train'`` (λ multiplies L_tr) or ``'val'`` (λ multiplies L_val).
    coupling_in_w_step: add ``β(w − y)`` to the w step's gradient.
    network_steps: ``'objective'`` (the networks' loss gradients carry their weight in L) or
      ``'unit'`` (weight 1).
    alpha_gradient_at: ``'updated'`` (at w⁺, y⁺) or ``'current'`` (at w, y).
  """
  lam: float = 1.0
  beta: float = 1.0
  lam_on: str = "train"
  coupling_in_w_step: bool = False
  network_steps: str = "objective"
  alpha_gradient_at: str = "updated"

  def __post_init__(self):
    for field, valid in (("lam_on", LAM_ON), ("network_steps", NETWORK_STEPS),
                         ("alpha_gradient_at", ALPHA_GRADIENT_AT)):
      if getattr(self, field) not in valid:
        raise ValueError(f"{field}={getattr(self, field)!r} is not valid; choose one of: "
                         f"{', '.join(valid)}.")
    for field in ("lam", "beta"):
      value = getattr(self, field)
      if not (np.isfinite(value) and value >= 0):
        raise ValueError(f"{field} must be a finite number >= 0, got {value}.")

  @property
  def arch_weights(self) -> tuple[float, float]:
    """``(c_tr, c_val)``: the weights of L_tr and L_val in the objective (and the α gradient)."""
    return (self.lam, 1.0) if self.lam_on == "train" else (1.0, self.lam)

  @property
  def network_weights(self) -> tuple[float, float]:
    """``(a_tr, a_val)``: the weights of the loss gradients in the w and y steps."""
    return self.arch_weights if self.network_steps == "objective" else (1.0, 1.0)

  @property
  def w_coupling(self) -> float:
    """The coupling coefficient of the w step: β with ``coupling_in_w_step``, else 0."""
    return self.beta if self.coupling_in_w_step else 0.0

  def objective(self, train_loss: jax.Array, val_loss: jax.Array, coupling_sq: jax.Array):
    """``c_tr L_tr + c_val L_val + β/2 ‖y − w‖²`` from its three pieces."""
    c_tr, c_val = self.arch_weights
    return c_tr * train_loss + c_val * val_loss + 0.5 * self.beta * coupling_sq


# --------------------------------------------------------------------------- the block updates


class NetworkStepInfo(NamedTuple):
  """What a network step saw: the loss and aux at the old weights, the gradient norm, ∇_α."""
  loss: jax.Array
  aux: Any
  grad_norm: jax.Array
  arch_grad: Any  # ∇_α f(θ, α; B) from the same backward pass, or None


def _sq_distance(x: PyTree, y: PyTree) -> jax.Array:
  return sum(jnp.sum(jnp.square(a - b)) for a, b in zip(jax.tree.leaves(x), jax.tree.leaves(y)))


def network_step(loss: AuxLoss, theta: PyTree, partner: PyTree, arch: PyTree, batch: Any,
                 opt_state: Any, tx: optax.GradientTransformation, *, loss_weight: float,
                 beta: float, with_arch_grad: bool = False
                 ) -> tuple[PyTree, Any, NetworkStepInfo]:
  r"""One network's block of the Gauss–Seidel pass.

  .. math:: g = a \nabla_\theta f(\theta, \alpha; B) + \beta (\theta - \theta_{partner}),\qquad
            \theta^+ = \theta + \mathrm{tx.update}(g, s, \theta)

  Args:
    loss: ``f(theta, arch, batch) -> (scalar, aux)``.
    theta, partner: this network's weights and the other network's (the coupling's anchor).
    arch, batch: the architecture and this network's batch.
    opt_state, tx: this network's optimizer state and transformation.
    loss_weight: a (static); beta: β (static; 0 skips the coupling).
    with_arch_grad: also return ``∇_α f(θ, α; B)`` from the same backward pass.
  Returns:
    ``(theta_new, opt_state_new, NetworkStepInfo)``.
  """
  if with_arch_grad:
    (value, aux), (g_theta, g_arch) = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(
        theta, arch, batch)
  else:
    (value, aux), g_theta = jax.value_and_grad(loss, has_aux=True)(theta, arch, batch)
    g_arch = None
  if beta:
    grad = jax.tree.map(lambda g, t, p: loss_weight * g + beta * (t - p), g_theta, theta, partner)
  else:
    grad = jax.tree.map(lambda g: loss_weight * g, g_theta)
  updates, opt_state = tx.update(grad, opt_state, theta)
  info = NetworkStepInfo(value, aux, optax.tree.norm(grad), g_arch)
  return optax.apply_updates(theta, updates), opt_state, info


def combine_arch_grads(g_train: PyTree | None, g_val: PyTree | None, train_weight: float,
                       val_weight: float) -> PyTree:
  """``c_tr g_train + c_val g_val``; a ``None`` gradient must have weight 0."""
  terms = [(c, g) for c, g in ((train_weight, g_train), (val_weight, g_val)) if c]
  if not terms:
    return jax.tree.map(jnp.zeros_like, g_train if g_train is not None else g_val)
  if any(g is None for _, g in terms):
    raise ValueError("A gradient with a non-zero weight is missing.")
  return jax.tree.map(lambda *gs: sum(c * g for (c, _), g in zip(terms, gs)),
                      *[g for _, g in terms])


def arch_gradient(train_loss: AuxLoss, val_loss: AuxLoss, weights: PyTree, val_weights: PyTree,
                  arch: PyTree, train_batch: Any, val_batch: Any, *, train_weight: float,
                  val_weight: float) -> tuple[PyTree, tuple[Any, Any]]:
  r"""The α block: :math:`c_{tr}\nabla_\alpha L_{tr}(w, \alpha) + c_{val}\nabla_\alpha L_{val}(y, \alpha)`.

  A term with weight 0 is not computed (its network is ignored). Returns ``(g, (train_out,
  val_out))`` with each ``out = (loss, aux)`` or ``None`` when skipped.
  """
  outs, grads = [None, None], [None, None]
  for i, (loss, theta, batch, c) in enumerate(((train_loss, weights, train_batch, train_weight),
                                               (val_loss, val_weights, val_batch, val_weight))):
    if c:
      outs[i], grads[i] = jax.value_and_grad(loss, argnums=1, has_aux=True)(theta, arch, batch)
  return combine_arch_grads(grads[0], grads[1], train_weight, val_weight), tuple(outs)


def arch_step(g_arch: PyTree, arch: PyTree, opt_state: Any, tx: optax.GradientTransformation):
  """``α ← α + tx.update(g, s, α)``; returns ``(arch, opt_state)``."""
  updates, opt_state = tx.update(g_arch, opt_state, arch)
  return optax.apply_updates(arch, updates), opt_state


class RartsVariables(NamedTuple):
  """Everything one Gauss–Seidel pass updates."""
  weights: PyTree
  val_weights: PyTree
  arch: PyTree
  weights_opt_state: Any
  val_weights_opt_state: Any
  arch_opt_state: Any


# A loss factory: network statistics (e.g. BatchNorm's) -> f(θ, α, batch) -> (scalar, (new
# statistics, anything)). The statistics are threaded through every forward of that network.
LossFactory = Callable[[Any], AuxLoss]


def network_blocks(make_train_loss: LossFactory, make_val_loss: LossFactory,
                   variables: RartsVariables, stats: tuple[Any, Any], train_batch: Any,
                   val_batch: Any, *, options: RartsOptions,
                   weights_tx: optax.GradientTransformation,
                   val_weights_tx: optax.GradientTransformation
                   ) -> tuple[RartsVariables, tuple[Any, Any], tuple[NetworkStepInfo, ...]]:
  """The pass's first two blocks, w then y (module docstring), threading each network's statistics.

  ``stats = (train network's, validation network's)``. With ``alpha_gradient_at='current'`` each
  step's backward pass also gives ``∇_α`` of its loss (``NetworkStepInfo.arch_grad``; None where
  its weight c is 0). Returns the variables with w, y and their optimizer states moved (α as is),
  the new statistics and the two steps' ``NetworkStepInfo``.
  """
  (c_tr, c_val), (a_tr, a_val) = options.arch_weights, options.network_weights
  current = options.alpha_gradient_at == "current"
  v, (train_stats, val_stats) = variables, stats
  w, w_opt, w_info = network_step(make_train_loss(train_stats), v.weights, v.val_weights, v.arch,
                                  train_batch, v.weights_opt_state, weights_tx, loss_weight=a_tr,
                                  beta=options.w_coupling, with_arch_grad=current and bool(c_tr))
  y, y_opt, y_info = network_step(make_val_loss(val_stats), v.val_weights, w, v.arch, val_batch,
                                  v.val_weights_opt_state, val_weights_tx, loss_weight=a_val,
                                  beta=options.beta, with_arch_grad=current and bool(c_val))
  new = v._replace(weights=w, val_weights=y, weights_opt_state=w_opt, val_weights_opt_state=y_opt)
  return new, (w_info.aux[0], y_info.aux[0]), (w_info, y_info)


def alpha_block_gradient(make_train_loss: LossFactory, make_val_loss: LossFactory,
                         variables: RartsVariables, stats: tuple[Any, Any],
                         infos: tuple[NetworkStepInfo, NetworkStepInfo], train_batch: Any,
                         val_batch: Any, *, options: RartsOptions
                         ) -> tuple[PyTree, tuple[Any, Any]]:
  r"""The α block's gradient :math:`c_{tr}\nabla_\alpha L_{tr} + c_{val}\nabla_\alpha L_{val}`
  after ``network_blocks``: at ``variables``' (updated) w⁺, y⁺ with ``alpha_gradient_at='updated'``
  (two more forward/backward passes, each moving its network's statistics), or from the network
  steps' own backward passes (``infos``, at w, y) with ``'current'``. Returns ``(g, stats)``.
  """
  c_tr, c_val = options.arch_weights
  if options.alpha_gradient_at == "current":
    return combine_arch_grads(infos[0].arch_grad, infos[1].arch_grad, c_tr, c_val), stats
  train_stats, val_stats = stats
  v = variables
  g, (train_out, val_out) = arch_gradient(make_train_loss(train_stats), make_val_loss(val_stats),
                                          v.weights, v.val_weights, v.arch, train_batch,
                                          val_batch, train_weight=c_tr, val_weight=c_val)
  train_stats = train_out[1][0] if train_out is not None else train_stats
  val_stats = val_out[1][0] if val_out is not None else val_stats
  return g, (train_stats, val_stats)


def gauss_seidel_pass(train_loss: Loss, val_loss: Loss, variables: RartsVariables,
                      train_batch: Any, val_batch: Any, *, options: RartsOptions,
                      weights_tx: optax.GradientTransformation,
                      val_weights_tx: optax.GradientTransformation,
                      arch_tx: optax.GradientTransformation) -> RartsVariables:
  """One RARTS pass (w, then y, then α) for plain losses ``f(θ, α, batch) -> scalar``.

  The blocks of the search step (``network_blocks``, ``alpha_block_gradient``; there the α step
  is ``steps.arch_update``'s, with the regularizers); what the solvable model and any non-NAS use
  call.
  """
  def make(loss):
    return lambda stats: lambda theta, arch, batch: (loss(theta, arch, batch), (stats, None))
  kwargs = dict(options=options)
  new, stats, infos = network_blocks(make(train_loss), make(val_loss), variables, (None, None),
                                     train_batch, val_batch, weights_tx=weights_tx,
                                     val_weights_tx=val_weights_tx, **kwargs)
  g, _ = alpha_block_gradient(make(train_loss), make(val_loss), new, stats, infos, train_batch,
                              val_batch, **kwargs)
  arch, arch_opt = arch_step(g, variables.arch, variables.arch_opt_state, arch_tx)
  return new._replace(arch=arch, arch_opt_state=arch_opt)


# --------------------------------------------------------------------------- the weight phase


@dataclasses.dataclass(frozen=True)
class CoupledNetworks:
  """RARTS' weight phase (``steps.WeightPhase``; module docstring): the w and y blocks of the
  Gauss–Seidel pass, then the α gradient's data term ``c_tr ∇_α L_tr + c_val ∇_α L_val`` handed
  to the skeleton's alpha step (``steps.arch_update``: + regularizers, the α optimizer, the mask).
  Its order is fixed: w → y → α. Static, closed over by the jitted step.

  Attributes:
    options: the relaxation (λ, β and the pass's variants).
    val_lr_scale: y's learning rate = this × the weight schedule (1: the same optimizer as w).
    eval_network: ``'train'`` (evaluate w, default) or ``'val'`` (evaluate y).
  """
  options: RartsOptions = RartsOptions()
  val_lr_scale: float = 1.0
  eval_network: str = "train"
  name: str = "rarts"
  order: str = "weights_first"
  arch_metrics: tuple[str, ...] = ()  # val/* come from the y step

  def __post_init__(self):
    if not (np.isfinite(self.val_lr_scale) and self.val_lr_scale > 0):
      raise ValueError(f"val_lr_scale must be > 0 (1 = the weight schedule), got "
                       f"{self.val_lr_scale}.")
    if self.eval_network not in EVAL_NETWORKS:
      raise ValueError(f"eval_network={self.eval_network!r} is not valid; choose one of: "
                       f"{', '.join(EVAL_NETWORKS)}.")

  def val_weights_tx(self, components: steps.SearchComponents) -> optax.GradientTransformation:
    """y's optimizer: w's chain, its updates scaled by ``val_lr_scale`` when that is not 1."""
    if self.val_lr_scale == 1.0:
      return components.weights_tx
    return optax.chain(components.weights_tx, optax.scale(self.val_lr_scale))

  def init(self, components: steps.SearchComponents, state: SearchState) -> dict[str, Any]:
    """y = a copy of w, y's BatchNorm statistics = a copy of w's, y's optimizer state fresh."""
    val_weights = jax.tree.map(jnp.copy, state.weights)  # own buffers (the state is donated)
    return {"val_weights": val_weights,
            "val_model_state": jax.tree.map(jnp.copy, state.model_state),
            "val_weights_opt_state": self.val_weights_tx(components).init(val_weights)}

  def _blocks(self, components: steps.SearchComponents, state: SearchState):
    """``(make_loss, variables, stats)``: each network's loss with its own BN statistics."""
    def make_loss(model_state):
      return lambda theta, arch, batch: steps.supernet_loss(components, theta, arch, model_state,
                                                            *batch)
    ms = state.method_state
    variables = RartsVariables(state.weights, ms["val_weights"], state.arch,
                               state.weights_opt_state, ms["val_weights_opt_state"],
                               state.arch_opt_state)
    return make_loss, variables, (state.model_state, ms["val_model_state"])

  def _with(self, state: SearchState, variables: RartsVariables, stats) -> SearchState:
    """``state`` with w, y, their optimizer states and statistics from ``variables``, ``stats``."""
    return state.replace(
        weights=variables.weights, weights_opt_state=variables.weights_opt_state,
        model_state=stats[0],
        method_state={**state.method_state, "val_weights": variables.val_weights,
                      "val_model_state": stats[1],
                      "val_weights_opt_state": variables.val_weights_opt_state})

  def update(self, components: steps.SearchComponents, state: SearchState, train_batch,
             val_batch):
    """The w and y blocks; ``carry`` = the network steps' ``∇_α`` (``'current'``; else None)."""
    make_loss, variables, stats = self._blocks(components, state)
    coupling_sq = _sq_distance(variables.val_weights, variables.weights)
    new, stats, (w_info, y_info) = network_blocks(
        make_loss, make_loss, variables, stats, train_batch, val_batch, options=self.options,
        weights_tx=components.weights_tx, val_weights_tx=self.val_weights_tx(components))
    lr = components.weights_lr(state.step)
    metrics = {
        "train/loss": w_info.loss, "train/accuracy": w_info.aux[1],
        "train/grad_norm": w_info.grad_norm,
        "val/loss": y_info.loss, "val/accuracy": y_info.aux[1],
        "rarts/val_net_grad_norm": y_info.grad_norm,
        "rarts/coupling": jnp.sqrt(coupling_sq),
        "rarts/objective": self.options.objective(w_info.loss, y_info.loss, coupling_sq),
        "lr/val_net": lr * self.val_lr_scale}
    return self._with(state, new, stats), metrics, (w_info, y_info)

  def arch_gradient(self, components: steps.SearchComponents, state: SearchState, train_batch,
                    val_batch, lr, carry):
    """The α gradient's data term at w⁺, y⁺ (or from ``carry``, at w, y); BN statistics moved."""
    del lr
    make_loss, variables, stats = self._blocks(components, state)
    g, stats = alpha_block_gradient(make_loss, make_loss, variables, stats, carry, train_batch,
                                    val_batch, options=self.options)
    return g, self._with(state, variables, stats), {}

  def eval_state(self, state: SearchState) -> SearchState:
    """w (``eval_network='train'``) or y (``'val'``) as the evaluated network."""
    if self.eval_network == "val":
      return state.replace(weights=state.method_state["val_weights"],
                           model_state=state.method_state["val_model_state"])
    return state


def coupled_networks(config: ml_collections.ConfigDict) -> CoupledNetworks:
  """``CoupledNetworks`` from ``config.rarts``; ValueError naming the field and the fix."""
  if config.hypergrad != "first_order":
    raise ValueError(f"config.hypergrad={config.hypergrad!r} is not used by RARTS (its α gradient "
                     "is the first-order one of its relaxed objective); leave it at 'first_order'.")
  r = config.rarts
  try:
    options = RartsOptions(lam=float(r.lam), beta=float(r.beta), lam_on=r.lam_on,
                           coupling_in_w_step=bool(r.coupling_in_w_step),
                           network_steps=r.network_steps, alpha_gradient_at=r.alpha_gradient_at)
    return CoupledNetworks(options=options, val_lr_scale=float(r.val_lr_scale),
                           eval_network=r.eval_network)
  except ValueError as e:
    raise ValueError(f"config.rarts.{e}") from None


def read_parts(config: ml_collections.ConfigDict, space, steps_per_epoch: int) -> dict[str, Any]:
  """The generic parts (schedule, regularizers, pruning; the schedule's automatic phase for the
  order w → y → α) and RARTS' weight phase."""
  phase = coupled_networks(config)
  return {**compose.read_generic(config, space, steps_per_epoch, step_order=phase.order),
          "weight_phase": phase}


def build(config: ml_collections.ConfigDict) -> base.SearchMethod:
  """The skeleton's method named 'rarts' (its weight phase comes with the components,
  ``read_parts``); checks ``config.rarts`` first."""
  coupled_networks(config)
  return base.SearchMethod(name="rarts")


base.register("rarts", build)
compose.register_reader("rarts", read_parts)


# --------------------------------------------------------------------------- the solvable model


@dataclasses.dataclass(frozen=True, eq=False)
class SolvableModel:
  r"""A relaxed problem whose iterates and fixed points are closed-form linear algebra.

  Both losses are the same ridge regression on different data,

  .. math:: \ell(\theta, \alpha; X, Z, d) = \tfrac12 \|X\theta + Z\alpha - d\|^2
            + \tfrac{\mu}{2} \|\theta\|^2,\qquad
            L_{tr}(w, \alpha) = \ell(w, \alpha; D_{tr}),\quad L_{val}(y, \alpha) = \ell(y, \alpha; D_{val}),

  a "network" with weights θ ∈ R^n and architecture α ∈ R^m. With ``H = XᵀX + μI``, ``C = XᵀZ``:
  ``∇_θ ℓ = Hθ + Cα − Xᵀd``, ``∇_α ℓ = Cᵀθ + ZᵀZα − Zᵀd``, ``∇²_{αθ} ℓ = Cᵀ``. Every gradient
  below is affine in ``z = (w, y, α)``, so

  * RARTS' fixed point solves ``K z = k`` (``rarts_system``): the three block gradients of the
    module docstring set to zero;
  * one Gauss–Seidel pass with plain gradient steps (``optax.sgd`` without momentum) is the affine
    map ``z ↦ T z + t`` (``gauss_seidel_map``), so ``z_k = T^k z_0 + (I − T^k)(I − T)^{-1} t``,
    converging to the fixed point iff the spectral radius of T is < 1;
  * the bilevel optimum, ``w*(α) = H_tr^{-1}(X_trᵀ d_tr − C_tr α)`` and
    ``∇_α ℓ_val − C_trᵀ H_tr^{-1} ∇_w ℓ_val = 0`` (``bilevel_optimum``);
  * DARTS' fixed points (``darts_fixed_point``): ``w = w*(α)`` and
    ``∇_α ℓ_val − ξ C_trᵀ ∇_w ℓ_val = 0`` — first order ξ = 0; second order replaces
    ``H_tr^{-1}`` by ξI (at a fixed point of the w step the virtual step does not move w);
  * MiLeNAS' (``mixed_level_fixed_point``): ``w = w*(α)`` and
    ``c_tr ∇_α ℓ_tr + c_val ∇_α ℓ_val = 0`` — RARTS' limit β → ∞.

  ``SolvableModel.scalar(d_train, d_val, mu)`` is the one-dimensional model of the README
  (X = Z = 1): the bilevel optimum is α = d_val, DARTS first order ``α = ((1+μ) d_val − d_train)/μ``.
  """
  train_data: tuple[np.ndarray, np.ndarray, np.ndarray]  # (X (N, n), Z (N, m), d (N,))
  val_data: tuple[np.ndarray, np.ndarray, np.ndarray]
  mu: float = 1.0

  @classmethod
  def scalar(cls, d_train: float, d_val: float, mu: float = 1.0) -> "SolvableModel":
    """X = Z = 1: ``ℓ = ½(θ + α − d)² + ½μθ²`` with targets d_train and d_val."""
    one = np.ones((1, 1))
    return cls((one, one, np.array([d_train], float)), (one, one, np.array([d_val], float)), mu)

  @classmethod
  def random(cls, seed: int, n_weights: int = 4, n_arch: int = 2, n_data: int = 6,
             mu: float = 0.5) -> "SolvableModel":
    """Gaussian data (scaled by 1/√n_data), different for the two splits."""
    rng = np.random.default_rng(seed)
    data = lambda: (rng.normal(size=(n_data, n_weights)) / np.sqrt(n_data),  # noqa: E731
                    rng.normal(size=(n_data, n_arch)) / np.sqrt(n_data),
                    rng.normal(size=n_data))
    return cls(data(), data(), mu)

  @property
  def sizes(self) -> tuple[int, int]:
    """``(n, m)``: weights per network, architecture parameters."""
    return self.train_data[0].shape[1], self.train_data[1].shape[1]

  def loss(self, theta: jax.Array, arch: jax.Array, batch) -> jax.Array:
    """``ℓ(θ, α; batch)`` with ``batch = (X, Z, d)``: a loss ``f(weights, arch, batch)``."""
    x, z, d = batch
    r = x @ theta + z @ arch - d
    return 0.5 * jnp.sum(r * r) + 0.5 * self.mu * jnp.sum(theta * theta)

  def batches(self) -> tuple[tuple, tuple]:
    """The two splits as jnp arrays (the batches of every step: full-batch gradients)."""
    to = lambda data: tuple(jnp.asarray(a) for a in data)  # noqa: E731
    return to(self.train_data), to(self.val_data)

  def _blocks(self, data):
    x, z, d = data
    n = x.shape[1]
    return x.T @ x + self.mu * np.eye(n), x.T @ z, z.T @ z, x.T @ d, z.T @ d

  def rarts_system(self, options: RartsOptions) -> tuple[np.ndarray, np.ndarray]:
    """``(K, k)`` with the pass's block gradients ``G(z) = K z − k``, ``z = (w, y, α)``."""
    (n, m), beta, kappa = self.sizes, options.beta, options.w_coupling
    (c_tr, c_val), (a_tr, a_val) = options.arch_weights, options.network_weights
    h_t, c_t, zz_t, xd_t, zd_t = self._blocks(self.train_data)
    h_v, c_v, zz_v, xd_v, zd_v = self._blocks(self.val_data)
    eye = np.eye(n)
    big_k = np.block([
        [a_tr * h_t + kappa * eye, -kappa * eye, a_tr * c_t],
        [-beta * eye, a_val * h_v + beta * eye, a_val * c_v],
        [c_tr * c_t.T, c_val * c_v.T, c_tr * zz_t + c_val * zz_v]])
    k = np.concatenate([a_tr * xd_t, a_val * xd_v, c_tr * zd_t + c_val * zd_v])
    return big_k, k

  def rarts_fixed_point(self, options: RartsOptions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(w, y, α)`` where every block gradient of the pass vanishes (any ``alpha_gradient_at``)."""
    n = self.sizes[0]
    z = np.linalg.solve(*self.rarts_system(options))
    return z[:n], z[n:2 * n], z[2 * n:]

  def gauss_seidel_map(self, options: RartsOptions, lrs: tuple[float, float, float]
                       ) -> tuple[np.ndarray, np.ndarray]:
    """``(T, t)``: one pass with plain gradient steps ``(η_w, η_y, η_α)`` is ``z ↦ T z + t``."""
    big_k, k = self.rarts_system(options)
    n, m = self.sizes
    size = 2 * n + m
    blocks = (slice(0, n), slice(n, 2 * n), slice(2 * n, size))

    def block_map(rows, lr):  # z_rows <- z_rows - lr (K z - k)_rows, in augmented coordinates
      e = np.eye(size + 1)
      e[rows, :size] -= lr * big_k[rows]
      e[rows, size] += lr * k[rows]
      return e

    e_w, e_y, e_a = (block_map(rows, lr) for rows, lr in zip(blocks, lrs))
    if options.alpha_gradient_at == "updated":
      t_aug = e_a @ e_y @ e_w
    else:  # α's gradient at the old (w, y): its rows act on the pass's input
      t_aug = e_y @ e_w
      t_aug[blocks[2]] = e_a[blocks[2]]
    return t_aug[:size, :size], t_aug[:size, size]

  def _inner_solution(self) -> tuple[np.ndarray, np.ndarray]:
    """``(p, P)`` with ``w*(α) = p − Pα`` minimising L_tr."""
    h_t, c_t, _, xd_t, _ = self._blocks(self.train_data)
    return np.linalg.solve(h_t, xd_t), np.linalg.solve(h_t, c_t)

  def _val_gradients_on_inner_curve(self):
    """``∇_α ℓ_val`` and ``∇_w ℓ_val`` at ``w = w*(α)`` as affine maps ``(M, c)``: ``Mα + c``."""
    p, big_p = self._inner_solution()
    h_v, c_v, zz_v, xd_v, zd_v = self._blocks(self.val_data)
    g_arch = (zz_v - c_v.T @ big_p, c_v.T @ p - zd_v)
    g_w = (c_v - h_v @ big_p, h_v @ p - xd_v)
    return g_arch, g_w

  def _solve_on_inner_curve(self, matrix, offset) -> tuple[np.ndarray, np.ndarray]:
    p, big_p = self._inner_solution()
    arch = np.linalg.solve(matrix, -offset)
    return p - big_p @ arch, arch

  def bilevel_optimum(self) -> tuple[np.ndarray, np.ndarray]:
    """``(w*(α*), α*)``: the exact solution of DARTS' bilevel problem."""
    (ga, ga0), (gw, gw0) = self._val_gradients_on_inner_curve()
    _, big_p = self._inner_solution()
    return self._solve_on_inner_curve(ga - big_p.T @ gw, ga0 - big_p.T @ gw0)

  def darts_fixed_point(self, xi: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``(w, α)`` where DARTS stops: first order (ξ = 0) or second order with virtual step ξ."""
    (ga, ga0), (gw, gw0) = self._val_gradients_on_inner_curve()
    c_t = self._blocks(self.train_data)[1]
    return self._solve_on_inner_curve(ga - xi * c_t.T @ gw, ga0 - xi * c_t.T @ gw0)

  def mixed_level_fixed_point(self, train_weight: float, val_weight: float
                              ) -> tuple[np.ndarray, np.ndarray]:
    """``(w, α)`` where MiLeNAS (α on ``c_tr ∇_α L_tr + c_val ∇_α L_val`` at w) stops."""
    (ga, ga0), _ = self._val_gradients_on_inner_curve()
    p, big_p = self._inner_solution()
    _, c_t, zz_t, _, zd_t = self._blocks(self.train_data)
    gt, gt0 = zz_t - c_t.T @ big_p, c_t.T @ p - zd_t  # ∇_α ℓ_tr on the inner curve
    return self._solve_on_inner_curve(train_weight * gt + val_weight * ga,
                                      train_weight * gt0 + val_weight * ga0)
