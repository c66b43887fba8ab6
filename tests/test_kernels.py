"""The shifted CPU kernels (jaxnas.backends.cpu_kernels) against XLA's own convolution and pooling.

Values, first derivatives, Hessian-vector products (jvp of grad, as hypergrad.Unrolled and iDARTS
use) and second reverse derivatives must equal the XLA reference, for every geometry the search
spaces use plus odd sizes and asymmetric padding; the Flax integration must keep parameters.
"""
import functools
import pathlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax import lax

from jaxnas.backends import cpu_kernels as kernels
from jaxnas.spaces import ops as ops_lib
from jaxnas.spaces.darts import DARTS_OPS

RTOL, ATOL = 2e-5, 2e-5


def _xla_depthwise(x, w, strides, padding, dilation):
  return lax.conv_general_dilated(x, w, strides, padding, rhs_dilation=dilation,
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                  feature_group_count=x.shape[-1])


def _random(shape, seed):
  return jax.random.normal(jax.random.key(seed), shape, jnp.float32)


@functools.partial(jax.jit, static_argnums=0)
def _derivatives(f, x, w, probe):
  """Value, grad, Hessian-vector product (jvp of grad) and grad of a gradient norm, in (x, w)."""
  loss = lambda x, w: jnp.sum(jnp.tanh(f(x, w)) * probe)
  grad = jax.grad(loss, argnums=(0, 1))
  hvp = jax.jvp(grad, (x, w), (jnp.cos(x), jnp.sin(w)))[1]
  grad_of_grad = jax.grad(lambda x, w: sum(jnp.sum(g ** 2) for g in grad(x, w)),
                          argnums=(0, 1))(x, w)
  return (f(x, w),) + tuple(grad(x, w)) + tuple(hvp) + tuple(grad_of_grad)


def _assert_all_close(ours, reference):
  for a, b in zip(ours, reference, strict=True):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=RTOL,
                               atol=ATOL * float(np.max(np.abs(np.asarray(b)))))


@pytest.mark.parametrize("kernel,stride,dilation,padding,size", [
    (3, 1, 1, ((1, 1), (1, 1)), 8),       # sep_conv_3x3
    (5, 1, 1, ((2, 2), (2, 2)), 8),       # sep_conv_5x5
    (3, 2, 2, ((2, 2), (2, 2)), 8),       # dil_conv_3x3 on a reduction edge
    (5, 2, 2, ((4, 4), (4, 4)), 9),       # dil_conv_5x5, odd input size
    (3, 2, 1, ((0, 1), (1, 0)), 7),       # asymmetric padding, odd size
    (3, 1, 2, ((2, 2), (2, 2)), 8),       # dil_conv_3x3 on a normal edge (placed tangent)
    (3, 1, 1, ((0, 2), (2, 0)), 7),       # stride 1, same size, asymmetric (placed tangent)
    (3, 1, 1, ((1, 0), (0, 0)), 7),       # stride 1, smaller output (phase-form tangent)
    (3, 2, 1, ((1, 1), (1, 1)), 8),       # sep_conv_3x3 on a reduction edge (phase-form tangent)
    (5, 2, 1, ((2, 2), (2, 2)), 9),       # sep_conv_5x5 on a reduction edge, odd input size
    (3, 3, 1, ((1, 1), (1, 1)), 8),       # stride 3: nine phases
])
def test_depthwise_conv_equals_xla_to_second_order(kernel, stride, dilation, padding, size):
  x = _random((3, size, size + 1, 4), 0)
  w = _random((kernel, kernel, 1, 4), 1)
  args = ((stride, stride), padding, (dilation, dilation))
  reference_out = _xla_depthwise(x, w, *args)
  probe = _random(reference_out.shape, 2)
  ours = _derivatives(lambda x, w: kernels.depthwise_conv(x, w, *args), x, w, probe)
  reference = _derivatives(lambda x, w: _xla_depthwise(x, w, *args), x, w, probe)
  assert ours[0].shape == reference_out.shape
  _assert_all_close(ours, reference)


def test_depthwise_conv_handles_small_non_square_outputs():
  # 3x5 outputs per image, two images: the variadic weight-gradient reduction over (n, i, j).
  x, w = _random((2, 3, 5, 2), 3), _random((3, 3, 1, 2), 4)
  args = ((1, 1), ((1, 1), (1, 1)), (1, 1))
  probe = _random((2, 3, 5, 2), 5)
  _assert_all_close(_derivatives(lambda x, w: kernels.depthwise_conv(x, w, *args), x, w, probe),
                    _derivatives(lambda x, w: _xla_depthwise(x, w, *args), x, w, probe))


