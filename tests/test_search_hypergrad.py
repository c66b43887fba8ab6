"""Hypergradient estimators inside the search step, on a tiny supernet."""
import dataclasses
import os

import jax
import numpy as np
import optax
import pytest

from jaxnas import config_checks
from jaxnas import hypergrad
from jaxnas import search as search_lib
from jaxnas import optim
from jaxnas import steps
from jaxnas import testing
from jaxnas.methods import estimators
from test_loop import ROOT
from test_loop import load_config
from test_loop import quickstart_smoke


# The smallest supernet that exercises every piece: a DARTS space with one reduction cell of one
# node (2 edges), so nested differentiation (HVPs, unrolls) compiles in seconds.
TINY = {"space.name": "darts", "space.layers": 1, "space.nodes": 1, "space.channels": 4,
        "data.crop_padding": 0, "data.flip": False}


def tiny_search(**overrides):
  return search_lib.build_search(quickstart_smoke(**{**TINY, **overrides}))


def flat(arch):
  return np.concatenate([np.ravel(np.asarray(leaf)) for leaf in jax.tree.leaves(arch)])


def cosine(a, b):
  a, b = np.ravel(a), np.ravel(b)
  return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# first_order runs in the loop tests (test_loop.py) already.
@pytest.mark.parametrize("name", [e for e in hypergrad.HYPERGRADS if e != "first_order"])
def test_every_estimator_runs_in_the_jitted_step_without_recompiling(name):
  search = tiny_search(hypergrad=name)
  traces = []

  def counted(state, batches):
    traces.append(1)
    return steps.search_step(state, batches, components=search.components)

  step_fn = jax.jit(counted, donate_argnums=0)
  state = search_lib.start_state(search)
  arch0 = flat(state.arch)
  for step in range(3):
    state, metrics = step_fn(state, search_lib.step_batches(search, step))
  assert len(traces) == 1
  assert np.all(np.isfinite(flat(state.arch)))
  assert not np.allclose(flat(state.arch), arch0)
  assert np.isfinite(float(metrics["val/loss"]))


def test_unrolled_one_step_equals_darts_second_order_on_a_supernet():
  """DARTS' second-order formula with the exact mixed term == autodiff through one real step.

  The reference's central-difference mixed term (``mixed_term='fd'``) is NOT compared tightly here:
  on a ReLU supernet in float32 it also picks up the gradient jumps of units that cross a kink
  between w+ and w-, so it differed from the exact term by 120-210% (relative) at eps=0.01 on this
  tiny supernet, shrinking to ~10-30% at eps=1 (measured; see README). It must stay finite and
  point the same way. FD == exact on smooth problems is tested in test_hypergrad.py.
  """
  search = tiny_search()
  comp = search.components
  step_fn = jax.jit(lambda s, b: steps.search_step(s, b, components=comp))
  state = search_lib.start_state(search)
  state, _ = step_fn(state, search_lib.step_batches(search, 0))  # a non-zero momentum buffer
  batches = search_lib.step_batches(search, 1)
  from jaxnas import data as data_lib
  x_t = data_lib.normalize(batches["train"][0], comp.mean, comp.std)
  x_v = data_lib.normalize(batches["val"][0], comp.mean, comp.std)
  loss = lambda w, a, b: steps.supernet_loss(comp, w, a, state.model_state, *b)[0]
  problem = hypergrad.BilevelProblem(loss, loss)
  lr = comp.weights_lr(state.step)
  grads = {}
  for name, mixed_term in [("finite_difference", "exact"), ("finite_difference", "fd"),
                           ("unrolled", "fd"), ("first_order", "fd")]:
    config = quickstart_smoke(hypergrad=name, **{**TINY, "hypergrad_options.mixed_term": mixed_term})
    estimator = estimators.build_arch_gradient(config, lr_schedule=comp.weights_lr,
                                               weights_clipped=True)
    fn = jax.jit(lambda w, a, t, v, s, est=estimator: est(problem, w, a, t, v, lr=lr,
                                                            weights_opt_state=s))
    grads[name, mixed_term] = np.asarray(fn(
        state.weights, state.arch, (x_t, batches["train"][1]), (x_v, batches["val"][1]),
        state.weights_opt_state)["reduce"])
  exact = grads["unrolled", "fd"]
  darts_exact = grads["finite_difference", "exact"]
  first = grads["first_order", "fd"]
  fd = grads["finite_difference", "fd"]
  rel = np.linalg.norm(darts_exact - exact) / np.linalg.norm(exact)
  assert rel < 1e-4, rel
  # The second-order correction is real: it moves the gradient far more than that tolerance.
  assert np.linalg.norm(exact - first) / np.linalg.norm(exact) > 100 * max(rel, 1e-4)
  assert np.all(np.isfinite(fd)) and cosine(fd, exact) > 0.0


