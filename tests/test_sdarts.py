"""SDARTS (RS and ADV): the reference's clip rule, the epsilon ramp, the random and the adversarial
perturbation against closed forms, and that only the weight step sees them."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas import parametrize
from jaxnas import steps
from jaxnas.methods import sdarts
from test_loop import ROOT, load_config



def reference_clip(a):
  """SmoothDARTS ``model_search.py`` ``clip``, written out row by row in NumPy."""
  a = np.clip(np.array(a, np.float64), 0.0, 1.0)
  for row in a.reshape(-1, a.shape[-1]):
    if row.sum() == 0:
      row[np.argmax(row)] = 1.0
    row /= row.sum()
  return a


def test_clip_rows_is_the_references_rule():
  a = jnp.array([[0.5, -0.2, 0.9, 0.1], [-0.1, -0.3, -0.2, -0.5], [1.4, 0.2, 0.0, 0.0]])
  np.testing.assert_allclose(sdarts.clip_rows(a), reference_clip(a), rtol=1e-6)


def test_epsilon_ramps_per_epoch_from_min_toward_max():
  for epoch in (0, 1, 49):
    for step in (3 * epoch, 3 * epoch + 2):
      np.testing.assert_allclose(sdarts.epsilon(step, 0.03, 0.3, 50, 3),
                                 0.03 + (0.3 - 0.03) * epoch / 50, rtol=1e-6)
  np.testing.assert_allclose(sdarts.epsilon(3 * 80, 0.03, 0.3, 50, 3), 0.3, rtol=1e-6)


A = jax.nn.softmax(jnp.array([[0.1, -0.2, 0.3, 0.0], [0.2, 0.1, -0.1, 0.05]]))
COEF = jnp.array([[1.0, 2.0, -1.0, -2.0]])  # signs (+, +, -, -): a move by eps * sign keeps rows on 1


def linear_loss(mixing):
  return jnp.sum(COEF * mixing["cell"])


def test_random_perturbation_is_clipped_uniform_noise_within_eps():
  key, eps = jax.random.key(3), 0.05
  got = sdarts.random_perturbation({"cell": A}, ("cell",), key, eps)["cell"]
  noise = jax.random.uniform(jax.random.split(key, 1)[0], A.shape, A.dtype, -1.0, 1.0) * eps
  np.testing.assert_allclose(got, reference_clip(A + noise), rtol=1e-5)
  assert float(jnp.max(jnp.abs(noise))) <= eps


def test_adversarial_perturbation_stays_in_the_ball_and_increases_the_loss():
  """With a linear loss whose gradient signs cancel per row, the 7 sign steps of 2 eps / 7 from any
  start in the ball end on its corner A + eps sign(c) (the clip is then the identity): the
  closed-form maximizer of the loss over the eps-ball of rows summing to 1."""
  eps = 0.04
  got = sdarts.pgd_perturbation({"cell": A}, ("cell",), jax.random.key(5), eps, 7,
                                linear_loss)["cell"]
  np.testing.assert_allclose(got, A + eps * jnp.sign(COEF), rtol=1e-5, atol=1e-6)
  assert float(jnp.max(jnp.abs(got - A))) <= eps + 1e-6
  assert float(linear_loss({"cell": got})) > float(linear_loss({"cell": A}))
  np.testing.assert_allclose(float(linear_loss({"cell": got}) - linear_loss({"cell": A})),
                             eps * float(jnp.sum(jnp.abs(COEF))) * A.shape[0], rtol=1e-4)


def test_adversarial_perturbation_reverts_when_the_attack_lowers_the_loss():
  """The reference keeps the clean A when CE(A) > CE(A_adv): a loss the sign steps cannot raise
  (maximal at A, here -||m - A||^2) gives back A."""
  loss = lambda m: -jnp.sum((m["cell"] - A) ** 2)
  got = sdarts.pgd_perturbation({"cell": A}, ("cell",), jax.random.key(1), 0.05, 7, loss)["cell"]
  np.testing.assert_allclose(got, A, rtol=1e-6)


def components(perturbation):
  return steps.SearchComponents(module=None, parametrization=parametrize.get("softmax"),
                                weights_tx=None, arch_tx=None, weights_lr=None, mean=(), std=(),
                                transforms=(perturbation,))


def test_only_the_weight_forward_is_perturbed():
  perturbation = sdarts.Perturbation(cell_keys=("cell",), eps_min=0.05, eps_max=0.05)
  comps = components(perturbation)
  arch = {"cell": jnp.log(A)}
  key = jax.random.key(9)
  weights_mixing = steps.transformed(comps, key, 0, "weights").parametrization.activate(arch)
  want = sdarts.random_perturbation({"cell": A}, ("cell",), key, 0.05)["cell"]
  np.testing.assert_allclose(weights_mixing["cell"], want, rtol=1e-5)
  arch_mixing = steps.transformed(comps, key, 0, "arch").parametrization.activate(arch)
  np.testing.assert_allclose(arch_mixing["cell"], A, rtol=1e-6)


def test_config_errors_name_the_fix():
  config = load_config(os.path.join(ROOT, "configs", "sdarts_nb201.py"))
  config.arch_perturbation.name = "gaussian"
  with pytest.raises(ValueError, match="arch_perturbation.name"):
    sdarts.read_perturbation(config, None, 1)
  config.arch_perturbation.name = "random"
  config.parametrization = "clamp"
  with pytest.raises(ValueError, match="softmax"):
    sdarts.read_perturbation(config, None, 1)
  with pytest.raises(ValueError, match="epsilon_min"):
    sdarts.Perturbation(cell_keys=("cell",), eps_min=0.5, eps_max=0.3)