def test_reverse_mode_runs_the_weight_gradient_primitive():
  """The weight gradient is the variadic-reduction primitive, not a transposed expression, and
  reverse-over-reverse transposes it back into the weight tangent."""
  x, w = _random((2, 6, 6, 3), 6), _random((5, 5, 1, 3), 7)
  args = ((1, 1), ((2, 2), (2, 2)), (1, 1))
  loss = lambda w: jnp.sum(jnp.tanh(kernels.depthwise_conv(x, w, *args)))
  grad_names = {e.primitive.name for e in jax.make_jaxpr(jax.grad(loss))(w).jaxpr.eqns}
  assert kernels.weight_gradient_p.name in grad_names
  grad_of_grad = jax.make_jaxpr(jax.grad(lambda w: jnp.sum(jax.grad(loss)(w) ** 2)))(w)
  assert kernels.weight_tangent_p.name in {e.primitive.name for e in grad_of_grad.jaxpr.eqns}


def _pad_interiors(jaxpr) -> list[int]:
  """The interior padding of every ``pad`` in ``jaxpr`` and its sub-jaxprs."""
  interiors = []
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == "pad":
      interiors += [int(interior) for _, _, interior in eqn.params["padding_config"]]
    for value in eqn.params.values():
      for sub in value if isinstance(value, (list, tuple)) else [value]:
        sub = getattr(sub, "jaxpr", sub)
        if hasattr(sub, "eqns"):
          interiors += _pad_interiors(sub)
  return interiors


@pytest.mark.parametrize("op", ["depthwise", "max_pool", "avg_pool"])
def test_strided_input_gradients_have_no_interior_padding(op):
  """At stride 2 the tangents in x are in the phase form, whose transpose (the input gradient,
  also inside an HVP) is slices and pads without interior padding: the windows' own transposes
  are interior-padded pads, which XLA:CPU fuses into loops testing every tap per element."""
  x, w = _random((2, 8, 9, 3), 18), _random((5, 5, 1, 3), 19)
  f = {"depthwise": lambda x: kernels.depthwise_conv(x, w, (2, 2), ((4, 4), (4, 4)), (2, 2)),
       "max_pool": lambda x: kernels.max_pool(x, 3, 2, 1),
       "avg_pool": lambda x: kernels.avg_pool(x, 3, 2, 1)}[op]
  grad = jax.grad(lambda x: jnp.sum(jnp.tanh(f(x))))
  hvp = lambda x: jax.jvp(grad, (x,), (jnp.cos(x),))[1]
  for fn in (grad, hvp):
    interiors = _pad_interiors(jax.make_jaxpr(fn)(x).jaxpr)
    assert interiors and max(interiors) == 0, interiors
  # The window form, for contrast: its transpose is interior-padded.
  window_sum = lambda x: sum(kernels._windows(x, 3, (2, 2), ((1, 1), (1, 1)), (1, 1)))
  assert max(_pad_interiors(jax.make_jaxpr(jax.grad(lambda x: jnp.sum(window_sum(x))))(x)
                            .jaxpr)) == 1


@pytest.mark.parametrize("in_axes", [(0, 0), (None, 0), (0, None)])
def test_vmapped_depthwise_conv_equals_a_loop_over_the_mapped_axis(in_axes):
  """vmap (e.g. over seeds) folds the mapped axis into channels: gradients and HVPs per element
  equal XLA's, whichever of input and weights is mapped."""
  seeds = 3
  x = _random((seeds, 2, 6, 6, 2), 8) if in_axes[0] == 0 else _random((2, 6, 6, 2), 8)
  w = _random((seeds, 3, 3, 1, 2), 9) if in_axes[1] == 0 else _random((3, 3, 1, 2), 9)
  args = ((1, 1), ((2, 2), (2, 2)), (2, 2))

  def derivatives(conv):
    def one(x, w):
      grad = jax.grad(lambda x, w: jnp.sum(jnp.tanh(conv(x, w, *args)) ** 2), argnums=(0, 1))
      return grad(x, w), jax.jvp(grad, (x, w), (jnp.cos(x), jnp.sin(w)))[1]
    return one

  ours = jax.jit(jax.vmap(derivatives(kernels.depthwise_conv), in_axes=in_axes))(x, w)
  pick = lambda a, axis, i: a if axis is None else a[i]  # noqa: E731
  loop = [derivatives(_xla_depthwise)(pick(x, in_axes[0], i), pick(w, in_axes[1], i))
          for i in range(seeds)]
  _assert_all_close(jax.tree.leaves(ours), jax.tree.leaves(jax.tree.map(lambda *a: jnp.stack(a),
                                                                        *loop)))