def test_arch_every_takes_an_alpha_step_after_every_t_weight_steps():
  search = tiny_search(arch_every=3, step_order="weights_first")
  step_fn = jax.jit(lambda s, b: steps.search_step(s, b, components=search.components))
  state = search_lib.start_state(search)
  history = [flat(state.arch)]
  val_losses = []
  for step in range(6):
    state, metrics = step_fn(state, search_lib.step_batches(search, step))
    history.append(flat(state.arch))
    val_losses.append(float(metrics["val/loss"]))
  changed = [not np.array_equal(history[i], history[i + 1]) for i in range(6)]
  assert changed == [False, False, True, False, False, True]
  assert [np.isnan(v) for v in val_losses] == [True, True, False, True, True, False]


def test_diagnostics_step_known_answer_for_the_reference_estimator():
  # The configured estimator IS the diagnostics' reference: zero error, cosine one.
  search = tiny_search(hypergrad="implicit_cg", **{"hypergrad_options.cg_maxiter": 10,
                                                   "hypergrad_options.cg_tol": 1e-6,
                                                   "hypergrad_options.mixed_term": "exact"})
  state = search_lib.start_state(search)
  out = jax.jit(lambda s, b: steps.diagnostics_step(s, b, components=search.components,
                                                     cg_maxiter=10, eigen_iterations=5))(
      state, search_lib.step_batches(search, 0))
  assert float(out["diag/hypergrad_rel_error"]) < 1e-5
  assert abs(float(out["diag/hypergrad_cosine"]) - 1.0) < 1e-5
  assert np.isfinite(float(out["diag/hessian_eigenvalue"]))


def _with_momentum_buffer(opt_state, buffer, count):
  """``opt_state`` with its momentum buffers set to ``buffer``, its schedule counts to ``count``."""
  if isinstance(opt_state, optax.TraceState):
    return opt_state._replace(trace=buffer)
  if isinstance(opt_state, optax.ScaleByScheduleState):
    return opt_state._replace(count=jax.numpy.asarray(count, opt_state.count.dtype))
  if isinstance(opt_state, tuple) and not hasattr(opt_state, "_fields"):
    return tuple(_with_momentum_buffer(s, buffer, count) for s in opt_state)
  return opt_state


@pytest.mark.parametrize("config_file, nesterov", [("darts_nb201.py", True),
                                                    ("darts_cifar10.py", False)])
