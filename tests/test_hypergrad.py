"""Closed-form oracles for jaxnas.hypergrad, in float64.

Quadratic bilevel problem (``jaxnas.testing.quadratic_bilevel``; weights and arch are dict pytrees,
flattened to w ∈ R^5, α ∈ R^3):
  L_in(w, α; b)  = ½ wᵀ A w − wᵀ B α + wᵀ b          (A SPD ⇒ w*(α) = A⁻¹(Bα − b))
  L_out(w, α; c) = ½ ‖w − c‖² + ½ αᵀ D α
True hypergradient: d/dα L_out(w*(α), α) = Bᵀ A⁻¹ (w* − c) + D α.
"""
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxnas import hypergrad
from jaxnas import testing

QUAD = testing.quadratic_bilevel(seed=0)
N_W, N_A = QUAD.n_w, QUAD.n_a
A, B, D, C, BIAS, ALPHA = QUAD.A, QUAD.B, QUAD.D, QUAD.C, QUAD.BIAS, QUAD.ALPHA
_w_vec, _a_vec, _weights, _arch = QUAD.w_vec, QUAD.a_vec, QUAD.weights, QUAD.arch
_inner, _outer = QUAD.inner, QUAD.outer


@pytest.fixture(autouse=True)
def _x64():
  with jax.enable_x64(True):
    yield


PROBLEM = QUAD.problem
W_STAR = QUAD.w_star()
TRUE = QUAD.true_hypergradient()


def _run(est, w_vec, inner_batch=None, problem=PROBLEM):
  inner_batch = jnp.asarray(BIAS) if inner_batch is None else inner_batch
  # jit (with the estimator closed over) is faster than eager op-by-op dispatch here.
  g = jax.jit(functools.partial(est, problem))(_weights(w_vec), _arch(ALPHA), inner_batch,
                                               jnp.asarray(C))
  assert jax.tree.structure(g) == jax.tree.structure(_arch(ALPHA))
  return np.asarray(_a_vec(g))


def _w_random():
  return np.random.default_rng(1).normal(size=N_W)


def test_problem_is_not_degenerate():
  # The first-order answer must differ from the true hypergradient, so the oracles below can fail.
  assert np.linalg.norm(TRUE - D @ ALPHA) > 0.1


def test_first_order():
  np.testing.assert_allclose(_run(hypergrad.FirstOrder(), _w_random()), D @ ALPHA, rtol=1e-12)


@pytest.mark.parametrize("lam", [1.0, 0.3])
def test_mixed_level(lam):
  w = _w_random()
  want = -B.T @ w + lam * (D @ ALPHA)
  np.testing.assert_allclose(_run(hypergrad.MixedLevel(lam=lam), w), want, rtol=1e-12)


def test_implicit_cg_matches_true_hypergradient():
  got = _run(hypergrad.ImplicitCG(maxiter=50), W_STAR)
  np.testing.assert_allclose(got, TRUE, rtol=0, atol=1e-8)


def test_implicit_cg_damping_and_off_optimum():
  # At any w the IFT formula is Dα + Bᵀ (A + δI)⁻¹ (w − c).
  w, delta = _w_random(), 0.5
  want = D @ ALPHA + B.T @ np.linalg.solve(A + delta * np.eye(N_W), w - C)
  got = _run(hypergrad.ImplicitCG(maxiter=50, damping=delta), w)
  np.testing.assert_allclose(got, want, rtol=0, atol=1e-8)


def _neumann_closed_form(w, terms, gamma):
  m = np.eye(N_W) - gamma * A
  s = gamma * sum(np.linalg.matrix_power(m, k) for k in range(terms + 1)) @ (w - C)
  return D @ ALPHA + B.T @ s


def test_implicit_neumann_closed_form_and_convergence():
  gamma, errors = 0.3, []
  for terms in (0, 3, 20, 200):
    got = _run(hypergrad.ImplicitNeumann(terms=terms, step=gamma), W_STAR)
    np.testing.assert_allclose(got, _neumann_closed_form(W_STAR, terms, gamma), rtol=1e-11)
    errors.append(np.linalg.norm(got - TRUE))
  assert all(e1 > e2 for e1, e2 in zip(errors, errors[1:])), errors
  assert errors[0] > 1e-2 and errors[-1] < 1e-8, errors


