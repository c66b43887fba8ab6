"""Optimizers of the reference codes as optax chains, and their learning-rate schedules.

* ``sgd_pytorch``: PyTorch ``SGD(lr, momentum, weight_decay, nesterov)`` after
  ``clip_grad_norm_``: clip the raw loss gradient by global norm -> add ``wd * w`` (L2, not decoupled)
  -> momentum buffer ``b <- mu b + g`` (no dampening) -> ``w <- w - lr b`` (nesterov: ``g + mu b``).
* ``adam_l2``: PyTorch ``Adam(lr, betas, eps, weight_decay)``: ``g <- g + wd * a`` (L2 decay before
  Adam, not AdamW), then Adam with bias correction, ``a <- a - lr m_hat / (sqrt(v_hat) + eps)``.
* ``cosine_schedule``: PyTorch ``CosineAnnealingLR(T_max=epochs, eta_min)``,
  ``lr(e) = eta_min + (lr0 - eta_min)(1 + cos(pi e / epochs)) / 2``, constant within an epoch, the
  epoch ``e = step // steps_per_epoch + epoch_offset``: ``epoch_offset=1`` reproduces quark0/darts'
  ``scheduler.step()`` at the *start* of each epoch (epoch 0 already uses lr(1)); ``epoch_offset=0``
  an update at the end of each epoch (MiLeNAS, GAEA) and AutoDL's ``w_scheduler.update(epoch, 0.0)``
  at the start (its ``CosineAnnealingLR.get_lr`` reads only the epoch once warm-up is over).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxnas.optim.mirror_descent import entropy_regularizer as entropy_regularizer
from jaxnas.optim.mirror_descent import exponentiated_gradient as exponentiated_gradient
from jaxnas.optim.mirror_descent import project_to_simplex as project_to_simplex


def cosine_schedule(base_lr: float, min_lr: float, epochs: int, steps_per_epoch: int, *,
                    epoch_offset: int = 0) -> optax.Schedule:
  r"""The cosine-annealing learning rate per epoch, as a function of the optimizer step count.

  .. math::
    e = \min(\lfloor \mathrm{count} / \mathrm{steps\_per\_epoch} \rfloor + \mathrm{epoch\_offset},
    \mathrm{epochs}),\qquad
    \mathrm{lr} = \mathrm{min\_lr} + (\mathrm{base\_lr} - \mathrm{min\_lr})
    \tfrac{1}{2}(1 + \cos(\pi e / \mathrm{epochs}))

  Reference: Loshchilov & Hutter, "SGDR", ICLR 2017 (without restarts); PyTorch
  ``CosineAnnealingLR`` as stepped by quark0/darts (``epoch_offset=1``), MiLeNAS, GAEA, AutoDL
  ``xautodl/procedures/optimizers.py`` (``epoch_offset=0``).
  """
  if epochs <= 0 or steps_per_epoch <= 0:
    raise ValueError(f"cosine_schedule needs epochs > 0 and steps_per_epoch > 0, got {epochs} "
                     f"and {steps_per_epoch}.")

  def schedule(count):
    epoch = (count // steps_per_epoch + epoch_offset).astype(jnp.float32)
    epoch = jnp.minimum(epoch, float(epochs))
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + jnp.cos(jnp.pi * epoch / epochs))

  return schedule


def sgd_pytorch(learning_rate: optax.ScalarOrSchedule, *, momentum: float = 0.9,
                weight_decay: float = 3e-4, clip_norm: float | None = 5.0,
                nesterov: bool = False) -> optax.GradientTransformation:
  """PyTorch SGD with momentum and L2 weight decay, after gradient-norm clipping (DARTS' w step).

  The result is ``chain(clip_by_global_norm, body)`` with ``body = sgd_body(...)`` when
  ``clip_norm`` is set, else ``body`` itself; ``unclipped_state`` returns the body's state, which
  the second-order hypergradients continue (DARTS' virtual step uses momentum and decay, no clip).
  """
  body = sgd_body(learning_rate, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
  return optax.chain(optax.clip_by_global_norm(clip_norm), body) if clip_norm else body


def sgd_body(learning_rate: optax.ScalarOrSchedule, *, momentum: float = 0.9,
             weight_decay: float = 3e-4, nesterov: bool = False) -> optax.GradientTransformation:
  """PyTorch SGD without clipping: add ``wd * w`` -> momentum (or nesterov) -> ``-lr``."""
  parts = [optax.add_decayed_weights(weight_decay)] if weight_decay else []
  parts.append(optax.sgd(learning_rate, momentum=momentum or None, nesterov=nesterov))
  return optax.chain(*parts)


def unclipped_state(opt_state, clipped: bool):
  """The ``sgd_body`` state inside the state of ``sgd_pytorch`` (see there)."""
  return opt_state[1] if clipped else opt_state


def momentum_buffer(opt_state) -> Any:
  """The momentum buffer (``optax.TraceState.trace``) inside an optax state, or None."""
  if isinstance(opt_state, optax.TraceState):
    return opt_state.trace
  if isinstance(opt_state, tuple):
    for sub in opt_state:
      found = momentum_buffer(sub)
      if found is not None:
        return found
  return None


def adam_l2(learning_rate: optax.ScalarOrSchedule, *, b1: float = 0.5, b2: float = 0.999,
            eps: float = 1e-8, weight_decay: float = 1e-3) -> optax.GradientTransformation:
  """PyTorch Adam with L2 weight decay added to the gradient (DARTS' alpha optimizer)."""
  parts = [optax.add_decayed_weights(weight_decay)] if weight_decay else []
  parts += [scale_by_adam(b1, b2, eps), optax.scale_by_learning_rate(learning_rate)]
  return optax.chain(*parts)


class ScaleByAdamState(NamedTuple):
  """State of ``scale_by_adam``."""
  count: jax.Array  # shape=(), dtype=int32: number of updates so far
  mu: Any           # first moments, like params
  nu: Any           # second moments, like params


def scale_by_adam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
                  ) -> optax.GradientTransformation:
  r"""Adam's rescaling with bias correction, as PyTorch computes it.

  .. math::
    m_t = b_1 m_{t-1} + (1 - b_1) g_t,\quad v_t = b_2 v_{t-1} + (1 - b_2) g_t^2,\quad
    u_t = \frac{m_t / (1 - b_1^t)}{\sqrt{v_t / (1 - b_2^t)} + \epsilon}

  Same result as ``optax.scale_by_adam``; written here because optax's bias correction raises
  ``b ** count`` with an integer count, which ``jax_numpy_dtype_promotion='strict'`` rejects.
  """
  def init_fn(params):
    zeros = jax.tree.map(jnp.zeros_like, params)
    return ScaleByAdamState(jnp.zeros([], jnp.int32), zeros, jax.tree.map(jnp.zeros_like, params))

  def update_fn(updates, state, params=None):
    del params
    count = state.count + 1
    t = count.astype(jnp.float32)
    mu = jax.tree.map(lambda m, g: b1 * m + (1.0 - b1) * g, state.mu, updates)
    nu = jax.tree.map(lambda v, g: b2 * v + (1.0 - b2) * g * g, state.nu, updates)
    c1, c2 = 1.0 - b1**t, 1.0 - b2**t
    new = jax.tree.map(lambda m, v: (m / c1) / (jnp.sqrt(v / c2) + eps), mu, nu)
    return new, ScaleByAdamState(count, mu, nu)

  return optax.GradientTransformation(init_fn, update_fn)
