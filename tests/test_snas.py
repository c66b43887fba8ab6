"""SNAS (jaxnas.methods.snas): the relaxed Gumbel sample and its gradient, the temperature, the
single-level joint step, the resource term and its op costs, against independent computations;
config errors; each new config with vmapped seeds (slow)."""
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxnas import optim
from jaxnas import parametrize
from jaxnas import parts
from jaxnas import spaces
from jaxnas import steps
from jaxnas.methods import compose
from jaxnas.methods import rarts
from jaxnas.methods import snas
from jaxnas.spaces import ops as ops_lib
from jaxnas.state import create_search_state
from test_loop import ROOT, load_config

NEW_CONFIGS = ("snas_nb201.py", "snas_cifar10.py")


def config_path(name):
  return os.path.join(ROOT, "configs", name)


def snas_config(name="snas_nb201.py", arg=None):
  from configs import snas_cifar10, snas_nb201
  return {"snas_nb201.py": snas_nb201, "snas_cifar10.py": snas_cifar10}[name].get_config(arg)


# ------------------------------------------------------------------------------- the sampler
def test_soft_sample_is_the_relaxed_gumbel_softmax_with_the_same_noise():
  sampler = parts.Gumbel(hard=False, tau_max=0.7, tau_min=0.7)
  alpha = {"a": jnp.array([[0.3, -0.2, 1.1], [0.0, 0.5, -1.0]]), "b": jnp.array([[2.0, 0.1]])}
  key = jax.random.key(3)
  z = sampler.sample(jax.tree.map(jax.nn.log_softmax, alpha), key, 0)
  keys = jax.random.split(key, 2)  # one key per leaf, in leaf order (a, b)
  for leaf, k in zip(("a", "b"), keys):
    g = jax.random.gumbel(k, alpha[leaf].shape)
    log_p = np.log(np.exp(alpha[leaf]) / np.exp(alpha[leaf]).sum(-1, keepdims=True))
    y = (log_p + np.asarray(g)) / 0.7
    expected = np.exp(y) / np.exp(y).sum(-1, keepdims=True)
    np.testing.assert_allclose(z[leaf], expected, rtol=1e-5)
    assert not np.allclose(z[leaf].max(-1), 1.0)  # relaxed, not one-hot


def test_soft_sample_gradient_is_the_relaxed_samples():
  """d(v . z)/d alpha = z * (v - v . z) / tau for z = softmax((log softmax(alpha) + g) / tau)
  (the log-softmax normalisation drops out), written out by hand."""
  alpha, v, tau = jnp.array([0.3, -0.2, 1.1, 0.4]), jnp.array([1.0, -2.0, 0.5, 3.0]), 0.5
  key = jax.random.key(7)
  grad = jax.grad(lambda a: jnp.dot(v, parametrize.gumbel_soft(jax.nn.log_softmax(a), key,
                                                                 tau)))(alpha)
  z = np.asarray(parametrize.gumbel_soft(jax.nn.log_softmax(alpha), key, tau))
  np.testing.assert_allclose(grad, z * (v - np.dot(v, z)) / tau, rtol=1e-5, atol=1e-7)


def test_temperature_is_linear_per_epoch_from_1_to_003_over_150_epochs():
  sampler = compose.read_gumbel(snas_config(), steps_per_epoch=10)
  assert not sampler.hard
  for epoch in (0, 1, 75, 149, 200):
    expected = max(1.0 - 0.97 * epoch / 149, 0.03)
    for step in (10 * epoch, 10 * epoch + 9):
      np.testing.assert_allclose(sampler.tau(step), expected, rtol=1e-6)
  # The reference's schedule, one epoch ahead: tau_max = 1 - 0.97/150 reproduces it.
  config = snas_config()
  config.arch_sampler.tau_max = 1 - 0.97 / 150
  ref = compose.read_gumbel(config, steps_per_epoch=1)
  for epoch in range(0, 160, 7):
    np.testing.assert_allclose(ref.tau(epoch), max((1 - (epoch + 1) / 150) * 0.97 + 0.03, 0.03),
                               rtol=1e-5)