def test_exact_second_order_virtual_step_of_each_config(config_file, nesterov):
  """The config's ``:second_order`` hypergradient against closed forms on the quadratic oracle.

  L_in = ½ wᵀAw − wᵀBα + wᵀb, L_out = ½‖w − c‖² + ½ αᵀDα, so g = ∇_w L_in = Aw − Bα + b and any
  virtual step w' whose α-dependence is −s ξ g gives d/dα L_out(w') = Dα + s ξ Bᵀ(w' − c).
  AutoDL DARTS-V2 and quark0/darts (no Nesterov): w' = w − ξ(μ m + g + λ w), s = 1 (the default,
  ``virtual_step='reference'``). The Nesterov weight step of AutoDL's optimizer
  (``virtual_step='optimizer'``): w' = w − ξ[(1 + μ)(g + λ w) + μ² m], s = 1 + μ. quark0/darts'
  optimizer is plain momentum, so there the two options agree.
  """
  quad = testing.quadratic_bilevel(seed=0)
  config = load_config(os.path.join(ROOT, "configs", config_file), "second_order")
  wopt = config.weights_optimizer
  assert (config.hypergrad, config.hypergrad_options.virtual_step) == ("unrolled", "reference")
  assert wopt.nesterov == nesterov and wopt.momentum == 0.9
  assert wopt.weight_decay == (5e-4 if nesterov else 3e-4)
  steps_per_epoch, count = 10, 137   # epoch 13 of 50
  rng = np.random.default_rng(4)
  w, m = rng.normal(size=quad.n_w), rng.normal(size=quad.n_w)
  with jax.enable_x64(True):
    lr = search_lib.weights_schedule(config, steps_per_epoch)
    xi = float(lr(jax.numpy.asarray(count)))
    tx = optim.sgd_pytorch(lr, momentum=wopt.momentum, weight_decay=wopt.weight_decay,
                           clip_norm=wopt.clip_norm, nesterov=wopt.nesterov)
    state = _with_momentum_buffer(tx.init(quad.weights(w)), quad.weights(m), count)
    args = (quad.weights(w), quad.arch(quad.ALPHA), jax.numpy.asarray(quad.BIAS),
            jax.numpy.asarray(quad.C))
    got = {}
    for name, virtual_step, mixed_term in [("unrolled", "reference", "fd"),
                                           ("unrolled", "optimizer", "fd"),
                                           ("finite_difference", "reference", "exact")]:
      config.hypergrad = name
      config.hypergrad_options.virtual_step = virtual_step
      config.hypergrad_options.mixed_term = mixed_term
      est = estimators.build_arch_gradient(config, lr_schedule=lr, weights_clipped=True)
      fn = jax.jit(lambda *a, est=est: est(quad.problem, *a, lr=xi, weights_opt_state=state))
      got[name, virtual_step] = quad.a_vec(fn(*args))

  mu, wd, a, b, d = wopt.momentum, wopt.weight_decay, quad.A, quad.B, quad.D
  g = a @ w - b @ quad.ALPHA + quad.BIAS + wd * w
  reference_w = w - xi * (mu * m + g)
  reference = d @ quad.ALPHA + xi * b.T @ (reference_w - quad.C)
  nesterov_w = w - xi * ((1 + mu) * g + mu**2 * m)
  nesterov_grad = d @ quad.ALPHA + (1 + mu) * xi * b.T @ (nesterov_w - quad.C)
  np.testing.assert_allclose(got["unrolled", "reference"], reference, rtol=1e-10)
  np.testing.assert_allclose(got["finite_difference", "reference"], reference, rtol=1e-10)
  np.testing.assert_allclose(got["unrolled", "optimizer"],
                             nesterov_grad if nesterov else reference, rtol=1e-10)
  if nesterov:  # the two virtual steps are told apart far beyond the tolerance
    assert np.linalg.norm(nesterov_grad - reference) > 1e-3 * np.linalg.norm(reference)


def test_virtual_step_must_be_a_known_name():
  config = quickstart_smoke(hypergrad="unrolled", **{"hypergrad_options.virtual_step": "nesterov"})
  with pytest.raises(ValueError, match="config.hypergrad_options.virtual_step='nesterov' is not "
                                       "valid; choose one of: reference, optimizer"):
    config_checks.validate(config)


# --------------------------------------------------------------------------- a user's estimator


@dataclasses.dataclass(frozen=True)
class LookaheadFirstOrder:
  r"""A user's estimator, defined here and nowhere in the package: the first-order gradient at the
  weights after a momentum look-ahead,

  .. math:: g = \nabla_\alpha L_{out}(w - \rho\,\xi\, m, \alpha),

  with ξ the current weight learning rate and m the weight optimizer's momentum buffer (both read
  per step), ρ = ``hypergrad_options.mixed_level_lambda`` (an existing option, reused).
  """
  xi: float = 0.0
  rho: float = 1.0
  momentum_buffer: object = None

  @classmethod
  def from_options(cls, options, context):
    rho = hypergrad.option_at_least(options, "mixed_level_lambda", 0, context)
    return hypergrad.PerStep(cls(rho=rho), lr_field="xi", reads_momentum=True)

  def __call__(self, problem, weights, arch, inner_batch, outer_batch):
    del inner_batch
    ahead = jax.tree.map(lambda w, m: w - self.rho * self.xi * m, weights, self.momentum_buffer)
    return jax.grad(problem.outer_loss, argnums=1)(ahead, arch, outer_batch)


