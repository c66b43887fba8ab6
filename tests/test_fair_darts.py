"""Fair-DARTS: the zero-one loss against its formula and finite differences, the reference's
threshold_sparse derivation on hand-made weights, the config errors; its configs with vmapped
seeds (slow)."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnas.spaces
from jaxnas import parametrize
from jaxnas import parts
from jaxnas.methods import compose
from jaxnas.methods import fair_darts
from test_loop import ROOT, alpha_trajectory, load_config

ARCH = {"normal": jnp.array([[0.3, -1.2, 2.0], [0.0, 0.7, -0.4]]),
        "reduce": jnp.array([[-0.5, 1.5, 0.1], [0.9, -2.0, 0.25]]),
        "normal_edges": {"0": jnp.array([5.0, -5.0])}}  # not a cell: excluded


def config_path(name):
  return os.path.join(ROOT, "configs", name)


def ctx(step=0):
  return parts.Context(activate=parametrize.get("sigmoid").activate, step=step)


def by_hand(arch, weight):
  """weight * -mean((sigmoid(a) - 0.5)^2) over the 12 entries of normal and reduce, written out."""
  entries = list(np.asarray(arch["normal"], np.float64).ravel())
  entries += list(np.asarray(arch["reduce"], np.float64).ravel())
  return -weight * sum((1 / (1 + np.exp(-a)) - 0.5) ** 2 for a in entries) / len(entries)


def test_zero_one_value_is_the_mean_over_both_cells():
  reg = fair_darts.ZeroOne(weight=10.0, keys=("normal", "reduce"))
  value = reg.penalty(ARCH, reg.init(ARCH, ctx()), ctx())
  np.testing.assert_allclose(value, by_hand(ARCH, 10.0), rtol=1e-6)
  # the mean over the concatenation, not the mean of the per-cell means (equal sizes here: also
  # check unequal sizes)
  uneven = {"normal": ARCH["normal"], "reduce": ARCH["reduce"][:1]}
  entries = np.concatenate([np.ravel(uneven["normal"]), np.ravel(uneven["reduce"])])
  want = -np.mean((1 / (1 + np.exp(-entries.astype(np.float64))) - 0.5) ** 2)
  np.testing.assert_allclose(fair_darts.zero_one_loss(uneven, ("normal", "reduce")), want,
                             rtol=1e-6)


def test_zero_one_gradient_matches_finite_differences_and_closed_form():
  reg = fair_darts.ZeroOne(weight=10.0, keys=("normal", "reduce"))
  cells = {k: ARCH[k] for k in ("normal", "reduce")}
  grad = jax.grad(lambda a: reg.penalty(a, parts.NoState(), ctx()))(cells)
  eps = 1e-3
  for key in ("normal", "reduce"):
    base = np.asarray(cells[key], np.float64)
    for idx in np.ndindex(base.shape):
      up, down = base.copy(), base.copy()
      up[idx] += eps
      down[idx] -= eps
      fd = (by_hand({**cells, key: up}, 10.0) - by_hand({**cells, key: down}, 10.0)) / (2 * eps)
      np.testing.assert_allclose(grad[key][idx], fd, rtol=1e-3, atol=1e-6)
    s = 1 / (1 + np.exp(-base))
    np.testing.assert_allclose(grad[key], -2 * 10.0 / 12 * (s - 0.5) * s * (1 - s), rtol=1e-5)
  zero = jax.grad(lambda a: reg.penalty(a, parts.NoState(), ctx()))(
      jax.tree.map(jnp.zeros_like, cells))  # alpha = 0 (the reference's init): stationary
  assert all(np.all(g == 0) for g in jax.tree.leaves(zero))


def test_reader_uses_the_cell_leaves_and_the_weight():
  config = load_config(config_path("fairdarts_cifar10.py"), arg=None)
  config.space.edge_normalization = True
  space = jaxnas.spaces.from_config(config)
  reg = compose.read_parts(config, space, 3)["regularizers"]
  assert len(reg) == 1 and reg[0].name == "zero_one"
  assert reg[0].keys == ("normal", "reduce") and reg[0].weight == 10.0
  assert fair_darts.zero_one_loss(ARCH, reg[0].keys) == fair_darts.zero_one_loss(
      {k: ARCH[k] for k in ("normal", "reduce")}, ("normal", "reduce"))


def test_threshold_sparse_keeps_top2_edges_above_the_threshold():
  ops = ("max_pool_3x3", "skip_connect", "sep_conv_3x3")
  w = np.full((5, 3), 0.1)  # nodes = 2: node 0 <- edges 0, 1; node 1 <- edges 2, 3, 4
  w[0] = [0.2, 0.9, 0.3]    # best 0.90 (skip): kept
  w[1] = [0.84, 0.1, 0.1]   # best 0.84 < 0.85: dropped although in the top 2
  w[2] = [0.1, 0.1, 0.95]   # node 1: 0.95, 0.88, 0.86 -> top 2 are edges 2 and 3
  w[3] = [0.88, 0.2, 0.2]
  w[4] = [0.2, 0.86, 0.2]   # above the threshold but third: dropped
  genes = fair_darts.threshold_sparse(w, ops, nodes=2)
  assert genes == [("skip_connect", 2, 0), ("sep_conv_3x3", 3, 0), ("max_pool_3x3", 3, 1)]
  assert fair_darts.threshold_sparse(w, ops, nodes=2, threshold=0.0) == [
      ("skip_connect", 2, 0), ("max_pool_3x3", 2, 1), ("sep_conv_3x3", 3, 0),
      ("max_pool_3x3", 3, 1)]
  # with no threshold it is the DARTS rule (the genotype jaxnas derives), node indices aside
  darts = jaxnas.spaces.darts.derive_cell(w, ops, 2)
  assert [(op, j) for op, _, j in fair_darts.threshold_sparse(w, ops, 2, 0.0)] == darts
  space = jaxnas.spaces.get("darts", ops=ops, nodes=2)
  both = fair_darts.threshold_genotype({"normal": w, "reduce": np.zeros_like(w) + 0.9}, space)
  assert both["normal"] == genes and len(both["reduce"]) == 4  # every top-2 edge: 0.9 >= 0.85


def test_config_errors_name_the_fix():
  config = load_config(config_path("fairdarts_nb201.py"), arg=None)
  config.parametrization = "softmax"
  with pytest.raises(ValueError, match="parametrization='sigmoid'"):
    fair_darts.read_zero_one(config, jaxnas.spaces.from_config(config), 1)
  config = load_config(config_path("fairdarts_nb201.py"), arg=None)
  config.space.ops = ""
  with pytest.raises(ValueError, match="space.ops=skip_connect,nor_conv_1x1"):
    fair_darts.read_zero_one(config, jaxnas.spaces.from_config(config), 1)
  with pytest.raises(ValueError, match="zero_one_weight"):
    fair_darts.ZeroOne(weight=-1.0)


def test_configs_are_the_reference_settings():
  c = load_config(config_path("fairdarts_cifar10.py"), arg=None)
  assert "none" not in c.space.ops.split(",") and len(c.space.ops.split(",")) == 7
  assert (c.parametrization, c.arch_regularizer.names, c.hypergrad) == (
      "sigmoid", "zero_one", "first_order")
  assert (c.arch_optimizer.learning_rate, c.arch_optimizer.b1, c.arch_optimizer.b2,
          c.arch_optimizer.weight_decay) == (3e-3, 0.9, 0.999, 1e-3)
  assert (c.weights_optimizer.learning_rate, c.batch_size, c.epochs, c.step_order) == (
      0.005, 128, 50, "arch_first")
  assert parametrize.get("sigmoid").init_scale == 0.0  # alpha starts at 0


# Slow (two compiles of the NB201 smoke search step).
@pytest.mark.slow
def test_zero_one_enters_the_alpha_step_after_the_stationary_start():
  """In the compiled step: at alpha = 0 (step 0) the zero-one term has value and gradient 0, so
  the first alpha step equals the one without it; from step 1 on the trajectories differ."""
  config = load_config(config_path("fairdarts_nb201.py"), max_steps=3)
  _, on, metrics = alpha_trajectory(config, 3)
  config.arch_regularizer.zero_one_weight = 0.0
  _, off, _ = alpha_trajectory(config, 3)
  np.testing.assert_array_equal(on[0], off[0])
  assert not np.allclose(on[1], off[1], rtol=0, atol=1e-9)
  np.testing.assert_allclose(metrics[0]["reg/zero_one"], 0.0)
  np.testing.assert_allclose(metrics[1]["reg/zero_one"], by_hand_cell(on[0], 10.0), rtol=1e-4)


def by_hand_cell(alpha, weight):
  s = 1 / (1 + np.exp(-np.asarray(alpha, np.float64)))
  return -weight * np.mean((s - 0.5) ** 2)
