"""The GDAS family (GDAS, MiLeNAS-GDAS, GAEA-GDAS): the Gumbel sampler, its temperature, the
sampled-op edge, against independent computations; each new config with vmapped seeds."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas import parametrize
from jaxnas import parts
from jaxnas import search as search_lib
from jaxnas.methods import compose
from jaxnas.spaces import ops as ops_lib
from test_loop import ROOT, load_config

OPS = ("none", "skip_connect", "nor_conv_1x1", "avg_pool_3x3")
CHANNELS = 4
X = jax.random.normal(jax.random.key(0), (2, 5, 5, CHANNELS))
TARGET = jax.random.normal(jax.random.key(1), (2, 5, 5, CHANNELS))
ALPHA = jnp.array([0.3, -0.2, 1.1, 0.4])


def config_path(name):
  return os.path.join(ROOT, "configs", name)


def edge_variables(module):
  return module.init(jax.random.key(2), X, jnp.full((len(OPS),), 0.25), train=True)


def single_op(name, variables, x):
  """The op alone, as its own module on the edge's variables of that op (independent of the
  edge's code)."""
  if name == "none":
    return jnp.zeros_like(x)
  op = ops_lib.make_op(name, CHANNELS, 1, affine=False)
  sub = {col: tree[name] for col, tree in variables.items() if name in tree}
  return op.apply(sub, x, train=True, mutable=["batch_stats"])[0]


def sample(alpha, key, tau=2.0):
  return parametrize.gumbel_hard(jax.nn.log_softmax(alpha), key, tau)


# Two keys whose samples are different ops, neither of them 'none'.
def keys_with_distinct_samples():
  chosen, keys = set(), []
  for i in range(100):
    j = int(jnp.argmax(sample(ALPHA, jax.random.key(i))))
    if j not in chosen and OPS[j] != "none":
      chosen.add(j)
      keys.append(jax.random.key(i))
    if len(keys) == 2:
      return keys
  raise AssertionError("no two distinct samples")


@pytest.mark.parametrize("form", ["nb201", "nasnet"])
def test_sampled_edge_value_and_gradient_equal_the_references_formula(form):
  edge = ops_lib.SampledMixedOp(OPS, CHANNELS, form=form)
  variables = edge_variables(edge)
  outputs = {name: single_op(name, variables, X) for name in OPS}
  for key in keys_with_distinct_samples():
    def edge_loss(alpha):
      y, _ = edge.apply(variables, X, sample(alpha, key), train=True, mutable=["batch_stats"])
      return jnp.sum((y - TARGET) ** 2), y

    def reference_loss(alpha):  # search_cells.py:80-83 (nb201) / :181 (nasnet), written out
      h = sample(alpha, key)
      j = int(jnp.argmax(h))
      y = h[j] * outputs[OPS[j]]
      if form == "nb201":
        y = y + sum(h[k] for k in range(len(OPS)) if k != j)
      return jnp.sum((y - TARGET) ** 2), y

    (loss, y), grad = jax.value_and_grad(edge_loss, has_aux=True)(ALPHA)
    (ref_loss, _), ref_grad = jax.value_and_grad(reference_loss, has_aux=True)(ALPHA)
    j = int(jnp.argmax(sample(ALPHA, key)))
    np.testing.assert_allclose(y, outputs[OPS[j]], rtol=1e-6, atol=1e-6)  # the sampled op's output
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-6)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-5, atol=1e-6)
    assert np.all(np.abs(grad) > 0)


