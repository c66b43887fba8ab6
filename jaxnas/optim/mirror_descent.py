r"""Mirror descent on products of simplices as optax transforms (GAEA, Li et al., ICLR 2021).

Each leaf of the architecture pytree is a stack of probability vectors along ``axis`` (the last by
default): every row lies on the simplex :math:`\Delta^{n-1}`. Mirror descent with mirror map
:math:`\phi` takes :math:`\theta \leftarrow \nabla\phi^*(\nabla\phi(\theta) - \eta g)` followed by the
Bregman projection onto the simplex:

* **entropic** map :math:`\phi(\theta) = \sum_i \theta_i\log\theta_i` gives the exponentiated
  gradient :math:`\theta \leftarrow \theta \odot e^{-\eta g} / \lVert\theta \odot e^{-\eta g}\rVert_1`.
  GAEA's reference clamps before it normalizes,
  :math:`\theta \leftarrow \mathrm{normalize}(\max(\theta \odot e^{-\eta g}, \text{floor}))`, which
  keeps every entry alive (``floor=1e-5``); ``floor=0`` gives exact EG. The floor may differ per
  leaf (``floor`` a function of the leaf's key path): GAEA PC-DARTS floors the op weights alpha
  at 1e-5 but renormalises the edge weights beta per node with no floor (liamcli/gaea_release
  ``cnn/architect/architect_edarts.py:119-134``: ``normalize(p, -1)`` with ``min_v=1e-5`` for
  alpha, ``p / node_sum`` for the edges, the clamp commented out);
* **euclidean** map :math:`\phi = \tfrac12\lVert\theta\rVert^2` gives projected gradient descent,
  :math:`\theta \leftarrow \Pi_\Delta(\theta - \eta g)` (sort-based Euclidean projection).

The transforms need ``params`` (they return ``new - params`` as the update, so ``optax.apply_updates``
lands exactly on the new point), accept schedules, and compose with ``optax.chain`` (e.g. gradient
clipping first).
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Union

import jax
import jax.numpy as jnp
import optax

MIRROR_MAPS = ("entropic", "euclidean")
# A floor for every leaf, or a function of a leaf's key path (jax.tree_util) giving its floor.
Floor = Union[float, Callable[[tuple], float]]


class MirrorDescentState(NamedTuple):
  """State of ``mirror_descent``."""
  count: jax.Array  # shape=(), dtype=int32: number of updates so far


def project_to_simplex(x: jax.Array, axis: int = -1) -> jax.Array:
  r"""Euclidean projection of every row onto the simplex (Duchi et al., ICML 2008).

  :math:`\Pi(x)_i = \max(x_i - \tau, 0)` with :math:`\tau` chosen so the row sums to one.
  """
  x = jnp.moveaxis(x, axis, -1)
  n = x.shape[-1]
  u = -jnp.sort(-x, axis=-1)
  css = jnp.cumsum(u, axis=-1) - 1.0
  ks = jnp.arange(1, n + 1, dtype=x.dtype).reshape((1,) * (x.ndim - 1) + (n,))
  active = u - css / ks > 0
  rho = jnp.sum(active.astype(jnp.int32), axis=-1, keepdims=True)
  tau = jnp.take_along_axis(css, rho - 1, axis=-1) / rho.astype(x.dtype)
  return jnp.moveaxis(jnp.maximum(x - tau, 0.0), -1, axis)


def _entropic_step(theta, g, lr, floor, axis):
  scaled = theta * jnp.exp(-lr * g)
  clamped = jnp.maximum(scaled, floor) if floor > 0 else scaled
  return clamped / jnp.sum(clamped, axis=axis, keepdims=True)


def _euclidean_step(theta, g, lr, floor, axis):
  projected = project_to_simplex(theta - lr * g, axis)
  if floor > 0:
    projected = jnp.maximum(projected, floor)
    projected = projected / jnp.sum(projected, axis=axis, keepdims=True)
  return projected


_STEPS = {"entropic": _entropic_step, "euclidean": _euclidean_step}


def _leaf_floor(floor: Floor, path: tuple) -> float:
  value = float(floor(path) if callable(floor) else floor)
  if not 0.0 <= value < 1.0:
    raise ValueError(f"mirror-descent floor must be in [0, 1), got {value} for the leaf at "
                     f"{jax.tree_util.keystr(path) or 'the root'}; use e.g. 1e-5 (or 0 for none).")
  return value


def mirror_descent(learning_rate: optax.ScalarOrSchedule, mirror_map: str = "entropic", *,
                   floor: Floor = 0.0, axis: int = -1) -> optax.GradientTransformation:
  """Mirror descent on the simplex rows (along ``axis``) of every leaf.

  Args:
    learning_rate: a float or an optax schedule of the update count.
    mirror_map: ``'entropic'`` (exponentiated gradient) or ``'euclidean'`` (projected gradient).
    floor: entries are clamped to at least ``floor`` before renormalising (0 = no clamp); a float
      for every leaf, or a function of a leaf's key path returning that leaf's floor (e.g. GAEA
      PC-DARTS: 1e-5 for alpha, 0 for the edge weights beta).
    axis: the axis along which each leaf's rows are probability vectors.
  """
  if mirror_map not in _STEPS:
    raise ValueError(f"Unknown mirror map {mirror_map!r}; valid: {', '.join(MIRROR_MAPS)}.")
  step_fn = _STEPS[mirror_map]
  if not callable(floor):
    _leaf_floor(floor, ())

  def init_fn(params):
    del params
    return MirrorDescentState(jnp.zeros([], jnp.int32))

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError("mirror_descent needs `params` (the current point on the simplex): call "
                       "tx.update(grads, state, params).")
    lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
    new = jax.tree_util.tree_map_with_path(
        lambda path, p, g: step_fn(p, g.astype(p.dtype), jnp.asarray(lr, p.dtype),
                                   _leaf_floor(floor, path), axis),
        params, updates)
    return (jax.tree.map(jnp.subtract, new, params),
            MirrorDescentState(optax.safe_increment(state.count)))

  return optax.GradientTransformation(init_fn, update_fn)


def exponentiated_gradient(learning_rate: optax.ScalarOrSchedule, floor: Floor = 1e-5,
                           axis: int = -1) -> optax.GradientTransformation:
  r"""GAEA's exponentiated gradient: :math:`\theta \leftarrow \mathrm{normalize}(\max(\theta e^{-\eta g},
  \text{floor}))` per simplex row (entropic mirror descent; clamp before normalize, as the reference).
  """
  return mirror_descent(learning_rate, "entropic", floor=floor, axis=axis)


def entropy_regularizer(arch: Any) -> jax.Array:
  r"""GAEA's entropic regularizer :math:`\sum \theta \log(\theta n)` (KL to uniform, summed over rows)."""
  def kl(theta):
    n = theta.shape[-1]
    return jnp.sum(theta * jnp.log(theta * n))
  return sum(kl(leaf) for leaf in jax.tree.leaves(arch))
