"""RARTS (jaxnas/methods/rarts.py): the Gauss–Seidel pass against hand-written updates, the
solvable model's closed forms, the β → ∞ and λ = 0 limits, and smoke runs with resume."""
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxnas import checkpoint as checkpoint_lib
from jaxnas import data as data_lib
from jaxnas import hypergrad
from jaxnas import driver
from jaxnas import search as search_lib
from jaxnas import methods
from jaxnas import steps
from jaxnas.methods import rarts
from jaxnas.program import RunError
import repo_files
from test_loop import ROOT, load_config

MODEL = rarts.SolvableModel.random(0)
N_W, N_A = MODEL.sizes
VARIANTS = [
    rarts.RartsOptions(),
    rarts.RartsOptions(lam=0.5, beta=2.0, lam_on="val", coupling_in_w_step=True),
    rarts.RartsOptions(lam=2.0, beta=0.7, network_steps="unit", alpha_gradient_at="current"),
    rarts.RartsOptions(lam=0.3, beta=1.5, lam_on="val", coupling_in_w_step=True,
                       network_steps="unit", alpha_gradient_at="current"),
]


@pytest.fixture
def x64():
  with jax.enable_x64(True):
    yield


def variables(seed, txs):
  rng = np.random.default_rng(seed)
  w, y, a = (jnp.asarray(rng.normal(size=s)) for s in (N_W, N_W, N_A))
  return rarts.RartsVariables(w, y, a, txs[0].init(w), txs[1].init(y), txs[2].init(a))


def as_vector(v):
  return np.concatenate([np.asarray(v.weights), np.asarray(v.val_weights), np.asarray(v.arch)])


# --------------------------------------------------------------------------- the solvable model


