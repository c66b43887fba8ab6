"""Convolution and pooling kernels written as shifted elementwise arithmetic: XLA:CPU's fast path.

XLA:CPU runs grouped (depthwise) convolutions, the backward of 1x1 convolutions and the backward of
max pooling (select-and-scatter) on slow generic paths, and these are most of the DARTS search
supernet (``experiments/README.md`` "CPU kernels"). Every kernel here
computes the same values as its XLA counterpart (``tests/test_kernels.py``) from k² strided
windows of the zero- (or -inf-) padded input::

    window_pq[b, i, j, c] = xp[b, s i + d p, s j + d q, c]        (stride s, dilation d)

which XLA fuses into single elementwise loops. Derivatives are ``jax.custom_jvp`` rules, so every
differentiation order works (``grad``; ``jvp`` of ``grad`` for the Hessian-vector products of
``hypergrad.Unrolled`` and iDARTS; ``grad`` of ``grad``):

* **Depthwise k x k convolution** ``y = sum_pq window_pq * w[p, q, 0]`` (``depthwise_conv``).
  Tangent ``sum_pq window_pq(x_dot) * w[p, q] + (the same with w_dot)``. At stride 1 the x_dot
  part is computed in the *placed* form (below), whose transpose, the input gradient, is slices
  of one padded cotangent; the w_dot part is a primitive (``weight_tangent_p``) whose transpose,
  the weight gradient, is one variadic reduction of all k² products over the batch in parts
  (``weight_gradient_p``), the fastest form XLA:CPU was measured to run it in.
* **1x1 convolution** as a matrix product (``pointwise_conv``): its gradients are matrix products
  too, where XLA's 1x1 convolution backward is 3x slower.
* **Max pooling** ``y = max_pq window_pq`` (``max_pool``) with the tangent routed to the first
  maximal window in row-major order (PyTorch's choice on ties; an int8 index is all reverse mode
  keeps), placed at stride 1, so its transpose is slices and adds instead of select-and-scatter.
* **Average pooling** without padded pixels in the divisor (``avg_pool``): the window sum times a
  constant reciprocal count, its tangent placed at stride 1.

The placed form: reverse mode transposes each window (a slice) into a pad, and XLA:CPU fuses k²
pads into one loop that tests k² bounds per element (13 ms for a 5x5 input gradient that takes
1.8 ms as slices). Writing the stride-1 window sum as ``crop(sum_pq place_pq(v))``, each term
padded into its place in a common frame, turns its transpose into one pad and k² slices; primal
values keep the window form, whose forward is the fast direction. At stride s the windows are
strided slices, whose transposes are pads with interior padding; the *phase form* first splits the
padded input into its s x s phases (a reshape), in which every window is a stride-1 slice, and
places those, so tangents at any stride transpose into slices too.

Cost: a k x k depthwise convolution becomes ~k² slices in the forward and k² products per pass
in its gradients, so fully unrolled programs grow large; this is why the CPU backend rolls the
DARTS supernet's edge scans (``jaxnas.backends``; figures in README.md, "Compile time and speed on
CPU"): with no XLA convolution left in the loop body, rolling costs no speed.

Used through Flax as ``nn.Conv(..., conv_general_dilated_cls=FastConv)`` (``spaces.ops.conv`` does
it for ``kernels='shifted'``), so parameter layout, checkpoints and multiply-add counts are those of
the plain ``nn.Conv``. Which kernels a supernet runs is its ``kernels`` attribute, fixed when it is
built (``jaxnas.backends.Backend.kernels``).
"""
from __future__ import annotations

import functools
import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend import core as jex_core
from jax.interpreters import ad, batching, mlir

Pair = tuple[int, int]
Pairs = tuple[Pair, Pair]


def output_size(size: int, kernel: int, stride: int, dilation: int, pad: Pair) -> int:
  """Spatial output size of a convolution or pooling window (PyTorch's / XLA's formula)."""
  return (size + pad[0] + pad[1] - dilation * (kernel - 1) - 1) // stride + 1


def _output_hw(x: jax.Array, kernel: int, strides: Pair, padding: Pairs, dilation: Pair) -> Pair:
  return (output_size(x.shape[1], kernel, strides[0], dilation[0], padding[0]),
          output_size(x.shape[2], kernel, strides[1], dilation[1], padding[1]))


