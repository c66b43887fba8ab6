"""Depthwise k x k weight gradient on XLA:CPU: halving sums, variadic reductions, alternatives.

``dW[p, q, c] = sum_{n,i,j} window_pq(x)[n, i, j, c] * dy[n, i, j, c]`` for DARTS' four depthwise
geometries (3x3 / 5x5, dilation 1 / 2, same-size output) at C=16, 32x32, batch 64 (or the
flags'), jitted, median of ``--repeats`` calls after a warm-up:

* ``halving``: what ``kernels.depthwise_conv`` ran until 2026-12-01 (the transpose of
  ``halving_weight_tangent``, below: one halving sum per tap over batch x rows);
* ``variadic``: all k² products reduced by *one* variadic ``lax.reduce`` (one pass over x and dy);
* ``library``: the weight gradient ``kernels.depthwise_conv``'s reverse mode runs now (the
  ``weight_gradient_p`` primitive: the variadic reduction, the batch in up to 8 parts);
* ``stacked``: the k² products stacked, then one sum;
* ``per_tap``: one plain sum per tap;
* ``xla``: XLA's depthwise weight-gradient convolution.

Each result's max |difference| from ``halving`` is printed (float32 sums over batch x height x
width products; 65,536 at the defaults).

  .venv/bin/python experiments/depthwise_weight_grad.py [--batch_size=96 --size=32 --channels=36]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxnas.backends import cpu_kernels as kernels  # noqa: E402

BATCH, SIZE, CHANNELS = 64, 32, 16
GEOMETRIES = ((3, 1), (5, 1), (3, 2), (5, 2))  # (kernel, dilation): DARTS' sep/dil convolutions
ROWS_PER_IMAGE = 4


def median_ms(fn, *args, repeats: int) -> tuple[float, object]:
  """(median ms per call after a warm-up call, result)."""
  result = jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return 1e3 * float(np.median(times)), result


def _tile_rows(row: jax.Array, n: int) -> jax.Array:
  """(1, W) -> (n, W) by repeated self-concatenation: its transpose is a halving sum over rows."""
  if n == 1:
    return row
  half = _tile_rows(row, n // 2)
  return jnp.concatenate([half, half] + ([row] if n % 2 else []), axis=0)


def halving_weight_tangent(x, w_dot, strides, padding, dilation):
  """``sum_pq window_pq(x) * w_dot[p, q, 0]`` with each tap broadcast by ``_tile_rows`` over
  batch x ``ROWS_PER_IMAGE`` rows, so that its transpose sums the products by halving."""
  k, channels, batch = w_dot.shape[0], x.shape[-1], x.shape[0]
  out_hw = kernels._output_hw(x, k, strides, padding, dilation)
  rows = next(r for r in (ROWS_PER_IMAGE, 2, 1) if (out_hw[0] * out_hw[1]) % r == 0)
  taps = w_dot.reshape(k * k, channels)
  y = None
  for t, window in enumerate(kernels._windows(x, k, strides, padding, dilation)):
    row = jnp.broadcast_to(taps[t], (out_hw[0] * out_hw[1] // rows, channels)).reshape(1, -1)
    term = window * _tile_rows(row, batch * rows).reshape(window.shape)
    y = term if y is None else y + term
  return y


def alternatives(k: int, dilation: int, channels: int = CHANNELS):
  """``{name: f(x, dy) -> dW}`` for one geometry (stride 1, same-size output)."""
  pad = dilation * (k - 1) // 2
  strides, padding, dil = (1, 1), ((pad, pad), (pad, pad)), (dilation, dilation)
  shape = (k, k, 1, channels)

  def products(x, dy):
    return [window * dy for window in kernels._windows(x, k, strides, padding, dil)]

  def halving(x, dy):
    w = jnp.zeros(shape, x.dtype)
    tangent = lambda w: halving_weight_tangent(x, w, strides, padding, dil)  # noqa: E731
    return jax.vjp(tangent, w)[1](dy)[0]

  def library(x, dy):
    conv = lambda w: kernels.depthwise_conv(x, w, strides, padding, dil)  # noqa: E731
    return jax.vjp(conv, jnp.zeros(shape, x.dtype))[1](dy)[0]

  def variadic(x, dy):
    terms = products(x, dy)
    sums = lax.reduce(terms, [jnp.zeros((), x.dtype)] * len(terms),
                      lambda a, b: [u + v for u, v in zip(a, b)], (0, 1, 2))
    return jnp.stack(sums).reshape(shape)

  def stacked(x, dy):
    return jnp.stack(products(x, dy)).sum((1, 2, 3)).reshape(shape)

  def per_tap(x, dy):
    return jnp.stack([t.reshape(-1, channels).sum(0) for t in products(x, dy)]).reshape(shape)

  def xla(x, dy):
    conv = lambda w: lax.conv_general_dilated(  # noqa: E731
        x, w, strides, padding, rhs_dilation=dil, dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=channels)
    return jax.vjp(conv, jnp.zeros(shape, x.dtype))[1](dy)[0]

  return {"halving": halving, "variadic": variadic, "library": library, "stacked": stacked,
          "per_tap": per_tap, "xla": xla}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--repeats", type=int, default=10)
  parser.add_argument("--batch_size", type=int, default=BATCH)
  parser.add_argument("--size", type=int, default=SIZE)
  parser.add_argument("--channels", type=int, default=CHANNELS)
  parser.add_argument("--methods", default="halving,variadic,library,stacked,per_tap,xla",
                      help="comma-separated subset of the alternatives to time")
  args = parser.parse_args()
  print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} CPUs")
  shape = (args.batch_size, args.size, args.size, args.channels)
  print(f"batch, height, width, channels = {shape}")
  x = jax.random.normal(jax.random.key(0), shape)
  dy = jax.random.normal(jax.random.key(1), shape)
  for k, dilation in GEOMETRIES:
    chosen = args.methods.split(",")
    fns = {name: jax.jit(fn) for name, fn in alternatives(k, dilation, args.channels).items()
           if name in chosen or name == "halving"}
    want = fns["halving"](x, dy)
    row = []
    for name, fn in fns.items():
      diff = float(jnp.max(jnp.abs(fn(x, dy) - want)))
      row.append(f"{name} {median_ms(fn, x, dy, repeats=args.repeats)[0]:.1f} ms ({diff:.0e})")
    print(f"{k}x{k} dilation {dilation}: " + ", ".join(row), flush=True)


if __name__ == "__main__":
  main()