@pytest.mark.parametrize("cls,kwargs", [(hypergrad.ImplicitNeumann, dict(terms=200, step=0.3)),
                                        (hypergrad.ImplicitCG, dict(maxiter=50))])
def test_implicit_fd_mixed_term(cls, kwargs):
  exact = _run(cls(**kwargs), W_STAR)
  fd = _run(cls(mixed_term="fd", **kwargs), W_STAR)
  np.testing.assert_allclose(fd, exact, rtol=1e-6)


def _unrolled_closed_form(w0, lr, biases):
  m = np.eye(N_W) - lr * A
  w = w0
  for b in biases:
    w = w - lr * (A @ w - B @ ALPHA + b)
  jac = lr * sum(np.linalg.matrix_power(m, k) for k in range(len(biases))) @ B
  return jac.T @ (w - C) + D @ ALPHA


@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("checkpoint", [False, True])
def test_unrolled_closed_form(steps, checkpoint):
  w, lr = _w_random(), 0.3
  est = hypergrad.Unrolled(steps=steps, inner_optimizer=optax.sgd(lr), checkpoint=checkpoint)
  np.testing.assert_allclose(_run(est, w), _unrolled_closed_form(w, lr, [BIAS] * steps),
                             rtol=1e-11)


def test_unrolled_stacked_batches():
  w, lr, steps = _w_random(), 0.3, 4
  biases = np.random.default_rng(2).normal(size=(steps, N_W))
  est = hypergrad.Unrolled(steps=steps, inner_optimizer=optax.sgd(lr), stacked_batches=True)
  got = _run(est, w, inner_batch=jnp.asarray(biases))
  np.testing.assert_allclose(got, _unrolled_closed_form(w, lr, list(biases)), rtol=1e-11)
  with pytest.raises(ValueError, match="leading axis"):
    _run(hypergrad.Unrolled(steps=3, stacked_batches=True), w, inner_batch=jnp.asarray(biases))


def test_unrolled_long_horizon_approaches_implicit():
  est = hypergrad.Unrolled(steps=80, inner_optimizer=optax.sgd(0.3))
  np.testing.assert_allclose(_run(est, W_STAR), TRUE, rtol=0, atol=1e-8)


@pytest.mark.parametrize("weight_decay", [0.0, 3e-2])
def test_finite_difference_exact_equals_one_step_unroll(weight_decay):
  w, xi = _w_random(), 0.2
  exact = _run(hypergrad.FiniteDifference(xi=xi, mixed_term="exact", weight_decay=weight_decay), w)
  opt = optax.chain(optax.add_decayed_weights(weight_decay), optax.sgd(xi))
  unrolled = _run(hypergrad.Unrolled(steps=1, inner_optimizer=opt), w)
  np.testing.assert_allclose(exact, unrolled, rtol=1e-12)
  if weight_decay == 0.0:
    np.testing.assert_allclose(exact, _unrolled_closed_form(w, xi, [BIAS]), rtol=1e-12)
  fd = _run(hypergrad.FiniteDifference(xi=xi, weight_decay=weight_decay), w)
  np.testing.assert_allclose(fd, exact, rtol=1e-6)


def test_mixed_level_code_weighting():
  # MiLeNAS' official code weights the train term: g = λ ∂_α L_in + ∂_α L_out.
  w, lam = _w_random(), 0.3
  want = lam * (-B.T @ w) + D @ ALPHA
  got = _run(hypergrad.MixedLevel(lam=1.0, inner_weight=lam), w)
  np.testing.assert_allclose(got, want, rtol=1e-12)


def test_unrolled_with_live_momentum_state_equals_darts_virtual_step():
  w, xi, mu, wd = _w_random(), 0.2, 0.9, 3e-2
  m = np.random.default_rng(4).normal(size=N_W)
  opt = optax.chain(optax.add_decayed_weights(wd), optax.sgd(xi, momentum=mu))
  state = opt.init(_weights(w))
  state = (state[0], (state[1][0]._replace(trace=_weights(m)),) + tuple(state[1][1:]))
  est = hypergrad.Unrolled(steps=1, inner_optimizer=opt)
  got = jax.jit(lambda wt, a, b, c, s: est(PROBLEM, wt, a, b, c, inner_opt_state=s))(
      _weights(w), _arch(ALPHA), jnp.asarray(BIAS), jnp.asarray(C), state)
  w_virtual = w - xi * (mu * m + A @ w - B @ ALPHA + BIAS + wd * w)
  np.testing.assert_allclose(np.asarray(_a_vec(got)), D @ ALPHA + xi * B.T @ (w_virtual - C),
                             rtol=1e-9)


