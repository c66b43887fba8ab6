"""Dense 3x3 convolution gradients on XLA:CPU: XLA's own against matrix-product forms.

NB201 supernets are made of dense 3x3 ReLU-conv-BN layers on 16/32/64 channels, whose backward
XLA:CPU runs at ~40% of PyTorch's speed (``shared/spec/performance.md``). For NB201's three stage
geometries (batch 64: 32x32 C16, 16x16 C32, 8x8 C64; stride 1, padding 1) this times, jitted,
median of ``--repeats`` calls after one warm-up:

* XLA: the forward, the input gradient and the weight gradient (``jax.vjp`` of
  ``lax.conv_general_dilated``);
* weight-gradient alternatives, all ``dW[p, q] = sum_{n,i,j} window_pq(x)[n,i,j,:]^T dy[n,i,j,:]``:
  ``taps`` (one ``dot_general`` per tap over the NHWC window), ``im2col`` (the 9 windows
  concatenated on channels, one matrix product), ``per_image`` (per-tap products batched over
  images, then summed), ``channel_major`` (x and dy transposed to CNHW first, so the contracted
  axes are the minor ones);
* ``im2col`` forward (one matrix product of the concatenated windows).

With ``--whole``: the whole gradient (x and w) and a Hessian-vector product of XLA's convolution
against ``dense_conv``, a custom-JVP convolution whose weight gradient is the per-image form, over a
grid of geometries: the candidate kernel for NB201 supernets, measured and not adopted
(``experiments/README.md``, "CPU kernels").

Each alternative's weight gradient is compared with XLA's (max abs difference printed).

  .venv/bin/python experiments/dense_conv_grad.py [--whole]
"""
from __future__ import annotations

import argparse
import functools
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxnas.backends import cpu_kernels as kernels  # noqa: E402

GEOMETRIES = ((64, 32, 16), (64, 16, 32), (64, 8, 64))  # (batch, size, channels): NB201 stages
STRIDES, PADDING, DILATION = (1, 1), ((1, 1), (1, 1)), (1, 1)


def median_ms(fn, *args, repeats: int) -> tuple[float, object]:
  """(median ms per call after a warm-up call, result)."""
  result = jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return 1e3 * float(np.median(times)), result


def xla_conv(x, w):
  return lax.conv_general_dilated(x, w, STRIDES, PADDING, rhs_dilation=DILATION,
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))


def windows(x, k=3):
  return kernels._windows(x, k, STRIDES, PADDING, DILATION)


def wgrad_taps(x, dy):
  taps = [lax.dot_general(win, dy, (((0, 1, 2), (0, 1, 2)), ((), ()))) for win in windows(x)]
  return jnp.stack(taps).reshape(3, 3, x.shape[-1], dy.shape[-1])


def wgrad_im2col(x, dy):
  cols = jnp.concatenate(windows(x), axis=-1)
  return lax.dot_general(cols, dy, (((0, 1, 2), (0, 1, 2)), ((), ()))).reshape(
      3, 3, x.shape[-1], dy.shape[-1])


def wgrad_per_image(x, dy):
  taps = [lax.dot_general(win, dy, (((1, 2), (1, 2)), ((0,), (0,)))).sum(0) for win in windows(x)]
  return jnp.stack(taps).reshape(3, 3, x.shape[-1], dy.shape[-1])


def wgrad_channel_major(x, dy):
  xt = jnp.pad(jnp.transpose(x, (3, 0, 1, 2)), ((0, 0), (0, 0)) + PADDING)
  dyt = jnp.transpose(dy, (3, 0, 1, 2)).reshape(dy.shape[-1], -1)
  h, w = dy.shape[1], dy.shape[2]
  taps = [lax.dot_general(xt[:, :, p:p + h, q:q + w].reshape(x.shape[-1], -1), dyt,
                          (((1,), (1,)), ((), ())))
          for p in range(3) for q in range(3)]
  return jnp.stack(taps).reshape(3, 3, x.shape[-1], dy.shape[-1])


def forward_im2col(x, w):
  cols = jnp.concatenate(windows(x), axis=-1)
  return jnp.dot(cols.reshape(-1, cols.shape[-1]), w.reshape(-1, w.shape[-1])).reshape(
      x.shape[:-1] + (w.shape[-1],))


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def dense_conv(x, w, padding, dilation):
  """XLA's stride-1 convolution whose weight gradient is the per-image form: the tangent's weight
  term ``sum_pq window_pq(x) @ w_dot[p, q]`` is written as products batched over images with
  ``w_dot`` broadcast, so its transpose is ``wgrad_per_image``. Rematerialized (reverse mode keeps
  x, not its 9 windows). Equal to XLA's to second order (checked by hand in float64)."""
  return lax.conv_general_dilated(x, w, (1, 1), padding, rhs_dilation=dilation,
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))


