"""β-DARTS: the beta-decay term against its formula, its gradient against the closed form
(lambda/E) softmax(alpha), the per-epoch lambda schedule, the config errors; its configs with
vmapped seeds (slow)."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnas.spaces
from jaxnas import parametrize
from jaxnas import parts
from jaxnas.methods import beta_darts
from jaxnas.methods import compose
from test_loop import ROOT, alpha_trajectory, load_config

ARCH = {"normal": jnp.array([[0.3, -1.2, 2.0], [0.0, 0.7, -0.4]]),
        "reduce": jnp.array([[-0.5, 1.5, 0.1], [0.9, -2.0, 0.25], [1.0, 1.0, 1.0]])}
EDGES = 5  # 2 + 3 rows


def config_path(name):
  return os.path.join(ROOT, "configs", name)


def ctx(step):
  return parts.Context(activate=parametrize.get("softmax").activate, step=step)


def by_hand(arch, lam):
  """lam * mean over the 5 edges of log(sum_k exp(alpha_k)), written out."""
  rows = [r for k in ("normal", "reduce") for r in np.asarray(arch[k], np.float64)]
  return lam * sum(np.log(np.sum(np.exp(r))) for r in rows) / len(rows)


def test_value_gradient_and_schedule():
  reg = beta_darts.BetaDecay(weight=50.0, epochs=100, steps_per_epoch=4,
                             keys=("normal", "reduce"))
  for step, epoch in ((0, 0), (3, 0), (4, 1), (7, 1), (41, 10), (399, 99)):
    lam = 50.0 * epoch / 100
    np.testing.assert_allclose(reg.lam(step), lam, rtol=1e-6)
    value = reg.penalty(ARCH, reg.init(ARCH, ctx(step)), ctx(step))
    np.testing.assert_allclose(value, by_hand(ARCH, lam), rtol=1e-6, atol=1e-7)
    grad = jax.grad(lambda a, s=step: reg.penalty(a, parts.NoState(), ctx(s)))(ARCH)
    for key in ARCH:  # closed form: (lambda / E) softmax(alpha_edge)
      a = np.asarray(ARCH[key], np.float64)
      soft = np.exp(a) / np.sum(np.exp(a), axis=-1, keepdims=True)
      np.testing.assert_allclose(grad[key], lam / EDGES * soft, rtol=1e-5, atol=1e-8)
  _, metrics = reg.advance(parts.NoState(), ARCH, jnp.asarray(True), ctx(8))
  np.testing.assert_allclose(metrics["reg/beta_decay_lambda"], 1.0)  # epoch 2: 50 * 2 / 100


def test_reader_epochs_default_to_config_epochs():
  config = load_config(config_path("betadarts_cifar10.py"), arg=None)
  space = jaxnas.spaces.from_config(config)
  (reg,) = compose.read_parts(config, space, 391)["regularizers"]
  assert (reg.name, reg.weight, reg.epochs, reg.steps_per_epoch, reg.keys) == (
      "beta_decay", 50.0, 50, 391, ("normal", "reduce"))
  np.testing.assert_allclose(reg.lam(49 * 391), 49.0)
  config.epochs = 20
  assert compose.read_parts(config, space, 391)["regularizers"][0].epochs == 20
  config = load_config(config_path("betadarts_nb201.py"), arg=None)
  (reg,) = compose.read_parts(config, jaxnas.spaces.from_config(config), 391)["regularizers"]
  assert (reg.epochs, reg.keys) == (100, ("cell",))
  np.testing.assert_allclose(reg.lam(99 * 391 + 390), 49.5)  # the reference's last epoch


def test_config_errors_name_the_fix():
  config = load_config(config_path("betadarts_nb201.py"), arg=None)
  config.parametrization = "sigmoid"
  with pytest.raises(ValueError, match="parametrization='softmax'"):
    beta_darts.read_beta_decay(config, jaxnas.spaces.from_config(config), 1)
  config = load_config(config_path("betadarts_nb201.py"), arg=None)
  config.arch_regularizer.beta_decay_epochs = -3
  with pytest.raises(ValueError, match="beta_decay_epochs"):
    beta_darts.read_beta_decay(config, jaxnas.spaces.from_config(config), 1)
  with pytest.raises(ValueError, match="beta_decay_weight"):
    beta_darts.BetaDecay(weight=-1.0)


def test_configs_are_the_reference_settings():
  c = load_config(config_path("betadarts_nb201.py"), arg=None)
  assert (c.space.name, c.space.ops, c.parametrization, c.hypergrad, c.step_order) == (
      "nb201", "", "softmax", "first_order", "arch_first")
  assert (c.arch_optimizer.learning_rate, c.arch_optimizer.b1, c.arch_optimizer.weight_decay) == (
      3e-4, 0.5, 1e-3)
  assert (c.epochs, c.batch_size, c.arch_regularizer.beta_decay_weight,
          c.arch_regularizer.beta_decay_epochs, c.data.split) == (100, 64, 50.0, 100, "darts")
  c = load_config(config_path("betadarts_cifar10.py"), arg=None)
  assert "none" not in c.space.ops.split(",") and len(c.space.ops.split(",")) == 7
  assert (c.epochs, c.arch_regularizer.beta_decay_epochs) == (50, 0)


# Slow (two compiles of the NB201 smoke search step).
@pytest.mark.slow
def test_beta_decay_enters_the_alpha_step_from_epoch_1():
  """In the compiled step: lambda = 0 through epoch 0, so those alpha steps equal the ones
  without the term; the first step of epoch 1 (lambda = 50 / 100) differs, and the reported
  ``reg/beta_decay`` is lambda * mean logsumexp of the alpha it started from."""
  config = load_config(config_path("betadarts_nb201.py"), max_steps=8)
  search, on, metrics = alpha_trajectory(config, 8)
  per_epoch = search.steps_per_epoch
  assert 1 <= per_epoch < 8
  config.arch_regularizer.beta_decay_weight = 0.0
  _, off, _ = alpha_trajectory(config, per_epoch + 1)
  for step in range(per_epoch):
    np.testing.assert_array_equal(on[step], off[step])
    np.testing.assert_allclose(metrics[step]["reg/beta_decay"], 0.0)
  assert not np.allclose(on[per_epoch], off[per_epoch], rtol=0, atol=1e-9)
  before = np.asarray(on[per_epoch - 1], np.float64)
  want = 0.5 * np.mean(np.log(np.sum(np.exp(before), axis=-1)))
  np.testing.assert_allclose(metrics[per_epoch]["reg/beta_decay"], want, rtol=1e-4)
  np.testing.assert_allclose(metrics[per_epoch]["reg/beta_decay_lambda"], 0.5)