def _windows(x: jax.Array, kernel: int, strides: Pair, padding: Pairs, dilation: Pair,
             pad_value: float = 0.0, xnp=jnp) -> list[jax.Array]:
  """The k² windows ``xp[:, s i + d p, s j + d q, :]`` of the padded ``x``, (p, q) row-major
  (``xnp=np`` for trace-time constants)."""
  (sh, sw), (dh, dw) = strides, dilation
  ho, wo = _output_hw(x, kernel, strides, padding, dilation)
  xp = xnp.pad(x, ((0, 0), padding[0], padding[1], (0, 0)), constant_values=pad_value)
  return [xp[:, dh * p: dh * p + sh * (ho - 1) + 1: sh, dw * q: dw * q + sw * (wo - 1) + 1: sw, :]
          for p in range(kernel) for q in range(kernel)]


# ------------------------------------------------------------------------- depthwise convolution

@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _depthwise_sum(x: jax.Array, w: jax.Array, strides: Pair, padding: Pairs,
                   dilation: Pair) -> jax.Array:
  """``sum_pq window_pq(x) * w[p, q, 0]``: the depthwise convolution, linear in x and in w."""
  k = w.shape[0]
  taps = w.reshape(k * k, 1, 1, 1, w.shape[-1])
  y = None
  for t, window in enumerate(_windows(x, k, strides, padding, dilation)):
    term = window * taps[t]
    y = term if y is None else y + term
  return y


# --------------------------------------------------- the placed form (see the module docstring)
#
#     sum_pq window_pq(x) * m_pq  ==  crop( sum_pq place_pq(x * m_pq) ),
#     place_pq(v) = pad(v, rows (e_h - d_h p, d_h p), cols (e_w - d_w q, d_w q)),  e = d (k - 1),
#
# at stride 1 with an output of the input's size: its transpose is one pad and k² slices.

def _placed_form_applies(kernel: int, strides: Pair, padding: Pairs, dilation: Pair) -> bool:
  """Stride 1 and an output of the input's size (DARTS' normal-cell convolutions and pools)."""
  return strides == (1, 1) and all(
      lo + hi == d * (kernel - 1) for (lo, hi), d in zip(padding, dilation))


def _place(v: jax.Array, p: int, q: int, kernel: int, dilation: Pair) -> jax.Array:
  """``v`` zero-padded into tap (p, q)'s place in the (H + e_h, W + e_w) frame."""
  (dh, dw), eh, ew = dilation, dilation[0] * (kernel - 1), dilation[1] * (kernel - 1)
  return jnp.pad(v, ((0, 0), (eh - dh * p, dh * p), (ew - dw * q, dw * q), (0, 0)))


