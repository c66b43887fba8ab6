"""Known-answer problems for testing hypergradients and search methods (float64 recommended).

``quadratic_bilevel()`` is the closed-form bilevel problem used across the test suite (estimators,
diagnostics) and available to users who test their own estimators:

  L_in(w, α; b)  = ½ wᵀ A w − wᵀ B α + wᵀ b          (A SPD ⇒ w*(α) = A⁻¹(Bα − b))
  L_out(w, α; c) = ½ ‖w − c‖² + ½ αᵀ D α

with the true hypergradient  d/dα L_out(w*(α), α) = Bᵀ A⁻¹ (w* − c) + D α,  while the first-order
estimate at w* is D α. Weights and arch are dict pytrees (flattened: w ∈ R^n_w as
``{'a': (2,), 'b': (n_w − 2, 1)}``, α ∈ R^n_a as ``{'x': (2,), 'y': (n_a − 2,)}``), so estimators are
exercised on real pytrees. Call under ``jax.enable_x64(True)`` for 1e-8-level comparisons.
"""
from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from jaxnas import hypergrad


def random_spd(rng: np.random.Generator, n: int, low: float, high: float) -> np.ndarray:
  """A random symmetric positive definite matrix with eigenvalues uniform in [low, high]."""
  q, _ = np.linalg.qr(rng.normal(size=(n, n)))
  return (q * rng.uniform(low, high, size=n)) @ q.T


@dataclasses.dataclass(frozen=True, eq=False)
class QuadraticBilevel:
  """The quadratic bilevel problem of the module docstring, with its data and closed forms.

  Attributes: ``A`` (n_w × n_w, SPD), ``B`` (n_w × n_a), ``D`` (n_a × n_a, SPD), ``C`` (the outer
  batch c), ``BIAS`` (the inner batch b), ``ALPHA`` (a test point α).
  """
  A: np.ndarray
  B: np.ndarray
  D: np.ndarray
  C: np.ndarray
  BIAS: np.ndarray
  ALPHA: np.ndarray

  @property
  def n_w(self) -> int:
    return self.A.shape[0]

  @property
  def n_a(self) -> int:
    return self.D.shape[0]

  # ------------------------------------------------------------------ pytrees <-> vectors
  @staticmethod
  def w_vec(weights):
    """The weight pytree as one vector."""
    return jnp.concatenate([weights["a"], weights["b"].reshape(-1)])

  @staticmethod
  def a_vec(arch):
    """The architecture pytree as one vector."""
    return jnp.concatenate([arch["x"], arch["y"]])

  @staticmethod
  def weights(vec):
    """A weight pytree ``{'a': vec[:2], 'b': vec[2:] as a column}`` (float64 under x64)."""
    vec = jnp.asarray(vec, jnp.float64)
    return {"a": vec[:2], "b": vec[2:].reshape(-1, 1)}

  @staticmethod
  def arch(vec):
    """An architecture pytree ``{'x': vec[:2], 'y': vec[2:]}``."""
    vec = jnp.asarray(vec, jnp.float64)
    return {"x": vec[:2], "y": vec[2:]}

  # ------------------------------------------------------------------ losses and closed forms
  def inner(self, weights, arch, batch):
    """L_in(w, α; b) = ½ wᵀAw − wᵀBα + wᵀb."""
    w, a = self.w_vec(weights), self.a_vec(arch)
    # Explicit dtypes: JAX may reuse a float64 device copy of these numpy constants made while
    # x64 was on (tests toggle it), which strict promotion would then reject.
    return (0.5 * w @ jnp.asarray(self.A, w.dtype) @ w - w @ jnp.asarray(self.B, w.dtype) @ a
            + w @ batch)

  def outer(self, weights, arch, batch):
    """L_out(w, α; c) = ½‖w − c‖² + ½ αᵀDα."""
    w, a = self.w_vec(weights), self.a_vec(arch)
    return 0.5 * jnp.sum(jnp.square(w - batch)) + 0.5 * a @ jnp.asarray(self.D, a.dtype) @ a

  @property
  def problem(self) -> hypergrad.BilevelProblem:
    return hypergrad.BilevelProblem(self.inner, self.outer)

  def w_star(self, alpha: np.ndarray | None = None) -> np.ndarray:
    """The inner solution w*(α) = A⁻¹(Bα − b)."""
    alpha = self.ALPHA if alpha is None else alpha
    return np.linalg.solve(self.A, self.B @ alpha - self.BIAS)

  def true_hypergradient(self, alpha: np.ndarray | None = None) -> np.ndarray:
    """d/dα L_out(w*(α), α) = Bᵀ A⁻¹ (w* − c) + D α."""
    alpha = self.ALPHA if alpha is None else alpha
    return self.B.T @ np.linalg.solve(self.A, self.w_star(alpha) - self.C) + self.D @ alpha


def quadratic_bilevel(seed: int = 0, n_w: int = 5, n_a: int = 3) -> QuadraticBilevel:
  """A random instance: eig(A) ∈ [1, 3] (so SGD/Neumann steps γ < 2/3 converge), eig(D) ∈ [0.5, 1.5]."""
  if n_w < 3 or n_a < 3:
    raise ValueError(f"quadratic_bilevel needs n_w >= 3 and n_a >= 3 (two leaves each), got "
                     f"n_w={n_w}, n_a={n_a}.")
  rng = np.random.default_rng(seed)
  a = random_spd(rng, n_w, 1.0, 3.0)
  b = rng.normal(size=(n_w, n_a))
  d = random_spd(rng, n_a, 0.5, 1.5)
  return QuadraticBilevel(A=a, B=b, D=d, C=rng.normal(size=n_w), BIAS=rng.normal(size=n_w),
                          ALPHA=rng.normal(size=n_a))
