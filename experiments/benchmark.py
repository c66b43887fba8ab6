"""Benchmark of the jitted search step: step time, images/s, compile time, peak memory.

Builds the search exactly as a run does (``jaxnas.search.build_search``; ``configs/default.py``
on synthetic CIFAR-shaped data), compiles each measured program ahead of time (``jit(...).lower(...).compile()``, so tracing
and compilation are timed apart from running), runs warm-up steps, then times ``--steps`` steps with
``jax.block_until_ready`` and reports the median. Programs (``--what``), always run in this order:

  forward  training-mode forward + loss (BatchNorm on batch statistics), no gradient;
  weights  augmentation + weight step only (``steps.weights_update``: fwd+bwd+clip+SGD);
  arch     augmentation + alpha step only (``steps.arch_update`` with ``--hypergrad``'s estimator);
  search   the whole search step of ``--method`` (``jaxnas.methods.build_method(config)``): for
           'darts' ``steps.search_step`` = alpha step + weight step (two fwd+bwd passes with
           ``--hypergrad=first_order``); for 'rarts' one Gauss-Seidel pass (w, y, alpha steps).

images/s is ``batch_size / median step time`` (training images per step; the search step also
processes an alpha batch of the same size). GFLOP/s is the program's convolution and matmul FLOPs
(2 x the multiply-accumulates read off its jaxpr, ``reports.function_macs``: forward, backward and
hypergradient; scans times their length, CG's while loop once) per median step, and "% peak" its
fraction of the machine's measured float32 matmul FLOP/s (``--matmul_peak``). Peak RSS is the
process's ``ru_maxrss`` after the program was compiled and run: it never goes down, so a later
program's figure includes the earlier ones (run one ``--what`` per process for isolated figures).
``peak_rss_before_steps_mb`` is the same figure after compilation, before the first step: when it
equals the peak, the steps did not set it (compilation or setup did); ``rss_after_steps_mb`` is the
resident set after the timed steps (null where ``/proc`` is missing); ``cpu_s_per_wall_s`` is the
process's CPU time over the wall time of the timed steps (how many cores the step kept busy).
``--cpu_devices`` splits the CPU into that many XLA devices, the batch split over them
(``config.backend.cpu_devices``; 0, the default, one per core as the configs do on CPU). Device memory
statistics are added when the backend offers ``device.memory_stats()`` (GPU/TPU, not XLA:CPU);
XLA's buffer assignment of each program (``compiled.memory_analysis()``: temporaries, arguments)
is recorded too.

Usage (from the repository root; recorded figures and their commands: experiments/README.md):
  .venv/bin/python experiments/benchmark.py --space=nb201 --channels=16 --cells_per_stage=5 \
      --batch_size=64 --steps=5 --warmup=1 --what=search --json=nb201_search.json
  .venv/bin/python experiments/benchmark.py --space=darts --channels=16 --layers=8 \
      --batch_size=64 --steps=2 --warmup=1 --what=weights --unroll=false --remat=true \
      --remat_scope=edge
  (what the DARTS-space configs run: rolled edge scans, rematerialized edges; the flags'
  defaults, --unroll=true --remat=false, are the NB201 configs')
  RARTS vs DARTS first and second order (same supernet, batch and machine; one process each):
  .venv/bin/python experiments/benchmark.py --space=darts --what=search --method=rarts
  .venv/bin/python experiments/benchmark.py --space=darts --what=search --hypergrad=first_order
  .venv/bin/python experiments/benchmark.py --space=darts --what=search --hypergrad=unrolled
  (--hypergrad=finite_difference: DARTS' own second order; --rarts_alpha_gradient_at=current:
  RARTS with the alpha gradient from the network steps' passes)
  NAO-V2's supernet step (one sampled architecture per batch) on NAO's cells or NB201:
  .venv/bin/python experiments/benchmark.py --method=nao_v2 --space=nao --channels=20 \
      --cells_per_stage=3 --unroll=false --steps=2 --warmup=1
  --unroll=false: rolled loops (fast compile); --compiler_options=xla_backend_optimization_level=0
  Memory options (one process each, compare peak RSS and XLA temp MB):
  .venv/bin/python experiments/benchmark.py --what=weights --unroll=false --remat=true
  .venv/bin/python experiments/benchmark.py --what=weights --unroll=false --compute_dtype=bfloat16
  (--remat: config.backend.remat, nn.remat on every cell, or with --remat_scope=edge on every
  edge's MixedOp; --compute_dtype: config.compute_dtype,
  the forward in bfloat16 on float32 master weights; not for --method=nao_v2)
  --method picks a method by name (METHOD_PRESETS: darts, darts_2nd, darts_2nd_fd, milenas, idarts,
  gaea, darts_prime, rarts, nao_v2, and issue #33's gdas, gdas_all_ops, snas, drnas, fair_darts,
  sdarts_rs, sdarts_adv, beta_darts, darts_minus); GDAS' sampled-op edge against the all-ops
  straight-through forward is ``--method=gdas`` vs ``--method=gdas_all_ops``; --suite=all (or e.g. --suite=nb201,width) runs every (space,
  method) of SUITE, one process each, and prints one table:
  .venv/bin/python experiments/benchmark.py --suite=all --channels=8 --layers=5 \
      --cells_per_stage=1 --batch_size=32 --steps=3 --warmup=1 --json=suite.json
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Sequence

import jax
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # run as a script: make `configs` and `jaxnas` importable
  sys.path.insert(0, ROOT)

from configs import default as default_config  # noqa: E402
from jaxnas import backends  # noqa: E402
from jaxnas import search as search_lib  # noqa: E402
from jaxnas import reports  # noqa: E402
from jaxnas import steps  # noqa: E402
from jaxnas import supernet  # noqa: E402
from jaxnas.spaces import ops as ops_lib  # noqa: E402

PROGRAMS = ("forward", "weights", "arch", "search")

# --method: a method of jaxnas by name, as the config fields that select it (DARTS-family methods
# differ only in the hypergradient, the parametrization and the alpha optimizer). 'darts' takes
# --hypergrad (any estimator); the others fix theirs. iDARTS' T=5 weight steps per alpha step are
# not applied: every timed step has an alpha step, so 'search' is the cost of one alpha+weight step.
METHOD_PRESETS: dict[str, dict[str, Any]] = {
    "darts": {},
    "darts_2nd": {"hypergrad": "unrolled"},
    "darts_2nd_fd": {"hypergrad": "finite_difference"},
    "milenas": {"hypergrad": "mixed_level"},
    "idarts": {"hypergrad": "implicit_neumann"},
    "gaea": {"parametrization": "simplex", "arch_optimizer.name": "exponentiated_gradient"},
    "darts_prime": {"method": "darts_prime"},
    "rarts": {"method": "rarts"},
    "nao_v2": {"method": "nao_v2"},
    # Issue #33's methods (their parts; the configs' other hyperparameters do not change the step):
    "gdas": {"arch_sampler.name": "gumbel_hard", "space.sampled_forward": True},
    "gdas_all_ops": {"arch_sampler.name": "gumbel_hard"},  # GDAS' sample through every op
    "snas": {"arch_sampler.name": "gumbel_soft", "joint_step": True},
    "drnas": {"parametrization": "dirichlet", "arch_sampler.name": "dirichlet"},
    "fair_darts": {"parametrization": "sigmoid", "arch_regularizer.names": "zero_one",
                   "space.ops": {"nb201": "skip_connect,nor_conv_1x1,nor_conv_3x3,avg_pool_3x3",
                                 "darts": "max_pool_3x3,avg_pool_3x3,skip_connect,sep_conv_3x3,"
                                          "sep_conv_5x5,dil_conv_3x3,dil_conv_5x5"}},
    "sdarts_rs": {"arch_perturbation.name": "random"},
    "sdarts_adv": {"arch_perturbation.name": "adversarial"},
    "beta_darts": {"arch_regularizer.names": "beta_decay"},
    "darts_minus": {"auxiliary_skip.beta": 1.0},
}
BASELINES = ("gdas", "gdas_all_ops", "snas", "drnas", "fair_darts", "sdarts_rs", "sdarts_adv",
             "beta_darts", "darts_minus")
# The suite (--suite): every space with every method it supports.
SUITE = {
    "nb201": ("darts", "darts_2nd", "milenas", "idarts", "gaea", "darts_prime", "rarts", "nao_v2",
              *BASELINES),
    "darts": ("darts", "darts_2nd", "milenas", "idarts", "gaea", "darts_prime", "rarts",
              *BASELINES),
    "width": ("darts", "rarts"),
    "nao": ("nao_v2",),
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--space", choices=tuple(SUITE), default="nb201",
                      help="'nao' only with --method=nao_v2; 'width': RARTS' ResNet widths")
  parser.add_argument("--channels", type=int, default=16)
  parser.add_argument("--layers", type=int, default=8, help="DARTS: number of cells")
  parser.add_argument("--cells_per_stage", type=int, default=5,
                      help="NB201 and NAO: cells per stage N; width: blocks per stage")
  parser.add_argument("--batch_size", type=int, default=64)
  parser.add_argument("--image_size", type=int, default=32)
  parser.add_argument("--unroll", choices=("true", "false"), default="true",
                      help="config.backend.unroll: unrolled cell/edge loops (fast steps on CPU, "
                           "slow compile) or rolled scans")
  parser.add_argument("--remat", choices=("true", "false"), default="false",
                      help="config.backend.remat: recompute activations in the backward pass "
                           "(less memory, more compute), at --remat_scope")
  parser.add_argument("--remat_scope", choices=ops_lib.REMAT_SCOPES, default="cell",
                      help="config.backend.remat_scope: with --remat=true, nn.remat per cell or per "
                           "edge MixedOp (DARTS/NB201; the DARTS configs use 'edge')")
  parser.add_argument("--kernels", choices=("auto", "shifted", "xla"), default="auto",
                      help="config.backend.kernels: the depthwise / 1x1 convolutions' and pools' "
                           "kernels (auto: shifted on CPU, XLA's elsewhere)")
  parser.add_argument("--compute_dtype", choices=("float32", "bfloat16"), default="float32",
                      help="config.compute_dtype: the forward's dtype (float32 master weights, "
                           "BN statistics and logits either way)")
  parser.add_argument("--steps", type=int, default=10, help="timed steps per program")
  parser.add_argument("--warmup", type=int, default=2, help="untimed steps after compilation")
  parser.add_argument("--method", choices=tuple(METHOD_PRESETS), default="darts")
  parser.add_argument("--suite", default="",
                      help="'all' or comma-separated spaces: run every (space, method) of SUITE "
                           "for them, each in its own process (isolated peak memory), with the "
                           "other flags; --json gets the combined report")
  parser.add_argument("--num_seeds", type=int, default=1,
                      help="config.num_seeds: >1 times the vmapped search step of that many "
                           "seeds (jaxnas.seeds; --what=search only); images/s counts all seeds")
  parser.add_argument("--matmul_peak", choices=("true", "false"), default="true",
                      help="measure the machine's float32 matmul FLOP/s (the denominator of "
                           "the achieved fraction of peak)")
  parser.add_argument("--hypergrad", default="first_order")
  parser.add_argument("--hypergrad_options", default="",
                      help="config.hypergrad_options overrides, e.g. "
                           "'cg_maxiter=5,unrolled_steps=3' (comma-separated key=value)")
  parser.add_argument("--rarts_alpha_gradient_at", choices=("updated", "current"),
                      default="updated", help="--method=rarts: config.rarts.alpha_gradient_at")
  parser.add_argument("--what", default="search,weights,forward",
                      help=f"comma-separated subset of {','.join(PROGRAMS)}")
  parser.add_argument("--json", default="", help="write the results to this JSON file")
  parser.add_argument("--cpu_devices", type=int, default=0,
                      help="config.backend.cpu_devices: XLA devices the CPU is split into, the batch "
                           "split over them (0 = one per core, as the configs; 1 = one device, as "
                           "every figure recorded before 2026-12-02 04:30 UTC)")
  parser.add_argument("--xla_cpu_scheduler", choices=tuple(backends.cpu.CPU_SCHEDULERS),
                      default="memory",
                      help="config.backend.cpu_scheduler: XLA:CPU's scheduler for every measured "
                           "program (the search loop compiles its step with it)")
  parser.add_argument("--compiler_options", default="",
                      help="XLA options for the measured programs, e.g. "
                           "'xla_backend_optimization_level=0' (comma-separated key=value); "
                           "given, they replace --xla_cpu_scheduler's")
  args = parser.parse_args(argv)
  args.what = [p.strip() for p in args.what.split(",") if p.strip()]
  unknown = sorted(set(args.what) - set(PROGRAMS))
  if unknown or not args.what:
    parser.error(f"--what={unknown or 'empty'}: choose from {', '.join(PROGRAMS)}")
  if args.num_seeds < 1 or (args.num_seeds > 1 and (args.what != ["search"]
                                                     or args.method == "nao_v2")):
    parser.error("--num_seeds > 1 times the vmapped search step: use --what=search and a "
                 "gradient method")
  if args.steps < 1 or args.warmup < 0:
    parser.error("--steps must be >= 1 and --warmup >= 0")
  if args.method == "nao_v2" and (args.remat == "true" or args.compute_dtype != "float32"):
    parser.error("--remat / --compute_dtype are not wired into NAO-V2's driver")
  args.compiler_options = parse_options(args.compiler_options)
  args.hypergrad_options = parse_options(args.hypergrad_options)
  valid = sorted(default_config.get_config().hypergrad_options)
  unknown = sorted(set(args.hypergrad_options) - set(valid))
  if unknown:
    parser.error(f"--hypergrad_options: unknown {unknown}; valid: {', '.join(valid)}")
  return args


def parse_options(text: str) -> dict[str, Any]:
  """``key=value,key=value`` as a dict (values via ``_option``). Items are split only at commas
  that start a new ``key=``, so a value may hold commas (XLA's list-valued options)."""
  items = re.split(r",(?=\s*[A-Za-z_][\w.]*=)", text)
  return dict(_option(item) for item in items if item.strip())


def _option(item: str) -> tuple[str, Any]:
  """``key=value`` with the value parsed as bool or int where it looks like one."""
  key, _, value = item.strip().partition("=")
  if value.lower() in ("true", "false"):
    return key, value.lower() == "true"
  return key, int(value) if value.lstrip("-").isdigit() else value


def make_config(args: argparse.Namespace):
  """The default config with the benchmark's space, sizes, batch and synthetic data."""
  config = default_config.get_config()
  config.space.name = args.space
  config.space.channels = args.channels
  config.space.layers = args.layers
  config.space.cells_per_stage = args.cells_per_stage
  config.backend.unroll = args.unroll == "true"
  config.backend.remat = args.remat == "true"
  config.backend.remat_scope = args.remat_scope
  config.backend.kernels = args.kernels
  config.compute_dtype = args.compute_dtype
  config.backend.cpu_scheduler = args.xla_cpu_scheduler
  config.backend.cpu_devices = args.cpu_devices
  config.space.blocks_per_stage = args.cells_per_stage
  config.num_seeds = args.num_seeds
  config.hypergrad = args.hypergrad
  for key, value in args.hypergrad_options.items():
    config.hypergrad_options[key] = value
  for dotted, value in METHOD_PRESETS[args.method].items():
    if isinstance(value, dict):  # a value per space
      value = value[args.space]
    *parents, leaf = dotted.split(".")
    target = config
    for parent in parents:
      target = target[parent]
    target[leaf] = value
  config.rarts.alpha_gradient_at = args.rarts_alpha_gradient_at
  config.batch_size = args.batch_size
  config.data.name = "synthetic"
  config.data.synthetic_image_size = args.image_size
  config.data.synthetic_num_train = 2 * args.batch_size  # 'darts' split: half w, half alpha
  config.data.crop_padding = min(config.data.crop_padding, max(1, args.image_size // 8))  # 4 at 32
  return config


def weights_program(state, batches, *, components):
  """Augmentation + weight step only (the PyTorch 'weight' row)."""
  key, key_train = jax.random.split(jax.random.wrap_key_data(state.key))
  images, labels = batches["train"]
  state, metrics = steps.weights_update(components, state,
                                        steps.augment(components, key_train, images), labels)
  return state.replace(step=state.step + 1, key=jax.random.key_data(key)), metrics


def arch_program(state, batches, *, components):
  """Augmentation + alpha step only, with the configured hypergradient estimator."""
  key, key_train, key_val = jax.random.split(jax.random.wrap_key_data(state.key), 3)
  train = (steps.augment(components, key_train, batches["train"][0]), batches["train"][1])
  val = (steps.augment(components, key_val, batches["val"][0]), batches["val"][1])
  state, metrics = steps.arch_update(components, state, train, val,
                                     components.weights_lr(state.step))
  return state.replace(step=state.step + 1, key=jax.random.key_data(key)), metrics


def forward_program(state, batches, *, components):
  """Training-mode forward and loss, no gradient (the PyTorch 'forward only' row)."""
  images, labels = batches["train"]
  x = steps.augment(components, jax.random.wrap_key_data(state.key), images)
  loss, (_, acc) = steps.supernet_loss(components, state.weights, state.arch, state.model_state,
                                       x, labels)
  return loss, acc


def peak_rss_mb() -> float:
  """Peak resident set size of this process so far (Linux reports KiB, macOS bytes)."""
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return peak / (2**20 if sys.platform == "darwin" else 2**10)


def rss_mb() -> float | None:
  """This process's resident set size now (Linux ``/proc/self/statm``; None elsewhere)."""
  try:
    with open("/proc/self/statm") as statm:
      return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
  except OSError:
    return None


def device_memory() -> dict[str, float]:
  """Device memory statistics in MB where the backend has them (GPU/TPU), else {}."""
  stats = jax.local_devices()[0].memory_stats() or {}
  return {f"device_{k}_mb": v / 2**20 for k, v in stats.items()
          if k in ("peak_bytes_in_use", "bytes_in_use", "bytes_limit")}


def compiled_stats(compiled) -> dict[str, float]:
  """XLA's buffer sizes of a compiled program, when the backend reports them.

  (XLA's ``cost_analysis()`` FLOP count is not used: it counts a scanned loop body once.)
  """
  try:
    mem = compiled.memory_analysis()
    return {"xla_temp_mb": mem.temp_size_in_bytes / 2**20,
            "xla_argument_mb": mem.argument_size_in_bytes / 2**20}
  except Exception:  # noqa: BLE001 - optional diagnostics, absent on some backends
    return {}


def measure(name: str, search: search_lib.Search, batches: list, args: argparse.Namespace
            ) -> dict[str, Any]:
  """Compiles one program ahead of time, warms up, times ``args.steps`` steps."""
  if args.num_seeds > 1:  # the vmapped multi-seed search step (jaxnas.seeds), seeds stacked
    from jaxnas import seeds
    searches = seeds.seed_searches(search)
    stacked = [seeds.step_batches(searches, step) for step in range(len(batches))]
    return compile_and_time(name, seeds.jit_vmapped_step(search),
                            search.parallel.replicate(seeds.init_states(searches)), stacked,
                            args, donate=True)
  jitted, donate = jitted_program(name, search)
  return compile_and_time(name, jitted, search_lib.start_state(search), batches, args,
                          donate=bool(donate))


def jitted_program(name: str, search: search_lib.Search) -> tuple[Any, tuple[int, ...]]:
  """``(jax.jit of the program name, its donated arguments)``: ``forward``, ``weights``,
  ``arch``, or ``search`` (the configured method's step: DARTS family, RARTS, ...)."""
  if name == "forward":
    fn, donate = forward_program, ()
  elif name == "weights":
    fn, donate = weights_program, (0,)
  elif name == "arch":
    fn, donate = arch_program, (0,)
  else:
    fn, donate = search.method.search_step, (0,)
  return (jax.jit(functools.partial(fn, components=search.components), donate_argnums=donate),
          donate)


def matmul_peak_flops(n: int = 2048, repeats: int = 5) -> float:
  """The machine's measured float32 matmul FLOP/s (best of ``repeats`` ``n x n`` products): the
  reference for the achieved fraction of peak."""
  a = jax.random.normal(jax.random.key(0), (n, n), np.float32)
  matmul = jax.jit(lambda x, y: x @ y)
  jax.block_until_ready(matmul(a, a))
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(matmul(a, a))
    best = min(best, time.perf_counter() - start)
  return 2 * n**3 / best


def compile_and_time(name: str, jitted, state, batches: list, args: argparse.Namespace, *,
                     donate: bool) -> dict[str, Any]:
  """Lowers and compiles ``jitted(state, batch)`` ahead of time, warms up, times the steps."""
  jax.block_until_ready(state)
  flops = 2 * reports.function_macs(jitted, state, batches[0])
  start = time.perf_counter()
  lowered = jitted.lower(state, batches[0])
  lower_s = time.perf_counter() - start
  start = time.perf_counter()
  compiled = lowered.compile(args.compiler_options or None)
  compile_s = time.perf_counter() - start
  peak_rss_compiled = peak_rss_mb()
  print(f"  {name}: lowered in {lower_s:.1f} s, compiled in {compile_s:.1f} s "
        f"(peak RSS so far {peak_rss_compiled:.0f} MB)", flush=True)
  times, cpu_times = [], []
  for i in range(args.warmup + args.steps):
    cpu_start = time.process_time()
    start = time.perf_counter()
    out = compiled(state, batches[i % len(batches)])
    if donate:
      state, out = out
    jax.block_until_ready((state, out))
    elapsed = time.perf_counter() - start
    if i >= args.warmup:
      times.append(elapsed)
      cpu_times.append(time.process_time() - cpu_start)
    print(f"  {name}: step {i + 1}/{args.warmup + args.steps} {elapsed:.3f} s"
          f"{' (warm-up)' if i < args.warmup else ''}", flush=True)
  median = statistics.median(times)
  result = {"median_step_s": median, "min_step_s": min(times), "step_times_s": times,
            "images_per_s": args.num_seeds * args.batch_size / median,
            "cpu_s_per_wall_s": sum(cpu_times) / sum(times),
            "conv_matmul_gflop": flops / 1e9, "achieved_gflops": flops / median / 1e9,
            "lower_s": lower_s,
            "compile_s": compile_s, "peak_rss_mb": peak_rss_mb(),
            "peak_rss_before_steps_mb": peak_rss_compiled, "rss_after_steps_mb": rss_mb(),
            "loadavg_1m": os.getloadavg()[0], **device_memory(), **compiled_stats(compiled)}
  del compiled, lowered, state
  return result


def nao_main(args: argparse.Namespace) -> dict[str, Any]:
  """NAO-V2's supernet step (``jaxnas.nao.search.child_step``: sample an architecture of the
  child pool, augmentation, fwd+bwd, clip, SGD) on the 'nao' or 'nb201' token space."""
  from configs import nao_v2_cifar10
  from jaxnas.nao import search as nao_search
  config = nao_v2_cifar10.get_config()
  config.space.name = args.space
  config.space.ops = ""
  config.space.channels = args.channels
  config.space.cells_per_stage = args.cells_per_stage
  config.backend.unroll = args.unroll == "true"
  config.backend.kernels = args.kernels
  config.batch_size = args.batch_size
  config.data.name = "synthetic"
  config.data.synthetic_image_size = args.image_size
  config.data.synthetic_num_train = 4 * args.batch_size
  config.data.train_portion = 0.5
  config.nao.seed_archs = 100
  config.nao.score_batch_size = args.batch_size
  config.backend.cpu_devices = args.cpu_devices
  print(backends.configure_cpu_devices(config), flush=True)  # before JAX's backend starts
  start = time.perf_counter()
  search = nao_search.build(config)
  state = nao_search.init_state(search)
  jax.block_until_ready(state)
  setup_s = time.perf_counter() - start
  params = sum(int(x.size) for x in jax.tree.leaves(state.weights))
  report: dict[str, Any] = {
      "machine": machine_info(),
      "setup": {"space": args.space, "channels": args.channels,
                "cells_per_stage": args.cells_per_stage, "batch_size": args.batch_size,
                "image_size": args.image_size, "unroll": search.module.unroll,
                "kernels": search.module.kernels, "method": "nao_v2", "compiler_options": args.compiler_options,
                "timed_steps": args.steps, "warmup_steps": args.warmup, "params": params,
                "devices": search.parallel.size,
                "setup_s": setup_s}, "results": {}}
  split = search.splits.weights
  batches = [search.parallel.put_examples(
      split, np.arange(i * args.batch_size, (i + 1) * args.batch_size) % len(split))
      for i in range(2)]
  print(f"nao_v2 {args.space} C={args.channels} N={args.cells_per_stage} batch={args.batch_size} "
        f"params={params:,} backend={jax.default_backend()}", flush=True)
  jitted = jax.jit(lambda st, batch: nao_search.child_step(st, *batch, search=search),
                   donate_argnums=0)
  report["results"]["search"] = compile_and_time("search", jitted, state, batches, args,
                                                 donate=True)
  add_peak_fraction(report, args)
  if args.json:
    with open(args.json, "w") as f:
      json.dump(report, f, indent=2)
  print_table(report)
  return report


def machine_info() -> dict[str, Any]:
  device = jax.local_devices()[0]
  return {"jax_version": jax.__version__, "backend": jax.default_backend(),
          "device_kind": device.device_kind, "device_count": jax.device_count(),
          "cpu_count": os.cpu_count(), "platform": platform.platform(),
          "python": platform.python_version(), "processor": _cpu_model(),
          "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
          "loadavg_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None}


def _cpu_model() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
  except (OSError, StopIteration):
    return platform.processor()


def add_peak_fraction(report: dict[str, Any], args: argparse.Namespace) -> None:
  """Measures the matmul peak (``--matmul_peak``) and adds each program's fraction of it."""
  if args.matmul_peak != "true":
    return
  peak = matmul_peak_flops() / 1e9
  report["machine"]["matmul_peak_gflops"] = peak
  for result in report["results"].values():
    result["fraction_of_matmul_peak"] = result["achieved_gflops"] / peak


def print_table(report: dict[str, Any]) -> None:
  cols = ("program", "median s/step", "min s/step", "images/s", "GFLOP/s", "% peak", "lower s",
          "compile s", "peak RSS MB", "XLA temp MB")
  print(" | ".join(cols))
  for name, r in report["results"].items():
    print(" | ".join((name, *_row(r))))


def _row(r: dict[str, Any]) -> tuple[str, ...]:
  temp = f"{r['xla_temp_mb']:.0f}" if "xla_temp_mb" in r else "-"
  peak = f"{100 * r['fraction_of_matmul_peak']:.1f}" if "fraction_of_matmul_peak" in r else "-"
  return (f"{r['median_step_s']:.3f}", f"{r['min_step_s']:.3f}", f"{r['images_per_s']:.1f}",
          f"{r['achieved_gflops']:.2f}", peak, f"{r['lower_s']:.1f}", f"{r['compile_s']:.1f}",
          f"{r['peak_rss_mb']:.0f}", temp)


def run_suite(args: argparse.Namespace, argv: Sequence[str]) -> dict[str, Any]:
  """Every (space, method) of ``SUITE`` for the spaces of ``--suite``, one process each (so peak
  RSS is each run's own), with the remaining flags; a failed run is recorded, not fatal."""
  spaces = list(SUITE) if args.suite == "all" else [s.strip() for s in args.suite.split(",")]
  unknown = [s for s in spaces if s not in SUITE]
  if unknown:
    raise SystemExit(f"--suite={args.suite}: unknown space(s) {unknown}; choose 'all' or from "
                     f"{', '.join(SUITE)}")
  shared = [a for a in argv if not a.startswith(("--suite", "--space", "--method", "--json",
                                                 "--hypergrad"))]
  if not any(a.startswith("--what") for a in shared):
    shared.append("--what=search")
  combined: dict[str, Any] = {"machine": machine_info(), "flags": shared, "runs": []}
  with tempfile.TemporaryDirectory() as tmp:
    for space in spaces:
      for method in SUITE[space]:
        out = os.path.join(tmp, f"{space}_{method}.json")
        cmd = [sys.executable, os.path.abspath(__file__), f"--space={space}",
               f"--method={method}", f"--json={out}", *shared]
        print("$ " + " ".join(cmd[1:]), flush=True)
        code = subprocess.run(cmd, check=False).returncode
        run: dict[str, Any] = {"space": space, "method": method}
        if code == 0 and os.path.exists(out):
          with open(out) as f:
            run.update(json.load(f))
        else:
          run["error"] = f"exit code {code}"
        combined["runs"].append(run)
        if args.json:
          with open(args.json, "w") as f:
            json.dump(combined, f, indent=2)
  print("space | method | program | median s/step | min s/step | images/s | GFLOP/s | % peak | "
        "lower s | compile s | peak RSS MB | XLA temp MB")
  for run in combined["runs"]:
    for name, r in run.get("results", {}).items():
      print(" | ".join((run["space"], run["method"], name, *_row(r))))
    if "error" in run:
      print(f"{run['space']} | {run['method']} | FAILED ({run['error']})")
  return combined


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
  """Runs the benchmark described by ``argv`` (command-line flags); returns the report."""
  argv = list(sys.argv[1:] if argv is None else argv)
  args = parse_args(argv)
  if args.suite:
    return run_suite(args, argv)
  if args.method == "nao_v2":
    return nao_main(args)
  config = make_config(args)
  print(backends.configure_cpu_devices(config), flush=True)  # before JAX's backend starts
  if not args.compiler_options:   # what the search loop compiles its step with
    args.compiler_options = backends.resolve(config).compiler_options() or {}
  start = time.perf_counter()
  search = search_lib.build_search(config)
  backend = search.backend
  probe = search_lib.init_state(search)
  jax.block_until_ready(probe)
  setup_s = time.perf_counter() - start
  sizes = ({"channels": args.channels, "layers": args.layers} if args.space == "darts" else
           {"channels": args.channels, "cells_per_stage": args.cells_per_stage})
  report: dict[str, Any] = {
      "machine": machine_info(),
      "setup": {"space": args.space, **sizes, "batch_size": args.batch_size,
                "image_size": args.image_size, "unroll": backend.unroll,
                "remat": backend.remat, "remat_scope": backend.remat_scope,
                "kernels": backend.kernels,
                "compute_dtype": config.compute_dtype,
                "num_seeds": args.num_seeds,
                "method": args.method, "hypergrad": args.hypergrad,
                "hypergrad_options": config.hypergrad_options.to_dict(),
                **({"rarts": config.rarts.to_dict()} if args.method == "rarts" else {}),
                "step_order": config.step_order, "compiler_options": args.compiler_options,
                "timed_steps": args.steps, "warmup_steps": args.warmup,
                "devices": search.parallel.size,
                "params": supernet.num_params(probe.weights), "setup_s": setup_s},
      "results": {}}
  del probe
  batches = [search_lib.step_batches(search, step) for step in range(min(4, args.warmup + args.steps))]
  print(f"{args.space} {sizes} batch={args.batch_size} image={args.image_size} "
        f"unroll={backend.unroll} remat={backend.remat} remat_scope={backend.remat_scope} "
        f"kernels={backend.kernels} "
        f"compute_dtype={config.compute_dtype} "
        f"params={report['setup']['params']:,} backend={jax.default_backend()} "
        f"devices={search.parallel.size}", flush=True)
  for name in PROGRAMS:  # fixed order, so that cumulative peak RSS grows with the programs
    if name in args.what:
      report["results"][name] = measure(name, search, batches, args)
      if args.json:  # after every program, so that a run stopped later keeps what it measured
        with open(args.json, "w") as f:
          json.dump(report, f, indent=2)
  add_peak_fraction(report, args)
  if args.json:
    with open(args.json, "w") as f:
      json.dump(report, f, indent=2)
  print_table(report)
  return report


if __name__ == "__main__":
  main()
