"""Pure search and evaluation steps: ``search_step(state, batches) -> (state, metrics)``.

One search step of bilevel DARTS (Liu et al., ICLR 2019; ``shared/spec/methods.md`` §2(b)):

  alpha <- ArchOpt(alpha, g_alpha)                                (alpha step, on a validation batch)
  w     <- WeightOpt(w, grad_w L_train(w, alpha))                 (weight step, on a training batch)

with ``g_alpha`` the first-order gradient ``grad_alpha L_val(w, alpha)`` or any estimator of
``jaxnas.hypergrad`` (second order by finite differences or exact unrolling, implicit, MiLeNAS'
mixed level), whose inner problem is the training loss on the step's training batch.

quark0/darts takes the alpha step first (``step_order='arch_first'``, the weight step then sees the
new alpha); AutoDL's NB201 DARTS-V1 takes the weight step first (``'weights_first'``). Both forwards
run BatchNorm in training mode and update the running statistics, as PyTorch does. Augmentation
and normalisation run here, on device, from the state's PRNG key.

The weight step is one part, the *weight phase* (``SearchComponents.weight_phase``): the
default ``SingleNetwork`` is the step above (and hands the alpha step the configured estimator's
``g_alpha`` at ``(w, alpha)``); RARTS' two coupled networks
(``jaxnas.methods.rarts.CoupledNetworks``) replace it, supplying their own alpha-gradient data
term, and fix the order (w -> y -> alpha). The rest of the alpha step (regularizers, alpha
optimizer, pruning mask) and the parts' bookkeeping are the same for both.

With forward transforms (``SearchComponents.transforms``, ``jaxnas.parts``: GDAS' and SNAS' Gumbel
samplers, DrNAS' Dirichlet sampler, SDARTS' perturbations, DARTS-' auxiliary skip) the weight phase
and the alpha step each see their own transformed mixing (``transformed``: the parametrization
wrapped as ``TrainingParametrization`` with a key split off the state's key and the step; a
transform names the forwards it applies to); the regularizers, the evaluation and the derivation
keep the deterministic mixing.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Protocol

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxnas import diagnostics
from jaxnas import hypergrad
from jaxnas import parts
from jaxnas import supernet
from jaxnas import data as data_lib
from jaxnas.parametrize import Parametrization
from jaxnas.state import SearchState

STEP_ORDERS = ("arch_first", "weights_first")


class WeightPhase(Protocol):
  """The weight phase of a search step: the network(s) it trains and the data term of the alpha
  gradient they give (``SingleNetwork``: DARTS' one network; RARTS: two coupled networks).

  Attributes:
    order: the step order the phase fixes (``'weights_first'`` for a phase whose alpha gradient
      reads what its update found), or None (``SearchComponents.step_order`` decides).
    arch_metrics: the names of the metrics ``arch_gradient`` reports (NaN on a skipped alpha step).
  """
  order: str | None
  arch_metrics: tuple[str, ...]

  def init(self, components: "SearchComponents", state: SearchState) -> dict[str, Any]:
    """Its own ``method_state`` entries at step 0 (``{}`` if none), checkpointed."""

  def update(self, components: "SearchComponents", state: SearchState, train_batch, val_batch
             ) -> tuple[SearchState, dict[str, jax.Array], Any]:
    """The weight step(s): ``(state, metrics, carry)``; ``carry`` (a pytree or None) goes to
    ``arch_gradient`` when the alpha step follows (``'weights_first'``). The metrics include
    ``train/grad_norm`` (the schedules' Fisher trace is its square)."""

  def arch_gradient(self, components: "SearchComponents", state: SearchState, train_batch,
                    val_batch, lr, carry) -> tuple[Any, SearchState, dict[str, jax.Array]]:
    """The alpha gradient's data term ``g``: ``(g, state (BN statistics moved), metrics)``."""

  def eval_state(self, state: SearchState) -> SearchState:
    """The state whose ``weights``/``model_state`` the per-epoch supernet evaluation runs."""


@dataclasses.dataclass(frozen=True)
class SingleNetwork:
  """The default weight phase: one network, ``w <- WeightOpt(w, grad_w L_train(w, alpha))``
  (``weights_update``); the alpha gradient's data term is the configured estimator's ``g_alpha`` at
  ``(w, alpha)`` (``estimator_gradient``); the order is ``components.step_order``."""
  name: str = "single_network"
  order: str | None = None
  arch_metrics: tuple[str, ...] = ("val/loss", "val/accuracy")

  def init(self, components, state) -> dict[str, Any]:
    del components, state
    return {}

  def update(self, components, state, train_batch, val_batch):
    del val_batch
    state, metrics = weights_update(components, state, *train_batch)
    return state, metrics, None

  def arch_gradient(self, components, state, train_batch, val_batch, lr, carry):
    del carry
    return estimator_gradient(components, state, train_batch, val_batch, lr)

  def eval_state(self, state: SearchState) -> SearchState:
    return state



@dataclasses.dataclass(frozen=True)
class SearchComponents:
  """The static parts a step closes over (built once from the config, never traced).

  The method's parts: ``parametrization`` (raw alpha -> mixing weights; ``pruning``: DARTS-PRIME's
  permanent mask on top), ``arch_gradient`` (the hypergradient estimator, its inner optimizer a
  field), ``arch_tx`` (the alpha optimizer), ``schedule`` (when an alpha step is taken),
  ``regularizers`` (terms of the alpha objective, summed), ``step_order``; the weight phase
  (``weight_phase``: one network, or RARTS' two) and its ``weights_tx`` and ``weights_lr``; the
  on-device augmentation; the supernet ``module``.
  """
  module: nn.Module
  parametrization: Parametrization
  weights_tx: optax.GradientTransformation
  arch_tx: optax.GradientTransformation
  weights_lr: Callable[[jax.Array], jax.Array]
  mean: tuple[float, ...]
  std: tuple[float, ...]
  crop_padding: int = 4
  flip: bool = True
  cutout: int = 0
  step_order: str = "arch_first"
  arch_gradient: Any = None  # a methods.estimators.ArchGradient; None = first order
  schedule: parts.Schedule = parts.EveryK()  # when to take an alpha step (default: every step)
  regularizers: tuple[parts.Regularizer, ...] = ()  # alpha-objective terms (entropy, prox, ADMM)
  pruning: Any = None        # a mask over the ops (parts.SignPrune: DARTS-PRIME; TopKPrune: DrNAS)
  weight_phase: WeightPhase = SingleNetwork()  # weight step(s) + the alpha gradient's data term
  steps_per_epoch: int = 0   # for parts that count epochs
  # The forward transforms (jaxnas.parts): what the training forwards see instead of the
  # deterministic mixing (a sampler's draw, SDARTS' perturbation, DARTS-' auxiliary skip), in order.
  transforms: tuple[Any, ...] = ()
  # The supernet forward's dtype: 'float32' | 'bfloat16' (float32 master weights, BN statistics and
  # logits; see jaxnas.supernet). Used by supernet_loss (every gradient) and eval_step.
  compute_dtype: str = "float32"


@dataclasses.dataclass(frozen=True)
class MaskedParametrization(Parametrization):
  """``activate(arch) = base.activate(arch) * mask`` (the pruning mask, a traced pytree)."""
  name: str = "masked"
  base: Parametrization = None
  mask: Any = None

  def init_leaf(self, key, shape, dtype):
    return self.base.init_leaf(key, shape, dtype)

  def activate(self, arch: Any) -> Any:
    return jax.tree.map(lambda a, m: self.base.activate_leaf(a) * m.astype(a.dtype), arch,
                        self.mask)


@dataclasses.dataclass(frozen=True)
class TrainingParametrization(Parametrization):
  """The mixing weights of one training forward of a step: ``activate(arch) = mix(arch)``, where
  ``mix`` is what the step's forward transforms (``SearchComponents.transforms``: samplers,
  perturbations, the auxiliary skip) made of ``base.activate`` (their keys and the step traced in
  it). ``deterministic`` is ``base`` (what derivation, evaluation and regularizers use)."""
  name: str = "training"
  base: Parametrization = None
  mix: Callable[[Any], Any] = None

  def init_leaf(self, key, shape, dtype):
    return self.base.init_leaf(key, shape, dtype)

  def activate(self, arch: Any) -> Any:
    return self.mix(arch)


def deterministic(parametrization: Parametrization) -> Parametrization:
  """The parametrization without the step's forward transforms (``TrainingParametrization.base``).
  """
  while isinstance(parametrization, TrainingParametrization):
    parametrization = parametrization.base
  return parametrization


def transformed(components: "SearchComponents", key: jax.Array, step, forward: str,
                loss: Callable[[Callable[[Any], Any]], jax.Array] | None = None
                ) -> "SearchComponents":
  """The components whose ``forward`` (``'weights'`` or ``'arch'``) sees the forward transforms
  that apply to it, in order (``parts`` "forward transforms"): each ``t.wrap(mix, ctx)`` maps the
  mixing function so far (``arch -> mixing``) to the next one, ``ctx`` a ``parts.ForwardContext``
  (the deterministic parametrization, the transform's key, the step, and ``loss(mix)``: the
  training loss of that forward's batch at the current weights with mixing ``mix``, which
  SDARTS-ADV's attack reads). One transform gets ``key`` itself, several a split of it each.
  Unchanged without a transform for ``forward``."""
  chosen = [t for t in components.transforms if forward in t.forwards]
  if not chosen:
    return components
  base = deterministic(components.parametrization)
  keys = [key] if len(chosen) == 1 else list(jax.random.split(key, len(chosen)))
  mix = base.activate
  for t, k in zip(chosen, keys):
    mix = t.wrap(mix, parts.ForwardContext(base, k, step, loss))
  return dataclasses.replace(components, parametrization=TrainingParametrization(base=base,
                                                                                 mix=mix))


def forward_loss(components: "SearchComponents", state: SearchState, batch):
  """``loss(mix, train=True)``: the loss of ``batch`` at the state's weights with the mixing
  function ``mix`` (``arch -> mixing``), BatchNorm in training mode (batch statistics) or, with
  ``train=False``, in evaluation mode (running statistics; SDARTS-ADV's attack); the BatchNorm
  statistics are not updated. For the transforms that read it."""
  def loss(mix, train: bool = True):
    logits, _ = supernet.apply(components.module, state.weights, state.model_state, batch[0],
                               mix(state.arch), train=train,
                               compute_dtype=components.compute_dtype)
    return cross_entropy(logits, batch[1])
  return loss


def init_method_state(components: SearchComponents, arch: Any) -> dict[str, Any]:
  """The parts' states at step 0: ``{'schedule', 'regularizers' (one per regularizer), 'mask'
  (with pruning)}`` (the weight phase's own entries: ``init_state_of_parts``)."""
  ms: dict[str, Any] = {"schedule": components.schedule.init()}
  if components.pruning is not None:
    ms["mask"] = components.pruning.init(arch)
  ctx = context(components, ms, jnp.zeros((), jnp.int32))
  ms["regularizers"] = tuple(r.init(arch, ctx) for r in components.regularizers)
  return ms


def init_state_of_parts(components: SearchComponents, state: SearchState) -> dict[str, Any]:
  """``state.method_state`` at step 0: the parts' states and the weight phase's own entries."""
  return {**init_method_state(components, state.arch),
          **components.weight_phase.init(components, state)}


def with_mask(components: SearchComponents, method_state: Any) -> SearchComponents:
  """The components with the pruning mask of ``method_state`` folded into the parametrization:
  its own ``with_mask(mask)`` where it has one (DrNAS' Dirichlet renormalizes over the kept ops),
  else ``MaskedParametrization`` (``mixing * mask``)."""
  if components.pruning is None:
    return components
  base = components.parametrization
  if isinstance(base, MaskedParametrization):  # already masked: replace the mask
    base = base.base
  mask = method_state["mask"]
  if hasattr(base, "with_mask"):
    return dataclasses.replace(components, parametrization=base.with_mask(mask))
  return dataclasses.replace(components, parametrization=MaskedParametrization(base=base,
                                                                               mask=mask))


def context(components: SearchComponents, method_state: Any, step) -> parts.Context:
  """What the regularizers see: the (masked) activation, the step, the mask."""
  param = deterministic(with_mask(components, method_state).parametrization)
  return parts.Context(activate=param.activate,
                       step=step,
                       mask=method_state.get("mask") if components.pruning is not None else None)


def mixing(components: SearchComponents, state: SearchState) -> Any:
  """The mixing weights of the current architecture (the mask folded in)."""
  return with_mask(components, state.method_state).parametrization.activate(state.arch)


def regularizer_terms(components: SearchComponents, arch: Any, method_state: Any, step):
  """``(values, gradients)`` of each regularizer at ``arch``: what joins the alpha objective."""
  ctx = context(components, method_state, step)
  values, grads = [], []
  for reg, reg_state in zip(components.regularizers, method_state["regularizers"]):
    value, grad = jax.value_and_grad(lambda a: reg.penalty(a, reg_state, ctx))(arch)
    values.append(value)
    grads.append(grad)
  return values, grads


def regularizer_metrics(components: SearchComponents, values) -> dict[str, jax.Array]:
  return {f"reg/{r.name}": jnp.asarray(v, jnp.float32)
          for r, v in zip(components.regularizers, values)}


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Mean softmax cross-entropy with integer labels."""
  return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))


def accuracy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Top-1 accuracy (fraction)."""
  return jnp.mean((jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32))


def supernet_loss(components: SearchComponents, weights, arch, model_state, images, labels):
  """Training-mode loss ``L(w, alpha; batch)``; aux = (new BN state, accuracy).

  The forward runs in ``components.compute_dtype``; the loss, its gradients and the BN state are
  float32 in every case.
  """
  mixing = components.parametrization.activate(arch)
  logits, new_model_state = supernet.apply(components.module, weights, model_state, images,
                                           mixing, train=True,
                                           compute_dtype=components.compute_dtype)
  return cross_entropy(logits, labels), (new_model_state, accuracy(logits, labels))


def estimator_gradient(components: SearchComponents, state: SearchState, train_batch, val_batch,
                       lr):
  """``SingleNetwork``'s alpha-gradient data term: ``g_alpha`` of the configured estimator at
  ``(w, alpha)``, with the validation forward's BN statistics (in the returned state) and metrics.

  The first-order gradient ``grad_alpha L_val(w, alpha)`` comes with them from one pass; other
  estimators get the bilevel problem (inner = training loss on the step's training batch, outer =
  validation loss) and the metrics come from one extra validation forward.
  """
  val_loss = lambda arch: supernet_loss(components, state.weights, arch, state.model_state,
                                        *val_batch)
  estimator = components.arch_gradient
  if estimator is None or estimator.name == "first_order":
    (loss, (model_state, acc)), g_arch = jax.value_and_grad(val_loss, has_aux=True)(state.arch)
  else:
    scalar_loss = lambda w, a, batch: supernet_loss(components, w, a, state.model_state,
                                                    *batch)[0]
    problem = hypergrad.BilevelProblem(scalar_loss, scalar_loss)
    g_arch = estimator(problem, state.weights, state.arch, train_batch, val_batch, lr=lr,
                       weights_opt_state=state.weights_opt_state)
    loss, (model_state, acc) = val_loss(state.arch)
  return g_arch, state.replace(model_state=model_state), {"val/loss": loss, "val/accuracy": acc}


def arch_update(components: SearchComponents, state: SearchState, train_batch, val_batch, lr,
                carry=None):
  """Alpha step: ``alpha <- ArchOpt(alpha, g + sum_r grad R_r(alpha))`` (``components`` with the
  pruning mask folded in).

  ``g`` is the weight phase's data term (``weight_phase.arch_gradient``: the configured
  hypergradient for one network, RARTS' ``c_tr grad L_tr(w+) + c_val grad L_val(y+)`` for two;
  ``carry`` is what the weight phase's update handed on). Each regularizer's gradient joins ``g``
  (in the configured order) and its value is reported as ``'reg/<name>'``. With pruning, masked
  alpha are held at exactly 0 after the step (the optimizer's moments would move them).
  """
  g_arch, state, metrics = components.weight_phase.arch_gradient(
      components, state, train_batch, val_batch, lr, carry)
  values, grads = regularizer_terms(components, state.arch, state.method_state, state.step)
  for g_reg in grads:
    g_arch = jax.tree.map(jnp.add, g_arch, g_reg)
  metrics = {**metrics, **regularizer_metrics(components, values)}
  updates, arch_opt_state = components.arch_tx.update(g_arch, state.arch_opt_state, state.arch)
  arch = optax.apply_updates(state.arch, updates)
  if components.pruning is not None:
    arch = jax.tree.map(lambda a, m: a * m, arch, state.method_state["mask"])
  return state.replace(arch=arch, arch_opt_state=arch_opt_state), metrics


def maybe_arch_update(components: SearchComponents, state: SearchState, train_batch, val_batch,
                      lr, due, carry=None):
  """The alpha step if ``due`` (``None``: the schedule takes one every step, no ``lax.cond``),
  else a no-op with NaN for the weight phase's alpha metrics (the regularizers' values still
  reported)."""
  step = lambda s: arch_update(components, s, train_batch, val_batch, lr, carry)
  if due is None:
    return step(state)

  def skip(s):
    values, _ = regularizer_terms(components, s.arch, s.method_state, s.step)
    return s, {**{name: jnp.float32(jnp.nan) for name in components.weight_phase.arch_metrics},
               **regularizer_metrics(components, values)}
  return jax.lax.cond(due, step, skip, state)


def weights_update(components: SearchComponents, state: SearchState, images, labels):
  """Weight step: ``w <- WeightOpt(w, grad_w L_train(w, alpha))`` (clip -> L2 -> SGD momentum)."""
  grad_fn = jax.value_and_grad(
      lambda weights: supernet_loss(components, weights, state.arch, state.model_state, images,
                                    labels), has_aux=True)
  (loss, (model_state, acc)), g_weights = grad_fn(state.weights)
  updates, opt_state = components.weights_tx.update(g_weights, state.weights_opt_state,
                                                    state.weights)
  state = state.replace(weights=optax.apply_updates(state.weights, updates),
                        weights_opt_state=opt_state, model_state=model_state)
  return state, {"train/loss": loss, "train/accuracy": acc,
                 "train/grad_norm": optax.tree.norm(g_weights)}


def augment(components: SearchComponents, key: jax.Array, images: jax.Array) -> jax.Array:
  """Pad-crop, flip, normalise and cutout, on device."""
  return data_lib.augment(key, images, mean=components.mean, std=components.std,
                             crop_padding=components.crop_padding, flip=components.flip,
                             cutout=components.cutout)


def advance_parts(components: SearchComponents, state: SearchState, due,
                  weight_metrics) -> tuple[SearchState, dict[str, jax.Array]]:
  """After the weight step: the pruning mask (``pruning.update``: DARTS-PRIME's
  ``M <- M [alpha > 0]``, DrNAS' top-k at its stage boundary), then the regularizers'
  states (ADMM's Z, U: with the new mask), then the schedule's (fed the Fisher trace
  ``FI = ||grad_w L_train||^2``, before clipping)."""
  ms = state.method_state
  new_ms = dict(ms)
  metrics: dict[str, jax.Array] = {}
  took = jnp.asarray(True) if due is None else due
  if components.pruning is not None:
    arch, new_ms["mask"] = components.pruning.update(state.arch, ms["mask"], state.step + 1)
    state = state.replace(arch=arch)
    metrics.update(components.pruning.metrics(new_ms["mask"]))
  ctx = context(components, new_ms, state.step)
  new_states = []
  for reg, reg_state in zip(components.regularizers, ms["regularizers"]):
    reg_state, reg_metrics = reg.advance(reg_state, state.arch, took, ctx)
    new_states.append(reg_state)
    metrics.update(reg_metrics)
  new_ms["regularizers"] = tuple(new_states)
  fisher = jnp.square(weight_metrics["train/grad_norm"])
  new_ms["schedule"] = components.schedule.advance(ms["schedule"], took, fisher)
  if not components.schedule.always:
    metrics.update({"schedule/arch_step": took.astype(jnp.float32),
                    "schedule/fisher_trace": fisher,
                    **components.schedule.metrics(ms["schedule"])})
    if hasattr(new_ms["schedule"], "arch_steps"):
      metrics["schedule/arch_steps"] = new_ms["schedule"].arch_steps.astype(jnp.float32)
  return state.replace(method_state=new_ms), metrics


def step_order(components: SearchComponents) -> str:
  """The order of the step: the weight phase's own (RARTS: weights first), else the configured."""
  return components.weight_phase.order or components.step_order


def search_step(state: SearchState, batches: dict[str, tuple[jax.Array, jax.Array]], *,
                components: SearchComponents) -> tuple[SearchState, dict[str, jax.Array]]:
  """One search step of any composition on ``batches = {'train': (uint8 images, labels),
  'val': (...)}``: augment -> (the schedule says due?) alpha step (the weight phase's data term +
  regularizers + alpha optimizer) -> weight phase, in ``step_order(components)`` (weights first:
  the weight phase's ``carry`` goes to the alpha gradient); then the parts' states advance
  (``advance_parts``). The weight phase's metrics win over the alpha step's of the same name."""
  comps = with_mask(components, state.method_state)
  phase = comps.weight_phase
  key = jax.random.wrap_key_data(state.key)
  key, key_train, key_val = jax.random.split(key, 3)
  x_train = augment(comps, key_train, batches["train"][0])
  x_val = augment(comps, key_val, batches["val"][0])
  lr = comps.weights_lr(state.step)
  train_batch, val_batch = (x_train, batches["train"][1]), (x_val, batches["val"][1])
  schedule = components.schedule
  due = None if schedule.always else schedule.due(state.step,
                                                   state.method_state["schedule"])
  transform_metrics = {}
  forward_keys = {}
  if components.transforms:  # a fresh draw per forward pass (GDAS, SNAS, DrNAS, SDARTS, DARTS-)
    key, forward_keys["weights"], forward_keys["arch"] = jax.random.split(key, 3)
    for t in components.transforms:
      transform_metrics.update(t.metrics(state.step))

  def seen_by(forward, state, batch):
    """The components of ``forward`` at ``state`` (its transforms read that state's weights)."""
    if not forward_keys:
      return comps
    return transformed(comps, forward_keys[forward], state.step, forward,
                       forward_loss(comps, state, batch))
  if step_order(components) == "arch_first":
    state, arch_metrics = maybe_arch_update(seen_by("arch", state, val_batch), state, train_batch,
                                            val_batch, lr, due)
    state, weight_metrics, _ = phase.update(seen_by("weights", state, train_batch), state,
                                            train_batch, val_batch)
  else:
    state, weight_metrics, carry = phase.update(seen_by("weights", state, train_batch), state,
                                                train_batch, val_batch)
    # The weight step moved the schedule on: the alpha step sees the next step's learning rate.
    state, arch_metrics = maybe_arch_update(seen_by("arch", state, val_batch), state, train_batch,
                                            val_batch, comps.weights_lr(state.step + 1), due,
                                            carry)
  state, part_metrics = advance_parts(components, state, due, weight_metrics)
  part_metrics = {**part_metrics, **transform_metrics}
  state = state.replace(step=state.step + 1, key=jax.random.key_data(key))
  return state, {**arch_metrics, **weight_metrics, "lr/weights": lr, **part_metrics}


def eval_step(state: SearchState, images: jax.Array, labels: jax.Array, *,
              components: SearchComponents) -> dict[str, jax.Array]:
  """Sums of loss and correct predictions of the supernet (running BN statistics) on a batch; the
  network is the weight phase's ``eval_state`` (RARTS: w or y)."""
  state = components.weight_phase.eval_state(state)
  x = data_lib.normalize(images, components.mean, components.std)
  logits, _ = supernet.apply(components.module, state.weights, state.model_state, x,
                             mixing(components, state),
                             train=False, compute_dtype=components.compute_dtype)
  losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  correct = (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)
  return {"loss_sum": jnp.sum(losses), "correct": jnp.sum(correct)}


def diagnostics_step(state: SearchState, batches, *, components: SearchComponents,
                     cg_maxiter: int, eigen_iterations: int) -> dict[str, jax.Array]:
  """Hypergradient quality and curvature on this step's batches (no augmentation, no update).

  * ``diag/hypergrad_cosine``, ``diag/hypergrad_rel_error``: the configured estimator against an
    implicit-CG reference (``cg_maxiter`` iterations) at the current weights — the gradient error
    MiLeNAS attributes to second-order approximations;
  * ``diag/hessian_eigenvalue``: the dominant eigenvalue of the Hessian of the validation loss with
    respect to alpha (power iteration on exact Hessian-vector products), which grows before DARTS
    collapses to skip connections (Zela et al., ICLR 2020).
  """
  components = with_mask(components, state.method_state)
  train = (data_lib.normalize(batches["train"][0], components.mean, components.std),
           batches["train"][1])
  val = (data_lib.normalize(batches["val"][0], components.mean, components.std), batches["val"][1])
  loss = lambda w, a, batch: supernet_loss(components, w, a, state.model_state, *batch)[0]
  problem = hypergrad.BilevelProblem(loss, loss)
  lr = components.weights_lr(state.step)
  estimator = components.arch_gradient
  estimate = lambda p, w, a, t, v: estimator(p, w, a, t, v, lr=lr,
                                             weights_opt_state=state.weights_opt_state)
  reference = hypergrad.ImplicitCG(maxiter=cg_maxiter, tol=1e-6, mixed_term="exact")
  error = diagnostics.hypergradient_error(problem, estimate, state.weights, state.arch, train, val,
                                          reference=reference)
  key = jax.random.wrap_key_data(state.key)
  eigenvalue, _ = diagnostics.dominant_hessian_eigenvalue(
      lambda arch: loss(state.weights, arch, val), state.arch, key=key,
      iterations=eigen_iterations)
  return {"diag/hypergrad_cosine": error["cosine_similarity"],
          "diag/hypergrad_rel_error": error["relative_error"],
          "diag/hessian_eigenvalue": eigenvalue}