# ------------------------------------------------------------------------------- the joint step
class Toy(nn.Module):
  """A tiny supernet: BN features, two mixed 'edges' of three dense ops each."""

  @nn.compact
  def __call__(self, x, mixing, *, train):
    h = nn.Dense(5)(x.reshape(x.shape[0], -1))
    h = nn.BatchNorm(use_running_average=not train, momentum=0.9)(h)
    z = mixing["cell"]
    outs = [nn.Dense(4, name=f"op{k}")(h) for k in range(3)]
    y = sum(z[0, k] * outs[k] for k in range(3))
    return sum(z[1, k] * jnp.tanh(outs[k] + y) for k in range(3))


TAU = 0.8
COSTS = np.array([[0.0, 3.0, 10.0], [1.0, 0.0, 5.0]])


def toy_search(regularizers=()):
  module = Toy()
  images = jax.random.randint(jax.random.key(1), (6, 4, 4, 3), 0, 256).astype(jnp.uint8)
  labels = jnp.array([0, 1, 2, 3, 1, 0])
  variables = module.init(jax.random.key(2), jnp.zeros((6, 4, 4, 3)),
                          {"cell": jnp.full((2, 3), 1 / 3)}, train=True)
  comps = steps.SearchComponents(
      module=module, parametrization=parametrize.get("softmax"),
      weights_tx=optim.sgd_pytorch(0.1, momentum=0.9, weight_decay=3e-4, clip_norm=5.0),
      arch_tx=optim.adam_l2(3e-4, b1=0.5, b2=0.999, weight_decay=1e-3),
      weights_lr=lambda s: jnp.float32(0.1), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25),
      crop_padding=0, flip=False, step_order="weights_first",
      regularizers=tuple(regularizers), weight_phase=snas.JointStep(),
      transforms=(parts.Gumbel(hard=False, tau_max=TAU, tau_min=TAU),))
  arch = {"cell": jax.random.normal(jax.random.key(4), (2, 3))}
  state = create_search_state(weights=variables["params"], model_state=variables["batch_stats"],
                              arch=arch, weights_tx=comps.weights_tx, arch_tx=comps.arch_tx,
                              key=jax.random.key(5))
  state = state.replace(method_state=steps.init_state_of_parts(comps, state))
  return comps, state, (images, labels)


def independent_loss(comps, state, batch, key):
  """CE of the toy net at z = softmax((log softmax(alpha) + g) / tau), g from ``key`` (the
  sampler's one leaf gets split(key, 1)[0]), written out: ``(w, alpha) -> (loss, bn state)``."""
  g = jax.random.gumbel(jax.random.split(key, 1)[0], (2, 3))

  def loss(w, alpha):
    z = jax.nn.softmax((jax.nn.log_softmax(alpha["cell"]) + g) / TAU)
    logits, new = comps.module.apply({"params": w, "batch_stats": state.model_state}, batch[0],
                                     {"cell": z}, train=True, mutable=["batch_stats"])
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, batch[1])), new
  return loss