@pytest.mark.parametrize("options", VARIANTS, ids=range(len(VARIANTS)))
def test_one_pass_on_the_model_equals_the_hand_written_update_and_the_affine_map(options, x64):
  lrs = (0.3, 0.2, 0.25)
  txs = [optax.sgd(lr) for lr in lrs]
  v = variables(1, txs)
  train, val = MODEL.batches()
  new = rarts.gauss_seidel_pass(MODEL.loss, MODEL.loss, v, train, val, options=options,
                                weights_tx=txs[0], val_weights_tx=txs[1], arch_tx=txs[2])
  # By hand, from the formulas of the module docstring.
  (c_tr, c_val), (a_tr, a_val) = options.arch_weights, options.network_weights
  kappa = 1.0 if options.coupling_in_w_step else 0.0
  gw = lambda th, a, b: jax.grad(MODEL.loss, 0)(th, a, b)  # noqa: E731
  ga = lambda th, a, b: jax.grad(MODEL.loss, 1)(th, a, b)  # noqa: E731
  w, y, a = v.weights, v.val_weights, v.arch
  w1 = w - lrs[0] * (a_tr * gw(w, a, train) + kappa * options.beta * (w - y))
  y1 = y - lrs[1] * (a_val * gw(y, a, val) + options.beta * (y - w1))
  at_w, at_y = (w1, y1) if options.alpha_gradient_at == "updated" else (w, y)
  a1 = a - lrs[2] * (c_tr * ga(at_w, a, train) + c_val * ga(at_y, a, val))
  np.testing.assert_allclose(as_vector(new), np.concatenate([w1, y1, a1]), rtol=1e-12, atol=1e-12)
  # ... and the closed-form affine map of the pass.
  big_t, t = MODEL.gauss_seidel_map(options, lrs)
  np.testing.assert_allclose(as_vector(new), big_t @ as_vector(v) + t, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("options", VARIANTS[:2], ids=range(2))
def test_iterates_reach_the_closed_form_fixed_point(options, x64):
  lrs = (0.3, 0.3, 0.3)
  big_t, t = MODEL.gauss_seidel_map(options, lrs)
  assert max(abs(np.linalg.eigvals(big_t))) < 0.99  # the pass is a contraction here
  txs = [optax.sgd(lr) for lr in lrs]
  train, val = MODEL.batches()
  step = functools.partial(rarts.gauss_seidel_pass, MODEL.loss, MODEL.loss, train_batch=train,
                           val_batch=val, options=options, weights_tx=txs[0],
                           val_weights_tx=txs[1], arch_tx=txs[2])
  final, _ = jax.lax.scan(lambda v, _: (step(v), None), variables(2, txs), None, length=3000)
  fixed = np.concatenate(MODEL.rarts_fixed_point(options))
  np.testing.assert_allclose(as_vector(final), fixed, atol=1e-9)
  # Every block gradient vanishes there.
  big_k, k = MODEL.rarts_system(options)
  np.testing.assert_allclose(big_k @ fixed, k, atol=1e-10)


def test_darts_first_and_second_order_reach_their_closed_forms_which_differ_from_rarts(x64):
  problem = hypergrad.BilevelProblem(MODEL.loss, MODEL.loss)
  train, val = MODEL.batches()
  lr_w, lr_a, xi = 0.3, 0.3, 0.2

  def darts(estimator):
    def step(carry, _):  # alpha step first (quark0/darts), then the weight step
      w, a = carry
      a = a - lr_a * estimator(problem, w, a, train, val)
      return (w - lr_w * jax.grad(MODEL.loss)(w, a, train), a), None
    (w, a), _ = jax.lax.scan(step, (jnp.zeros(N_W), jnp.zeros(N_A)), None, length=4000)
    return np.asarray(w), np.asarray(a)

  found = {"first": darts(hypergrad.FirstOrder()),
           "second": darts(hypergrad.FiniteDifference(xi=xi, mixed_term="exact")),
           "milenas": darts(hypergrad.MixedLevel(lam=1.0))}
  closed = {"first": MODEL.darts_fixed_point(0.0), "second": MODEL.darts_fixed_point(xi),
            "milenas": MODEL.mixed_level_fixed_point(1.0, 1.0)}
  for name in found:
    for got, want in zip(found[name], closed[name]):
      np.testing.assert_allclose(got, want, atol=1e-8, err_msg=name)
  # Second order with xi -> the bilevel optimum when H_tr^{-1} is replaced exactly (here: not).
  alphas = {name: closed[name][1] for name in closed}
  alphas["bilevel"] = MODEL.bilevel_optimum()[1]
  alphas["rarts"] = MODEL.rarts_fixed_point(rarts.RartsOptions())[2]
  names = sorted(alphas)
  for i, p in enumerate(names):
    for q in names[i + 1:]:
      assert np.linalg.norm(alphas[p] - alphas[q]) > 1e-3, (p, q)


def test_scalar_model_closed_forms(x64):
  d_train, d_val, mu, lam = 0.0, 1.0, 0.5, 1.0
  model = rarts.SolvableModel.scalar(d_train, d_val, mu)
  assert model.bilevel_optimum()[1][0] == pytest.approx(d_val)
  assert model.darts_fixed_point(0.0)[1][0] == pytest.approx(((1 + mu) * d_val - d_train) / mu)
  # DARTS second order is exact when xi = 1 / H_tr = 1 / (1 + mu).
  assert model.darts_fixed_point(1 / (1 + mu))[1][0] == pytest.approx(d_val)
  # beta = 0: each network fits its split alone; alpha is the lam-weighted mean of the targets.
  decoupled = model.rarts_fixed_point(rarts.RartsOptions(lam=lam, beta=0.0))[2][0]
  assert decoupled == pytest.approx((lam * d_train + d_val) / (1 + lam))


# --------------------------------------------------------------------------- limits


@pytest.mark.parametrize("lam_on,weighting", [("val", "paper"), ("train", "code")])
def test_tied_networks_give_the_mixed_level_gradient(lam_on, weighting, x64):
  """beta -> infinity ties y = w: the alpha gradient is MiLeNAS' at w = y."""
  lam = 0.4
  options = rarts.RartsOptions(lam=lam, lam_on=lam_on)
  train, val = MODEL.batches()
  rng = np.random.default_rng(3)
  w, a = jnp.asarray(rng.normal(size=N_W)), jnp.asarray(rng.normal(size=N_A))
  f = lambda th, a, b: (MODEL.loss(th, a, b), None)  # noqa: E731
  g, _ = rarts.arch_gradient(f, f, w, w, a, train, val, train_weight=options.arch_weights[0],
                             val_weight=options.arch_weights[1])
  estimator = (hypergrad.MixedLevel(lam=lam) if weighting == "paper" else
               hypergrad.MixedLevel(lam=1.0, inner_weight=lam))
  want = estimator(hypergrad.BilevelProblem(MODEL.loss, MODEL.loss), w, a, train, val)
  np.testing.assert_allclose(g, want, rtol=1e-12)
  # ... and the fixed point tends to MiLeNAS' as beta grows (w step without the coupling).
  c_tr, c_val = options.arch_weights
  milenas = MODEL.mixed_level_fixed_point(c_tr, c_val)
  errors = []
  for beta in (1e2, 1e4, 1e6):
    w_b, y_b, a_b = MODEL.rarts_fixed_point(rarts.RartsOptions(lam=lam, lam_on=lam_on, beta=beta))
    errors.append(np.linalg.norm(a_b - milenas[1]) + np.linalg.norm(y_b - w_b))
    np.testing.assert_allclose(w_b, milenas[0], atol=1e-6 * 1e6 / beta + 1e-9)
  assert errors[2] < 1e-5 and errors[0] > errors[1] > errors[2]


@pytest.mark.parametrize("lam_on", ["val", "train"])
def test_lambda_zero_ignores_one_network(lam_on, x64):
  """lam_on='val', lam=0: alpha and w ignore the validation network and batch (ERM on the
  training split); lam_on='train', lam=0: alpha's gradient ignores the training network (which
  still pulls y through the coupling)."""
  options = rarts.RartsOptions(lam=0.0, lam_on=lam_on, beta=0.8)
  txs = [optax.sgd(0.2)] * 3
  train, val = MODEL.batches()
  v = variables(4, txs)
  run = lambda v, train, val: rarts.gauss_seidel_pass(  # noqa: E731
      MODEL.loss, MODEL.loss, v, train, val, options=options, weights_tx=txs[0],
      val_weights_tx=txs[1], arch_tx=txs[2])
  base = run(v, train, val)
  if lam_on == "val":
    other_val = tuple(x + 1.0 for x in val)
    moved = run(v._replace(val_weights=v.val_weights + 5.0), train, other_val)
    np.testing.assert_array_equal(base.arch, moved.arch)
    np.testing.assert_array_equal(base.weights, moved.weights)
    want = v.arch - 0.2 * jax.grad(MODEL.loss, 1)(base.weights, v.arch, train)
  else:
    # w reaches alpha only through y's coupling to it: another training batch changes nothing.
    moved = run(v, tuple(x + 1.0 for x in train), val)
    np.testing.assert_array_equal(base.arch, moved.arch)
    want = v.arch - 0.2 * jax.grad(MODEL.loss, 1)(base.val_weights, v.arch, val)
  np.testing.assert_allclose(base.arch, want, rtol=1e-12)


# --------------------------------------------------------------------------- configs, the supernet

# The smallest DARTS supernet (one reduction cell of one node), no random augmentation.
TINY = {"space.layers": 1, "space.nodes": 1, "space.channels": 4, "data.crop_padding": 0,
        "data.flip": False}


def rarts_config(name="rarts_cifar10.py", arg="smoke", **overrides):
  return load_config(os.path.join(ROOT, "configs", name), arg, **overrides)


def test_config_validation_names_the_field():
  config = rarts_config()
  assert methods.build_method(config).name == "rarts"
  for field, value, match in [("rarts.lam_on", "both", "config.rarts.lam_on"),
                              ("rarts.beta", -1.0, "config.rarts.beta"),
                              ("rarts.network_steps", "x", "config.rarts.network_steps"),
                              ("rarts.alpha_gradient_at", "x", "config.rarts.alpha_gradient_at"),
                              ("rarts.val_lr_scale", 0.0, "config.rarts.val_lr_scale"),
                              ("rarts.eval_network", "both", "config.rarts.eval_network"),
                              ("hypergrad", "unrolled", "config.hypergrad")]:
    with pytest.raises(ValueError, match=match):
      methods.build_method(rarts_config(**{field: value}))


def test_val_network_optimizer_is_the_weight_chain_scaled():
  search_config = rarts_config(**{"rarts.val_lr_scale": 0.25})
  phase = rarts.coupled_networks(search_config)
  tx = optax.chain(optax.clip_by_global_norm(5.0), optax.sgd(0.1, momentum=0.9))
  components = steps.SearchComponents(module=None, parametrization=None, weights_tx=tx,
                                      arch_tx=None, weights_lr=None, mean=(), std=())
  params, grads = {"a": jnp.ones(3)}, {"a": jnp.arange(3.0)}
  y_tx = phase.val_weights_tx(components)
  state, want_state = y_tx.init(params), tx.init(params)
  for _ in range(2):
    updates, state = y_tx.update(grads, state, params)
    want, want_state = tx.update(grads, want_state, params)
    np.testing.assert_allclose(updates["a"], 0.25 * want["a"], rtol=1e-6)
  assert rarts.CoupledNetworks().val_weights_tx(components) is tx  # scale 1: the same chain


def test_one_search_step_on_a_supernet_equals_the_hand_written_pass():
  # The pass's weightings and variants are checked on the solvable model, which runs the same
  # blocks (network_blocks, alpha_block_gradient); here: BatchNorm threading, pytrees, the optimizer
  # chains, augmentation, on the smallest supernet.
  search = search_lib.build_search(rarts_config(**TINY))
  comp, method = search.components, search.method
  assert isinstance(comp.weight_phase, rarts.CoupledNetworks)  # the skeleton runs RARTS
  beta = comp.weight_phase.options.beta
  step_fn = jax.jit(functools.partial(method.search_step, components=comp), donate_argnums=0)
  state, _ = step_fn(search_lib.start_state(search), search_lib.step_batches(search, 0))  # now y != w
  batches = search_lib.step_batches(search, 1)

  @jax.jit
  def by_hand(state, batches):
    key = jax.random.wrap_key_data(state.key)
    _, key_t, key_v = jax.random.split(key, 3)
    x_t, l_t = steps.augment(comp, key_t, batches["train"][0]), batches["train"][1]
    x_v, l_v = steps.augment(comp, key_v, batches["val"][0]), batches["val"][1]
    ms = state.method_state
    w, y, a = state.weights, ms["val_weights"], state.arch
    loss = lambda th, a, bn, x, l: steps.supernet_loss(comp, th, a, bn, x, l)  # noqa: E731
    # w: grad L_train(w) through clip -> L2 -> SGD momentum.
    (_, (bn_w, _)), g = jax.value_and_grad(loss, has_aux=True)(w, a, state.model_state, x_t, l_t)
    u, w_opt = comp.weights_tx.update(g, state.weights_opt_state, w)
    w1 = optax.apply_updates(w, u)
    # y: grad L_val(y) + beta (y - w1), the same chain with y's own state.
    (_, (bn_y, _)), g = jax.value_and_grad(loss, has_aux=True)(y, a, ms["val_model_state"], x_v,
                                                              l_v)
    g = jax.tree.map(lambda g, y, w: g + beta * (y - w), g, y, w1)
    u, y_opt = comp.weights_tx.update(g, ms["val_weights_opt_state"], y)
    y1 = optax.apply_updates(y, u)
    # alpha: grad_a L_train(w1) + grad_a L_val(y1), each forward with its network's statistics.
    g_t, (bn_w, _) = jax.grad(loss, 1, has_aux=True)(w1, a, bn_w, x_t, l_t)
    g_v, (bn_y, _) = jax.grad(loss, 1, has_aux=True)(y1, a, bn_y, x_v, l_v)
    u, a_opt = comp.arch_tx.update(jax.tree.map(jnp.add, g_t, g_v), state.arch_opt_state, a)
    return (w1, y1, optax.apply_updates(a, u), bn_w, bn_y, w_opt, y_opt, a_opt)

  want = jax.device_get(by_hand(state, batches))
  before = jax.device_get(state)
  new, metrics = step_fn(state, batches)  # donates state
  ms = new.method_state
  got = (new.weights, ms["val_weights"], new.arch, new.model_state, ms["val_model_state"],
         new.weights_opt_state, ms["val_weights_opt_state"], new.arch_opt_state)
  jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=2e-5, atol=1e-6), got, want)
  assert not np.allclose(jax.tree.leaves(new.arch)[0], jax.tree.leaves(before.arch)[0])
  for key in ("train/loss", "train/accuracy", "val/loss", "val/accuracy", "lr/weights",
              "lr/val_net", "rarts/coupling", "rarts/objective", "rarts/val_net_grad_norm"):
    assert np.isfinite(float(metrics[key])), key
  coupling = np.sqrt(sum(np.sum((p - q) ** 2) for p, q in zip(
      jax.tree.leaves(before.method_state["val_weights"]), jax.tree.leaves(before.weights))))
  assert float(metrics["rarts/coupling"]) == pytest.approx(coupling, rel=1e-4) and coupling > 0
  objective = (float(metrics["train/loss"]) + float(metrics["val/loss"])
               + 0.5 * beta * coupling ** 2)
  assert float(metrics["rarts/objective"]) == pytest.approx(objective, rel=1e-5)


