"""Where a jitted step's time goes, and same-process A/B timing of two compilations of it.

Takes ``experiments/benchmark.py``'s flags (space, sizes, ``--what`` = one program, devices, ...).

**Profile** (default): compiles the program, runs ``--warmup`` steps, traces ``--steps`` steps with
``jax.profiler`` and prints the exclusive ("self") time of XLA's kernels on the XLA:CPU worker
threads, summed per kernel kind (the fusion name without its ``.N`` suffix: ``add_bitcast_fusion``,
``all-reduce``, the rendezvous waits of a multi-device CPU mesh, ...) and then per kernel, with the
JAX operation each kernel came from (the HLO metadata's ``op_name``). Thread-seconds, so with two
busy threads they add up to about twice the wall time.

**A/B** (``--ab_options=key=value,...``; a value may contain commas): compiles the program twice,
with the run's compiler options (A) and with those plus ``--ab_options`` (B), then alternates
single steps of the two (A B, B A, A B, ...) for ``--steps`` rounds and prints each variant's
median and the median of the per-round ratios B / A. On a machine whose speed drifts between runs
(this one: up to 2x from one hour to the next, 30% between consecutive runs) only such interleaved
steps can resolve a few percent.

  .venv/bin/python experiments/profile_step.py --space=darts --channels=16 --layers=8 \\
      --batch_size=64 --unroll=false --remat=true --remat_scope=edge --cpu_devices=2 \\
      --what=weights --steps=2 --top=30
  .venv/bin/python experiments/profile_step.py ... --what=weights --steps=8 \\
      --ab_options=xla_cpu_prefer_vector_width=512
"""
from __future__ import annotations

import collections
import glob
import gzip
import json
import os
import re
import statistics
import sys
import tempfile
import time
from typing import Any, Iterable, Sequence

import jax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import benchmark  # noqa: E402  (experiments/benchmark.py)
from jaxnas import backends  # noqa: E402
from jaxnas import search as search_lib  # noqa: E402

WORKER_THREAD_MARK = "XLAEigen"  # XLA:CPU's intra-op worker threads in the trace


def self_times(events: Iterable[dict[str, Any]], thread_names: dict[tuple[int, int], str],
               mark: str = WORKER_THREAD_MARK) -> collections.Counter:
  """Exclusive microseconds per event name over the threads whose name contains ``mark``.

  ``events`` are Chrome-trace complete events (``ph == 'X'``, ``ts``, ``dur``, ``pid``, ``tid``);
  an event's self time is its duration minus that of the events nested directly inside it on the
  same thread.
  """
  by_thread = collections.defaultdict(list)
  for event in events:
    if event.get("ph") == "X" and mark in thread_names.get((event["pid"], event["tid"]), ""):
      by_thread[(event["pid"], event["tid"])].append(event)
  totals: collections.Counter = collections.Counter()
  for thread_events in by_thread.values():
    thread_events.sort(key=lambda e: (e["ts"], -e["dur"]))
    open_events: list[dict[str, Any]] = []
    for event in thread_events:
      while open_events and open_events[-1]["ts"] + open_events[-1]["dur"] <= event["ts"]:
        open_events.pop()
      if open_events:
        totals[open_events[-1]["name"]] -= event["dur"]
      totals[event["name"]] += event["dur"]
      open_events.append(event)
  return totals


def kind(name: str) -> str:
  """A kernel's kind: its HLO name without the numeric suffix (``add_fusion.12`` ->
  ``add_fusion``)."""
  return re.sub(r"\.\d+$", "", name)


def by_kind(times: collections.Counter) -> collections.Counter:
  grouped: collections.Counter = collections.Counter()
  for name, value in times.items():
    grouped[kind(name)] += value
  return grouped


def hlo_op_names(hlo_text: str) -> dict[str, str]:
  """``{instruction name: op_name}`` from a compiled program's HLO text metadata."""
  pattern = re.compile(r"^\s*(?:ROOT )?%([\w.-]+) = .*op_name=\"([^\"]*)\"")
  return {m.group(1): m.group(2) for m in map(pattern.match, hlo_text.splitlines()) if m}


def read_trace(trace_dir: str) -> tuple[list[dict[str, Any]], dict[tuple[int, int], str]]:
  """The events and thread names of the perfetto trace ``jax.profiler.trace`` wrote."""
  paths = sorted(glob.glob(os.path.join(trace_dir, "**", "perfetto_trace.json.gz"),
                           recursive=True))
  if not paths:
    raise FileNotFoundError(f"No perfetto_trace.json.gz under {trace_dir}.")
  with gzip.open(paths[-1]) as f:
    data = json.load(f)
  events = data["traceEvents"] if isinstance(data, dict) else data
  names = {(e["pid"], e["tid"]): e["args"]["name"] for e in events
           if e.get("ph") == "M" and e.get("name") == "thread_name"}
  return events, names


