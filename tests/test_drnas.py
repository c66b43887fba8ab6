"""DrNAS (jaxnas.methods.drnas): the Dirichlet parametrization, its sampler's draws and pathwise
gradient, the KL anchor, the progressive op pruning and derivation, against independent
computations (closed forms, finite differences, scipy, rules written out here); each new config with
vmapped seeds (slow)."""
import dataclasses
import math
import os
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas import parametrize
from jaxnas import parts
from jaxnas import spaces
from jaxnas import steps
from jaxnas.methods import compose
from jaxnas.methods import drnas
from jaxnas.spaces import nb201
from test_loop import ROOT, load_config, restore_final_state

BETA = jnp.array([0.7, 1.0, 1.8, 3.1])


def config_path(name):
  return os.path.join(ROOT, "configs", name)


def components(param):
  return steps.SearchComponents(module=None, parametrization=param, weights_tx=None,
                                arch_tx=None, weights_lr=None, mean=(), std=())


# ----------------------------------------------------------------------------- parametrization
def test_dirichlet_parametrization_init_concentration_and_mixing():
  param = parametrize.get("dirichlet")
  alpha = param.init(jax.random.key(0), (200, 50))
  assert abs(float(jnp.std(alpha)) - 1e-3) < 5e-5 and abs(float(jnp.mean(alpha))) < 1e-4
  a = jnp.array([[-2.0, -0.5, 0.0, 0.3, 2.0]])
  expected_beta = np.where(np.asarray(a) > 0, np.asarray(a) + 1.0, np.exp(np.asarray(a)))
  np.testing.assert_allclose(param.concentration({"c": a})["c"], expected_beta, rtol=1e-6)
  e = np.exp(np.asarray(a))
  np.testing.assert_allclose(param.activate({"c": a})["c"], e / e.sum(), rtol=1e-6)


def test_nb201_genotype_is_the_argmax_of_alpha_none_included():
  space = spaces.get("nb201")
  alpha = jax.random.normal(jax.random.key(3), (6, len(space.ops)))
  genotype = space.derive(drnas.Dirichlet().activate({"cell": alpha}))
  expected = [space.ops[int(np.argmax(row))] for row in np.asarray(alpha)]
  assert genotype == nb201.NB201Genotype.from_edges(expected)


def reference_genotype_cell(alpha, mask, ops, nodes):
  """The reference's rule, written out: softmax over the row, pruned entries zeroed, renormalised;
  per node the 2 incoming edges of largest max weight, on each its argmax op."""
  w = np.exp(alpha - alpha.max(-1, keepdims=True))
  w = w / w.sum(-1, keepdims=True)
  w = np.where(mask > 0, w, 0.0)
  w = w / w.sum(-1, keepdims=True)
  genes, start = [], 0
  for i in range(nodes):
    n = i + 2
    rows = w[start:start + n]
    edges = sorted(range(n), key=lambda j: -rows[j].max())[:2]
    genes += [(ops[int(np.argmax(rows[j]))], j) for j in edges]
    start += n
  return genes


def test_darts_genotype_over_kept_ops_matches_the_reference_rule():
  ops = tuple(drnas_ops())
  space = spaces.get("darts", ops=ops)
  shapes = space.arch_shapes()
  key = jax.random.key(4)
  arch = {k: jax.random.normal(jax.random.fold_in(key, i), shapes[k])
          for i, k in enumerate(("normal", "reduce"))}
  mask = {k: drnas.prune_top_k(arch[k], jnp.ones_like(arch[k]), 4)[1] for k in arch}
  # make a pruned op the largest alpha of its row: derivation must still ignore it
  arch = {k: jnp.where(mask[k] > 0, arch[k], 5.0) for k in arch}
  comps = dataclasses.replace(components(parametrize.get("dirichlet")),
                              pruning=parts.TopKPrune(at_step=1, num_keep=4))
  state = types.SimpleNamespace(arch=arch, method_state={"mask": mask})
  mixing = steps.mixing(comps, state)
  genotype = space.derive(mixing)
  for cell in ("normal", "reduce"):
    assert getattr(genotype, cell) == reference_genotype_cell(
        np.asarray(arch[cell]), np.asarray(mask[cell]), ops, 4)
    assert np.all(np.asarray(mixing[cell])[np.asarray(mask[cell]) == 0] == 0)


