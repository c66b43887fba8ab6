"""One DARTS edge's candidate operations with XLA's kernels and with ``jaxnas.backends.cpu_kernels``.

For each implementation (``kernels='xla'`` / ``'shifted'``, the modules' construction argument) and
each DARTS operation at (batch, size, size, channels), times the jitted forward and forward +
backward of ``mean(op(x)**2)`` in training mode (BatchNorm on batch statistics), then the whole
MixedOp (all 8 operations, mixed by softmax weights): forward, gradient in (weights, x, mixing) and a
Hessian-vector product (``jvp`` of that gradient, as the exact hypergradients use), with compile
times and XLA temporaries of the gradient. Times are the median of ``--repeats`` calls after one
warm-up; the MixedOp gradients of the two implementations are compared at the end.

  .venv/bin/python experiments/kernels_profile.py --batch_size=64 --size=32 --channels=16
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxnas.spaces import ops as ops_lib  # noqa: E402
from jaxnas.spaces.darts import DARTS_OPS  # noqa: E402


def timed(fn, *args, repeats: int) -> tuple[float, float, object]:
  """(median ms per call, compile+first call s, result)."""
  start = time.perf_counter()
  result = jax.block_until_ready(fn(*args))
  first = time.perf_counter() - start
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return 1000 * float(np.median(times)), first, result


def training_loss(module, variables):
  """``mean(module(x, *args)**2)`` in training mode, as a function of (params, x, *args)."""
  def loss(params, x, *args):
    y, _ = module.apply({"params": params, "batch_stats": variables.get("batch_stats", {})}, x,
                        *args, train=True, mutable=["batch_stats"])
    return jnp.mean(y ** 2)
  return loss


def profile(impl: str, args) -> np.ndarray:
  x = jax.random.normal(jax.random.key(0), (args.batch_size, args.size, args.size, args.channels))
  for name in DARTS_OPS:
    if name == "none":
      continue
    op = ops_lib.make_op(name, args.channels, args.stride, affine=False, pool_bn=True,
                         kernels=impl)
    variables = op.init(jax.random.key(1), x, train=False)
    loss = training_loss(op, variables)
    params = variables.get("params", {})
    fwd = timed(jax.jit(loss), params, x, repeats=args.repeats)[0]
    grad = timed(jax.jit(jax.grad(loss, argnums=(0, 1))), params, x, repeats=args.repeats)[0]
    print(f"{impl:8s} {name:14s} forward {fwd:8.1f} ms   forward+backward {grad:8.1f} ms",
          flush=True)
  mixed = ops_lib.MixedOp(DARTS_OPS, args.channels, args.stride, pool_bn=True, kernels=impl)
  mixing = jax.nn.softmax(jnp.linspace(-1.0, 1.0, len(DARTS_OPS)))
  variables = mixed.init(jax.random.key(1), x, mixing, train=False)
  loss = training_loss(mixed, variables)
  params = variables["params"]
  grad_fn = jax.grad(loss, argnums=(0, 1, 2))
  hvp_fn = lambda p, x, m: jax.jvp(lambda p: grad_fn(p, x, m), (p,), (p,))[1]
  fwd, fwd_c, _ = timed(jax.jit(loss), params, x, mixing, repeats=args.repeats)
  start = time.perf_counter()
  grad_compiled = jax.jit(grad_fn).lower(params, x, mixing).compile()
  compile_s = time.perf_counter() - start
  grad, grad_c, grads = timed(grad_compiled, params, x, mixing, repeats=args.repeats)
  grad_c += compile_s
  hvp, hvp_c, _ = timed(jax.jit(hvp_fn), params, x, mixing, repeats=args.repeats)
  temp = grad_compiled.memory_analysis()
  temp_mb = temp.temp_size_in_bytes / 2 ** 20 if temp is not None else float("nan")
  print(f"{impl:8s} MixedOp        forward {fwd:8.1f} ms (compile {fwd_c:.1f} s)   gradient "
        f"{grad:8.1f} ms (compile {grad_c:.1f} s, XLA temp {temp_mb:.0f} MB)   HVP {hvp:8.1f} ms "
        f"(compile {hvp_c:.1f} s)", flush=True)
  return np.concatenate([np.ravel(leaf) for leaf in jax.tree.leaves(grads)])


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch_size", type=int, default=64)
  parser.add_argument("--size", type=int, default=32)
  parser.add_argument("--channels", type=int, default=16)
  parser.add_argument("--stride", type=int, default=1, choices=(1, 2))
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--impls", default="xla,shifted")
  args = parser.parse_args(argv)
  print(f"jax {jax.__version__} backend={jax.default_backend()} cpus={os.cpu_count()} "
        f"load={os.getloadavg()[0]:.2f} batch={args.batch_size} size={args.size} "
        f"channels={args.channels} stride={args.stride}", flush=True)
  grads = {impl: profile(impl, args) for impl in args.impls.split(",")}
  if len(grads) == 2:
    a, b = grads.values()
    print(f"MixedOp gradients, max |difference| / max |gradient|: "
          f"{np.max(np.abs(a - b)) / np.max(np.abs(a)):.1e}")
  print(f"load at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
  main()
