"""Small pytree helpers under strict dtype promotion (scalars are cast to each leaf's dtype)."""
from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp


def axpy(a: Any, x: Any, y: Any) -> Any:
  """``a * x + y`` leaf-wise, with the scalar ``a`` cast to each leaf's dtype."""
  return jax.tree.map(lambda xi, yi: jnp.asarray(a, xi.dtype) * xi + yi, x, y)


def scale(a: Any, x: Any) -> Any:
  """``a * x`` leaf-wise, with the scalar ``a`` cast to each leaf's dtype."""
  return jax.tree.map(lambda xi: jnp.asarray(a, xi.dtype) * xi, x)


def add(x: Any, y: Any) -> Any:
  """``x + y`` leaf-wise."""
  return jax.tree.map(jnp.add, x, y)


def sub(x: Any, y: Any) -> Any:
  """``x - y`` leaf-wise."""
  return jax.tree.map(jnp.subtract, x, y)


def global_norm(x: Any) -> jax.Array:
  """Euclidean norm over all leaves (PyTorch's ``torch.cat([g.view(-1) ...]).norm()``).

  Partial sums are cast to the widest leaf dtype, so mixed-precision trees work under strict
  promotion.
  """
  leaves = jax.tree.leaves(x)
  if not leaves:
    raise ValueError("global_norm of an empty pytree.")
  dtype = functools.reduce(jnp.promote_types, [leaf.dtype for leaf in leaves])
  total = sum(jnp.sum(jnp.square(leaf)).astype(dtype) for leaf in leaves)
  return jnp.sqrt(total)
