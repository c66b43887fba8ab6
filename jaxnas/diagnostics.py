r"""Diagnostics of a differentiable architecture search: hypergradient error and Hessian spectrum.

Pure, ``jit``-able functions with no NAS knowledge (``weights`` and ``arch`` are arbitrary pytrees):

* :func:`hypergradient_error` measures how far an approximate hypergradient (first-order, DARTS'
  finite difference, truncated Neumann, ...) is from a high-accuracy implicit-function-theorem
  reference, the measurement behind MiLeNAS' argument that second-order approximations carry
  gradient error (He et al., CVPR 2020).
* :func:`dominant_hessian_eigenvalue` (power iteration) and :func:`lanczos_hessian_eigenvalues`
  estimate the curvature :math:`\nabla^2_\alpha L_{val}` of the validation loss w.r.t. the
  architecture, whose dominant eigenvalue grows before DARTS collapses to parameter-free (skip)
  operations (Zela et al., "Understanding and Robustifying Differentiable Architecture Search",
  ICLR 2020).

The callables (``problem``, ``estimator``, ``loss_fn``) are Python objects: close over them (e.g.
``jax.jit(functools.partial(hypergradient_error, problem, estimator))``) and pass the arrays as
arguments. Every Hessian-vector product is exact (``jvp`` of ``grad``); no Hessian is materialised.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jaxnas.hypergrad import _tree
from jaxnas.hypergrad._estimators import BilevelProblem, HypergradEstimator, ImplicitCG

PyTree = Any

# High-accuracy reference of :func:`hypergradient_error`: CG to a 1e-10 relative residual.
DEFAULT_REFERENCE = ImplicitCG(maxiter=1000, damping=0.0, tol=1e-10)


def _widest_dtype(*trees) -> Any:
  """The widest float dtype of the leaves (float32 when only 16-bit floats of different kinds mix).

  Chosen by item size, not ``jnp.promote_types``, so that mixed-precision trees (e.g. float32 and
  bfloat16 leaves) work under ``jax_numpy_dtype_promotion='strict'``.
  """
  dtypes = {jnp.dtype(jnp.result_type(leaf)) for tree in trees for leaf in jax.tree.leaves(tree)}
  if not dtypes:
    raise ValueError("Empty pytree.")
  if len(dtypes) == 1:
    return dtypes.pop()
  widest = max(dtypes, key=lambda d: d.itemsize)
  return widest if widest.itemsize > 2 else jnp.dtype(jnp.float32)


def _vdot(x: PyTree, y: PyTree) -> jax.Array:
  r"""Global inner product :math:`\langle x, y\rangle = \sum_\ell \sum_i x_{\ell i} y_{\ell i}`."""
  if jax.tree.structure(x) != jax.tree.structure(y):
    raise ValueError(f"Pytree structures differ: {jax.tree.structure(x)} vs "
                     f"{jax.tree.structure(y)}.")
  dtype = _widest_dtype(x, y)
  parts = [jnp.vdot(a.astype(dtype), b.astype(dtype)) for a, b in
           zip(jax.tree.leaves(x), jax.tree.leaves(y))]
  return functools.reduce(jnp.add, parts)


def _norm(x: PyTree) -> jax.Array:
  """Global Euclidean norm over all leaves, accumulated in :func:`_widest_dtype`."""
  return jnp.sqrt(_vdot(x, x))


# --------------------------------------------------------------------------- hypergradient error


def hypergradient_error(problem: BilevelProblem, estimator: HypergradEstimator, weights: PyTree,
                        arch: PyTree, inner_batch: Any, outer_batch: Any, *,
                        reference: HypergradEstimator | None = None) -> dict[str, jax.Array]:
  r"""Error of an estimator's hypergradient against a high-accuracy reference.

  With :math:`g` = ``estimator(problem, weights, arch, inner_batch, outer_batch)`` and
  :math:`g_{ref}` = ``reference(...)`` at the same point and batches, and global norms/inner
  products over all pytree leaves,

  .. math::
    \cos(g, g_{ref}) = \frac{\langle g, g_{ref}\rangle}{\|g\|\,\|g_{ref}\|},\qquad
    \mathrm{rel\_err} = \frac{\|g - g_{ref}\|}{\|g_{ref}\|}.

  The default reference is the implicit-function-theorem hypergradient
  :math:`\nabla_\alpha L_{out} - \nabla^2_{\alpha w} L_{in} H^{-1} \nabla_w L_{out}` with the
  inverse-Hessian product solved by CG to a relative residual of 1e-10 (``DEFAULT_REFERENCE``).
  It is the true hypergradient only where ``weights`` ≈ :math:`w^*(\alpha)` and
  :math:`H = \nabla^2_{ww} L_{in}` is SPD; elsewhere pass another ``reference`` (e.g. a long
  ``Unrolled``). This is the measurement behind MiLeNAS' claim (He et al., CVPR 2020, Sec. 3) that
  DARTS' second-order approximation carries gradient error.

  Args:
    problem: the bilevel problem.
    estimator: the estimator under test, ``est(problem, weights, arch, inner_batch, outer_batch)``.
    weights, arch: the point (pytrees).
    inner_batch, outer_batch: batches of the inner and outer loss (shared by both estimators).
    reference: the reference estimator; ``None`` means ``DEFAULT_REFERENCE``.
  Returns:
    ``{'cosine_similarity', 'relative_error', 'norm', 'reference_norm'}``, scalars in the widest
    dtype of the two gradients (``norm`` = :math:`\|g\|`, ``reference_norm`` =
    :math:`\|g_{ref}\|`). Undefined (inf/nan) when a norm is zero.
  """
  reference = DEFAULT_REFERENCE if reference is None else reference
  g = estimator(problem, weights, arch, inner_batch, outer_batch)
  g_ref = reference(problem, weights, arch, inner_batch, outer_batch)
  dtype = _widest_dtype(g, g_ref)
  g = jax.tree.map(lambda x: x.astype(dtype), g)
  g_ref = jax.tree.map(lambda x: x.astype(dtype), g_ref)
  norm, ref_norm = _norm(g), _norm(g_ref)
  return {
      "cosine_similarity": _vdot(g, g_ref) / (norm * ref_norm),
      "relative_error": _norm(_tree.sub(g, g_ref)) / ref_norm,
      "norm": norm,
      "reference_norm": ref_norm,
  }


# --------------------------------------------------------------------------- Hessian spectrum


def _hvp_fn(loss_fn: Callable[[PyTree], jax.Array], arch: PyTree) -> Callable[[PyTree], PyTree]:
  r"""``v ↦ ∇²_α loss(α) v`` at ``arch``: forward-over-reverse (``jvp`` of ``grad``), exact."""
  grad_fn = jax.grad(loss_fn)
  return lambda v: jax.jvp(grad_fn, (arch,), (v,))[1]


def _normalize(v: PyTree, fallback: PyTree) -> PyTree:
  """``v / ‖v‖``, or ``fallback`` (already unit) when ``v`` is exactly zero."""
  norm = _norm(v)
  safe = jnp.where(norm > 0, norm, jnp.ones_like(norm))
  return jax.tree.map(lambda a, b: jnp.where(norm > 0, a / safe.astype(a.dtype), b), v, fallback)


def _random_unit(key: jax.Array, like: PyTree) -> PyTree:
  """A standard-normal pytree shaped like ``like`` (each leaf its own key), globally normalised."""
  leaves, treedef = jax.tree.flatten(like)
  keys = jax.random.split(key, len(leaves))
  v = treedef.unflatten([jax.random.normal(k, jnp.shape(x), jnp.result_type(x))
                         for k, x in zip(keys, leaves)])
  return _tree.scale(1.0 / _norm(v), v)


def dominant_hessian_eigenvalue(loss_fn: Callable[[PyTree], jax.Array], arch: PyTree, *,
                                key: jax.Array, iterations: int = 20
                                ) -> tuple[jax.Array, PyTree]:
  r"""Largest-magnitude eigenvalue of :math:`\nabla^2_\alpha L(\alpha)` by power iteration.

  .. math::
    v_0 = \xi / \|\xi\|,\ \xi \sim \mathcal N(0, I);\qquad
    v_{k+1} = \frac{H v_k}{\|H v_k\|}\ (k < K);\qquad
    \lambda = v_K^\top H v_K \ \text{(Rayleigh quotient)},\quad H = \nabla^2_\alpha L(\alpha)

  with exact Hessian-vector products (``jvp`` of ``grad``, K + 1 of them) inside a
  ``lax.fori_loop``. Power iteration converges to the eigenvalue of largest **magnitude**
  :math:`|\lambda_1|`, so a dominant negative eigenvalue is returned as such (and then the iterate
  flips sign every step; compare eigenvectors up to sign). The eigenvector error decays like
  :math:`|\lambda_2/\lambda_1|^K`, the Rayleigh quotient's like :math:`|\lambda_2/\lambda_1|^{2K}`;
  there is no convergence when :math:`\lambda_2 = -\lambda_1`. If :math:`H v_k = 0` the iterate is
  kept (it lies in the null space, and λ = 0).

  For the validation loss of a supernet w.r.t. the architecture parameters, the growth of this
  eigenvalue precedes DARTS' collapse to skip connections and poor generalisation (Zela et al.,
  "Understanding and Robustifying Differentiable Architecture Search", ICLR 2020, who use its
  increase as an early-stopping signal).

  Args:
    loss_fn: ``loss_fn(arch) -> scalar`` (close over weights and batch).
    arch: the point, a pytree of float arrays.
    key: PRNG key of the random start.
    iterations: K, number of power steps (a Python int, or a traced integer: the loop is then a
      ``while_loop``, not reverse-differentiable).
  Returns:
    ``(eigenvalue, eigenvector)``: a scalar and a unit-norm pytree shaped like ``arch``.
  """
  hvp = _hvp_fn(loss_fn, arch)
  v0 = _random_unit(key, arch)
  v = jax.lax.fori_loop(0, iterations, lambda _, v: _normalize(hvp(v), v), v0)
  return _vdot(v, hvp(v)), v


def lanczos_hessian_eigenvalues(loss_fn: Callable[[PyTree], jax.Array], arch: PyTree, *,
                                key: jax.Array, iterations: int = 20) -> jax.Array:
  r"""Ritz values of :math:`\nabla^2_\alpha L(\alpha)` by Lanczos with full reorthogonalisation.

  With :math:`H = \nabla^2_\alpha L` acting on the flattened arch (dimension n) and
  :math:`m = \min(K, n)` steps:

  .. math::
    q_1 = \xi/\|\xi\|,\quad r_j = H q_j - \beta_{j-1} q_{j-1} - \alpha_j q_j,\quad
    \alpha_j = q_j^\top H q_j,\quad \beta_j = \|r_j\|,\quad q_{j+1} = r_j / \beta_j,

  with :math:`r_j` re-orthogonalised against all previous :math:`q_i` (twice, classical
  Gram-Schmidt), and the eigenvalues of the tridiagonal
  :math:`T_m = \mathrm{tridiag}(\beta, \alpha, \beta)` returned. On breakdown
  (:math:`\beta_j \le 10\, n\, \epsilon_{mach} \max_i \|Hq_i\|`, an invariant subspace), the
  iteration restarts from a fresh random vector orthogonal to the basis and :math:`\beta_j = 0`,
  so for m = n the Ritz values are the whole spectrum. The Ritz values lie inside the spectrum
  (:math:`\lambda_{min} \le` ``ritz[0]``, ``ritz[-1]`` :math:`\le \lambda_{max}`) and the extreme
  ones converge much faster than power iteration.
  Memory: m flattened copies of ``arch`` (meant for architecture parameters, not weights).

  Args:
    loss_fn: ``loss_fn(arch) -> scalar``.
    arch: the point, a pytree of float arrays.
    key: PRNG key of the random start (and of restarts).
    iterations: K, the number of Lanczos steps (static; clipped to n).
  Returns:
    The m Ritz values in ascending order (dtype of the flattened arch). The largest-magnitude one
    is ``ritz[jnp.argmax(jnp.abs(ritz))]``.
  """
  flat, unravel = ravel_pytree(arch)
  n = flat.shape[0]
  m = min(int(iterations), n)
  if m < 1:
    raise ValueError(f"Lanczos needs iterations >= 1 and a non-empty arch, got m={m}.")
  dtype = flat.dtype
  hvp_tree = _hvp_fn(loss_fn, arch)
  hvp = lambda q: ravel_pytree(hvp_tree(unravel(q)))[0].astype(dtype)  # noqa: E731
  tiny = jnp.asarray(10.0 * n * jnp.finfo(dtype).eps, dtype)

  def orthogonalize(r, basis):  # basis rows beyond the filled ones are zero, so harmless
    for _ in range(2):
      r = r - basis.T @ (basis @ r)
    return r

  def body(j, carry):
    basis, alphas, betas, q_prev, beta_prev, scale = carry
    q = basis[j]
    hq = hvp(q)
    scale = jnp.maximum(scale, jnp.linalg.norm(hq))
    alpha = jnp.vdot(q, hq)
    r = orthogonalize(hq - alpha * q - beta_prev * q_prev, basis)
    beta = jnp.linalg.norm(r)
    broke = beta <= tiny * scale
    fresh = orthogonalize(jax.random.normal(jax.random.fold_in(key, j + 1), (n,), dtype), basis)
    r = jnp.where(broke, fresh, r)
    beta = jnp.where(broke, jnp.zeros_like(beta), beta)
    q_next = r / jnp.linalg.norm(r)
    # The last step's q_next is not stored (there is no row m).
    stored = jax.lax.dynamic_update_index_in_dim(basis, q_next, jnp.minimum(j + 1, m - 1), 0)
    basis = jnp.where(j + 1 < m, stored, basis)
    return (basis, alphas.at[j].set(alpha), betas.at[j].set(beta), q, beta, scale)

  q0 = jax.random.normal(key, (n,), dtype)
  basis = jnp.zeros((m, n), dtype).at[0].set(q0 / jnp.linalg.norm(q0))
  zero = jnp.zeros((), dtype)
  carry = (basis, jnp.zeros((m,), dtype), jnp.zeros((m,), dtype), jnp.zeros((n,), dtype), zero,
           zero)
  _, alphas, betas, _, _, _ = jax.lax.fori_loop(0, m, body, carry)
  off = betas[:-1]
  tridiag = jnp.diag(alphas) + jnp.diag(off, 1) + jnp.diag(off, -1)
  return jnp.linalg.eigvalsh(tridiag)