def test_rarts_composes_with_a_schedule_and_a_stateful_regularizer():
  # Formerly refused (RARTS had its own step): every_k with k = 2 (w -> y -> alpha, so the alpha
  # step closes each group of two) and ADMM, whose Z, U advance after each alpha step.
  search = search_lib.build_search(rarts_config(**TINY, arch_every=2,
                                          **{"arch_regularizer.names": "admm",
                                             "arch_regularizer.admm_freq": 1}))
  comp = search.components
  assert isinstance(comp.weight_phase, rarts.CoupledNetworks) and comp.schedule.phase == 1
  step_fn = jax.jit(functools.partial(search.method.search_step, components=comp))
  state = search_lib.start_state(search)
  arch0 = jax.device_get(state.arch)
  state, skipped = step_fn(state, search_lib.step_batches(search, 0))
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(state.arch), arch0)  # not due
  w, y = jax.tree.leaves(state.weights), jax.tree.leaves(state.method_state["val_weights"])
  assert not all(np.array_equal(p, q) for p, q in zip(w, y))  # both networks moved anyway
  state, taken = step_fn(state, search_lib.step_batches(search, 1))
  assert not np.allclose(jax.tree.leaves(state.arch)[0], jax.tree.leaves(arch0)[0])  # due
  assert [float(m["schedule/arch_step"]) for m in (skipped, taken)] == [0.0, 1.0]
  assert float(taken["reg/admm_update"]) == 1.0 and np.isfinite(float(taken["reg/admm"]))
  for m in (skipped, taken):  # the networks' metrics every step
    assert np.isfinite(float(m["val/loss"])) and np.isfinite(float(m["rarts/objective"]))


