"""With XLA:CPU's default scheduler, one while loop's buffers do not reuse another's memory.

A toy network (a ``lax.scan`` over L tanh layers) and the XLA temporaries of programs holding one
or two α-gradient passes through it, compiled with XLA's default CPU scheduler and with its
memory-optimized one (``config.backend.cpu_scheduler='memory'``, ``jaxnas.backends.cpu``). With the scan
rolled (a while loop) and the default scheduler, two passes need about twice one pass's
temporaries even when the second depends on the first's result; unrolled, or with the
memory-optimized scheduler, the second mostly reuses the first's memory. The rolled DARTS supernet
(edge scans under ``lax.scan``) has several gradient passes per step (``experiments/README.md``).

  .venv/bin/python experiments/while_loop_memory.py
"""
from __future__ import annotations

import os
import sys

import jax
import jax.numpy as jnp
from jax import lax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from jaxnas.backends import cpu  # noqa: E402

LAYERS, BATCH, WIDTH = 16, 256, 512


def loss(w, a, x, unroll: bool):
  def layer(h, wl):
    return jnp.tanh(h @ wl) * a, None
  h, _ = lax.scan(layer, x, w, unroll=unroll)
  return jnp.sum(h ** 2)


def programs(unroll: bool):
  grad_a = jax.grad(lambda w, a, x: loss(w, a, x, unroll), argnums=1)

  def one_pass(w, a, x):
    return grad_a(w, a, x)

  def two_dependent_passes(w, a, x):  # the second pass needs the first's result
    return grad_a(w, a + 1e-3 * grad_a(w, a, x), x)

  def two_independent_passes(w, a, x):
    return grad_a(w, a, x) + grad_a(w, a, 2 * x)
  return one_pass, two_dependent_passes, two_independent_passes


def main():
  w = jnp.full((LAYERS, WIDTH, WIDTH), 0.01)
  x, a = jnp.ones((BATCH, WIDTH)), jnp.ones(())
  print(f"jax {jax.__version__} backend={jax.default_backend()}; {LAYERS} layers, batch {BATCH}, "
        f"width {WIDTH}: XLA temporaries")
  print(f"  {'':8s}  {'':24s} {'default':>9s} {'memory':>9s}  (scheduler)")
  for unroll in (False, True):
    for program in programs(unroll):
      sizes = []
      for scheduler in ("default", "memory"):
        compiled = jax.jit(program, compiler_options=cpu.compiler_options(scheduler)).lower(
            w, a, x).compile()
        sizes.append(f"{compiled.memory_analysis().temp_size_in_bytes / 2**20:6.1f} MB")
      print(f"  {'unrolled' if unroll else 'rolled':8s}  {program.__name__:24s} "
            f"{sizes[0]:>9s} {sizes[1]:>9s}")


if __name__ == "__main__":
  main()