def _placed_windows(v: jax.Array, kernel: int, dilation: Pair) -> list[jax.Array]:
  """``v`` placed for each of the k² taps, (p, q) row-major (the placed twin of ``_windows``)."""
  return [_place(v, t // kernel, t % kernel, kernel, dilation) for t in range(kernel * kernel)]


def _crop(z: jax.Array, shape, padding: Pairs, kernel: int, dilation: Pair) -> jax.Array:
  """The output (of the input's ``shape``) inside the placed frame ``z``."""
  (lh, _), (lw, _) = padding
  top, left = dilation[0] * (kernel - 1) - lh, dilation[1] * (kernel - 1) - lw
  return z[:, top: top + shape[1], left: left + shape[2], :]


def _uncrop(v: jax.Array, padding: Pairs, pad_value) -> jax.Array:
  """``v`` (output-sized) padded to the placed frame, the inverse placement of ``_crop``."""
  (lh, hh), (lw, hw) = padding
  return jnp.pad(v, ((0, 0), (hh, lh), (hw, lw), (0, 0)), constant_values=pad_value)


def _placed_sum(placed_terms: list[jax.Array], shape, padding: Pairs, kernel: int,
                dilation: Pair) -> jax.Array:
  """``crop(sum of the placed terms)``: the output of the input's ``shape``."""
  return _crop(functools.reduce(jnp.add, placed_terms), shape, padding, kernel, dilation)


@functools.partial(jax.jit, static_argnums=(2, 3))
def _depthwise_sum_placed(x: jax.Array, w: jax.Array, padding: Pairs, dilation: Pair) -> jax.Array:
  """``_depthwise_sum`` at stride 1 in the placed form (for tangents: a fast transpose). Each tap
  multiplies before it is placed, so the products are output-sized in both directions."""
  k = w.shape[0]
  taps = w.reshape(k, k, 1, 1, 1, w.shape[-1])
  terms = [_place(x * taps[p, q], p, q, k, dilation) for p in range(k) for q in range(k)]
  return _placed_sum(terms, x.shape, padding, k, dilation)

# ------------------------------------------ the phase form (any stride; see the module docstring)
#
# At stride s the windows are strided slices, whose transposes are pads with interior padding:
# XLA:CPU fused a reduction edge's input gradient (the k² taps of each of its ops) into one loop
# testing ~90 interior-padded bounds per element, 13% of the DARTS weight step. Splitting the
# padded input into its s x s phases, phase_ab[i, j] = xp[s i + a, s j + b] (a reshape), makes
# every window a stride-1 slice of one phase:
#
#     window_pq(x)[i, j] = phase_{(d p) % s, (d q) % s}[i + (d p) // s, j + (d q) // s],
#
# and those are placed as in the placed form, each into a common frame at its offset, so the
# transpose is one pad, k² slices, and the phases' interleave (pads on axes of size s).


def _phase_geometry(in_hw: Pair, kernel: int, strides: Pair, padding: Pairs, dilation: Pair):
  """Per axis ``(rows of each phase, (lo, hi) padding of the input to s * rows)`` and per tap
  ``(phase_h, phase_w, offset_h, offset_w)``, (p, q) row-major."""
  axes = []
  for size, s, d, (lo, hi) in zip(in_hw, strides, dilation, padding):
    out = output_size(size, kernel, s, d, (lo, hi))
    rows = -(-(s * (out - 1) + d * (kernel - 1) + 1) // s)
    axes.append((rows, (lo, s * rows - size - lo)))  # hi may be negative: a crop
  (sh, sw), (dh, dw) = strides, dilation
  taps = [(dh * p % sh, dw * q % sw, dh * p // sh, dw * q // sw)
          for p in range(kernel) for q in range(kernel)]
  return axes, taps


def _phases(v: jax.Array, kernel: int, strides: Pair, padding: Pairs, dilation: Pair,
            pad_value=0.0) -> dict[Pair, jax.Array]:
  """``{(a, b): phase_ab}`` of the padded ``v``, each (n, rows_h, rows_w, c)."""
  (rows_h, pad_h), (rows_w, pad_w) = _phase_geometry(v.shape[1:3], kernel, strides, padding,
                                                     dilation)[0]
  (sh, sw) = strides
  vp = lax.pad(v, jnp.asarray(pad_value, v.dtype),
               ((0, 0, 0), pad_h + (0,), pad_w + (0,), (0, 0, 0)))
  vr = vp.reshape(v.shape[0], rows_h, sh, rows_w, sw, v.shape[-1])
  return {(a, b): vr[:, :, a, :, b, :] for a in range(sh) for b in range(sw)}


def _phase_frame_offsets(taps) -> Pair:
  """The frame's top-left margin: the largest offsets of any tap."""
  return max(t[2] for t in taps), max(t[3] for t in taps)


def _place_phase(u: jax.Array, offset_h: int, offset_w: int, margin: Pair) -> jax.Array:
  """A phase-sized ``u`` padded into its tap's place in the (rows + margin) frame."""
  return jnp.pad(u, ((0, 0), (margin[0] - offset_h, offset_h), (margin[1] - offset_w, offset_w),
                     (0, 0)))


def _crop_phase_frame(z: jax.Array, out_hw: Pair, margin: Pair) -> jax.Array:
  return z[:, margin[0]: margin[0] + out_hw[0], margin[1]: margin[1] + out_hw[1], :]


def _uncrop_phase_frame(v: jax.Array, frame_hw: Pair, margin: Pair, pad_value) -> jax.Array:
  """An output-sized ``v`` padded into the frame (the inverse of ``_crop_phase_frame``)."""
  return jnp.pad(v, ((0, 0), (margin[0], frame_hw[0] - margin[0] - v.shape[1]),
                     (margin[1], frame_hw[1] - margin[1] - v.shape[2]), (0, 0)),
                 constant_values=pad_value)


def _phase_placed_terms(v: jax.Array, kernel: int, strides: Pair, padding: Pairs,
                        dilation: Pair, tap_fn=None, pad_value=0.0):
  """``(terms, margin)``: ``tap_fn(t, phase of tap t)`` (default: the phase itself) placed for
  each tap ``t``; ``crop(sum of terms)`` is then ``sum_t tap_fn(t, .)`` over the windows."""
  taps = _phase_geometry(v.shape[1:3], kernel, strides, padding, dilation)[1]
  phases = _phases(v, kernel, strides, padding, dilation, pad_value)
  margin = _phase_frame_offsets(taps)
  tap_fn = tap_fn or (lambda t, u: u)
  return [_place_phase(tap_fn(t, phases[a, b]), oh, ow, margin)
          for t, (a, b, oh, ow) in enumerate(taps)], margin


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _depthwise_sum_phased(x: jax.Array, w: jax.Array, strides: Pair, padding: Pairs,
                          dilation: Pair) -> jax.Array:
  """``_depthwise_sum`` in the phase form (for tangents at any stride: a fast transpose)."""
  k = w.shape[0]
  taps = w.reshape(k * k, 1, 1, 1, w.shape[-1])
  terms, margin = _phase_placed_terms(x, k, strides, padding, dilation,
                                      lambda t, u: u * taps[t])
  return _crop_phase_frame(functools.reduce(jnp.add, terms),
                           _output_hw(x, k, strides, padding, dilation), margin)

# The three depthwise sums above are jitted (XLA inlines nested jits: no cost) so that they keep
# their names in jaxprs, also after partial evaluation and transposition: ``reports`` counts the
# multiplications inside them as a depthwise convolution's multiply-adds (k² per output, as
# ``conv_general_dilated`` is counted), which would otherwise be invisible among elementwise ops.
# (The phase form multiplies whole phases, up to 1.6x the output at DARTS' reduction geometries,
# so its tangents count that many more.)
DEPTHWISE_JAXPR_NAMES = ("_depthwise_sum", "_depthwise_sum_placed", "_depthwise_sum_phased")


# ------------------------------------------- the weight tangent and weight gradient as primitives
#
# The depthwise convolution is bilinear in (x, w), and so are its two weight-side maps:
#
#     weight tangent   T(x, m)[n, i, j, c] = sum_pq window_pq(x)[n, i, j, c] * m[p, q, 0, c]
#     weight gradient  G(x, g)[p, q, 0, c] = sum_nij window_pq(x)[n, i, j, c] * g[n, i, j, c]
#
# G is T's transpose in m. Reverse mode only emits the transposes of what a tangent is written in,
# and XLA:CPU runs G fastest as one *variadic* reduction of all k² products (one pass over x and
# g; the batch in parts, ``WEIGHT_GRADIENT_PARTS``), which is no transpose of any linear JAX
# expression; its best transposable form (a halving sum per tap) was up to 4x slower
# (``experiments/depthwise_weight_grad.py``). So T and G are primitives whose rules name each
# other:
#
#     jvp    (bilinear)       dT = T(dx, m) + T(x, dm),    dG = G(dx, g) + G(x, dg)
#     transpose in m / in g   T^T = G(x, .),               G^T = T(x, .)
#     transpose in x          both are the depthwise input gradient (``_input_gradient``)
#     vmap                    the mapped axis folded into channels (depthwise: channels are
#                             independent), e.g. vmapped seeds
#
# so every order of differentiation (``grad``, ``jvp`` of ``grad``, ``grad`` of ``grad``) runs the
# variadic reduction for G and the forward window sum for T. Neither keeps the k² windows of x as
# residuals: transposes take x itself.


# The batch is reduced in this many independent parts (at most; a divisor of the batch), whose
# partial sums are added at the end: XLA:CPU runs one reduction on one thread, and parts let it
# use every core. Measured (experiments/README.md): at C=36, 32x32, batch 96 one part took 27 /
# 47 ms (3x3 / 5x5) against 11 / 14 ms for 8, slower than the halving sums it replaced.
WEIGHT_GRADIENT_PARTS = 8


def _weight_gradient_sum(x: jax.Array, g: jax.Array, *, kernel: int, strides: Pair,
                         padding: Pairs, dilation: Pair) -> jax.Array:
  """``G(x, g)``: the k² products reduced by one variadic ``lax.reduce`` over (n, i, j), the
  batch split into ``gcd(n, WEIGHT_GRADIENT_PARTS)`` parts summed at the end."""
  batch = g.shape[0]
  parts = math.gcd(batch, WEIGHT_GRADIENT_PARTS)
  products = [(window * g).reshape((parts, batch // parts) + g.shape[1:])
              for window in _windows(x, kernel, strides, padding, dilation)]
  zeros = [jnp.zeros((), g.dtype)] * len(products)
  sums = lax.reduce(products, zeros, lambda a, b: [u + v for u, v in zip(a, b)], (1, 2, 3))
  return jnp.stack(sums).sum(1).reshape(kernel, kernel, 1, g.shape[-1])


def _weight_tangent_sum(x: jax.Array, m: jax.Array, *, strides: Pair, padding: Pairs,
                        dilation: Pair) -> jax.Array:
  """``T(x, m)``: the forward window sum (its fast direction)."""
  return _depthwise_sum(x, m, strides, padding, dilation)


def _depthwise_sum_for_tangents(v: jax.Array, m: jax.Array, strides: Pair, padding: Pairs,
                                dilation: Pair) -> jax.Array:
  """``sum_pq window_pq(v) * m[p, q, 0]`` in the form with the fast transpose (the input
  gradient): the placed form where it applies, else the phase form."""
  if _placed_form_applies(m.shape[0], strides, padding, dilation):
    return _depthwise_sum_placed(v, m, padding, dilation)
  return _depthwise_sum_phased(v, m, strides, padding, dilation)


def _input_gradient(g: jax.Array, m: jax.Array, x_shape, strides: Pair, padding: Pairs,
                    dilation: Pair) -> jax.Array:
  """``sum_pq window_pq^T(g * m[p, q])``: the transpose in x of both T(x, m) and G(x, g) (for G,
  ``m`` is the cotangent of the weight gradient), as the depthwise convolution's own tangent in x
  transposes (``_depthwise_sum_for_tangents``)."""
  linear = lambda v: _depthwise_sum_for_tangents(v, m, strides, padding, dilation)  # noqa: E731
  return jax.linear_transpose(linear, jax.ShapeDtypeStruct(x_shape, g.dtype))(g)[0]


def _weight_tangent_abstract(x, m, *, strides, padding, dilation):
  out_hw = _output_hw(x, m.shape[0], strides, padding, dilation)
  return jax.core.ShapedArray((x.shape[0],) + out_hw + (x.shape[-1],), x.dtype)


def _weight_gradient_abstract(x, g, *, kernel, strides, padding, dilation):
  return jax.core.ShapedArray((kernel, kernel, 1, x.shape[-1]), g.dtype)


weight_tangent_p = jex_core.Primitive("depthwise_weight_tangent")
weight_gradient_p = jex_core.Primitive("depthwise_weight_gradient")


def _weight_tangent_transpose_x(g, x, m, *, strides, padding, dilation):
  return _input_gradient(g, m, x.aval.shape, strides, padding, dilation)


def _weight_tangent_transpose_m(g, x, m, *, strides, padding, dilation):
  return weight_gradient_p.bind(x, g, kernel=m.aval.shape[0], strides=strides, padding=padding,
                                dilation=dilation)


def _weight_gradient_transpose_x(m, x, g, *, kernel, strides, padding, dilation):
  del kernel
  return _input_gradient(g, m, x.aval.shape, strides, padding, dilation)


def _weight_gradient_transpose_g(m, x, g, *, kernel, strides, padding, dilation):
  del g, kernel
  return weight_tangent_p.bind(x, m, strides=strides, padding=padding, dilation=dilation)


def _batch_channels(primitive, args, dims, **params):
  """vmap rule: the mapped axis (of either or both arguments) folded into the channel axis."""
  size = next(a.shape[d] for a, d in zip(args, dims) if d is not None)

  def fold(a, d):
    a = jnp.broadcast_to(a, (size,) + a.shape) if d is None else jnp.moveaxis(a, d, 0)
    return jnp.moveaxis(a, 0, -2).reshape(a.shape[1:-1] + (size * a.shape[-1],))

  out = primitive.bind(*(fold(a, d) for a, d in zip(args, dims)), **params)
  return out.reshape(out.shape[:-1] + (size, -1)), out.ndim - 1


for _primitive, _sum, _abstract, _transposes in (
    (weight_tangent_p, _weight_tangent_sum, _weight_tangent_abstract,
     (_weight_tangent_transpose_x, _weight_tangent_transpose_m)),
    (weight_gradient_p, _weight_gradient_sum, _weight_gradient_abstract,
     (_weight_gradient_transpose_x, _weight_gradient_transpose_g))):
  _primitive.def_impl(_sum)
  _primitive.def_abstract_eval(_abstract)
  mlir.register_lowering(_primitive, mlir.lower_fun(_sum, multiple_results=False))
  ad.defbilinear(_primitive, *_transposes)
  batching.primitive_batchers[_primitive] = functools.partial(_batch_channels, _primitive)


def depthwise_weight_tangent(x: jax.Array, m: jax.Array, strides: Pair, padding: Pairs,
                             dilation: Pair) -> jax.Array:
  """``T(x, m) = sum_pq window_pq(x) * m[p, q, 0]`` (the depthwise convolution of x with m),
  whose transpose in m is the variadic-reduction weight gradient (see above)."""
  return weight_tangent_p.bind(x, m, strides=strides, padding=padding, dilation=dilation)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3, 4))
def depthwise_conv(x: jax.Array, w: jax.Array, strides: Pair, padding: Pairs,
                   dilation: Pair) -> jax.Array:
  """Depthwise convolution of NHWC ``x`` with an HWIO ``w`` of shape (k, k, 1, C).

  Equals ``lax.conv_general_dilated(x, w, strides, padding, rhs_dilation=dilation,
  dimension_numbers=('NHWC', 'HWIO', 'NHWC'), feature_group_count=C)``; ``strides``, ``dilation``
  are (h, w) pairs and ``padding`` ((lo, hi), (lo, hi)) of zeros.
  """
  return _depthwise_sum(x, w, strides, padding, dilation)


@depthwise_conv.defjvp
def _depthwise_conv_jvp(strides, padding, dilation, primals, tangents):
  x, w = primals
  x_dot, w_dot = tangents
  y = _depthwise_sum(x, w, strides, padding, dilation)
  x_part = _depthwise_sum_for_tangents(x_dot, w, strides, padding, dilation)
  return y, x_part + depthwise_weight_tangent(x, w_dot, strides, padding, dilation)


# ----------------------------------------------------------------------------- 1x1 convolution

def pointwise_conv(x: jax.Array, w: jax.Array, strides: Pair, precision=None) -> jax.Array:
  """A 1x1 convolution (no padding) of NHWC ``x`` with ``w`` (1, 1, C_in, C_out) as a matmul."""
  x = x[:, ::strides[0], ::strides[1], :]
  y = jnp.dot(x.reshape(-1, x.shape[-1]), w.reshape(w.shape[-2], w.shape[-1]), precision=precision)
  return y.reshape(x.shape[:-1] + (w.shape[-1],))


# ------------------------------------------------------------------------------------ pooling

@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2, 3))
def max_pool(x: jax.Array, window: int, stride: int, padding: int) -> jax.Array:
  """``window x window`` max pooling of NHWC ``x`` with ``-inf`` padding (PyTorch's MaxPool2d).

  The derivative goes to the first maximal element of each window in row-major order.
  """
  windows = _windows(x, *_pool_geometry(window, stride, padding), -jnp.inf)
  return functools.reduce(jnp.maximum, windows)


def _pool_geometry(window: int, stride: int, padding: int):
  """``(kernel, strides, padding, dilation)`` of a square pooling window."""
  return window, (stride, stride), ((padding, padding),) * 2, (1, 1)


def _first_max_index(windows: list[jax.Array], y: jax.Array) -> jax.Array:
  """Per output element, the index (row-major tap) of the first window attaining the max ``y``."""
  dtype = jnp.int8 if len(windows) < 127 else jnp.int32
  index = jnp.full(y.shape, len(windows), dtype)
  for t in reversed(range(len(windows))):
    index = jnp.where(windows[t] == y, jnp.asarray(t, dtype), index)
  return index


@functools.partial(jax.checkpoint, static_argnums=(2,))
def _max_pool_tangent(index: jax.Array, x_dot: jax.Array, geometry) -> jax.Array:
  """``sum_t [index == t] window_t(x_dot)``: ``x_dot`` at the first maximal element of each window.

  In the placed form at stride 1 (its transpose is slices; the window form's took 31 ms against
  3 ms for C=16, 32x32, batch 64), else in the phase form. Rematerialized: reverse mode keeps the
  int8 ``index``, not the k² masks.
  """
  kernel, strides, padding, dilation = geometry
  zero = jnp.zeros((), x_dot.dtype)
  if _placed_form_applies(kernel, strides, padding, dilation):
    frame_index = _uncrop(index, padding, -1)
    terms = [jnp.where(frame_index == t, placed, zero)
             for t, placed in enumerate(_placed_windows(x_dot, kernel, dilation))]
    return _placed_sum(terms, x_dot.shape, padding, kernel, dilation)
  placed, margin = _phase_placed_terms(x_dot, *geometry)
  frame_index = _uncrop_phase_frame(index, placed[0].shape[1:3], margin, -1)
  terms = [jnp.where(frame_index == t, term, zero) for t, term in enumerate(placed)]
  return _crop_phase_frame(functools.reduce(jnp.add, terms), index.shape[1:3], margin)


@max_pool.defjvp
def _max_pool_jvp(window, stride, padding, primals, tangents):
  (x,), (x_dot,) = primals, tangents
  geometry = _pool_geometry(window, stride, padding)
  windows = _windows(x, *geometry, -jnp.inf)
  y = functools.reduce(jnp.maximum, windows)
  return y, _max_pool_tangent(_first_max_index(windows, y), x_dot, geometry)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2, 3))