def drnas_ops():
  return load_config(config_path("drnas_cifar10.py"), arg=None).space.ops.split(",")


# ----------------------------------------------------------------------------- sampler
def draws(beta, n, mask=None, seed=0):
  keys = jax.random.split(jax.random.key(seed), n)
  return jax.vmap(lambda k: drnas.masked_dirichlet(k, beta, mask))(keys)


def test_sample_mean_is_the_dirichlet_mean_and_rows_lie_on_the_simplex():
  theta = draws(BETA, 40000)
  np.testing.assert_allclose(jnp.sum(theta, -1), 1.0, rtol=1e-5)
  b = np.asarray(BETA)
  var = b * (b.sum() - b) / (b.sum() ** 2 * (b.sum() + 1))
  np.testing.assert_allclose(jnp.mean(theta, 0), b / b.sum(), atol=5 * np.sqrt(var.max() / 40000))


def test_masked_sample_is_the_dirichlet_over_the_kept_ops():
  mask = jnp.array([1.0, 0.0, 1.0, 1.0])
  theta = draws(BETA, 40000, mask)
  assert np.all(np.asarray(theta)[:, 1] == 0)
  b = np.asarray(BETA) * np.asarray(mask)
  np.testing.assert_allclose(jnp.mean(theta, 0), b / b.sum(), atol=0.006)


def test_all_ones_mask_draws_equal_jax_random_dirichlet_key_for_key():
  key = jax.random.key(7)
  beta = jnp.stack([BETA, BETA[::-1]])
  np.testing.assert_allclose(drnas.masked_dirichlet(key, beta, jnp.ones_like(beta)),
                             jax.random.dirichlet(key, beta), rtol=1e-6)


def expected_sq(alpha, c, mask):
  """E[sum_k c_k theta_k^2] for theta ~ Dir(b) over the kept ops, b = elu(alpha) + 1, in closed
  form: E[theta_i^2] = b_i (b_i + 1) / (b0 (b0 + 1)) (float64 NumPy)."""
  b = np.where(alpha > 0, alpha + 1.0, np.exp(alpha)) * mask
  b0 = b.sum()
  return float(np.sum(c * b * (b + 1.0)) / (b0 * (b0 + 1.0)))


@pytest.mark.parametrize("mask", [(1.0, 1.0, 1.0, 1.0), (1.0, 1.0, 0.0, 1.0)])
def test_pathwise_gradient_matches_finite_differences_of_the_closed_form(mask):
  alpha = np.array([-0.4, 0.1, 0.5, 0.9])
  c = np.array([1.0, -2.0, 0.5, 3.0])
  m = jnp.asarray(mask)

  def f(a, key):
    theta = drnas.masked_dirichlet(key, drnas.concentration_leaf(a), m)
    return jnp.sum(jnp.asarray(c, jnp.float32) * theta ** 2)

  n = 30000
  keys = jax.random.split(jax.random.key(11), n)
  grads = np.asarray(jax.vmap(jax.grad(f), in_axes=(None, 0))(jnp.asarray(alpha, jnp.float32),
                                                              keys), np.float64)
  mc = grads.mean(0)
  sem = grads.std(0) / math.sqrt(n)
  h = 1e-5
  fd = np.array([(expected_sq(alpha + h * np.eye(4)[i], c, np.asarray(mask))
                  - expected_sq(alpha - h * np.eye(4)[i], c, np.asarray(mask))) / (2 * h)
                 for i in range(4)])
  assert np.all(np.abs(mc - fd) < 5 * sem + 1e-4), (mc, fd, sem)
  if mask[2] == 0:
    assert np.all(grads[:, 2] == 0)  # a pruned op's alpha gets no gradient through the draw


def test_sampler_wraps_both_forwards_with_one_draw_per_leaf():
  sampler = drnas.DirichletSampler()
  assert set(sampler.forwards) == {"weights", "arch"}
  arch = {"normal": jnp.zeros((3, 4)), "reduce": jnp.zeros((3, 4))}
  param = parametrize.get("dirichlet")
  mix = sampler.wrap(param.activate, parts.ForwardContext(param, jax.random.key(0), 0))
  out = mix(arch)
  keys = jax.random.split(jax.random.key(0), 2)
  np.testing.assert_allclose(out["normal"], jax.random.dirichlet(keys[0], jnp.ones((3, 4))),
                             rtol=1e-6)
  np.testing.assert_allclose(out["reduce"], jax.random.dirichlet(keys[1], jnp.ones((3, 4))),
                             rtol=1e-6)
  other = sampler.wrap(param.activate, parts.ForwardContext(param, jax.random.key(1), 0))(arch)
  assert not np.allclose(out["normal"], other["normal"])