def test_sharded_weight_gradient_equals_the_single_device_one():
  """The weight-gradient reduction over a batch sharded across the 8 virtual devices."""
  from jaxnas import sharding
  mesh = sharding.make_mesh(8)
  x, w = _random((8, 6, 6, 2), 10), _random((3, 3, 1, 2), 11)
  args = ((1, 1), ((1, 1), (1, 1)), (1, 1))
  grad = jax.jit(jax.grad(lambda x, w: jnp.sum(jnp.tanh(kernels.depthwise_conv(x, w, *args))),
                          argnums=1))
  sharded_x = jax.device_put(x, jax.NamedSharding(mesh, jax.P(sharding.DATA_AXIS)))
  np.testing.assert_allclose(grad(sharded_x, w), grad(x, w), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("stride", [1, 2])
def test_pointwise_conv_equals_xla(stride):
  x, w = _random((2, 5, 6, 3), 6), _random((1, 1, 3, 4), 7)
  xla = lambda x, w: lax.conv_general_dilated(x, w, (stride, stride), ((0, 0), (0, 0)),
                                               dimension_numbers=("NHWC", "HWIO", "NHWC"))
  probe = _random(xla(x, w).shape, 8)
  _assert_all_close(
      _derivatives(lambda x, w: kernels.pointwise_conv(x, w, (stride, stride)), x, w, probe),
      _derivatives(xla, x, w, probe))


@pytest.mark.parametrize("stride,size", [(1, 6), (2, 6), (2, 7), (3, 8)])
def test_max_pool_equals_xla_without_ties(stride, size):
  x = _random((2, size, size, 3), 9)
  xla = lambda x: nn.max_pool(x, (3, 3), strides=(stride, stride), padding=((1, 1), (1, 1)))
  ours = lambda x: kernels.max_pool(x, 3, stride, 1)
  probe = _random(xla(x).shape, 10)
  loss = lambda f: lambda x: jnp.sum(jnp.tanh(f(x)) * probe)
  np.testing.assert_array_equal(np.asarray(ours(x)), np.asarray(xla(x)))
  np.testing.assert_allclose(np.asarray(jax.grad(loss(ours))(x)),
                             np.asarray(jax.grad(loss(xla))(x)), rtol=1e-6, atol=1e-7)
  tangent = jnp.cos(x)
  np.testing.assert_allclose(np.asarray(jax.jvp(ours, (x,), (tangent,))[1]),
                             np.asarray(jax.jvp(xla, (x,), (tangent,))[1]), rtol=1e-6)


def test_max_pool_gives_ties_to_the_first_maximum_in_row_major_order():
  x = jnp.zeros((1, 2, 2, 1), jnp.float32)  # every window's maximum is tied at 0
  grad = jax.grad(lambda x: jnp.sum(kernels.max_pool(x, 3, 2, 1)))(x)
  # One window (stride 2 over 2x2 with pad 1) covering all four pixels: the first one gets it.
  np.testing.assert_array_equal(np.asarray(grad)[0, :, :, 0], [[1.0, 0.0], [0.0, 0.0]])
  # Stride 1 (the placed tangent): each of the 4 windows covers all 4 pixels, so pixel (0, 0),
  # first in every window, gets every window's gradient; grad of grad is zero (piecewise linear).
  pool_sum = lambda x: jnp.sum(kernels.max_pool(x, 3, 1, 1) * jnp.arange(1.0, 5.0).reshape(
      1, 2, 2, 1))
  np.testing.assert_array_equal(np.asarray(jax.grad(pool_sum)(x))[0, :, :, 0],
                                [[10.0, 0.0], [0.0, 0.0]])
  hvp = jax.jvp(jax.grad(pool_sum), (x,), (jnp.ones_like(x),))[1]
  np.testing.assert_array_equal(np.asarray(hvp), 0.0)


@pytest.mark.parametrize("window,stride,padding,size", [
    (3, 1, 1, 6), (3, 2, 1, 6), (3, 2, 1, 7), (2, 2, 0, 6)])
def test_avg_pool_equals_xla_to_second_order(window, stride, padding, size):
  """count_include_pad=False (the divisor counts real pixels), with its placed tangent at stride 1."""
  x, w = _random((2, size, size + 1, 3), 16), jnp.ones((1, 1, 1, 1), jnp.float32)
  pad = ((padding, padding),) * 2
  xla = lambda x, w: w * nn.avg_pool(x, (window, window), strides=(stride, stride), padding=pad,
                                     count_include_pad=False)
  ours = lambda x, w: w * kernels.avg_pool(x, window, stride, padding)
  probe = _random(xla(x, w).shape, 17)
  _assert_all_close(_derivatives(ours, x, w, probe), _derivatives(xla, x, w, probe))


def test_fast_conv_keeps_flax_parameters_and_values():
  x = _random((2, 6, 6, 4), 11)
  for kernel, groups, padding, stride in ((3, 4, 1, 1), (5, 4, 2, 2), (1, 1, 0, 1), (1, 1, 0, 2)):
    features = 4 if groups > 1 else 5
    make = lambda cls: nn.Conv(features, (kernel, kernel), strides=(stride, stride),
                               padding=((padding, padding),) * 2, feature_group_count=groups,
                               use_bias=False, conv_general_dilated_cls=cls)
    params = make(None).init(jax.random.key(0), x)
    assert jax.tree.map(jnp.shape, make(kernels.FastConv).init(jax.random.key(0), x)) == \
        jax.tree.map(jnp.shape, params)
    np.testing.assert_allclose(np.asarray(make(kernels.FastConv).apply(params, x)),
                               np.asarray(make(None).apply(params, x)), rtol=1e-5, atol=1e-6)


def test_fast_conv_refuses_convolutions_it_does_not_compute():
  x = _random((1, 5, 5, 4), 12)
  dense_3x3 = nn.Conv(4, (3, 3), padding=((1, 1), (1, 1)), conv_general_dilated_cls=kernels.FastConv)
  with pytest.raises(ValueError, match="neither depthwise nor an unpadded 1x1"):
    dense_3x3.init(jax.random.key(0), x)
  same_padding = nn.Conv(4, (3, 3), feature_group_count=4, padding="SAME",
                         conv_general_dilated_cls=kernels.FastConv)
  with pytest.raises(ValueError, match="must be explicit"):
    same_padding.init(jax.random.key(0), x)


def test_kernels_are_a_construction_argument():
  """The kernels are fixed when a module is built (its ``kernels`` attribute), never read from
  the environment or any other global while tracing."""
  assert ops_lib.conv(4, 3, padding=1, groups=4).conv_general_dilated_cls is None
  assert ops_lib.conv(4, 3, padding=1, groups=4, kernels="xla").conv_general_dilated_cls is None
  shifted = functools.partial(ops_lib.conv, kernels="shifted")
  assert shifted(4, 3, padding=1, groups=4).conv_general_dilated_cls is kernels.FastConv
  assert shifted(4, 1).conv_general_dilated_cls is kernels.FastConv
  assert shifted(4, 3, padding=1).conv_general_dilated_cls is None  # dense 3x3: XLA's
  with pytest.raises(ValueError, match="kernels='fast' is not valid; choose one of: shifted, xla"):
    ops_lib.conv(4, 1, kernels="fast")
  from jaxnas import spaces
  module = spaces.get("darts").supernet(channels=4, layers=1, kernels="shifted")
  assert module.kernels == "shifted"
  assert spaces.get("nb201").supernet(channels=4, cells_per_stage=1).kernels == "xla"


def test_no_module_reads_the_environment_for_kernels():
  root = pathlib.Path(__file__).resolve().parents[1] / "jaxnas"
  readers = [str(path.relative_to(root)) for path in root.rglob("*.py")
             if "JAXNAS_KERNELS" in path.read_text()
             or ("environ" in path.read_text() and "kernels" in path.name)]
  assert not readers, readers


def test_darts_mixed_op_is_the_same_with_either_kernels():
  """A whole DARTS reduction MixedOp (all 8 ops at stride 2, BN in training mode): outputs and
  gradients agree (stride 1 is covered kernel by kernel above)."""
  stride = 2
  x = _random((4, 6, 6, 4), 13)
  mixing = jax.nn.softmax(_random((len(DARTS_OPS),), 14))
  results = []
  for impl in ("xla", "shifted"):
    op = ops_lib.MixedOp(DARTS_OPS, 4, stride, pool_bn=True, kernels=impl)
    variables = op.init(jax.random.key(0), x, mixing, train=False)

    def loss(params, x, mixing, op=op, variables=variables):
      y, _ = op.apply({"params": params, "batch_stats": variables["batch_stats"]}, x, mixing,
                      train=True, mutable=["batch_stats"])
      return jnp.sum(jnp.tanh(y) * jnp.cos(y))

    value_and_grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))
    results.append(value_and_grad(variables["params"], x, mixing))
  _assert_all_close(jax.tree.leaves(results[1]), jax.tree.leaves(results[0]))


