"""Architecture parametrizations: raw alpha <-> the mixing weights a supernet consumes.

Each parametrization is a small frozen object with ``init(key, shape)`` (the raw alpha of one
architecture leaf, rows = edges, last axis = operations) and ``activate(arch)`` (mixing weights for
a whole arch pytree). Adding one is a one-file change: a class here and a line in ``PARAMETRIZATIONS``.

* ``softmax`` (DARTS, MiLeNAS, iDARTS, RARTS): alpha ~ 1e-3 N(0, 1), mixing = softmax(alpha) per edge.
* ``simplex`` (GAEA): alpha lives on the product of simplices (uniform init 1/n per edge) and is
  used directly as mixing weights; exponentiated gradient keeps it there.
* ``clamp`` (Maile et al., "On Constrained Optimization in Differentiable NAS", arXiv 2106.11655,
  the "CRB" activation of k8lion/DARTS-PRIME ``model_admm_hard_statebn.py``): alpha ~ 1/n +
  1e-4 N(0, 1), mixing = clip(alpha, 0, 1) elementwise (no normalisation within an edge, so edges
  are comparable). Meant for an op set without ``none``; DARTS-PRIME's permanent pruning mask
  (alpha <= 0 after a weight step) lives in the method (``jaxnas.methods.darts_prime``).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class Parametrization:
  """Base class. Subclasses implement ``init_leaf`` and ``activate_leaf``."""
  name: str = ""

  def init(self, key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
    """Initial raw alpha of one architecture leaf of ``shape`` (..., num_ops)."""
    return self.init_leaf(key, tuple(shape), dtype)

  def activate(self, arch: Any) -> Any:
    """Mixing weights for every leaf of the ``arch`` pytree (rows along the last axis)."""
    return jax.tree.map(self.activate_leaf, arch)

  def init_leaf(self, key: jax.Array, shape: tuple[int, ...], dtype: Any) -> jax.Array:
    raise NotImplementedError

  def activate_leaf(self, alpha: jax.Array) -> jax.Array:
    raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class Softmax(Parametrization):
  """DARTS: ``alpha ~ init_scale * N(0, 1)``; ``mixing = softmax(alpha)`` over each edge's ops."""
  name: str = "softmax"
  init_scale: float = 1e-3

  def init_leaf(self, key, shape, dtype):
    return self.init_scale * jax.random.normal(key, shape, dtype)

  def activate_leaf(self, alpha):
    return jax.nn.softmax(alpha, axis=-1)


@dataclasses.dataclass(frozen=True)
class Simplex(Parametrization):
  """GAEA: alpha is a point of the simplex per edge (uniform init), used as mixing weights as is."""
  name: str = "simplex"

  def init_leaf(self, key, shape, dtype):
    del key
    return jnp.full(shape, 1.0 / shape[-1], dtype)

  def activate_leaf(self, alpha):
    return alpha


@dataclasses.dataclass(frozen=True)
class Clamp(Parametrization):
  """Maile et al.: ``alpha ~ 1/n + init_scale * N(0, 1)``; ``mixing = clip(alpha, 0, 1)``.

  The clip has zero gradient outside [0, 1]: an alpha above 1 gets no loss gradient (only the
  optimizer's L2 decay pulls it back), as ``torch.clamp`` in the reference.
  """
  name: str = "clamp"
  init_scale: float = 1e-4

  def init_leaf(self, key, shape, dtype):
    return 1.0 / shape[-1] + self.init_scale * jax.random.normal(key, shape, dtype)

  def activate_leaf(self, alpha):
    return jnp.clip(alpha, 0.0, 1.0)


PARAMETRIZATIONS: dict[str, Parametrization] = {
    "softmax": Softmax(),
    "simplex": Simplex(),
    "clamp": Clamp(),
}


def get(name: str) -> Parametrization:
  """The parametrization registered under ``name``; lists the valid names on error."""
  if name not in PARAMETRIZATIONS:
    raise ValueError(f"Unknown parametrization {name!r}; valid parametrizations: "
                     f"{', '.join(PARAMETRIZATIONS)}.")
  return PARAMETRIZATIONS[name]
