"""Memory options: per-cell rematerialization (``config.backend.remat``) and bfloat16 compute with
float32 master weights (``config.compute_dtype``), on tiny supernets with rolled loops."""
import dataclasses
import functools
import os

import jax
import jax.extend as jex
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxnas
from jaxnas import config_checks
from jaxnas import data as data_lib
from jaxnas import search as search_lib
from jaxnas import state as state_lib
from jaxnas import steps
from jaxnas import supernet

import test_loop
from test_loop import ROOT

SPACES = ("nb201", "darts", "width")
# (space options, supernet sizes): a conv op and a pool op in every cell (pools run on a float32
# input in bfloat16 mode), DARTS with a normal and two reduction cells, width with a block outside
# and one inside each stage's scan.
TINY = {
    "nb201": (dict(ops=("skip_connect", "nor_conv_1x1", "avg_pool_3x3")),
              dict(channels=4, cells_per_stage=1, num_classes=3, unroll=False)),
    "darts": (dict(ops=("skip_connect", "dil_conv_3x3", "avg_pool_3x3"), nodes=1),
              dict(channels=4, layers=3, num_classes=3, unroll=False)),
    "width": (dict(channels=4, blocks_per_stage=2), dict(num_classes=3, unroll=False)),
}


def random_variables(module, x, mixing, seed=0):
  """``(weights, model_state)`` of ``module`` with random values, without compiling its init."""
  shapes = jax.eval_shape(functools.partial(supernet.init, module), jax.random.key(0), x, mixing)
  rng = np.random.default_rng(seed)

  def leaf(path, s):
    if path[-1].key in ("scale", "var"):
      return jnp.asarray(rng.uniform(0.5, 1.5, s.shape), s.dtype)
    return jnp.asarray(rng.normal(0.0, 0.3, s.shape), s.dtype)
  return jax.tree_util.tree_map_with_path(leaf, shapes)


@functools.lru_cache(maxsize=None)
def tiny(space_name):
  """``(space, plain module, remat module, param, arch, weights, model_state, x, labels)``."""
  options, sizes = TINY[space_name]
  space = jaxnas.spaces.get(space_name, **options)
  plain, remat = space.supernet(**sizes), space.supernet(remat=True, **sizes)
  param = jaxnas.parametrize.get("softmax")
  arch = jax.tree.map(lambda a: a + jax.random.normal(jax.random.key(3), a.shape),
                      space.init_arch(jax.random.key(0), param))
  x = jax.random.normal(jax.random.key(1), (4, 8, 8, 3))
  labels = jnp.array([0, 2, 1, 0])
  weights, model_state = random_variables(plain, x, param.activate(arch))
  return space, plain, remat, param, arch, weights, model_state, x, labels


def loss_fn(module, param, model_state, x, labels, weights, arch):
  logits, new_state = supernet.apply(module, weights, model_state, x, param.activate(arch),
                                     train=True)
  return steps.cross_entropy(logits, labels), new_state


def grad_fn(module, param, model_state, x, labels):
  """``(weights, arch) -> ((loss, new BN state), (g_weights, g_arch))``."""
  return jax.value_and_grad(functools.partial(loss_fn, module, param, model_state, x, labels),
                            argnums=(0, 1), has_aux=True)


def eqns(jaxpr):
  """Every equation of ``jaxpr`` and, recursively, of its sub-jaxprs (scan, remat, cond...)."""
  for eqn in jaxpr.eqns:
    yield eqn
    for sub in jex.core.jaxprs_in_params(eqn.params):
      yield from eqns(sub)


def specs(tree):
  return jax.tree.map(lambda a: (a.shape, a.dtype), tree)


# ------------------------------------------------------------------------------- remat

def is_remat(primitive_name):
  return primitive_name.startswith("remat") or primitive_name == "checkpoint"


