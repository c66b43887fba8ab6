"""XLA:CPU does not reuse the memory of one while loop's buffers for another's.

A toy network (a ``lax.scan`` over L tanh layers) and the XLA temporaries of programs holding one
or two α-gradient passes through it. With the scan rolled (a while loop), two passes need twice
one pass's temporaries even when the second depends on the first's result; unrolled, the second
reuses the first's memory. The rolled DARTS supernet (edge scans under ``lax.scan``) therefore
pays the sum of every gradient pass in a step (``experiments/README.md``).

  .venv/bin/python experiments/while_loop_memory.py
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

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
  for unroll in (False, True):
    for program in programs(unroll):
      stats = jax.jit(program).lower(w, a, x).compile().memory_analysis()
      print(f"  scan {'unrolled' if unroll else 'rolled  '}  {program.__name__:24s} "
            f"{stats.temp_size_in_bytes / 2**20:6.1f} MB")


if __name__ == "__main__":
  main()
