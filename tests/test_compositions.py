"""Methods as compositions (issue #30): combinations no preset has, from config files alone
(``configs/compose_*.py``), each run for a few compiled steps of its ``:smoke`` variant with a
property of the composition checked (the golden values of the same runs: ``test_loop``)."""
import os

import jax
import numpy as np
import pytest

from jaxnas import search as search_lib
from jaxnas import parts
from test_loop import ROOT, load_config

STEPS = 3


def run(name, **overrides):
  """``STEPS`` steps of ``configs/<name>.py:smoke`` as the loop compiles them: (search, final
  state, per-step metrics)."""
  config = load_config(os.path.join(ROOT, "configs", name + ".py"), "smoke", **overrides)
  search = search_lib.build_search(config)
  step_fn = search_lib.jit_search_step(search)
  state, history = search_lib.start_state(search), []
  for step in range(STEPS):
    state, metrics = step_fn(state, search_lib.step_batches(search, step))
    history.append(jax.device_get(metrics))
  assert step_fn._cache_size() == 1
  return search, state, history


def on_simplex(arch):
  for leaf in jax.tree.leaves(arch):
    leaf = np.asarray(leaf)
    assert (leaf >= 0).all()
    np.testing.assert_allclose(leaf.sum(-1), 1.0, rtol=1e-5)


def test_gaea_with_admm_stays_on_the_simplex_and_reports_admm():
  search, state, history = run("compose_gaea_admm")
  assert search.components.parametrization.name == "simplex"
  (admm,) = search.components.regularizers
  assert isinstance(admm, parts.Admm) and admm.freq == 1
  on_simplex(state.arch)
  assert all(m["reg/admm"] > 0 and m["reg/admm_update"] == 1.0 for m in history)
  (admm_state,) = state.method_state["regularizers"]
  assert np.asarray(admm_state.u["cell"]).any()  # U moved: the dual variable is live


# Slow (the implicit hypergradient's compile, ~25 s): runs in .ci/run after the README's command.
@pytest.mark.slow
def test_idarts_with_the_dynamic_schedule_takes_fewer_alpha_steps_than_weight_steps():
  search, state, history = run("compose_idarts_dynamic")
  assert isinstance(search.components.schedule, parts.DynamicFisher)
  assert search.components.arch_gradient.name == "implicit_neumann"
  taken = [m["schedule/arch_step"] for m in history]
  assert taken == [0.0, 1.0, 1.0]  # no Fisher trace before the first weight step
  assert int(state.method_state["schedule"].arch_steps) == 2 < STEPS
  assert np.isnan(history[0]["val/loss"]) and np.isfinite(history[1]["val/loss"])


def test_milenas_with_prox_reports_a_positive_prox_term():
  search, _, history = run("compose_milenas_prox")
  assert search.components.arch_gradient.name == "mixed_level"
  (prox,) = search.components.regularizers
  assert isinstance(prox, parts.Prox)
  values = [float(m["reg/prox"]) for m in history]
  assert all(v > 0 for v in values) and values[0] < values[-1]  # the t/T ramp


def test_pcdarts_with_the_clamp_activation_keeps_mixing_weights_in_the_unit_interval():
  search, state, history = run("compose_pcdarts_clamp", **{"arch_optimizer.learning_rate": 0.3})
  assert isinstance(search.components.pruning, parts.SignPrune)
  assert search.components.parametrization.name == "clamp"
  assert {"normal_edges", "reduce_edges"} <= set(state.arch)  # PC-DARTS' edge weights beta
  mixing = jax.device_get(search.method.mixing(search.components, state))
  for leaf in jax.tree.leaves(mixing):
    assert (np.asarray(leaf) >= 0).all() and (np.asarray(leaf) <= 1).all()
  mask = state.method_state["mask"]
  for a, m in zip(jax.tree.leaves(state.arch), jax.tree.leaves(mask)):
    assert not np.asarray(a)[np.asarray(m) == 0].any()  # pruned alpha are exactly 0
  assert all("mask/pruned_fraction" in m for m in history)


def test_rarts_with_exponentiated_gradient_stays_on_the_simplex():
  search, state, history = run("compose_rarts_eg")
  assert search.method.name == "rarts"
  on_simplex(state.arch)
  assert all(np.isfinite(m["rarts/objective"]) for m in history)


@pytest.mark.parametrize("overrides,message", [
    ({"arch_regularizer.names": "prox,l1"}, "arch_regularizer.names"),
    ({"arch_regularizer.admm_freq": 0}, "arch_regularizer.admm_freq"),
    ({"prune_arch": True}, "prune_arch"),
    ({"arch_schedule.name": "fisher"}, "arch_schedule.name"),
    ({"arch_schedule.fisher_ewma": 0.0}, "arch_schedule.fisher_ewma"),
])
def test_bad_part_options_name_the_field(overrides, message):
  config = load_config(os.path.join(ROOT, "configs", "compose_idarts_dynamic.py"), "smoke",
                       **{"arch_regularizer.names": "admm", **overrides})
  with pytest.raises(ValueError, match=message):
    search_lib.build_search(config)


def test_a_list_of_regularizers_sums_their_terms_and_reports_each():
  """Entropy + prox + ADMM on one simplex alpha: each term's value is reported under its name and
  the alpha gradient the skeleton adds is the gradient of their sum."""
  from jaxnas import parametrize
  from jaxnas import steps
  project = parts.CellProjection("nb201")  # the space by name, its default ops
  regs = (parts.Entropy(0.1), parts.Prox(rho=0.2, horizon=10, project=project),
          parts.Admm(rho=0.3, freq=1, project=project))
  comps = steps.SearchComponents(module=None, parametrization=parametrize.get("simplex"),
                                 weights_tx=None, arch_tx=None, weights_lr=None, mean=(), std=(),
                                 regularizers=regs)
  arch = {"cell": jax.nn.softmax(jax.random.normal(jax.random.key(0), (6, 5)), -1)}
  ms = steps.init_method_state(comps, arch)
  values, grads = steps.regularizer_terms(comps, arch, ms, 4)
  metrics = steps.regularizer_metrics(comps, values)
  assert set(metrics) == {"reg/entropy", "reg/prox", "reg/admm"}
  assert all(float(v) > 0 for v in metrics.values())
  ctx = steps.context(comps, ms, 4)
  total = lambda a: sum(r.penalty(a, s, ctx) for r, s in zip(regs, ms["regularizers"]))
  np.testing.assert_allclose(sum(float(v) for v in values), float(total(arch)), rtol=1e-6)
  summed = sum(np.asarray(g["cell"]) for g in grads)
  np.testing.assert_allclose(summed, np.asarray(jax.grad(total)(arch)["cell"]), rtol=1e-5,
                             atol=1e-7)