@pytest.mark.parametrize("space_name", SPACES)
def test_remat_checkpoints_the_cells_and_keeps_variables_loss_and_gradients(space_name):
  """One test per space (each program traced and compiled once): the gradient program has a
  remat/checkpoint primitive with ``remat=True`` only, and both give the same variables, loss, BN
  state and gradients w.r.t. the weights and alpha."""
  space, plain, remat, param, arch, weights, model_state, x, labels = tiny(space_name)
  assert not plain.remat and remat.remat
  remat_vars = jax.eval_shape(functools.partial(supernet.init, remat), jax.random.key(0), x,
                              param.activate(arch))
  assert specs(remat_vars) == specs((weights, model_state))  # names, shapes, dtypes
  outputs, checkpoints = {}, {}
  for module in (plain, remat):
    traced = jax.jit(grad_fn(module, param, model_state, x, labels)).trace(weights, arch)
    checkpoints[module.remat] = sum(map(is_remat, (e.primitive.name
                                                   for e in eqns(traced.jaxpr.jaxpr))))
    outputs[module.remat] = traced.lower().compile()(weights, arch)
  # remat adds a checkpoint per cell (the suite runs XLA's kernels, which have none of their own).
  assert checkpoints[True] > checkpoints[False], checkpoints
  plain_out, remat_out = outputs[False], outputs[True]
  assert jax.tree.structure(plain_out) == jax.tree.structure(remat_out)
  # loss, new BN state, gradients w.r.t. the weights and w.r.t. alpha
  jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-6),
               remat_out, plain_out)
  assert float(optax.tree.norm(plain_out[1][1])) > 0  # alpha really gets a gradient


def checkpoints_inside_scans(jaxpr, inside=False):
  """How many remat/checkpoint equations sit inside a scan body (``inside``: already in one)."""
  count = 0
  for eqn in jaxpr.eqns:
    count += inside and is_remat(eqn.primitive.name)
    for sub in jex.core.jaxprs_in_params(eqn.params):
      count += checkpoints_inside_scans(sub, inside or eqn.primitive.name == "scan")
  return count


@pytest.mark.parametrize("space_name", ("darts", "nb201"))
def test_edge_remat_checkpoints_each_edge_inside_the_scan_with_the_same_results(space_name):
  """``remat_scope='edge'`` puts the checkpoint inside the edge scan (the cell scope does not:
  it wraps the cell around its scans, and NB201's cell scan around the edge scans' cell) and gives
  the plain step's variables, loss, BN state and gradients."""
  space, plain, cell_remat, param, arch, weights, model_state, x, labels = tiny(space_name)
  edge_remat = space.supernet(remat=True, remat_scope="edge", **TINY[space_name][1])
  assert specs(jax.eval_shape(functools.partial(supernet.init, edge_remat), jax.random.key(0), x,
                              param.activate(arch))) == specs((weights, model_state))
  traced = {module.remat_scope if module.remat else "none":
            jax.jit(grad_fn(module, param, model_state, x, labels)).trace(weights, arch)
            for module in (plain, cell_remat, edge_remat)}
  inside = {name: checkpoints_inside_scans(t.jaxpr.jaxpr) for name, t in traced.items()}
  assert inside["edge"] > 0 and inside["none"] == 0, inside
  if space_name == "darts":  # DARTS' cells are not scanned: the cell scope is outside any scan
    assert inside["cell"] == 0, inside
  plain_out = traced["none"].lower().compile()(weights, arch)
  edge_out = traced["edge"].lower().compile()(weights, arch)
  jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-6),
               edge_out, plain_out)
  assert float(optax.tree.norm(plain_out[1][1])) > 0


def test_remat_scope_is_checked():
  config = test_loop.load_config(os.path.join(ROOT, "configs", "default.py"), None,
                                 **{"space.name": "width"})
  config.backend.remat, config.backend.remat_scope = True, "edge"
  with pytest.raises(ValueError,
                     match="remat_scope='edge'.*set config.backend.remat_scope='cell'"):
    config_checks.validate(config)
  config.backend.remat = False  # the scope only matters with remat on
  config_checks.validate(config)
  config.backend.remat_scope = "block"
  with pytest.raises(ValueError, match="backend.remat_scope='block' is not valid"):
    config_checks.validate(config)
  with pytest.raises(ValueError, match="remat_scope must be one of"):
    jaxnas.spaces.get("darts").supernet(remat=True, remat_scope="cells")


