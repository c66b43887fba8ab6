"""DARTS-: the auxiliary skip adds beta * x to every edge of both training forwards, beta decaying
linearly per epoch; the evaluation and the regularizers keep the plain mixing."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas import parametrize
from jaxnas import steps
from jaxnas.methods import darts_minus
from jaxnas.spaces import ops as ops_lib
from test_loop import ROOT, load_config

OPS = ("none", "skip_connect", "nor_conv_1x1")
CHANNELS = 4
X = jax.random.normal(jax.random.key(0), (2, 5, 5, CHANNELS))


def test_beta_decays_linearly_per_epoch_as_the_reference():
  for epoch in (0, 1, 25, 49):  # DecayScheduler 'linear': 1 * (50 - e) / (50 - 0)
    for step in (4 * epoch, 4 * epoch + 3):
      np.testing.assert_allclose(darts_minus.beta(step, 1.0, 50, 4), (50 - epoch) / 50, rtol=1e-6)
  assert float(darts_minus.beta(4 * 60, 1.0, 50, 4)) == 0.0


def test_edge_with_the_auxiliary_skip_is_the_mixed_op_plus_beta_x():
  """MixedOp fed A + beta e_skip equals sum_k A_k op_k(x) + beta x, each op run on its own."""
  edge = ops_lib.MixedOp(OPS, CHANNELS)
  variables = edge.init(jax.random.key(2), X, jnp.full((3,), 1 / 3), train=True)
  conv = ops_lib.make_op("nor_conv_1x1", CHANNELS, 1, affine=False)
  conv_out = conv.apply({c: t["nor_conv_1x1"] for c, t in variables.items()}, X, train=True,
                        mutable=["batch_stats"])[0]
  a, b = jnp.array([0.2, 0.5, 0.3]), 0.7
  transform = darts_minus.AuxiliarySkip(cell_keys=("cell",), skip_index=1, beta0=b,
                                        decay_epochs=10)
  comps = steps.SearchComponents(module=None, parametrization=parametrize.get("simplex"),
                                 weights_tx=None, arch_tx=None, weights_lr=None, mean=(), std=(),
                                 transforms=(transform,))
  for forward in ("weights", "arch"):
    mixing = steps.transformed(comps, jax.random.key(0), 0, forward).parametrization.activate(
        {"cell": a[None]})["cell"][0]
    y, _ = edge.apply(variables, X, mixing, train=True, mutable=["batch_stats"])
    np.testing.assert_allclose(y, a[1] * X + a[2] * conv_out + b * X, rtol=1e-5, atol=1e-6)
  ctx = steps.context(steps.transformed(comps, jax.random.key(0), 0, "arch"), {}, 0)
  np.testing.assert_allclose(ctx.activate({"cell": a[None]})["cell"][0], a)  # regularizers: plain


def test_config_errors_name_the_fix():
  config = load_config(os.path.join(ROOT, "configs", "dartsminus_nb201.py"))
  space = type("Space", (), {"ops": ("none", "nor_conv_3x3"), "cell_keys": lambda self: ("cell",)})()
  with pytest.raises(ValueError, match="skip_connect"):
    darts_minus.read_auxiliary_skip(config, space, 1)
  with pytest.raises(ValueError, match="auxiliary_skip.beta"):
    darts_minus.AuxiliarySkip(cell_keys=("cell",), skip_index=0, beta0=-1.0)