def test_all_ops_edge_gives_the_straight_through_gradient():
  """The plain MixedOp fed the hard sample: value = the sampled op's output, alpha gradient = the
  straight-through estimator d/dalpha L(sum_k hardwts_k op_k(x)), every op's output computed
  independently."""
  edge = ops_lib.MixedOp(OPS, CHANNELS)
  variables = edge_variables(edge)
  outputs = {name: single_op(name, variables, X) for name in OPS}
  key = keys_with_distinct_samples()[0]

  def edge_loss(alpha):
    y, _ = edge.apply(variables, X, sample(alpha, key), train=True, mutable=["batch_stats"])
    return jnp.sum((y - TARGET) ** 2), y

  def straight_through_loss(alpha):
    h = sample(alpha, key)
    return jnp.sum((sum(h[k] * outputs[name] for k, name in enumerate(OPS)) - TARGET) ** 2)

  (_, y), grad = jax.value_and_grad(edge_loss, has_aux=True)(ALPHA)
  np.testing.assert_allclose(y, outputs[OPS[int(jnp.argmax(sample(ALPHA, key)))]], atol=1e-6)
  np.testing.assert_allclose(grad, jax.grad(straight_through_loss)(ALPHA), rtol=1e-5, atol=1e-6)


def test_gumbel_hard_is_one_hot_with_the_relaxed_gradient():
  key, tau = jax.random.key(7), 0.7
  h = sample(ALPHA, key, tau)
  assert set(np.asarray(h).round(6).tolist()) == {0.0, 1.0} and float(jnp.sum(h)) == 1.0
  g = jax.random.gumbel(key, ALPHA.shape)  # the reference's formula, search_model_gdas.py:116-121
  relaxed = lambda a: jax.nn.softmax((jax.nn.log_softmax(a) + g) / tau)
  assert int(jnp.argmax(h)) == int(jnp.argmax(relaxed(ALPHA)))
  w = jnp.arange(4.0)
  np.testing.assert_allclose(jax.grad(lambda a: jnp.sum(w * sample(a, key, tau)))(ALPHA),
                             jax.grad(lambda a: jnp.sum(w * relaxed(a)))(ALPHA), rtol=1e-6)


@pytest.mark.parametrize("parametrization", ["softmax", "simplex"])
def test_gumbel_sample_frequencies_match_the_distribution(parametrization):
  param = parametrize.get(parametrization)
  alpha = ALPHA if parametrization == "softmax" else jax.nn.softmax(ALPHA)
  probs = np.asarray(param.activate_leaf(alpha))
  n = 20000
  keys = jax.random.split(jax.random.key(3), n)
  log_p = param.log_activate_leaf(alpha)
  draws = jax.vmap(lambda k: jnp.argmax(parametrize.gumbel_hard(log_p, k, 10.0)))(keys)
  freq = np.bincount(np.asarray(draws), minlength=4) / n
  np.testing.assert_allclose(freq, probs, atol=4 * np.sqrt(probs * (1 - probs) / n).max())


def test_temperature_is_linear_per_epoch_as_the_reference():
  epochs, per_epoch = 5, 3
  sampler = parts.Gumbel(tau_max=10.0, tau_min=0.1, epochs=epochs, steps_per_epoch=per_epoch)
  for epoch in range(epochs):
    want = 10 - (10 - 0.1) * epoch / (epochs - 1)  # GDAS.py:237-239
    for step in (epoch * per_epoch, epoch * per_epoch + per_epoch - 1):
      np.testing.assert_allclose(sampler.tau(step), want, rtol=1e-5)
  np.testing.assert_allclose(sampler.tau(epochs * per_epoch + 4), 0.1, rtol=1e-5)  # held after
  warm = parts.Gumbel(tau_max=10.0, tau_min=0.1, epochs=epochs, steps_per_epoch=per_epoch,
                          warmup_epochs=2)
  for epoch in range(epochs):  # GAEA's EGDAS: max(epoch - warmup, 0) / (epochs - 1)
    np.testing.assert_allclose(warm.tau(epoch * per_epoch),
                               10 - 9.9 * max(epoch - 2, 0) / (epochs - 1), rtol=1e-5)
  with pytest.raises(ValueError, match="tau_min"):
    parts.Gumbel(tau_max=1.0, tau_min=2.0)


def test_milenas_gdas_tau_matches_milenas_schedule():
  """MiLeNAS' tau = tau_max - epoch/epochs (tau_max - tau_min), tau_min = 1, from the config's
  shifted tau_min."""
  config = load_config(config_path("milenas_gdas_cifar10.py"), arg=None)
  sampler = compose.read_sampler(config, steps_per_epoch=2)
  for epoch in (0, 1, 150, 299):
    np.testing.assert_allclose(sampler.tau(2 * epoch), 10 - epoch / 300 * 9, rtol=1e-5)


