"""Where a hypergradient's time goes on a supernet: multiply-adds by convolution form, and time,
for the exact unroll's two backward modes in a Python loop and under ``lax.scan``.

Each variant is one jitted call ``estimator(problem, w, α, train_batch, val_batch)`` on the search
supernet of ``experiments/benchmark.py``'s config (BatchNorm state fixed, images normalised, no
augmentation), timed as the best of ``--repeats`` calls after compilation. "GMAC" is every
convolution's and matrix product's multiply-adds, whichever kernels compute them (the count of
``reports.function_macs``: XLA's convolutions, or the shifted kernels of ``backends.cpu_kernels``), with
its ratio to the first-order estimator's. "conv GMAC" counts XLA convolutions only, and "largest
conv form" is the convolution shape (lhs, rhs -> out) with the most multiply-adds and its share of
them: under JAX's reverse-over-reverse, the transposed weight-gradient convolution (an
activation-sized *kernel* slid over a zero-padded 3x3 input) dominates.

``--count_only`` traces each variant and prints its counts without compiling or running it: under a
minute per variant on the DARTS supernet, whose exact unroll took 1.5–7 minutes to compile
(experiments/README.md).

  .venv/bin/python experiments/hypergrad_profile.py --space=nb201 --channels=8 \
      --cells_per_stage=2 --batch_size=32
  .venv/bin/python experiments/hypergrad_profile.py --space=darts --channels=16 --layers=8 \
      --batch_size=64 --unroll=false --count_only
"""
from __future__ import annotations

import argparse
import collections
import os
import sys
import time
from typing import Sequence

import jax
import optax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchmark  # noqa: E402
from jaxnas import data as data_lib  # noqa: E402
from jaxnas import hypergrad  # noqa: E402
from jaxnas import search as search_lib  # noqa: E402
from jaxnas import reports  # noqa: E402
from jaxnas import steps  # noqa: E402

class FullBackward:
  """∇_α L_val computed together with ∇_w L_val: what the PyTorch reference's first-order α step
  costs (``loss.backward()`` fills every parameter's gradient), the base of its 3.5x figure."""

  def __call__(self, problem, weights, arch, inner_batch, outer_batch):
    del inner_batch
    g_w, g_a = jax.grad(problem.outer_loss, argnums=(0, 1))(weights, arch, outer_batch)
    return g_a, g_w


VARIANTS = {
    "first_order": hypergrad.FirstOrder(),
    "first_order + weight gradients (PyTorch's)": FullBackward(),
    "finite_difference (exact mixed term)": hypergrad.FiniteDifference(xi=0.01,
                                                                       mixed_term="exact"),
    "finite_difference (central differences: the reference's)": hypergrad.FiniteDifference(
        xi=0.01, mixed_term="fd"),
    "unrolled K=1, hvp, Python loop": hypergrad.Unrolled(1, optax.sgd(0.01)),
    "unrolled K=1, reverse, Python loop": hypergrad.Unrolled(1, optax.sgd(0.01),
                                                             second_order="reverse"),
    "unrolled K=1, hvp, lax.scan": hypergrad.Unrolled(1, optax.sgd(0.01), max_python_steps=0),
    "unrolled K=1, reverse, lax.scan": hypergrad.Unrolled(1, optax.sgd(0.01),
                                                          second_order="reverse",
                                                          max_python_steps=0),
}


def conv_forms(jaxpr) -> collections.Counter:
  """Multiply-adds per ``(lhs shape, rhs shape, out shape)`` of every convolution in ``jaxpr``
  (nested jaxprs included, scans times their length)."""
  forms: collections.Counter = collections.Counter()

  def walk(jaxpr, times):
    for eqn in jaxpr.eqns:
      if eqn.primitive.name == "conv_general_dilated":
        key = (tuple(eqn.invars[0].aval.shape), tuple(eqn.invars[1].aval.shape),
               tuple(eqn.outvars[0].aval.shape))
        forms[key] += times * reports._jaxpr_eqn_macs(eqn)
      for value in eqn.params.values():
        subs = value if isinstance(value, (list, tuple)) else [value]
        subs = [getattr(v, "jaxpr", v) for v in subs]
        for sub in [v for v in subs if hasattr(v, "eqns")][:1]:
          walk(sub, times * int(eqn.params.get("length", 1)))

  walk(jaxpr, 1)
  return forms


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--variants", default="", help="comma-separated subset of the variant "
                      f"indices (0-{len(VARIANTS) - 1}); empty = all")
  parser.add_argument("--count_only", action="store_true",
                      help="print the multiply-adds only: no compilation, no timing")
  own, rest = parser.parse_known_args(argv)
  args = benchmark.parse_args(rest + ["--what=arch"])
  search = search_lib.build_search(benchmark.make_config(args))
  state, components = search_lib.start_state(search), search.components
  batches = search_lib.step_batches(search, 0)
  train, val = ((data_lib.normalize(images, components.mean, components.std), labels)
                for images, labels in (batches["train"], batches["val"]))

  def loss(w, a, batch):
    return steps.supernet_loss(components, w, a, state.model_state, *batch)[0]

  problem = hypergrad.BilevelProblem(loss, loss)
  chosen = ([list(VARIANTS)[int(i)] for i in own.variants.split(",")] if own.variants
            else list(VARIANTS))
  print(f"{args.space} channels={args.channels} batch={args.batch_size} "
        f"backend={jax.default_backend()} load={os.getloadavg()[0]:.2f}")
  print("variant | best s | compile s | GMAC | ÷ first order | conv GMAC | "
        "largest conv form (lhs, rhs -> out): share")

  def jitted(est):
    return jax.jit(lambda w, a, tr, va: est(problem, w, a, tr, va))

  def traced(fn):
    return jax.make_jaxpr(fn)(state.weights, state.arch, train, val).jaxpr

  base_macs = reports.jaxpr_count(traced(jitted(VARIANTS["first_order"])))
  for name in chosen:
    fn = jitted(VARIANTS[name])
    jaxpr = traced(fn)
    macs = reports.jaxpr_count(jaxpr)
    forms = conv_forms(jaxpr)
    total = sum(forms.values())
    largest = ("none", 0.0)
    if total:
      (lhs, rhs, out), top = forms.most_common(1)[0]
      largest = (f"{lhs}, {rhs} -> {out}", top / total)
    counts = (f"{macs / 1e9:.2f} | {macs / base_macs:.2f}x | {total / 1e9:.2f} | "
              f"{largest[0]}: {largest[1]:.0%}")
    if own.count_only:
      print(f"{name} | - | - | {counts}", flush=True)
      continue
    start = time.perf_counter()
    jax.block_until_ready(fn(state.weights, state.arch, train, val))
    compile_s = time.perf_counter() - start
    best = float("inf")
    for _ in range(own.repeats):
      start = time.perf_counter()
      jax.block_until_ready(fn(state.weights, state.arch, train, val))
      best = min(best, time.perf_counter() - start)
    print(f"{name} | {best:.3f} | {compile_s:.1f} | {counts}", flush=True)


if __name__ == "__main__":
  main()