def test_finite_difference_momentum_buffer_darts_virtual_step():
  # DARTS: w' = w − ξ(μ m + ∇_w L_in + λ w), and g = Dα + ξ Bᵀ (w' − c) for the quadratic problem.
  w, xi, mu, wd = _w_random(), 0.2, 0.9, 3e-2
  m = np.random.default_rng(4).normal(size=N_W)
  w_virtual = w - xi * (mu * m + A @ w - B @ ALPHA + BIAS + wd * w)
  want = D @ ALPHA + xi * B.T @ (w_virtual - C)
  for mode in hypergrad.MIXED_TERMS:
    est = hypergrad.FiniteDifference(xi=xi, weight_decay=wd, momentum=mu,
                                     momentum_buffer=_weights(m), mixed_term=mode)
    np.testing.assert_allclose(_run(est, w), want, rtol=1e-9)


def _inner_nonquadratic(weights, arch, batch):
  w, a = _w_vec(weights), _a_vec(arch)
  return (0.5 * w @ jnp.asarray(A) @ w - jnp.tanh(w) @ jnp.asarray(B) @ jnp.sin(a)
          + jnp.sum(jnp.tanh(w * batch)))


def test_finite_difference_nonquadratic():
  # Off the quadratic case 'exact' is still exactly the one-step unroll, and 'fd' is O(eps²) close.
  problem = hypergrad.BilevelProblem(_inner_nonquadratic, _outer)
  w, xi = _w_random(), 0.2
  exact = _run(hypergrad.FiniteDifference(xi=xi, mixed_term="exact"), w, problem=problem)
  unrolled = _run(hypergrad.Unrolled(steps=1, inner_optimizer=optax.sgd(xi)), w, problem=problem)
  np.testing.assert_allclose(exact, unrolled, rtol=1e-12)
  fd = _run(hypergrad.FiniteDifference(xi=xi, eps=1e-3), w, problem=problem)
  np.testing.assert_allclose(fd, exact, rtol=1e-6)
  fd_coarse = _run(hypergrad.FiniteDifference(xi=xi, eps=1.0), w, problem=problem)
  assert not np.allclose(fd_coarse, exact, rtol=1e-6)  # the comparison above can fail


@pytest.mark.parametrize("steps,max_python_steps", [(1, 8), (3, 8), (3, 0)])
def test_unrolled_hvp_backward_equals_reverse_over_reverse(steps, max_python_steps):
  # The symmetric-Hessian VJP ('hvp', forward-over-reverse) against plain autodiff through the
  # steps ('reverse'), off the quadratic case, with momentum, in a Python loop and under lax.scan.
  problem = hypergrad.BilevelProblem(_inner_nonquadratic, _outer)
  opt = optax.chain(optax.add_decayed_weights(3e-2), optax.sgd(0.2, momentum=0.9))
  got = {mode: _run(hypergrad.Unrolled(steps=steps, inner_optimizer=opt, second_order=mode,
                                       max_python_steps=max_python_steps), _w_random(),
                    problem=problem)
         for mode in hypergrad.SECOND_ORDER_MODES}
  np.testing.assert_allclose(got["hvp"], got["reverse"], rtol=1e-12)
  assert np.linalg.norm(got["hvp"] - D @ ALPHA) > 1e-3  # the second-order part is not zero


def test_unrolled_hvp_hypergradient_is_differentiable_in_batch_and_weights():
  # Nested reverse mode through the custom VJP: d/d(batch) and d/d(w_0) of a function of the
  # hypergradient equal plain autodiff's.
  problem = hypergrad.BilevelProblem(_inner_nonquadratic, _outer)
  est = hypergrad.Unrolled(steps=2, inner_optimizer=optax.sgd(0.2, momentum=0.9))

  def objective(bias, w, mode):
    g = dataclasses.replace(est, second_order=mode)(problem, _weights(w), _arch(ALPHA), bias,
                                                    jnp.asarray(C))
    return jnp.sum(jnp.sin(_a_vec(g)))

  args = (jnp.asarray(BIAS), jnp.asarray(_w_random()))
  for argnum in (0, 1):
    want = jax.grad(objective, argnum)(*args, "reverse")
    assert np.linalg.norm(want) > 1e-3
    np.testing.assert_allclose(jax.grad(objective, argnum)(*args, "hvp"), want, rtol=1e-10,
                               atol=1e-14)
  with pytest.raises(ValueError, match="second_order must be one of"):
    _run(dataclasses.replace(est, second_order="forward"), _w_random())