def test_multiply_add_counts_see_the_shifted_depthwise_convolutions():
  """reports.function_macs counts a shifted depthwise convolution (and its input and weight
  gradients) as XLA's convolutions are counted: a stride-1 MixedOp's training gradient has the
  same count with either kernels."""
  from jaxnas import reports
  x = _random((2, 5, 5, 4), 15)
  mixing = jnp.full((len(DARTS_OPS),), 1.0 / len(DARTS_OPS))
  counts = {}
  for impl in ("xla", "shifted"):
    op = ops_lib.MixedOp(DARTS_OPS, 4, 1, pool_bn=True, kernels=impl)
    variables = op.init(jax.random.key(0), x, mixing, train=False)
    loss = lambda p, x: jnp.sum(op.apply({"params": p, "batch_stats": variables["batch_stats"]},
                                         x, mixing, train=True, mutable=["batch_stats"])[0])
    counts[impl] = (reports.function_macs(loss, variables["params"], x),
                    reports.function_macs(jax.grad(loss, argnums=(0, 1)), variables["params"], x))
  assert counts["shifted"] == counts["xla"]
  assert counts["xla"][1] > 2 * counts["xla"][0] > 0


def test_exact_second_order_hypergradient_is_the_same_with_either_kernels():
  """End to end: DARTS' exact second-order hypergradient (one unrolled SGD step differentiated by
  forward-over-reverse HVPs through the kernels' custom JVPs) on a tiny supernet with a depthwise
  op, a max pool and a stride-2 1x1 reduction is the same with XLA's and the shifted kernels, far
  closer than its second-order part is large; so is the supernet's loss, to float32 rounding."""
  from jaxnas import data as data_lib
  from jaxnas import hypergrad
  from jaxnas import search as search_lib
  from jaxnas import steps
  from test_search_hypergrad import tiny_search
  grads = {}
  for impl in ("xla", "shifted"):
    search = tiny_search(**{"backend.kernels": impl})  # the config reaches the module
    comp = search.components
    assert comp.module.kernels == impl
    state = search_lib.start_state(search)
    batches = search_lib.step_batches(search, 0)
    train = (data_lib.normalize(batches["train"][0], comp.mean, comp.std), batches["train"][1])
    val = (data_lib.normalize(batches["val"][0], comp.mean, comp.std), batches["val"][1])
    loss = lambda w, a, b, comp=comp, state=state: steps.supernet_loss(
        comp, w, a, state.model_state, *b)[0]
    grads[impl, "loss"] = np.asarray(jax.jit(loss)(state.weights, state.arch, train))
    problem = hypergrad.BilevelProblem(loss, loss)
    for name, estimator in (("exact", hypergrad.Unrolled(1, optax.sgd(0.1))),
                            ("first", hypergrad.FirstOrder())):
      fn = jax.jit(lambda w, a, est=estimator: est(problem, w, a, train, val))
      grads[impl, name] = np.concatenate([np.ravel(g) for g in
                                          jax.tree.leaves(fn(state.weights, state.arch))])
  np.testing.assert_allclose(grads["shifted", "loss"], grads["xla", "loss"], rtol=1e-5)
  exact = grads["xla", "exact"]
  difference = np.linalg.norm(grads["shifted", "exact"] - exact) / np.linalg.norm(exact)
  assert difference < 1e-5, difference
  assert np.linalg.norm(exact - grads["xla", "first"]) / np.linalg.norm(exact) > 1e-3
