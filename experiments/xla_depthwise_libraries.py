"""Does any kernel library inside XLA:CPU take the depthwise convolution off its generic path?

Times one k x k depthwise convolution (NHWC, stride 1, same padding), forward and forward +
backward of ``sum(y**2)``, as XLA's ``lax.conv_general_dilated(..., feature_group_count=C)``
compiled with each set of XLA:CPU library options below, and as ``jaxnas.backends.cpu_kernels``'
shifted kernel (default options). Median of ``--repeats`` calls after compilation.

  .venv/bin/python experiments/xla_depthwise_libraries.py --kernel=3 --batch_size=64 --size=32 \\
      --channels=16
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

OPTION_SETS = {
    "XLA's defaults": None,
    "YNN convolution fusion": {"xla_cpu_experimental_ynn_fusion_type":
                               "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,"
                               "LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION"},
    "XNN convolution fusion": {"xla_cpu_experimental_xnn_fusion_type":
                               "LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION"},
    "xla_cpu_use_xnnpack": {"xla_cpu_use_xnnpack": True},
    "xla_cpu_use_onednn": {"xla_cpu_use_onednn": True},
    "oneDNN custom calls": {"xla_cpu_experimental_onednn_custom_call": True},
}


def median_ms(fn, options, *args, repeats: int) -> float:
  compiled = jax.jit(fn).lower(*args).compile(options)
  jax.block_until_ready(compiled(*args))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(compiled(*args))
    times.append(time.perf_counter() - start)
  return 1000 * float(np.median(times))


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--kernel", type=int, default=3)
  parser.add_argument("--batch_size", type=int, default=64)
  parser.add_argument("--size", type=int, default=32)
  parser.add_argument("--channels", type=int, default=16)
  parser.add_argument("--repeats", type=int, default=10)
  args = parser.parse_args(argv)
  k, c = args.kernel, args.channels
  x = jax.random.normal(jax.random.key(0), (args.batch_size, args.size, args.size, c))
  w = 0.1 * jax.random.normal(jax.random.key(1), (k, k, 1, c))
  padding = ((k // 2, k // 2),) * 2

  def xla_conv(x, w):
    return lax.conv_general_dilated(x, w, (1, 1), padding, feature_group_count=c,
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"))

  def shifted_conv(x, w):
    return kernels.depthwise_conv(x, w, (1, 1), padding, (1, 1))

  def timings(conv, options):
    loss = lambda x, w: jnp.sum(conv(x, w) ** 2)
    return (median_ms(conv, options, x, w, repeats=args.repeats),
            median_ms(jax.grad(loss, (0, 1)), options, x, w, repeats=args.repeats))

  print(f"{k}x{k} depthwise, {args.batch_size}x{args.size}x{args.size}x{c}; ms forward / "
        "forward + backward")
  for name, options in OPTION_SETS.items():
    try:
      fwd, grad = timings(xla_conv, options)
      print(f"XLA convolution, {name}: {fwd:.2f} / {grad:.2f}", flush=True)
    except Exception as e:  # an option this jaxlib does not know
      print(f"XLA convolution, {name}: failed: {str(e).splitlines()[0][:200]}", flush=True)
  fwd, grad = timings(shifted_conv, None)
  print(f"shifted kernel (jaxnas): {fwd:.2f} / {grad:.2f}")


if __name__ == "__main__":
  main()