def test_sampler_refuses_a_parametrization_without_concentration():
  with pytest.raises(ValueError, match="config.parametrization='dirichlet'"):
    drnas.DirichletSampler().sample(parametrize.get("softmax"), {"c": jnp.zeros((2, 3))},
                                    jax.random.key(0))
  config = load_config(config_path("drnas_nb201.py"))
  config.parametrization = "softmax"
  with pytest.raises(ValueError, match="config.parametrization='dirichlet'"):
    compose.read_sampler(config, 1)


# ----------------------------------------------------------------------------- KL regularizer
def test_kl_to_uniform_matches_scipy_entropy():
  stats = pytest.importorskip("scipy.stats")
  for b in (np.array([0.7, 1.0, 1.8, 3.1]), np.array([1.0, 1.0, 1.0]), np.array([0.2, 5.0])):
    # KL(p || Dir(1)) = -H(p) - E_p[log Gamma(K)] (the uniform density on the simplex is (K-1)!)
    expected = -stats.dirichlet(b).entropy() - math.lgamma(len(b))
    np.testing.assert_allclose(drnas.dirichlet_kl_to_uniform(jnp.asarray(b, jnp.float32)),
                               expected, rtol=2e-4, atol=1e-5)


def test_kl_regularizer_sums_rows_of_every_leaf_times_the_weight():
  stats = pytest.importorskip("scipy.stats")
  arch = {"normal": jnp.array([[0.5, -0.3, 0.0], [1.2, 0.1, -1.0]]),
          "reduce": jnp.array([[0.0, 0.0, 0.0], [-0.2, 2.0, 0.4]])}
  expected = 0.0
  for a in arch.values():
    for row in np.asarray(a, np.float64):
      b = np.where(row > 0, row + 1, np.exp(row))
      expected += -stats.dirichlet(b).entropy() - math.lgamma(len(b))
  reg = drnas.DirichletKL(weight=0.01)
  ctx = parts.Context(activate=None, step=0)
  np.testing.assert_allclose(reg.penalty(arch, reg.init(arch, ctx), ctx), 0.01 * expected,
                             rtol=1e-4)
  assert reg.name == "dirichlet_kl"


def test_kl_variant_and_its_errors():
  config = load_config(config_path("drnas_nb201.py"), arg="kl,smoke")
  found = compose.read_generic(config, spaces.from_config(config), 1)
  assert [r.name for r in found["regularizers"]] == ["dirichlet_kl"]
  assert config.arch_optimizer.weight_decay == 0.0
  config.parametrization = "softmax"
  config.arch_sampler.name = "none"
  with pytest.raises(ValueError, match="config.parametrization='dirichlet'"):
    compose.read_generic(config, spaces.from_config(config), 1)
  with pytest.raises(ValueError, match="kl_weight"):
    drnas.DirichletKL(weight=-1.0)


# ----------------------------------------------------------------------------- pruning
def test_prune_top_k_keeps_the_largest_alpha_among_the_kept_ops():
  alpha = jnp.array([[0.3, -0.1, 0.9, 0.2, 0.5], [2.0, 1.0, -1.0, 0.0, 0.4]])
  mask = jnp.array([[1.0, 1.0, 1.0, 1.0, 1.0], [0.0, 1.0, 1.0, 1.0, 1.0]])
  new_alpha, new_mask = drnas.prune_top_k(alpha, mask, 2)
  np.testing.assert_array_equal(new_mask, [[0, 0, 1, 0, 1], [0, 1, 0, 0, 1]])
  np.testing.assert_array_equal(new_alpha, np.float32([[0, 0, 0.9, 0, 0.5], [0, 1.0, 0, 0, 0.4]]))


def test_stage_warmup_restarts_in_every_stage():
  sched = drnas.StageWarmup(warmup=2, stage=5)
  due = [bool(sched.due(s, sched.init())) for s in range(12)]
  assert due == [False, False, True, True, True, False, False, True, True, True, True, True]
  assert drnas.StageWarmup(warmup=0, stage=5).always
  assert [bool(drnas.StageWarmup(warmup=3).due(s, None)) for s in range(5)] == [
      False, False, False, True, True]