def test_finite_difference_zero_direction_is_finite():
  # v = ∇_w L_out(w') = 0 when w' = c: the mixed term must be 0, not NaN.
  w_virtual_is_c = hypergrad.FiniteDifference(xi=0.0)
  np.testing.assert_allclose(_run(w_virtual_is_c, C), D @ ALPHA, rtol=1e-12)


ALL = {
    "first_order": {},
    "mixed_level": dict(lam=0.5),
    "unrolled": dict(steps=2, inner_optimizer=optax.sgd(0.1, momentum=0.9)),
    "finite_difference": dict(xi=0.1),
    "implicit_neumann": dict(terms=3, step=0.1),
    "implicit_cg": dict(maxiter=10),
}


def test_registry_covers_all():
  assert set(ALL) == set(hypergrad.HYPERGRADS)
  with pytest.raises(ValueError, match="valid names"):
    hypergrad.get("darts3")
  with pytest.raises(ValueError, match="mixed_term"):
    _run(hypergrad.get("finite_difference", mixed_term="taylor"), _w_random())


@pytest.mark.parametrize("name", sorted(ALL))
def test_jit_traces_once_and_matches_eager(name):
  est = hypergrad.get(name, **ALL[name])
  traces = []

  @jax.jit
  def step(weights, arch, inner_batch, outer_batch):
    traces.append(1)
    return est(PROBLEM, weights, arch, inner_batch, outer_batch)

  rng = np.random.default_rng(3)
  for i in range(3):
    w, a = _weights(rng.normal(size=N_W)), _arch(rng.normal(size=N_A))
    got = step(w, a, jnp.asarray(BIAS), jnp.asarray(C))
    if i == 0:  # eager is slow; once is enough
      want = est(PROBLEM, w, a, jnp.asarray(BIAS), jnp.asarray(C))
      jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-10), got, want)
    assert jax.tree.map(lambda x: x.dtype, got) == jax.tree.map(lambda x: x.dtype, a)
  assert len(traces) == 1


def test_estimator_as_jit_argument_with_traced_hyperparameter():
  # ξ follows the LR schedule in DARTS: replacing it must not retrace.
  traces = []

  @jax.jit
  def step(est, weights, arch):
    traces.append(1)
    return est(PROBLEM, weights, arch, jnp.asarray(BIAS), jnp.asarray(C))

  w = _w_random()
  for xi in (0.1, 0.2, 0.3):
    est = hypergrad.FiniteDifference(xi=xi, mixed_term="exact")
    got = np.asarray(_a_vec(step(est, _weights(w), _arch(ALPHA))))
    np.testing.assert_allclose(got, _unrolled_closed_form(w, xi, [BIAS]), rtol=1e-12)
  assert len(traces) == 1


def test_float32_under_strict_promotion():
  # Outside x64 everything stays float32 and the strict-promotion harness does not complain.
  with jax.enable_x64(False):
    w = {"a": jnp.ones((2,), jnp.float32), "b": jnp.ones((3, 1), jnp.float32)}
    a = {"x": jnp.ones((2,), jnp.float32), "y": jnp.ones((1,), jnp.float32)}
    for name, kwargs in ALL.items():
      est = jax.jit(functools.partial(hypergrad.get(name, **kwargs), PROBLEM))
      g = est(w, a, jnp.ones((N_W,), jnp.float32), jnp.zeros((N_W,), jnp.float32))
      assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(g)), name
      assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(g)), name


def test_estimators_are_frozen_and_hashable():
  for name, kwargs in ALL.items():
    est = hypergrad.get(name, **kwargs)
    hash(est)
    if dataclasses.fields(est):
      with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(est, dataclasses.fields(est)[0].name, 1)