@pytest.fixture
def lookahead():
  hypergrad.register("lookahead_first_order", LookaheadFirstOrder)
  yield
  del hypergrad.HYPERGRADS["lookahead_first_order"]


def test_an_estimator_registered_from_outside_runs_in_the_search_step(lookahead):
  """Registering a class with ``from_options`` is all a new estimator needs: the config names it,
  the config checks accept it, its option is checked by the class, and the jitted step fills in
  the learning rate and momentum buffer it declares."""
  rho = 0.5
  search = tiny_search(hypergrad="lookahead_first_order",
                       **{"hypergrad_options.mixed_level_lambda": rho})
  comp = search.components
  assert isinstance(comp.arch_gradient.estimator, LookaheadFirstOrder)
  step_fn = jax.jit(lambda s, b: steps.search_step(s, b, components=comp))
  state = search_lib.start_state(search)
  arch0 = flat(state.arch)
  for step in range(2):
    state, _ = step_fn(state, search_lib.step_batches(search, step))  # a non-zero momentum buffer
  assert np.all(np.isfinite(flat(state.arch))) and not np.allclose(flat(state.arch), arch0)
  # Its value in the step: the first-order gradient at w - rho * lr * m.
  loss = lambda w, a, b: steps.supernet_loss(comp, w, a, state.model_state, *b)[0]
  batch = search_lib.step_batches(search, 2)["val"]
  from jaxnas import data as data_lib
  val = (data_lib.normalize(batch[0], comp.mean, comp.std), batch[1])
  lr = comp.weights_lr(state.step)
  got = comp.arch_gradient(hypergrad.BilevelProblem(loss, loss), state.weights, state.arch, val,
                           val, lr=lr, weights_opt_state=state.weights_opt_state)
  buffer = optim.momentum_buffer(optim.unclipped_state(state.weights_opt_state, True))
  ahead = jax.tree.map(lambda w, m: w - rho * lr * m, state.weights, buffer)
  want = jax.grad(loss, argnums=1)(ahead, state.arch, val)
  np.testing.assert_allclose(flat(got), flat(want), rtol=1e-5, atol=1e-7)
  assert not np.allclose(flat(want), flat(jax.grad(loss, argnums=1)(state.weights, state.arch,
                                                                    val)))
  bad = quickstart_smoke(hypergrad="lookahead_first_order",
                         **{"hypergrad_options.mixed_level_lambda": -1.0})
  with pytest.raises(ValueError, match=r"config.hypergrad_options.mixed_level_lambda=-1.0 is not "
                                       r"valid; use a number >= 0"):
    config_checks.validate(bad)


@pytest.mark.parametrize("name,field,value,message", [
    ("mixed_level", "milenas_weighting", "both", "choose one of: paper, code."),
    ("finite_difference", "fd_eps", 0.0, "use a number > 0."),
    ("finite_difference", "mixed_term", "taylor", "choose one of: fd, exact."),
    ("unrolled", "unrolled_steps", 0, "use an integer >= 1."),
    ("unrolled", "unrolled_second_order", "forward", "choose one of: hvp, reverse."),
    ("implicit_neumann", "neumann_terms", -1, "use an integer >= 0."),
    ("implicit_cg", "cg_maxiter", 0, "use an integer >= 1."),
])
def test_each_estimator_checks_its_own_options(name, field, value, message):
  """One-line errors naming the field, its value and the valid values, raised by the estimator
  class (``from_options``) when the config is validated; other estimators ignore the field."""
  config = quickstart_smoke(hypergrad=name, **{f"hypergrad_options.{field}": value})
  with pytest.raises(ValueError, match=f"^config.hypergrad_options.{field}={value!r} is not "
                                       f"valid; {message}$".replace("(", r"\(")):
    config_checks.validate(config)
  config_checks.validate(quickstart_smoke(hypergrad="first_order",
                                          **{f"hypergrad_options.{field}": value}))