def avg_pool(x: jax.Array, window: int, stride: int, padding: int) -> jax.Array:
  """``window x window`` average pooling of NHWC ``x`` whose divisor counts only real pixels
  (PyTorch's ``count_include_pad=False``): the sum of the k² windows times a constant reciprocal
  count (XLA:CPU's ``reduce_window`` took 6 ms forward for C=16, 32x32, batch 64, this 1.3 ms).
  Linear; the custom JVP only computes the tangent in the placed (stride 1) or phase form."""
  return _window_mean(x, _pool_geometry(window, stride, padding), form="window")


def _window_mean(x: jax.Array, geometry, *, form: str) -> jax.Array:
  """The mean over each window's real pixels, as a sum in ``form``: ``'window'`` (the fast
  forward), ``'placed'`` or ``'phased'`` (fast transposes, for tangents)."""
  kernel, strides, padding, dilation = geometry
  if form == "placed":
    total = _placed_sum(_placed_windows(x, kernel, dilation), x.shape, padding, kernel, dilation)
  elif form == "phased":
    terms, margin = _phase_placed_terms(x, *geometry)
    total = _crop_phase_frame(functools.reduce(jnp.add, terms),
                              _output_hw(x, *geometry), margin)
  else:
    total = functools.reduce(jnp.add, _windows(x, *geometry))
  ones = np.ones((1, x.shape[1], x.shape[2], 1), np.float32)
  count = functools.reduce(np.add, _windows(ones, *geometry, xnp=np))
  return total * jnp.asarray(1.0 / count, x.dtype)