def interleaved_times(step_a, step_b, rounds: int) -> tuple[list[float], list[float]]:
  """Times ``rounds`` rounds of one call each of ``step_a`` and ``step_b``, swapping their order
  every round (after one untimed round); returns the two lists of seconds."""
  times_a, times_b = [], []
  for r in range(rounds + 1):
    order = ((step_a, times_a), (step_b, times_b))
    for step, times in (order if r % 2 == 0 else order[::-1]):
      start = time.perf_counter()
      step()
      if r > 0:
        times.append(time.perf_counter() - start)
  return times_a, times_b


def _stepper(compiled, state, batches):
  """A no-argument callable running one step of ``compiled`` on its own state, synchronously."""
  box = {"state": state, "i": 0}

  def step():
    box["state"], out = compiled(box["state"], batches[box["i"] % len(batches)])
    box["i"] += 1
    jax.block_until_ready((box["state"], out))
  return step


def _split_options(argv: Sequence[str]) -> tuple[list[str], dict[str, Any], int, str]:
  rest, ab, top, trace_dir = [], {}, 25, ""
  for arg in argv:
    if arg.startswith("--ab_options="):
      ab = benchmark.parse_options(arg.split("=", 1)[1])
    elif arg.startswith("--top="):
      top = int(arg.split("=", 1)[1])
    elif arg.startswith("--trace_dir="):
      trace_dir = arg.split("=", 1)[1]
    else:
      rest.append(arg)
  return rest, ab, top, trace_dir


def main(argv: Sequence[str] | None = None) -> None:
  argv, ab_options, top, trace_dir = _split_options(
      list(sys.argv[1:] if argv is None else argv))
  args = benchmark.parse_args(argv)
  if len(args.what) != 1 or args.what[0] == "forward":
    raise SystemExit(f"--what must name one of weights, arch, search; got {args.what}.")
  config = benchmark.make_config(args)
  print(backends.configure_cpu_devices(config), flush=True)
  options = args.compiler_options or backends.resolve(config).compiler_options() or {}
  search = search_lib.build_search(config)
  batches = [search_lib.step_batches(search, step) for step in range(2)]
  jitted, _ = benchmark.jitted_program(args.what[0], search)
  state = search_lib.start_state(search)
  lowered = jitted.lower(state, batches[0])
  if ab_options:
    steps = []
    for variant in (options, {**options, **ab_options}):
      start = time.perf_counter()
      compiled = lowered.compile(variant)
      print(f"compiled {variant} in {time.perf_counter() - start:.1f} s", flush=True)
      steps.append(_stepper(compiled, search_lib.start_state(search), batches))
    times_a, times_b = interleaved_times(*steps, rounds=args.steps)
    ratios = [b / a for a, b in zip(times_a, times_b)]
    print(f"A {options}: median {statistics.median(times_a):.3f} s "
          f"({', '.join(f'{t:.2f}' for t in times_a)})")
    print(f"B +{ab_options}: median {statistics.median(times_b):.3f} s "
          f"({', '.join(f'{t:.2f}' for t in times_b)})")
    print(f"B / A per round: median {statistics.median(ratios):.3f} "
          f"({', '.join(f'{r:.3f}' for r in ratios)})")
    return
  compiled = lowered.compile(options)
  step = _stepper(compiled, state, batches)
  for _ in range(args.warmup):
    step()
  trace_dir = trace_dir or tempfile.mkdtemp(prefix="jaxnas_profile_")
  with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
    start = time.perf_counter()
    for _ in range(args.steps):
      step()
    wall = time.perf_counter() - start
  events, names = read_trace(trace_dir)
  times = self_times(events, names)
  op_names = hlo_op_names(compiled.as_text())
  total = sum(times.values())
  print(f"{args.steps} step(s): {wall:.3f} s wall, {total / 1e6:.3f} thread-s on the XLA worker "
        f"threads (trace: {trace_dir})")
  print("thread-s  kind")
  for name, value in by_kind(times).most_common(top):
    print(f"{value / 1e6:8.3f}  {name}")
  print("thread-s  kernel  (op_name)")
  for name, value in times.most_common(top):
    print(f"{value / 1e6:8.3f}  {name}  ({op_names.get(name, '')[-100:]})")


if __name__ == "__main__":
  main()
