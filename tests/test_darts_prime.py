"""DARTS-PRIME / constrained DARTS (Maile et al.): the regularizers, the one-hot derived cell, the
schedules, ADMM and pruning on hand-made arrays; then two compiled smoke searches with resume."""
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnas.parametrize
import jaxnas.spaces
from jaxnas import driver
from jaxnas import search as search_lib
from jaxnas import parts
from jaxnas import steps
from jaxnas import supernet
from jaxnas.methods import darts_prime as dp
from jaxnas.spaces import darts as darts_space
from test_loop import ROOT, load_config, restore_final_state

NB201_NO_NONE = ("skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def nb201_no_none():
  """The NB201 space with the clamp op set (no 'none')."""
  return jaxnas.spaces.get("nb201", ops=NB201_NO_NONE)


def prime_config(config_file="darts_prime_nb201.py", variants="smoke", **overrides):
  return load_config(os.path.join(ROOT, "configs", config_file), variants, **overrides)


def context(parametrization="clamp", step=0, mask=None):
  """What a regularizer part sees in a step: the activation (mask folded in), step, mask."""
  param = jaxnas.parametrize.get(parametrization)
  if mask is not None:
    param = steps.MaskedParametrization(base=param, mask=mask)
  return parts.Context(activate=param.activate, step=step, mask=mask)


# ------------------------------------------------------------------------------ parametrization
def test_clamp_parametrization_init_activation_and_gradient():
  param = jaxnas.parametrize.get("clamp")
  alpha = param.init(jax.random.key(0), (200, 7))
  np.testing.assert_allclose(np.mean(alpha), 1 / 7, atol=2e-5)
  assert 5e-5 < np.std(alpha) < 2e-4
  raw = jnp.array([[-0.3, 0.0, 0.4, 1.0, 1.7]])
  np.testing.assert_array_equal(param.activate({"c": raw})["c"],
                                np.array([[0.0, 0.0, 0.4, 1.0, 1.0]], np.float32))
  grad = jax.grad(lambda a: jnp.sum(param.activate({"c": a})["c"] * jnp.arange(5.0)[None]))(raw)
  np.testing.assert_array_equal(grad[0, [0, 2, 4]], [0.0, 2.0, 0.0])  # no gradient outside [0, 1]


# -------------------------------------------------------------------------------- one-hot cell
def genes_by_node(genes):
  return [sorted(genes[2 * i:2 * i + 2], key=lambda g: g[1]) for i in range(len(genes) // 2)]


@pytest.mark.parametrize("ops", [darts_space.DARTS_OPS, darts_space.DARTS_OPS[1:]],
                         ids=["with_none", "clamp_ops"])
def test_darts_one_hot_agrees_with_space_derive(ops):
  space = jaxnas.spaces.get("darts", ops=ops, nodes=4)
  project = parts.CellProjection(space)
  one_hot = jax.jit(lambda m: project(m))
  rng = np.random.default_rng(0)
  for trial in range(20):
    # Coarse values: many ties between edges and between ops, which both rules must break alike.
    mixing = {k: jnp.asarray(rng.integers(0, 4, (14, len(ops))) / 4.0, jnp.float32)
              for k in ("normal", "reduce")}
    if trial % 2:
      mixing = {k: jnp.asarray(rng.random((14, len(ops))), jnp.float32) for k in mixing}
    z = jax.device_get(one_hot(mixing))
    genotype = space.derive(mixing)
    for cell in ("normal", "reduce"):
      assert z[cell].sum() == 8 and set(np.unique(z[cell])) <= {0.0, 1.0}
      if "none" in ops:
        assert not z[cell][:, ops.index("none")].any()
      genes = []
      for node, edges in enumerate(darts_space.node_edge_ranges(4)):
        genes += [(ops[int(np.argmax(z[cell][e]))], j) for j, e in enumerate(edges)
                  if z[cell][e].any()]
      assert genes_by_node(genes) == genes_by_node(getattr(genotype, cell)), (trial, cell)


def test_nb201_one_hot_agrees_with_space_derive_and_quirk_keeps_none():
  space = jaxnas.spaces.get("nb201")
  project = parts.CellProjection(space)
  rng = np.random.default_rng(1)
  for _ in range(10):
    mixing = {"cell": jnp.asarray(rng.integers(0, 3, (6, 5)) / 3.0, jnp.float32)}
    z = np.asarray(jax.jit(lambda m: project(m))(mixing)["cell"])
    assert str(jaxnas.spaces.get("nb201").derive({"cell": z})) == str(space.derive(mixing))
  # DARTS space: the reference's quirk lets 'none' win an edge; the DARTS rule never does.
  w = np.full((2, 8), 0.1, np.float32)
  w[:, 0] = 0.9
  w[0, 4], w[1, 5] = 0.5, 0.3
  for include, expected in ((False, [4, 5]), (True, [0, 0])):
    z = dp.darts_cell_one_hot(jnp.asarray(w), darts_space.DARTS_OPS, 1, include)
    np.testing.assert_array_equal(np.argmax(z, -1), expected)


# ---------------------------------------------------------------------------------- regularizers
def test_prox_value_and_gradient_on_hand_made_alpha_without_gradient_through_z():
  with jax.enable_x64(True):
    prox = parts.Prox(rho=0.1, horizon=5 * 10,  # prox_epochs 5 x 10 steps/epoch: T = 50 steps
                      project=parts.CellProjection(nb201_no_none()))
    alpha = jnp.array([[0.2, 0.5, -0.1, 0.3], [1.4, 0.2, 0.6, 0.0], [0.1, 0.1, 0.7, 0.3],
                       [0.25, 0.3, 0.9, 0.4], [0.0, 0.8, 0.2, 0.6], [0.3, 0.2, 0.1, 1.2]],
                      jnp.float64)
    step = jnp.asarray(9)  # t = step + 1 = 10 of T = 50
    reg = lambda arch: prox.penalty(arch, parts.NoState(), context("clamp", step))
    a = np.clip(np.asarray(alpha), 0, 1)
    z = np.eye(4)[np.argmax(a, -1)]
    norm = np.linalg.norm(a - z)
    value, grad = jax.value_and_grad(reg)({"cell": alpha})
    np.testing.assert_allclose(value, 10 / 50 * 0.1 / 2 * norm, rtol=1e-12)
    inside = (np.asarray(alpha) > 0) & (np.asarray(alpha) < 1)
    expected = 10 / 50 * 0.1 / 2 * (a - z) / norm * inside
    np.testing.assert_allclose(grad["cell"], expected, rtol=1e-10, atol=1e-15)
    # The same with Z frozen as a constant: Z contributes no gradient.
    frozen = jax.grad(lambda al: dp.prox_penalty(
        {"cell": jnp.clip(al["cell"], 0, 1)}, {"cell": jnp.asarray(z)}, 0.1, 10 / 50))
    np.testing.assert_allclose(grad["cell"], frozen({"cell": alpha})["cell"], rtol=1e-12)
    # DARTS space, softmax: summed over both cells, the unsquared norm.
    prox = parts.Prox(rho=0.3, horizon=1 * 4, project=parts.CellProjection(
        jaxnas.spaces.get("darts", nodes=2)))
    arch = {k: jax.random.normal(jax.random.key(i), (5, 8), jnp.float64)
            for i, k in enumerate(("normal", "reduce"))}
    value = prox.penalty(arch, parts.NoState(), context("softmax", jnp.asarray(3)))
    total = 0.0
    for k in arch:
      sm = np.asarray(jax.nn.softmax(arch[k], -1))
      total += np.linalg.norm(sm - np.asarray(dp.darts_cell_one_hot(jnp.asarray(sm),
                                                                      darts_space.DARTS_OPS, 2)))
    np.testing.assert_allclose(value, 0.3 / 2 * total, rtol=1e-12)
    # At the target the norm's gradient is 0, not NaN.
    g = jax.grad(lambda x: dp.safe_norm(x - jnp.eye(3)))(jnp.eye(3))
    np.testing.assert_array_equal(g, np.zeros((3, 3)))


def test_admm_penalty_value_and_gradient_with_mask():
  with jax.enable_x64(True):
    rng = np.random.default_rng(2)
    a, z, u = (jnp.asarray(rng.random((6, 4))) for _ in range(3))
    mask = jnp.asarray(rng.random((6, 4)) > 0.3, jnp.float64)
    value, grad = jax.value_and_grad(
        lambda x: dp.admm_penalty({"cell": x}, {"cell": z}, {"cell": u}, {"cell": mask}, 0.4))(a)
    r = (np.asarray(a) - np.asarray(z) + np.asarray(u)) * np.asarray(mask)
    np.testing.assert_allclose(value, 0.2 * np.linalg.norm(r), rtol=1e-12)
    np.testing.assert_allclose(grad, 0.2 * r / np.linalg.norm(r) * np.asarray(mask), rtol=1e-10)
    assert not np.asarray(grad)[np.asarray(mask) == 0].any()


@pytest.mark.parametrize("quirks", [False, True], ids=["paper", "reference_quirks"])
def test_admm_variables_follow_their_update_rule_over_several_alpha_steps(quirks):
  freq = 3
  admm_part = parts.Admm(freq=freq, dual_decay=0.9,
                         project=parts.CellProjection(nb201_no_none()),
                         quirk_off_by_one=quirks, quirk_raw_alpha=quirks,
                         quirk_init_z_alpha=quirks)
  rng = np.random.default_rng(3)
  arch0 = {"cell": jnp.asarray(rng.uniform(0.05, 0.6, (6, 4)), jnp.float32)}
  mask0 = parts.init_mask(arch0)
  admm = admm_part.init(arch0, context("clamp", mask=mask0))
  project = lambda x: np.eye(4, dtype=np.float32)[np.argmax(x, -1)]
  z0 = np.asarray(arch0["cell"]) if quirks else project(np.clip(arch0["cell"], 0, 1))
  np.testing.assert_array_equal(admm.z["cell"], z0)
  np.testing.assert_array_equal(admm.u["cell"], 0.0)
  z, u, counter = z0, np.zeros((6, 4), np.float32), 0

  @jax.jit
  def advance(c_arch, admm, mask, due):
    admm, metrics = admm_part.advance(admm, c_arch, due, context("clamp", mask=mask))
    return admm, metrics["reg/admm_update"]
  dues = [1, 0, 1, 1, 0, 1, 1, 1, 0, 1]
  fired_at = []
  mask = {"cell": jnp.asarray(rng.random((6, 4)) > 0.2, jnp.float32)}
  for t, due in enumerate(dues):
    arch = {"cell": jnp.asarray(rng.uniform(-0.2, 1.2, (6, 4)), jnp.float32) * mask["cell"]}
    admm, fire = advance(arch, admm, mask, jnp.asarray(bool(due)))
    counter += due
    should = (counter + 1) % freq == 0 if quirks else counter >= freq
    assert bool(fire) == should, t
    if should:
      fired_at.append(t)
      raw, m = np.asarray(arch["cell"]), np.asarray(mask["cell"])
      act = np.clip(raw, 0, 1) * m
      if quirks:  # Z <- Pi(act(alpha + U)), U <- (d U + alpha - Z) M with raw alpha
        z = project(np.clip(raw + u, 0, 1) * m)
        u = (0.9 * u + raw - z) * m
      else:  # Z <- Pi(act(alpha) + U), U <- (d U + act(alpha) - Z) M
        z = project(act + u)
        u = (0.9 * u + act - z) * m
      counter = 0
    np.testing.assert_allclose(admm.z["cell"], z, atol=1e-6)
    np.testing.assert_allclose(admm.u["cell"], u, atol=1e-6)
    assert int(admm.counter) == counter
  assert fired_at == ([2, 5, 7] if quirks else [3, 7])  # quirk: after freq - 1 = 2 alpha steps


# -------------------------------------------------------------------------------------- schedules
def test_dynamic_schedule_takes_alpha_steps_exactly_where_the_rule_says():
  k, m, decay, init = 3, 1.5, 0.2, 4.0
  schedule = parts.DynamicFisher(k=k, ewma=decay, init_threshold=init, multiplier=m)
  traces = np.array([8.0, 1.0, 1.0, 6.0, 6.0, 0.5, 0.5, 0.5, 0.5, 9.0, 0.1, 0.1, 0.1, 0.1],
                    np.float32)
  ms0 = schedule.init()

  @jax.jit
  def run(ms, fishers):
    def body(ms, fisher):
      due = schedule.due(jnp.asarray(0), ms)
      return schedule.advance(ms, due, fisher), (due, ms.fisher_ewma, ms.threshold)
    return jax.lax.scan(body, ms, fishers)

  final, (dues, ewmas, thresholds) = run(ms0, jnp.asarray(traces))
  # The rule, written out in float64: decide on (ewma, threshold), then update both.
  ewma, threshold, expected = -1.0, init, []
  for t, fisher in enumerate(traces):
    due = 0 < ewma < threshold
    np.testing.assert_allclose([ewmas[t], thresholds[t]], [ewma, threshold], rtol=1e-5)
    expected.append(due)
    threshold = threshold * m ** -k if due else threshold * m
    ewma = float(fisher) if ewma < 0 else decay * float(fisher) + (1 - decay) * ewma
  np.testing.assert_array_equal(dues, expected)
  assert 0 < sum(expected) < len(expected) and not expected[0]  # both branches, none at start
  assert int(final.arch_steps) == sum(expected)
  # Fixed: (s + 1) % k == 0, s the step (EveryK with phase k - 1) ...
  fixed = parts.EveryK(k=4, phase=3)
  assert [bool(fixed.due(jnp.asarray(s), None)) for s in range(9)] == [
      False, False, False, True, False, False, False, True, False]
  # ... or the step within its epoch (the reference restarts its count every epoch).
  restarted = parts.EveryK(k=4, phase=3, steps_per_epoch=6)
  assert [s for s in range(13) if restarted.due(s, None)] == [3, 9]


def test_fixed_schedule_restarts_every_epoch_as_the_reference():
  """711 steps per epoch, k = 10, 50 epochs: the reference takes 71 alpha steps per epoch, 3550 in
  all; a global count would take 3555. The preset restarts per epoch unless told not to."""
  s = np.arange(50 * 711)
  assert int(np.sum(parts.EveryK(k=10, phase=9, steps_per_epoch=711).due(s, None))) == 3550
  assert int(np.sum(parts.EveryK(k=10, phase=9).due(s, None))) == 3555
  space = jaxnas.spaces.get("darts")
  for restart, per_epoch in ((True, 711), (False, 0)):
    config = prime_config("darts_prime_cifar10.py", "fixed", **{
        "darts_prime.restart_every_epoch": restart})
    schedule = dp.read_parts(config, space, 711)["schedule"]
    assert (schedule.k, schedule.phase, schedule.steps_per_epoch) == (10, 9, per_epoch)


def test_pruning_is_permanent():
  arch = {"c": jnp.array([[0.3, -0.1, 0.0, 1.2]])}
  mask = {"c": jnp.ones((1, 4))}
  arch, mask = dp.prune_update(arch, mask)
  np.testing.assert_array_equal(mask["c"], [[1, 0, 0, 1]])
  np.testing.assert_array_equal(arch["c"], np.array([[0.3, 0.0, 0.0, 1.2]], np.float32))
  arch, mask = dp.prune_update({"c": jnp.array([[0.2, 0.5, 0.4, -0.3]])}, mask)  # back above 0
  np.testing.assert_array_equal(mask["c"], [[1, 0, 0, 0]])
  np.testing.assert_array_equal(arch["c"], np.array([[0.2, 0.0, 0.0, 0.0]], np.float32))


@pytest.mark.parametrize("overrides,message", [
    ({"darts_prime.regularizer": "l1"}, "darts_prime.regularizer"),
    ({"darts_prime.schedule_freq": 0}, "darts_prime.schedule_freq"),
    ({"darts_prime.schedule_freq": 5}, "train_portion = 1 - 1/"),
    ({"data.arch_with_replacement": True}, "data.arch_with_replacement"),
    ({"parametrization": "clamp", "space.ops": ""}, "without 'none'"),
    ({"darts_prime.fisher_ewma": 1.5}, "darts_prime.fisher_ewma"),
    ({"darts_prime.rho": -1.0}, "darts_prime.rho"),
    ({"prune_arch": True}, "darts_prime"),
    ({"arch_every": 2}, "config.arch_every"),
])
def test_bad_darts_prime_configs_name_the_field(overrides, message):
  with pytest.raises(ValueError, match=message):
    dp.build(prime_config("darts_prime_cifar10.py", **overrides))


def test_node_batchnorm_option_of_both_supernets():
  x = jax.random.normal(jax.random.key(1), (4, 8, 8, 3))
  for name, sizes, expect in (
      ("darts", dict(channels=4, layers=1, num_classes=3, unroll=False),
       ["inner_1", "node_bn_0", "node_bn_1"]),
      ("nb201", dict(channels=4, cells_per_stage=1, num_classes=3, unroll=False),
       ["edges_1", "edges_2", "edges_3", "node_bn_1", "node_bn_3"])):
    space = jaxnas.spaces.get(name, **({"nodes": 2} if name == "darts" else {}))
    module = space.supernet(node_batchnorm=True, **sizes)
    mixing = jaxnas.parametrize.get("clamp").activate(space.init_arch(jax.random.key(0), "clamp"))
    shapes = jax.eval_shape(functools.partial(supernet.init, module), jax.random.key(2), x, mixing)
    names = str(jax.tree_util.tree_structure(shapes))
    assert all(n in names for n in expect), (name, names)
    assert "node_bn" not in str(jax.tree_util.tree_structure(jax.eval_shape(
        functools.partial(supernet.init, space.supernet(**sizes)), jax.random.key(2), x, mixing)))
    # Traced end to end in training mode.
    logits = jax.eval_shape(functools.partial(supernet.apply, module, train=True),
                            shapes[0], shapes[1], x, mixing)[0]
    assert logits.shape == (4, 3)


@pytest.mark.parametrize("space_name", ["darts", "nb201"])
def test_node_batchnorm_normalises_every_node_before_it_is_read(space_name):
  """In training mode each node leaves its BatchNorm with per-channel mean 0 and variance 1, and
  the cell output (DARTS: the concat of the nodes; NB201: node 3) is such a node."""
  x = 3.0 + 2.0 * jax.random.normal(jax.random.key(1), (8, 6, 6, 4))
  if space_name == "darts":
    ops = ("avg_pool_3x3", "skip_connect")  # cheap ops: the normalisation is what is tested
    cell = darts_space.DartsSearchCell(ops, 4, False, False, nodes=2, multiplier=2,
                                       node_batchnorm=True)
    args = (x, x, jnp.full((5, len(ops)), 0.7))
  else:
    from jaxnas.spaces import nb201
    cell = nb201.NB201SearchCell(("skip_connect", "nor_conv_1x1"), 4, train=True,
                                 node_batchnorm=True)
    args = (x, jnp.full((6, 2), 0.7))
  kwargs = {"train": True} if space_name == "darts" else {}
  out, _ = jax.jit(lambda key, *a: cell.apply(cell.init(key, *a, **kwargs), *a,
                                              mutable=["batch_stats"], **kwargs))(
      jax.random.key(0), *args)
  out = out[0] if space_name == "nb201" else out
  np.testing.assert_allclose(np.mean(out, axis=(0, 1, 2)), 0.0, atol=1e-4)
  np.testing.assert_allclose(np.var(out, axis=(0, 1, 2)), 1.0, rtol=1e-2)


# ------------------------------------------------------------------------- compiled smoke searches
def test_cifar10_recipe_smoke_resumes_bit_for_bit(tmp_path):
  straight, resumed = str(tmp_path / "a"), str(tmp_path / "b")
  config = functools.partial(prime_config, "darts_prime_cifar10.py", "smoke")
  driver.train_and_evaluate(config(max_steps=3), straight)
  driver.train_and_evaluate(config(max_steps=2), resumed)
  summary = driver.train_and_evaluate(config(max_steps=3), resumed)
  assert summary["step"] == 3
  a, b = (restore_final_state(w, config(max_steps=3)) for w in (straight, resumed))
  jax.tree.map(np.testing.assert_array_equal, a, b)
  # Dynamic schedule: no Fisher trace before step 0's weight step, then alpha steps.
  assert int(a.method_state["schedule"].arch_steps) == 2
  assert float(a.method_state["schedule"].fisher_ewma) > 0


def test_nb201_clamp_admm_prunes_permanently_resumes_and_never_recompiles(tmp_path):
  # A large alpha learning rate so that the first alpha step drives some alpha below 0.
  # No node BatchNorm here: it triples the compiled cell (tested above at the cell level).
  config = functools.partial(prime_config, "darts_prime_nb201.py", "clamp,admm,smoke",
                             **{"arch_optimizer.learning_rate": 0.3,
                                "space.node_batchnorm": False})
  straight, resumed = str(tmp_path / "a"), str(tmp_path / "b")
  driver.train_and_evaluate(config(max_steps=3), straight)
  driver.train_and_evaluate(config(max_steps=2), resumed)
  mid = restore_final_state(resumed, config(max_steps=3))
  driver.train_and_evaluate(config(max_steps=3), resumed)
  a, b = (restore_final_state(w, config(max_steps=3)) for w in (straight, resumed))
  jax.tree.map(np.testing.assert_array_equal, a, b)
  mask_mid, mask_end = np.asarray(mid.method_state["mask"]["cell"]), np.asarray(
      a.method_state["mask"]["cell"])
  assert 0 < mask_mid.sum() < mask_mid.size  # pruned at step 1's weight step
  assert (mask_end <= mask_mid).all()        # ... and still masked after the resumed step
  assert not np.asarray(a.arch["cell"])[mask_end == 0].any()
  (admm,) = a.method_state["regularizers"]
  assert int(admm.counter) == 0  # admm_freq=1 in smoke: updated every time
  assert np.asarray(admm.u["cell"]).any()

  # The compiled step (as the loop jits it: a cache hit) runs both branches without recompiling.
  search = search_lib.build_search(config(max_steps=3))
  step_fn = search_lib.jit_search_step(search)
  state, taken = search_lib.start_state(search), []
  for step in range(3):
    state, metrics = step_fn(state, search_lib.step_batches(search, step))
    taken.append(float(metrics["schedule/arch_step"]))
    assert {"train/loss", "val/loss", "lr/weights", "schedule/fisher_trace",
            "schedule/threshold", "reg/admm", "reg/admm_update",
            "mask/pruned_fraction"} <= set(metrics)
  assert taken == [0.0, 1.0, 1.0]
  assert step_fn._cache_size() == 1

  # Masked ops change nothing: move a pruned op's raw alpha, the supernet output stays the same;
  # unmask it and the output changes.
  eval_fn = search_lib.jit_eval_step(search)
  images, labels = search.parallel.put_examples(search.splits.eval, np.arange(8))
  edge, op = map(int, np.argwhere(mask_end == 0)[0])
  moved = a.replace(arch={"cell": a.arch["cell"].at[edge, op].set(0.9)})
  base, same = eval_fn(a, images, labels), eval_fn(moved, images, labels)
  np.testing.assert_array_equal(base["loss_sum"], same["loss_sum"])
  mask = moved.method_state["mask"]["cell"].at[edge, op].set(1)
  unmasked = moved.replace(method_state={**moved.method_state, "mask": {"cell": mask}})
  assert float(eval_fn(unmasked, images, labels)["loss_sum"]) != float(base["loss_sum"])
  mixing = search.method.mixing(search.components, moved)
  assert float(mixing["cell"][edge, op]) == 0.0


def test_console_line_shows_the_schedule(tmp_path, capsys):
  """The progress line carries the alpha-step count and the dynamic schedule's statistic."""
  from jaxnas import metrics as metrics_lib
  logger = metrics_lib.Logger(str(tmp_path), space=None)
  base = {"train/loss": 1.0, "train/accuracy": 0.5, "val/loss": 1.1, "val/accuracy": 0.4,
          "lr/weights": 0.025}
  perf = {"perf/steps_per_second": 2.0, "perf/eta_seconds": 10.0}
  logger.train(10, 100, {**base, "schedule/arch_steps": 3.0, "schedule/fisher_ewma": 0.25,
                         "schedule/threshold": 1.05}, perf)
  logger.train(11, 100, base, perf)  # a method without a schedule: no schedule fields
  first, second = capsys.readouterr().out.strip().splitlines()
  assert "alpha steps 3" in first and "fisher 0.25 / threshold 1.05" in first
  assert "alpha steps" not in second