def test_config_errors_name_the_fix():
  config = load_config(config_path("gdas_nb201.py"))
  config.arch_sampler.name = "none"
  with pytest.raises(ValueError, match="sampled_forward"):
    compose.read_sampler(config, 1)
  config = load_config(config_path("gdas_nb201.py"))
  config.parametrization = "clamp"
  with pytest.raises(ValueError, match="softmax"):
    compose.read_sampler(config, 1)
  # The sampled-op edge runs only the argmax op: transforms that need every op's output refuse it.
  from jaxnas import spaces
  for field, value in (("arch_sampler.name", "gumbel_soft"), ("auxiliary_skip.beta", 1.0),
                       ("arch_perturbation.name", "random")):
    config = load_config(config_path("gdas_nb201.py"), **{field: value})
    with pytest.raises(ValueError, match="sampled_forward=False"):
      compose.read_transforms(config, spaces.get("nb201"), 1)


def test_schedule_start_epoch_skips_alpha_steps():
  schedule = parts.EveryK(k=1, start=6)
  assert not schedule.always
  assert [bool(schedule.due(s, schedule.init())) for s in (0, 5, 6, 7)] == [False, False, True,
                                                                             True]


def test_skeleton_samples_for_training_and_keeps_the_deterministic_mixing_elsewhere():
  """``steps.transformed``: the training forwards' mixing is the sampler's hard draw; what the
  regularizers see (``steps.context``) stays softmax(alpha)."""
  from jaxnas import steps
  sampler = parts.Gumbel(epochs=3, steps_per_epoch=2)
  comps = steps.SearchComponents(module=None, parametrization=parametrize.get("softmax"),
                                 weights_tx=None, arch_tx=None, weights_lr=None, mean=(), std=(),
                                 transforms=(sampler,))
  arch = {"cell": jnp.stack([ALPHA, -ALPHA])}
  key = jax.random.key(11)
  drawn = steps.transformed(comps, key, 2, "weights").parametrization.activate(arch)["cell"]
  want = parametrize.gumbel_hard(jax.nn.log_softmax(arch["cell"]), jax.random.split(key, 1)[0],
                                 sampler.tau(2))
  np.testing.assert_allclose(drawn, want, rtol=1e-6)
  np.testing.assert_allclose(jnp.sum(drawn, axis=-1), 1.0, rtol=1e-6)
  ctx = steps.context(steps.transformed(comps, key, 2, "weights"), {}, 2)
  np.testing.assert_allclose(ctx.activate(arch)["cell"], jax.nn.softmax(arch["cell"]), rtol=1e-6)
  assert steps.transformed(steps.SearchComponents(
      module=None, parametrization=parametrize.get("softmax"), weights_tx=None, arch_tx=None,
      weights_lr=None, mean=(), std=()), key, 0, "weights").parametrization.name == "softmax"


# Slow (a compile of the full step, about 11 s); the vmapped-seeds test below runs the same config.
@pytest.mark.slow
def test_sampled_search_step_draws_differ_and_eval_is_deterministic():
  """Two steps of GDAS' smoke search: alpha moves, the step reports tau, and the evaluation
  mixing is softmax(alpha)."""
  config = load_config(config_path("gdas_nb201.py"))
  search = search_lib.build_search(config)
  assert search.components.transforms
  state = search_lib.start_state(search)
  arch0 = np.asarray(state.arch["cell"])
  step_fn = search_lib.jit_search_step(search)
  new_state, metrics = step_fn(state, search_lib.step_batches(search, 0))
  np.testing.assert_allclose(metrics["sampler/tau"], 10.0)
  assert not np.allclose(new_state.arch["cell"], arch0)
  from jaxnas import steps
  np.testing.assert_allclose(steps.mixing(search.components, new_state)["cell"],
                             jax.nn.softmax(new_state.arch["cell"]), rtol=1e-6)
