"""Mirror descent on the simplex: constraint set, hand-computed steps, Euclidean case, convergence."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxnas.optim import mirror_descent as md


def uniform(rows, n):
  return jnp.full((rows, n), 1.0 / n, jnp.float32)


def test_stays_on_the_simplex_with_floor_for_many_random_steps():
  lr, floor = 0.5, 1e-5
  tx = md.exponentiated_gradient(lr, floor=floor)
  params = {"a": uniform(6, 5), "b": uniform(14, 8)}
  state = tx.init(params)
  update = jax.jit(tx.update)
  key = jax.random.key(0)
  for _ in range(200):
    key, k1, k2 = jax.random.split(key, 3)
    grads = {"a": jax.random.normal(k1, (6, 5)) * 3, "b": jax.random.normal(k2, (14, 8)) * 3}
    updates, state = update(grads, state, params)
    params = optax.apply_updates(params, updates)
    gmax = max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(grads))
    for leaf in jax.tree.leaves(params):
      np.testing.assert_allclose(jnp.sum(leaf, axis=-1), 1.0, rtol=1e-5)
      # Clamp-then-normalize (the reference's order): an entry at the floor is divided by a row
      # sum of at most exp(lr * max|g|) (+ n * floor).
      assert float(jnp.min(leaf)) >= floor * np.exp(-lr * gmax) / (1 + leaf.shape[-1] * floor)
  assert int(state.count) == 200


def test_one_step_equals_hand_computation():
  theta = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]], np.float32)
  g = np.array([[1.0, -2.0, 0.0], [50.0, 0.0, -1.0]], np.float32)
  lr, floor = 0.1, 1e-3
  x = np.maximum(theta * np.exp(-lr * g), floor)
  want = x / x.sum(axis=-1, keepdims=True)
  tx = md.exponentiated_gradient(lr, floor=floor)
  updates, _ = tx.update(jnp.asarray(g), tx.init(theta), jnp.asarray(theta))
  np.testing.assert_allclose(optax.apply_updates(jnp.asarray(theta), updates), want, rtol=1e-5)
  assert x[1, 0] == floor  # the clamp is active in this example


def test_euclidean_map_matches_sgd_plus_projection():
  rng = np.random.default_rng(0)
  theta = md.project_to_simplex(jnp.asarray(rng.random((4, 6)), jnp.float32))
  g = jnp.asarray(rng.normal(size=(4, 6)), jnp.float32)
  tx = md.mirror_descent(0.3, "euclidean")
  updates, _ = tx.update(g, tx.init(theta), theta)
  sgd_updates, _ = optax.sgd(0.3).update(g, optax.sgd(0.3).init(theta))
  want = md.project_to_simplex(optax.apply_updates(theta, sgd_updates))
  np.testing.assert_allclose(optax.apply_updates(theta, updates), want, rtol=1e-6, atol=1e-7)


def test_projection_is_the_euclidean_projection():
  rng = np.random.default_rng(1)
  for _ in range(20):
    x = rng.normal(size=5) * 2
    p = np.asarray(md.project_to_simplex(jnp.asarray(x, jnp.float32)))
    assert abs(p.sum() - 1) < 1e-5 and (p >= 0).all()
    # Optimality: no feasible random point is closer to x.
    for _ in range(50):
      q = rng.dirichlet(np.ones(5))
      assert np.linalg.norm(q - x) >= np.linalg.norm(p - x) - 1e-5


@pytest.mark.parametrize("mirror_map", md.MIRROR_MAPS)
def test_minimizes_a_linear_function_to_the_right_vertex(mirror_map):
  c = jnp.array([[0.3, -0.2, 0.5, 0.1], [1.0, 2.0, 3.0, -4.0]], jnp.float32)
  tx = md.mirror_descent(optax.constant_schedule(0.5), mirror_map)
  theta = uniform(2, 4)
  state = tx.init(theta)

  @jax.jit
  def step(theta, state):
    updates, state = tx.update(jax.grad(lambda t: jnp.sum(c * t))(theta), state, theta)
    return optax.apply_updates(theta, updates), state

  for _ in range(300):
    theta, state = step(theta, state)
  np.testing.assert_array_equal(jnp.argmax(theta, axis=-1), jnp.argmin(c, axis=-1))
  assert float(jnp.min(jnp.max(theta, axis=-1))) > 0.99


def test_runs_under_jit_with_a_schedule_and_composes_with_clipping():
  schedule = optax.linear_schedule(1.0, 0.1, 10)
  tx = optax.chain(optax.clip_by_global_norm(1.0), md.exponentiated_gradient(schedule))
  theta = uniform(3, 4)
  state = tx.init(theta)
  g = jnp.array([[100.0, 0.0, 0.0, 0.0]] * 3, jnp.float32)
  updates, state = jax.jit(tx.update)(g, state, theta)
  new = optax.apply_updates(theta, updates)
  # Clipped gradient: norm 1 over the whole tree -> each row sees 1/sqrt(3) on its first entry.
  x = np.array([0.25 * np.exp(-1.0 / np.sqrt(3)), 0.25, 0.25, 0.25])
  np.testing.assert_allclose(new[0], x / x.sum(), rtol=1e-5)


def test_needs_params_and_a_known_map():
  with pytest.raises(ValueError, match="needs `params`"):
    tx = md.exponentiated_gradient(0.1)
    tx.update(uniform(1, 3), tx.init(uniform(1, 3)))
  with pytest.raises(ValueError, match="valid: entropic, euclidean"):
    md.mirror_descent(0.1, "hyperbolic")


def test_entropy_regularizer_is_kl_to_uniform():
  assert abs(float(md.entropy_regularizer({"a": uniform(3, 4)}))) < 1e-6
  theta = jnp.array([[0.7, 0.3]], jnp.float32)
  want = 0.7 * np.log(1.4) + 0.3 * np.log(0.6)
  np.testing.assert_allclose(md.entropy_regularizer({"a": theta}), want, rtol=1e-5)


def test_per_leaf_floor_leaves_edge_weights_unfloored():
  """GAEA PC-DARTS (gaea_release architect_edarts.py): alpha is clamped at 1e-5 before it is
  normalised, the edge weights beta only renormalised per node -- a beta entry driven below the
  floor stays there (the old single floor lifted it to ~1e-5)."""
  from jaxnas import search as search_lib
  from jaxnas.spaces import darts
  from configs import default
  aopt = default.get_config().arch_optimizer
  aopt.name = "exponentiated_gradient"
  aopt.learning_rate = 1.0
  tx = search_lib.build_arch_optimizer(aopt)
  params = {"normal": uniform(2, 3), "normal_edges": {"0": jnp.array([0.5, 0.5])}}
  grads = {"normal": jnp.array([[30.0, 0.0, 0.0]] * 2),
           "normal_edges": {"0": jnp.array([30.0, 0.0])}}
  new = optax.apply_updates(params, tx.update(grads, tx.init(params), params)[0])
  beta = new["normal_edges"]["0"]  # exp(-30) / (1 + exp(-30)), 0 after float32 apply_updates
  assert float(beta[0]) < 1e-7 and float(jnp.sum(beta)) == pytest.approx(1.0)
  assert float(new["normal"][0, 0]) == pytest.approx(1e-5 / (2 / 3 + 1e-5), rel=1e-2)  # floored
  assert darts.is_edge_weights(jax.tree_util.tree_flatten_with_path(params)[0][1][0])
  with pytest.raises(ValueError, match="floor must be in"):
    md.mirror_descent(0.1, floor=1.5)