def test_build_supernet_passes_config_remat():
  for space_name in SPACES:
    config = test_loop.load_config(os.path.join(ROOT, "configs", "default.py"), None,
                                   **{"space.name": space_name, "backend.remat": False})
    space = search_lib.build_space(config)
    assert search_lib.build_supernet(config, space, 10).remat is False
    config.backend.remat = True
    assert search_lib.build_supernet(config, space, 10).remat is True
    config.backend.remat_scope = "edge" if space_name in ("darts", "nb201") else "cell"
    module = search_lib.build_supernet(config, space, 10)
    assert getattr(module, "remat_scope", "cell") == config.backend.remat_scope
  # On CPU the DARTS-space configs rematerialize each edge by default (the backend's default for
  # the space); smoke runs not.
  darts = test_loop.load_config(os.path.join(ROOT, "configs", "darts_cifar10.py"), None)
  darts_space = search_lib.build_space(darts)
  module = search_lib.build_supernet(darts, darts_space, 10)
  assert module.remat is True and module.remat_scope == "edge" and module.unroll is False
  smoke = test_loop.load_config(os.path.join(ROOT, "configs", "darts_cifar10.py"), "smoke")
  assert search_lib.build_supernet(smoke, search_lib.build_space(smoke), 10).remat is False
  darts.space.remat = True  # the name before config.backend
  with pytest.raises(ValueError, match="config.space.remat moved to config.backend.remat"):
    search_lib.build_supernet(darts, darts_space, 10)


# ------------------------------------------------------------------------------- bfloat16

@pytest.mark.parametrize("space_name", SPACES)
def test_bfloat16_forward_computes_in_bfloat16(space_name):
  space, plain, remat, param, arch, weights, model_state, x, labels = tiny(space_name)
  for module, dtype, train in ((plain, "bfloat16", True), (plain, "bfloat16", False),
                               (remat, "bfloat16", True), (plain, "float32", True)):
    forward = lambda w, a: supernet.apply(  # noqa: E731
        module, w, model_state, x, param.activate(a), train=train, compute_dtype=dtype)
    jaxpr = jax.make_jaxpr(forward)(weights, arch)  # traces under strict dtype promotion
    convs = [e for e in eqns(jaxpr.jaxpr) if e.primitive.name == "conv_general_dilated"]
    assert convs
    for conv in convs:  # activations and kernels of every convolution
      assert {v.aval.dtype for v in conv.invars} == {jnp.dtype(dtype)}, (dtype, conv)
    logits, new_state = jaxpr.out_avals[0], jaxpr.out_avals[1:]
    assert logits.dtype == jnp.float32
    assert {a.dtype for a in new_state} == {jnp.dtype(jnp.float32)}  # BN statistics