@avg_pool.defjvp
def _avg_pool_jvp(window, stride, padding, primals, tangents):
  (x,), (x_dot,) = primals, tangents
  geometry = _pool_geometry(window, stride, padding)
  tangent_form = "placed" if _placed_form_applies(*geometry) else "phased"
  return (_window_mean(x, geometry, form="window"),
          _window_mean(x_dot, geometry, form=tangent_form))


# ---------------------------------------------------------------------------- Flax integration

def _pair(value: int | Sequence[int] | None, name: str) -> Pair:
  if value is None:
    return (1, 1)
  value = tuple(int(v) for v in (value if isinstance(value, Sequence) else (value, value)))
  if len(value) != 2:
    raise ValueError(f"FastConv: {name} must be 2-D, got {value}.")
  return value


def _fast_form(x_shape, w_shape, groups: int, padding: Pairs) -> str | None:
  """``'depthwise'``, ``'pointwise'`` or None: which kernel of this module computes the conv."""
  channels = x_shape[-1]
  if (groups == channels > 1 and w_shape[2] == 1 and w_shape[3] == channels
      and w_shape[0] == w_shape[1]):
    return "depthwise"
  if groups == 1 and tuple(w_shape[:2]) == (1, 1) and padding == ((0, 0), (0, 0)):
    return "pointwise"
  return None


