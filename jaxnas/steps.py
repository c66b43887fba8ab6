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
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxnas import diagnostics
from jaxnas import hypergrad
from jaxnas import supernet
from jaxnas.optim.mirror_descent import entropy_regularizer
from jaxnas import data as data_lib
from jaxnas.parametrize import Parametrization
from jaxnas.state import SearchState

STEP_ORDERS = ("arch_first", "weights_first")


@dataclasses.dataclass(frozen=True)
class SearchComponents:
  """The static pieces a step closes over (built once from the config, never traced)."""
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
  arch_every: int = 1        # an alpha step every k steps (iDARTS: T weight steps per alpha step)
  entropy_reg: float = 0.0   # GAEA: lambda * sum(alpha log(alpha n)) added to the alpha objective
  steps_per_epoch: int = 0   # for methods whose schedules count epochs (DARTS-PRIME's prox ramp)
  # The supernet forward's dtype: 'float32' | 'bfloat16' (float32 master weights, BN statistics and
  # logits; see jaxnas.supernet). Used by supernet_loss (every gradient) and eval_step.
  compute_dtype: str = "float32"


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


def arch_update(components: SearchComponents, state: SearchState, train_batch, val_batch, lr,
                arch_regularizer: Callable[[Any], jax.Array] | None = None):
  """Alpha step: ``alpha <- ArchOpt(alpha, g_alpha)`` with the configured hypergradient.

  The first-order gradient comes with the validation forward's BN statistics and metrics from one
  pass; other estimators get the bilevel problem (inner = training loss on the step's training
  batch, outer = validation loss) and the metrics come from one extra validation forward.
  ``arch_regularizer(arch) -> scalar`` (optional, e.g. DARTS-PRIME's prox / ADMM terms) is added
  to the alpha objective: its gradient joins ``g_alpha`` and its value is reported as
  ``'arch/regularizer'``.
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
  if components.entropy_reg:
    g_reg = jax.grad(entropy_regularizer)(state.arch)
    g_arch = jax.tree.map(lambda g, r: g + components.entropy_reg * r, g_arch, g_reg)
  metrics = {"val/loss": loss, "val/accuracy": acc}
  if arch_regularizer is not None:
    reg, g_reg = jax.value_and_grad(arch_regularizer)(state.arch)
    g_arch = jax.tree.map(jnp.add, g_arch, g_reg)
    metrics["arch/regularizer"] = reg
  updates, arch_opt_state = components.arch_tx.update(g_arch, state.arch_opt_state, state.arch)
  state = state.replace(arch=optax.apply_updates(state.arch, updates),
                        arch_opt_state=arch_opt_state, model_state=model_state)
  return state, metrics


def arch_step_due(step, arch_every: int, step_order: str):
  """Whether step ``step`` (0-based) takes an alpha step: every step for ``arch_every == 1``;
  otherwise one step in ``arch_every``, the first of each group with ``'arch_first'`` and the
  last with ``'weights_first'`` (iDARTS: T weight steps, then the alpha step,
  ``step % T == T - 1``). Works on Python / NumPy ints and traced arrays alike."""
  phase = 0 if step_order == "arch_first" else arch_every - 1
  return step % arch_every == phase


def maybe_arch_update(components: SearchComponents, state: SearchState, train_batch, val_batch,
                      lr):
  """The alpha step, or (every ``arch_every``-th step only, ``arch_step_due``) a no-op with NaN
  metrics."""
  if components.arch_every == 1:
    return arch_update(components, state, train_batch, val_batch, lr)
  due = arch_step_due(state.step, components.arch_every, components.step_order)
  skipped = {"val/loss": jnp.float32(jnp.nan), "val/accuracy": jnp.float32(jnp.nan)}
  return jax.lax.cond(due, lambda s: arch_update(components, s, train_batch, val_batch, lr),
                      lambda s: (s, skipped), state)


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


def search_step(state: SearchState, batches: dict[str, tuple[jax.Array, jax.Array]], *,
                components: SearchComponents) -> tuple[SearchState, dict[str, jax.Array]]:
  """One search step on ``batches = {'train': (uint8 images, labels), 'val': (...)}``."""
  key = jax.random.wrap_key_data(state.key)
  key, key_train, key_val = jax.random.split(key, 3)
  x_train = augment(components, key_train, batches["train"][0])
  x_val = augment(components, key_val, batches["val"][0])
  lr = components.weights_lr(state.step)
  train_batch, val_batch = (x_train, batches["train"][1]), (x_val, batches["val"][1])
  if components.step_order == "arch_first":
    state, arch_metrics = maybe_arch_update(components, state, train_batch, val_batch, lr)
    state, weight_metrics = weights_update(components, state, *train_batch)
  else:
    state, weight_metrics = weights_update(components, state, *train_batch)
    # The weight step moved the schedule on: the alpha step sees the next step's learning rate.
    state, arch_metrics = maybe_arch_update(components, state, train_batch, val_batch,
                                            components.weights_lr(state.step + 1))
  state = state.replace(step=state.step + 1, key=jax.random.key_data(key))
  return state, {**arch_metrics, **weight_metrics, "lr/weights": lr}


def eval_step(state: SearchState, images: jax.Array, labels: jax.Array, *,
              components: SearchComponents) -> dict[str, jax.Array]:
  """Sums of loss and correct predictions of the supernet (running BN statistics) on a batch."""
  x = data_lib.normalize(images, components.mean, components.std)
  mixing = components.parametrization.activate(state.arch)
  logits, _ = supernet.apply(components.module, state.weights, state.model_state, x, mixing,
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