@pytest.mark.parametrize("name", ["rarts_cifar10.py", "rarts_nb201.py"])
def test_smoke_run_resumes_exactly_and_refuses_other_hyperparameters(name, tmp_path):
  # The smoke configs as test_loop runs them, so the compiled step comes from the compile cache.
  overrides = {"rarts.eval_network": "val"} if name == "rarts_nb201.py" else {}
  config = lambda **more: rarts_config(name, **overrides, **more)  # noqa: E731
  # Uninterrupted: the loop's jitted step, twice, from the loop's initial state.
  search = search_lib.build_search(config(max_steps=2))
  step_fn = search_lib.jit_search_step(search)
  straight = search_lib.start_state(search)
  for step in range(2):
    straight, _ = step_fn(straight, search_lib.step_batches(search, step))
  # Interrupted after one step, resumed to two.
  workdir = str(tmp_path)
  driver.train_and_evaluate(config(max_steps=1), workdir)
  summary = driver.train_and_evaluate(config(max_steps=2), workdir)
  assert summary["step"] == 2
  abstract = jax.eval_shape(lambda: search_lib.init_state(search))
  with checkpoint_lib.CheckpointManager(os.path.join(workdir, "checkpoints"),
                                        fingerprint=search_lib.fingerprint(search)) as manager:
    resumed = manager.restore(abstract)
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(straight), resumed)
  # The two networks started equal and have moved apart.
  w, y = resumed.weights, resumed.method_state["val_weights"]
  assert not all(np.array_equal(p, q) for p, q in zip(jax.tree.leaves(w), jax.tree.leaves(y)))
  # Another beta: refused by the workdir's record; allowed there, by the checkpoint's fingerprint.
  with pytest.raises(RunError, match=r"rarts.beta: 1.0 -> 3.0"):
    driver.train_and_evaluate(config(max_steps=3, **{"rarts.beta": 3.0}), workdir)
  with pytest.raises(checkpoint_lib.CheckpointMismatchError, match="rarts.beta"):
    driver.train_and_evaluate(config(max_steps=3, **{"rarts.beta": 3.0,
                                                    "resume.allow_changes": "rarts.beta"}),
                              workdir)


def test_benchmark_builds_the_method_named_by_the_flag():
  # Timing the step itself (--steps=1 --warmup=0) compiles it: run by hand (README, experiments/).
  benchmark = repo_files.load_module("experiments/benchmark.py", "experiments_benchmark")
  args = benchmark.parse_args(["--space=nb201", "--channels=4", "--cells_per_stage=1",
                               "--batch_size=8", "--image_size=8", "--method=rarts",
                               "--rarts_alpha_gradient_at=current"])
  search = search_lib.build_search(benchmark.make_config(args))
  assert search.method.name == "rarts"
  assert search.components.weight_phase.options.alpha_gradient_at == "current"