def test_drnas_config_errors_name_the_fix():
  config = load_config(config_path("drnas_cifar10.py"))
  config.parametrization = "softmax"
  with pytest.raises(ValueError, match="config.parametrization='dirichlet'"):
    drnas.build(config)
  config = load_config(config_path("drnas_cifar10.py"))
  config.arch_schedule.start_epoch = 3
  with pytest.raises(ValueError, match="stage_warmup_epochs"):
    drnas.build(config)
  config = load_config(config_path("drnas_cifar10.py"))
  config.drnas.num_keep = 9
  with pytest.raises(ValueError, match="config.drnas.num_keep=9"):
    drnas.read_parts(config, spaces.from_config(config), 1)
  config = load_config(config_path("drnas_cifar10.py"))
  config.space.edge_normalization = True
  with pytest.raises(ValueError, match="edge_normalization=False"):
    compose.read_sampler(config, 1)


def test_cifar10_config_is_the_reference_setting():
  config = load_config(config_path("drnas_cifar10.py"), arg=None)
  assert "none" not in config.space.ops and len(config.space.ops.split(",")) == 7
  assert (config.space.channels, config.space.layers, config.space.partial_channels) == (36, 20, 6)
  assert (config.drnas.stage_epochs, config.drnas.num_keep, config.drnas.stage_warmup_epochs,
          config.epochs) == (25, 4, 10, 50)
  assert (config.weights_optimizer.learning_rate, config.weights_optimizer.min_learning_rate,
          config.arch_optimizer.learning_rate) == (0.1, 0.0, 6e-4)


# ----------------------------------------------------------------------------- widening (K 6 -> 4)
def test_widening_options_are_checked():
  config = load_config(config_path("drnas_cifar10.py"))
  assert config.space.partial_channels == 6 and config.drnas.stage2_partial_channels == 4
  stages = compose.read_stages(config, steps_per_epoch=2)
  assert stages == (parts.SupernetStage(start=2, space=(("partial_channels", 4),)),)
  for value, message in ((6, "must be below config.space.partial_channels=6"),
                         (5, "must divide config.space.channels=12"),
                         (-1, "is not valid")):
    bad = load_config(config_path("drnas_cifar10.py"), **{"drnas.stage2_partial_channels": value})
    with pytest.raises(ValueError, match=message):
      compose.read_stages(bad, steps_per_epoch=2)
  one_stage = load_config(config_path("drnas_cifar10.py"), **{"drnas.stage_epochs": 0})
  with pytest.raises(ValueError, match="stage_epochs=0"):
    compose.read_stages(one_stage, steps_per_epoch=2)
  assert compose.read_stages(load_config(config_path("drnas_nb201.py")), 2) == ()


@pytest.mark.slow
@pytest.mark.parametrize("devices", [1, 2])
def test_widened_run_resumes_bit_for_bit_from_the_stage_boundary(tmp_path, devices):
  """``drnas_cifar10:smoke`` (stage boundary after step 2, K 6 -> 4), on 1 and 2 devices:
  interrupted at the boundary (the checkpoint holds stage 1's shapes) and resumed, it ends bit for
  bit as an uninterrupted run, with the ops widened (normal cells: 12 / 6 = 2 -> 12 / 4 = 3
  channels; the restore checks every leaf's shape, SGD's momentum included)."""
  from jaxnas import driver
  path = config_path("drnas_cifar10.py")
  config = lambda steps: load_config(path, max_steps=steps, **{"mesh.data": devices})
  straight, interrupted = str(tmp_path / "straight"), str(tmp_path / "interrupted")
  driver.train_and_evaluate(config(3), straight)
  driver.train_and_evaluate(config(2), interrupted)
  at_boundary = restore_final_state(interrupted, config(3), 2)
  driver.train_and_evaluate(config(3), interrupted)
  a = restore_final_state(straight, config(3), 3)
  b = restore_final_state(interrupted, config(3), 3)
  pointwise = lambda s: s.weights["cell_0"]["front"]["mixed"]["dil_conv_3x3"]["pointwise"]["kernel"]
  assert pointwise(at_boundary).shape[-2:] == (2, 2) and pointwise(a).shape[-2:] == (3, 3)
  assert int(a.step) == int(b.step) == 3
  jax.tree.map(np.testing.assert_array_equal, a, b)