def test_bfloat16_weights_step_keeps_float32_master_state():
  """One weight step of the quickstart supernet (with remat) in float32 and in bfloat16."""
  config = test_loop.quickstart_smoke(compute_dtype="bfloat16", **{
      "backend.remat": True, "space.ops": "skip_connect,nor_conv_1x1,avg_pool_3x3"})
  search = search_lib.build_search(config)
  assert search.components.compute_dtype == "bfloat16" and search.components.module.remat
  images = data_lib.normalize(jnp.asarray(search.splits.weights.images[:8]),
                              search.components.mean, search.components.std)
  comp = search.components
  arch = search.space.init_arch(jax.random.key(0), comp.parametrization)
  weights, model_state = random_variables(comp.module, images,
                                          comp.parametrization.activate(arch))
  state = state_lib.create_search_state(weights=weights, model_state=model_state, arch=arch,
                                        weights_tx=comp.weights_tx, arch_tx=comp.arch_tx,
                                        key=jax.random.key(1))
  labels = jnp.asarray(search.splits.weights.labels[:8], jnp.int32)
  out = {}
  for dtype in ("float32", "bfloat16"):
    components = dataclasses.replace(search.components, compute_dtype=dtype)
    out[dtype] = jax.jit(functools.partial(steps.weights_update, components))(
        state, images, labels)
  (s32, m32), (s16, m16) = out["float32"], out["bfloat16"]
  for new in (s32, s16):  # master weights, optimizer state and BN statistics stay float32
    assert specs((new.weights, new.weights_opt_state, new.model_state)) == specs(
        (state.weights, state.weights_opt_state, state.model_state))
  assert {leaf.dtype for leaf in jax.tree.leaves(s16.weights)} == {jnp.dtype(jnp.float32)}
  assert {leaf.dtype for leaf in jax.tree.leaves(s16.model_state)} == {jnp.dtype(jnp.float32)}
  assert np.isfinite(float(m16["train/loss"]))
  np.testing.assert_allclose(m16["train/loss"], m32["train/loss"], rtol=2e-2)
  np.testing.assert_allclose(m16["train/grad_norm"], m32["train/grad_norm"], rtol=5e-2)
  assert float(m16["train/loss"]) != float(m32["train/loss"])  # really a different forward
  moved = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), s16.weights, state.weights)
  assert max(jax.tree.leaves(moved)) > 0
  jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=5e-2, atol=5e-3),
               s16.model_state, s32.model_state)
  evaluation = jax.eval_shape(functools.partial(steps.eval_step, components=search.components),
                              s16, search.splits.weights.images[:8], labels)
  assert {v.dtype for v in evaluation.values()} == {jnp.dtype(jnp.float32)}


def test_bad_compute_dtype_names_the_field_and_the_valid_values():
  config = test_loop.quickstart_smoke(compute_dtype="float16")
  with pytest.raises(ValueError, match=r"config\.compute_dtype='float16'.*float32, bfloat16"):
    config_checks.validate(config)
  with pytest.raises(ValueError, match=r"config\.compute_dtype='float16'.*float32, bfloat16"):
    search_lib.build_search(config)
  space, plain, remat, param, arch, weights, model_state, x, labels = tiny("nb201")
  with pytest.raises(ValueError, match=r"compute_dtype='float16'.*float32, bfloat16"):
    supernet.apply(plain, weights, model_state, x, param.activate(arch), train=False,
                   compute_dtype="float16")


def test_memory_scheduler_lets_dependent_gradient_passes_share_memory():
  """``config.backend.cpu_scheduler='memory'`` (the CPU default): through a rolled loop,
  XLA:CPU's default scheduler keeps two dependent gradient passes' loop buffers live at once; the
  memory-optimized one lets the second reuse the first's memory (a search step has two or more
  such passes)."""
  from jaxnas.backends import cpu

  def loss(w, a, x):
    h, _ = jax.lax.scan(lambda h, wl: (jnp.tanh(h @ wl) * a, None), x, w)
    return jnp.sum(h ** 2)

  def two_passes(w, a, x):
    grad_a = jax.grad(loss, argnums=1)
    return grad_a(w, a + 1e-3 * grad_a(w, a, x), x)

  w, a, x = jnp.full((8, 128, 128), 0.01), jnp.ones(()), jnp.ones((128, 128))
  temp = {}
  for scheduler in ("default", "memory"):
    compiled = jax.jit(two_passes, compiler_options=cpu.compiler_options(scheduler)).lower(
        w, a, x).compile()
    temp[scheduler] = compiled.memory_analysis().temp_size_in_bytes
    np.testing.assert_allclose(compiled(w, a, x), two_passes(w, a, x), rtol=1e-6)
  assert cpu.compiler_options("default") is None
  assert cpu.compiler_options("memory") == {
      "xla_cpu_scheduler_type": "CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED"}
  assert temp["memory"] < 0.85 * temp["default"], temp