def _run_fast(form: str, x, w, strides: Pair, padding: Pairs, dilation: Pair, precision=None):
  """Runs the kernel ``_fast_form`` chose."""
  if form == "depthwise":
    return depthwise_conv(x, w, strides, padding, dilation)
  return pointwise_conv(x, w, strides, precision)


def conv(x: jax.Array, w: jax.Array, strides: Pair, padding: Pairs, dilation: Pair = (1, 1),
         groups: int = 1) -> jax.Array:
  """An NHWC/HWIO convolution: this module's kernel where one applies (depthwise, unpadded 1x1),
  else ``lax.conv_general_dilated`` (for functional code such as ``spaces.nao_network``)."""
  form = _fast_form(x.shape, w.shape, groups, padding)
  if form is not None:
    return _run_fast(form, x, w, strides, padding, dilation)
  return lax.conv_general_dilated(x, w, strides, padding, rhs_dilation=dilation,
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                  feature_group_count=groups)


class FastConv:
  """``lax.conv_general_dilated``'s signature for ``nn.Conv(conv_general_dilated_cls=FastConv)``.

  Runs depthwise convolutions (kernel (k, k, 1, C), ``feature_group_count`` = C) as
  ``depthwise_conv`` and 1x1 convolutions (kernel (1, 1, C_in, C_out), no padding, one group) as
  ``pointwise_conv``. Anything else (NCHW layouts, input dilation, other groupings, string
  padding) raises ValueError naming the difference instead of silently computing something else.
  """

  def __call__(self, lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
               dimension_numbers=None, feature_group_count=1, precision=None, **unused):
    problems = [f"unsupported arguments {sorted(unused)}"] if unused else []
    if lhs.ndim != 4 or rhs.ndim != 4:
      problems.append(f"input/kernel must be 4-D (NHWC / HWIO), got {lhs.shape} / {rhs.shape}")
    if dimension_numbers is not None and tuple(dimension_numbers.lhs_spec) != (0, 3, 1, 2):
      problems.append(f"dimension numbers {dimension_numbers} are not NHWC/HWIO")
    if isinstance(padding, str):
      problems.append(f"padding {padding!r} must be explicit ((lo, hi), (lo, hi)) pairs")
    if _pair(lhs_dilation, "lhs_dilation") != (1, 1):
      problems.append(f"input dilation {lhs_dilation} is not supported")
    if not problems:
      strides, dilation = _pair(window_strides, "strides"), _pair(rhs_dilation, "rhs_dilation")
      pads = tuple((int(lo), int(hi)) for lo, hi in padding)
      form = _fast_form(lhs.shape, rhs.shape, feature_group_count, pads)
      if form is not None:
        return _run_fast(form, lhs, rhs, strides, pads, dilation, precision)
      problems.append(f"kernel {rhs.shape} with {feature_group_count} group(s) and padding "
                      f"{pads} on {lhs.shape[-1]} channels is neither depthwise nor an unpadded "
                      "1x1")
    raise ValueError("FastConv computes NHWC depthwise and 1x1 convolutions only: "
                     + "; ".join(problems) + ". Use the plain nn.Conv for other convolutions.")

  def __hash__(self):
    return hash(type(self))

  def __eq__(self, other):
    return type(other) is type(self)
