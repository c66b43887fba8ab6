"""Known-answer tests of jaxnas.diagnostics, in float64.

* Hessian spectrum: L(α) = ½ αᵀ Q diag(λ) Qᵀ α with a chosen λ and random orthogonal Q, α a dict
  pytree split across two leaves, so ∇²L = Q diag(λ) Qᵀ exactly.
* Hypergradient error: the quadratic bilevel problem ``jaxnas.testing.quadratic_bilevel``,
    L_in(w, α; b) = ½ wᵀ A w − wᵀ B α + wᵀ b,   L_out(w, α; c) = ½ ‖w − c‖² + ½ αᵀ D α,
  whose true hypergradient at w* = A⁻¹(Bα − b) is Bᵀ A⁻¹ (w* − c) + D α, while FirstOrder gives Dα.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas import diagnostics, hypergrad, testing


@pytest.fixture(autouse=True)
def _x64():
  with jax.enable_x64(True):
    yield


def _orthogonal(rng, n):
  q, _ = np.linalg.qr(rng.normal(size=(n, n)))
  return q


def _arch(vec):
  vec = jnp.asarray(vec, jnp.float64)
  return {"x": vec[:2], "y": vec[2:].reshape(-1, 1)}  # two leaves of different ranks


def _a_vec(arch):
  return jnp.concatenate([arch["x"], arch["y"].reshape(-1)])


def _hessian(spectrum, seed=0):
  """(H, Q) with H = Q diag(spectrum) Qᵀ for a random orthogonal Q."""
  q = _orthogonal(np.random.default_rng(seed), len(spectrum))
  return jnp.asarray((q * np.asarray(spectrum)) @ q.T), q


def _quadratic_loss(hess):
  return lambda arch: 0.5 * _a_vec(arch) @ hess @ _a_vec(arch)  # ∇²loss = hess


# H (and the power iteration count, a fori_loop bound) are traced, so each size compiles once.
@jax.jit
def _power(hess, arch, key, iterations):
  return diagnostics.dominant_hessian_eigenvalue(_quadratic_loss(hess), arch, key=key,
                                                 iterations=iterations)


@functools.partial(jax.jit, static_argnames="iterations")  # Lanczos needs a static step count
def _lanczos(hess, arch, key, iterations):
  return diagnostics.lanczos_hessian_eigenvalues(_quadratic_loss(hess), arch, key=key,
                                                 iterations=iterations)


POINT = np.random.default_rng(7).normal(size=4)  # the Hessian of a quadratic is the same anywhere


# --------------------------------------------------------------------------- power iteration


@pytest.mark.parametrize("spectrum,want_index", [((5.0, 2.0, 1.0, 0.5), 0),
                                                 ((2.0, -5.0, 1.0, 0.5), 1),   # negative dominant
                                                 ((0.5, 1.0, -2.0, 4.0), 3)])
def test_power_iteration_known_spectrum(spectrum, want_index):
  hess, q = _hessian(spectrum)
  value, vector = _power(hess, _arch(POINT), jax.random.PRNGKey(0), iterations=40)
  assert jax.tree.structure(vector) == jax.tree.structure(_arch(POINT))
  v = np.asarray(_a_vec(vector))
  np.testing.assert_allclose(float(value), spectrum[want_index], rtol=0, atol=1e-6)
  np.testing.assert_allclose(np.linalg.norm(v), 1.0, rtol=1e-12)
  assert abs(v @ q[:, want_index]) > 0.999


def test_power_iteration_is_not_trivially_converged():
  # With too few iterations from a random start the estimate is visibly off, so the test above
  # measures convergence (not, say, a start that happens to be the eigenvector).
  hess, q = _hessian((5.0, 4.5, 1.0, 0.5))
  value, vector = _power(hess, _arch(POINT), jax.random.PRNGKey(0), iterations=1)
  assert abs(float(value) - 5.0) > 1e-3
  assert abs(np.asarray(_a_vec(vector)) @ q[:, 0]) < 0.999


def test_power_iteration_zero_hessian():
  value, vector = _power(jnp.zeros((4, 4)), _arch(POINT), jax.random.PRNGKey(1), iterations=40)
  assert float(value) == 0.0
  np.testing.assert_allclose(np.linalg.norm(np.asarray(_a_vec(vector))), 1.0, rtol=1e-12)


# --------------------------------------------------------------------------- Lanczos


@pytest.mark.parametrize("spectrum", [(5.0, 2.0, 1.0, 0.5), (2.0, -5.0, 1.0, 0.5),
                                      (3.0, 3.0, -1.0, -1.0)])     # repeated: forces a restart
def test_lanczos_full_spectrum(spectrum):
  hess, _ = _hessian(spectrum, seed=3)
  ritz = np.asarray(_lanczos(hess, _arch(POINT), jax.random.PRNGKey(2), iterations=10))
  np.testing.assert_allclose(ritz, np.sort(spectrum), rtol=0, atol=1e-10)   # clipped to n = 4


def test_lanczos_full_spectrum_needs_reorthogonalisation():
  # n = 30 steps on a 30-dim problem: without reorthogonalisation, plain Lanczos loses orthogonality
  # and produces spurious copies of converged eigenvalues ("ghosts") instead of the spectrum.
  spectrum = np.concatenate([np.geomspace(1e-3, 1.0, 27), [5.0, 8.0, 10.0]])
  hess, _ = _hessian(spectrum, seed=6)
  point = _arch(np.random.default_rng(5).normal(size=30))
  ritz = np.asarray(_lanczos(hess, point, jax.random.PRNGKey(0), iterations=30))
  np.testing.assert_allclose(ritz, np.sort(spectrum), rtol=0, atol=1e-9)


def test_lanczos_zero_hessian_restarts():
  # H = 0: every residual is exactly zero, so each step must restart from a fresh random vector.
  ritz = np.asarray(_lanczos(jnp.zeros((4, 4)), _arch(POINT), jax.random.PRNGKey(0), iterations=4))
  np.testing.assert_array_equal(ritz, np.zeros(4))


def test_lanczos_extreme_ritz_values_converge_first():
  spectrum = np.linspace(-1.0, 10.0, 30)
  hess, _ = _hessian(spectrum, seed=4)
  point = _arch(np.random.default_rng(5).normal(size=30))
  ritz = np.asarray(_lanczos(hess, point, jax.random.PRNGKey(0), iterations=12))
  assert ritz.shape == (12,)
  assert spectrum[0] - 1e-12 <= ritz[0] and ritz[-1] <= spectrum[-1] + 1e-12   # interlacing
  np.testing.assert_allclose(ritz[-1], 10.0, atol=1e-3)


# --------------------------------------------------------------------------- hypergradient error


# The hypergradient-error tests use the shared quadratic bilevel problem.
QUAD = testing.quadratic_bilevel(seed=0)
A, B, D, C, BIAS, ALPHA = QUAD.A, QUAD.B, QUAD.D, QUAD.C, QUAD.BIAS, QUAD.ALPHA
PROBLEM = QUAD.problem
W_STAR = QUAD.w_star()
TRUE = QUAD.true_hypergradient()


def _error(est, reference=None, w=W_STAR):
  fn = jax.jit(functools.partial(diagnostics.hypergradient_error, PROBLEM, est,
                                 reference=reference))
  out = fn(QUAD.weights(w), QUAD.arch(ALPHA), jnp.asarray(BIAS), jnp.asarray(C))
  assert set(out) == {"cosine_similarity", "relative_error", "norm", "reference_norm"}
  return {k: float(v) for k, v in out.items()}


def test_implicit_cg_has_no_error_at_optimum():
  out = _error(hypergrad.ImplicitCG(maxiter=50))
  assert out["relative_error"] < 1e-8
  np.testing.assert_allclose(out["cosine_similarity"], 1.0, atol=1e-12)
  np.testing.assert_allclose(out["reference_norm"], np.linalg.norm(TRUE), rtol=1e-8)
  np.testing.assert_allclose(out["norm"], np.linalg.norm(TRUE), rtol=1e-8)


def test_first_order_error_matches_closed_form():
  g = D @ ALPHA                                   # FirstOrder ignores dw*/dα
  want_rel = np.linalg.norm(g - TRUE) / np.linalg.norm(TRUE)
  want_cos = g @ TRUE / (np.linalg.norm(g) * np.linalg.norm(TRUE))
  assert want_rel > 0.1                           # a non-degenerate problem: the test can fail
  out = _error(hypergrad.FirstOrder())
  np.testing.assert_allclose(out["relative_error"], want_rel, rtol=1e-8)
  np.testing.assert_allclose(out["cosine_similarity"], want_cos, rtol=1e-8)
  np.testing.assert_allclose(out["norm"], np.linalg.norm(g), rtol=1e-12)
  np.testing.assert_allclose(out["reference_norm"], np.linalg.norm(TRUE), rtol=1e-8)


def test_explicit_reference_and_converged_neumann():
  # Against itself the error is exactly zero; a long Neumann series agrees with the CG reference.
  out = _error(hypergrad.FirstOrder(), reference=hypergrad.FirstOrder())
  assert out["relative_error"] == 0.0
  np.testing.assert_allclose(out["cosine_similarity"], 1.0, rtol=1e-14)
  out = _error(hypergrad.ImplicitNeumann(terms=200, step=0.3))
  assert out["relative_error"] < 1e-8