@functools.partial(jax.checkpoint, static_argnums=(2, 3))
def _dense_weight_tangent(x, w_dot, padding, dilation):
  k, y = w_dot.shape[0], None
  for t, window in enumerate(kernels._windows(x, k, (1, 1), padding, dilation)):
    tap = jnp.broadcast_to(w_dot[t // k, t % k], (x.shape[0],) + w_dot.shape[2:])
    term = lax.dot_general(window, tap, (((3,), (1,)), ((0,), (0,))))
    y = term if y is None else y + term
  return y


@dense_conv.defjvp
def _dense_conv_jvp(padding, dilation, primals, tangents):
  (x, w), (x_dot, w_dot) = primals, tangents
  return dense_conv(x, w, padding, dilation), (dense_conv(x_dot, w, padding, dilation)
                                               + _dense_weight_tangent(x, w_dot, padding, dilation))


def whole_gradients(repeats: int) -> None:
  """XLA's convolution against ``dense_conv``: the gradient w.r.t. (x, w) of
  ``sum(sin(conv(x, w)) * dy)`` and a Hessian-vector product (``jvp`` of that gradient), over a
  grid of geometries (batch 64/32, 32x32/16x16/8x8, 8-64 channels)."""
  print("geometry: gradient XLA / dense_conv ms; HVP XLA / dense_conv ms")
  padding, dilation = PADDING, DILATION
  for batch in (64, 32):
    for size in (32, 16, 8):
      for channels in (8, 16, 32, 64):
        kx, kw, kg = jax.random.split(jax.random.key(0), 3)
        x = jax.random.normal(kx, (batch, size, size, channels))
        w = 0.1 * jax.random.normal(kw, (3, 3, channels, channels))
        dy = jax.random.normal(kg, (batch, size, size, channels))
        times = []
        for conv in (xla_conv, lambda x, w: dense_conv(x, w, padding, dilation)):
          grad = jax.grad(lambda x, w, conv=conv: jnp.sum(jnp.sin(conv(x, w)) * dy), (0, 1))
          hvp = jax.jit(lambda x, w, grad=grad: jax.jvp(grad, (x, w), (dy, w))[1])
          ms_g, g = median_ms(jax.jit(grad), x, w, repeats=repeats)
          ms_h, _ = median_ms(hvp, x, w, repeats=repeats)
          times.append((ms_g, ms_h, g))
        diff = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(times[0][2], times[1][2]))
        print(f"batch {batch} {size}x{size} C{channels}: gradient {times[0][0]:.1f} / "
              f"{times[1][0]:.1f}; HVP {times[0][1]:.1f} / {times[1][1]:.1f} "
              f"(max |diff| {diff:.1e})", flush=True)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--repeats", type=int, default=10)
  parser.add_argument("--whole", action="store_true",
                      help="time whole gradients and HVPs of XLA's conv and dense_conv "
                           "over a grid of geometries instead")
  args = parser.parse_args()
  print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} CPUs")
  if args.whole:
    whole_gradients(args.repeats)
    return
  alternatives = {"taps": wgrad_taps, "im2col": wgrad_im2col, "per_image": wgrad_per_image,
                  "channel_major": wgrad_channel_major}
  for batch, size, channels in GEOMETRIES:
    kx, kw, kg = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(kx, (batch, size, size, channels))
    w = 0.1 * jax.random.normal(kw, (3, 3, channels, channels))
    dy = jax.random.normal(kg, (batch, size, size, channels))
    fwd, _ = median_ms(jax.jit(xla_conv), x, w, repeats=args.repeats)
    dx, _ = median_ms(jax.jit(lambda x, w, dy: jax.vjp(lambda x: xla_conv(x, w), x)[1](dy)[0]),
                      x, w, dy, repeats=args.repeats)
    dw, want = median_ms(jax.jit(lambda x, w, dy: jax.vjp(lambda w: xla_conv(x, w), w)[1](dy)[0]),
                         x, w, dy, repeats=args.repeats)
    fwd_cols, _ = median_ms(jax.jit(forward_im2col), x, w, repeats=args.repeats)
    row = [f"{size}x{size} C{channels}: XLA forward {fwd:.1f} ms, input grad {dx:.1f}, "
           f"weight grad {dw:.1f}; im2col forward {fwd_cols:.1f}"]
    for name, fn in alternatives.items():
      ms, got = median_ms(jax.jit(fn), x, dy, repeats=args.repeats)
      diff = float(jnp.max(jnp.abs(got - want)))
      row.append(f"  weight grad {name}: {ms:.1f} ms (max |diff| {diff:.1e})")
    print("\n".join(row), flush=True)


if __name__ == "__main__":
  main()