def test_joint_step_alpha_gradient_is_the_training_loss_gradient_and_w_steps_as_plain():
  comps, state, (images, labels) = toy_search()
  x = (images.astype(jnp.float32) / 255 - 0.5) / 0.25
  batch, key = (x, labels), jax.random.key(11)
  comps_w = steps.transformed(comps, key, state.step, "weights")
  new, metrics, carry = snas.JointStep().update(comps_w, state, batch, None)
  loss = independent_loss(comps, state, batch, key)
  expected_g = jax.grad(lambda a: loss(state.weights, a)[0])(state.arch)
  np.testing.assert_allclose(carry["cell"], expected_g["cell"], rtol=1e-5, atol=1e-7)
  assert np.abs(carry["cell"]).max() > 1e-4
  np.testing.assert_allclose(metrics["train/loss"], loss(state.weights, state.arch)[0], rtol=1e-6)
  plain, _ = steps.weights_update(comps_w, state, *batch)
  for a, b in zip(jax.tree.leaves(new.weights), jax.tree.leaves(plain.weights)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  for a, b in zip(jax.tree.leaves(new.model_state), jax.tree.leaves(plain.model_state)):
    np.testing.assert_allclose(a, b, rtol=1e-6)
  g, same, arch_metrics = snas.JointStep().arch_gradient(comps, new, batch, batch, 0.1, carry)
  assert g is carry and same is new and arch_metrics == {}


def test_search_step_with_joint_step_moves_alpha_by_the_joint_gradient_plus_resource():
  """The skeleton's step: alpha <- Adam(alpha, grad_alpha L(w, z) + lam p*(c - <p, c>)) at the
  weight forward's sample (keys as ``steps.search_step`` splits them), w as the plain step."""
  lam = 0.01
  resource = snas.Resource(weight=lam, costs=snas._freeze({"cell": COSTS}))
  comps, state, (images, labels) = toy_search([resource])
  new, metrics = steps.search_step(state, {"train": (images, labels), "val": (images, labels)},
                                   components=comps)
  key = jax.random.wrap_key_data(state.key)
  key, key_train, _ = jax.random.split(key, 3)
  _, key_w, _ = jax.random.split(key, 3)
  x = steps.augment(comps, key_train, images)
  loss = independent_loss(comps, state, (x, labels), key_w)
  g = jax.grad(lambda a: loss(state.weights, a)[0])(state.arch)["cell"]
  p = np.asarray(jax.nn.softmax(state.arch["cell"]))
  g_reg = lam * p * (COSTS - (p * COSTS).sum(-1, keepdims=True))
  updates, _ = comps.arch_tx.update({"cell": g + g_reg}, comps.arch_tx.init(state.arch),
                                    state.arch)
  np.testing.assert_allclose(new.arch["cell"], state.arch["cell"] + updates["cell"], rtol=1e-5,
                             atol=1e-8)
  np.testing.assert_allclose(metrics["reg/resource"], lam * (p * COSTS).sum(), rtol=1e-5)
  np.testing.assert_allclose(metrics["val/loss"], metrics["train/loss"])
  np.testing.assert_allclose(metrics["sampler/tau"], TAU)


# ------------------------------------------------------------------------------- resource term
def test_resource_value_and_gradient_are_the_exact_expectation():
  lam = 1e-3
  costs = {"normal": np.array([[0.0, 2.0, 7.0], [4.0, 1.0, 0.0]]), "reduce": np.array([[3.0, 0.0,
                                                                                       9.0]])}
  reg = snas.Resource(weight=lam, costs=snas._freeze(costs))
  arch = {"normal": jnp.array([[0.1, -0.3, 0.7], [1.0, 0.0, -2.0]]),
          "reduce": jnp.array([[0.5, 0.2, -0.1]])}
  ctx = parts.Context(activate=parametrize.get("softmax").activate, step=0)
  value, grad = jax.value_and_grad(lambda a: reg.penalty(a, reg.init(a, ctx), ctx))(arch)
  expected, expected_grad = 0.0, {}
  for k, c in costs.items():
    p = np.exp(arch[k]) / np.exp(arch[k]).sum(-1, keepdims=True)
    expected += lam * (p * c).sum()
    expected_grad[k] = lam * p * (c - (p * c).sum(-1, keepdims=True))
  np.testing.assert_allclose(value, expected, rtol=1e-6)
  for k in costs:
    np.testing.assert_allclose(grad[k], expected_grad[k], rtol=1e-5, atol=1e-10)
  _, m = reg.advance(parts.NoState(), arch, True, ctx)
  np.testing.assert_allclose(m["resource/expected_cost"], expected / lam, rtol=1e-6)


def module_params(name, channels, stride, affine):
  op = ops_lib.make_op(name, channels, stride, affine=affine, pool_bn=True)
  variables = op.init(jax.random.key(0), jnp.zeros((1, 8, 8, channels)), train=True)
  return sum(int(np.prod(v.shape)) for v in jax.tree.leaves(variables.get("params", {})))


@pytest.mark.parametrize("affine", [False, True])
def test_op_parameter_counts_equal_the_flax_modules(affine):
  for name in ops_lib.OP_NAMES:
    for channels in (4, 6):
      for stride in (1, 2):
        assert snas.op_params(name, channels, stride, affine) == module_params(
            name, channels, stride, affine), (name, channels, stride)


def test_space_costs_per_edge_and_cell_type():
  ops = spaces.DARTS_OPS
  costs = snas.darts_costs(ops, channels=16, layers=8, nodes=4)
  sep3, skip = ops.index("sep_conv_3x3"), ops.index("skip_connect")
  # normal cells at widths 16, 16, 32, 32, 64, 64; reduce cells at 32, 64
  sep = lambda c: 2 * (c * 9 + c * c)
  np.testing.assert_allclose(costs["normal"][:, sep3], np.mean([sep(16), sep(32), sep(64)]))
  np.testing.assert_allclose(costs["reduce"][:, sep3], np.mean([sep(32), sep(64)]))
  assert np.all(costs["normal"][:, skip] == 0)
  front = [0, 1, 2, 3, 5, 6, 9, 10]  # edges from the cell inputs (stride 2 in reduce cells)
  expected_skip = np.zeros(14)
  expected_skip[front] = np.mean([32 ** 2, 64 ** 2])  # FactorizedReduce
  np.testing.assert_allclose(costs["reduce"][:, skip], expected_skip)
  nb = snas.nb201_costs(spaces.NB201_OPS, 16, 5)["cell"]
  conv3 = spaces.NB201_OPS.index("nor_conv_3x3")
  np.testing.assert_allclose(nb[:, conv3], 9 * (16 ** 2 + 32 ** 2 + 64 ** 2) / 3)
  assert nb.shape == (6, len(spaces.NB201_OPS))


# ------------------------------------------------------------------------------- config
@pytest.mark.parametrize("name", NEW_CONFIGS)
def test_configs_read_the_snas_parts(name):
  config = snas_config(name, "resource")
  found = compose.read_parts(config, spaces.from_config(config), 10)
  assert isinstance(found["weight_phase"], snas.JointStep)
  (sampler,) = found["transforms"]
  assert not sampler.hard and sampler.epochs == 150
  assert [r.name for r in found["regularizers"]] == ["resource"]
  assert snas_config(name).arch_regularizer.names == ""


@pytest.mark.parametrize("field,value,match", [
    ("hypergrad", "unrolled", "config.hypergrad='unrolled'"),
    ("arch_every", 2, "config.arch_every=2"),
    ("arch_regularizer.resource_cost", "flops", "resource_cost='flops'"),
])
def test_config_errors_name_the_field(field, value, match):
  config = snas_config("snas_nb201.py", "resource")
  block, _, leaf = field.rpartition(".")
  (config[block] if block else config)[leaf] = value
  with pytest.raises(ValueError, match=match):
    compose.read_parts(config, spaces.from_config(config), 10)


def test_joint_step_refuses_a_methods_own_weight_phase_and_rarts_is_unchanged():
  config = load_config(config_path("rarts_nb201.py"))
  space = spaces.from_config(config)
  assert isinstance(rarts.read_parts(config, space, 10)["weight_phase"], rarts.CoupledNetworks)
  config.joint_step = True
  with pytest.raises(ValueError, match="joint_step=True replaces the weight phase"):
    rarts.read_parts(config, space, 10)
