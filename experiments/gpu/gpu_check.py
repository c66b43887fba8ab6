"""One-call GPU check of jaxnas (issue #32): correctness against the CPU, step times, seeds, torch.

The one command, from the repository root of a checkout with `.whl/` and `.ref/` filled (below);
on the device machine `$OUT` is the folder that comes back:

    bash experiments/gpu/run.sh --out $OUT/gpu

`run.sh` installs the wheels of `.whl/` (the packages the GPU machine lacks) into a target
directory, puts it on `PYTHONPATH` and runs this script with the machine's own Python 3.12, jax
0.11.x (CUDA 13), flax, optax, chex, orbax-checkpoint, numpy and PyTorch. Its first seconds check
every import and version and stop with one message naming what is missing. Made here, on a machine
with access to a package registry (`.whl/` is ignored by git; carry it to the device):

    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d .whl ml_collections==1.1.0

(`ml_collections` is pure Python; its requirements absl-py and PyYAML are on the machine, and
nothing else jaxnas imports at module level is missing there: `tensorflow_datasets`, `array_record`
and `tensorboardX` are imported only by code this check does not run.) The PyTorch reference
sources sit in `.ref/` (ignored, never committed): `bash experiments/gpu/get_references.sh`.

Parts, in this order (`--parts` picks a subset; after the correctness check, `--budget_s`
skips each measurement when the time so far plus an estimate of it, from the longest measurement
of its space so far, would pass the budget: the core part comes first and keeps the budget, the
optional parts fill what is left; NB201 before DARTS in every part; a failed measurement, out
of memory say, is recorded and the others run):

  preflight    imports and versions (jax >= 0.10.2, flax, optax, chex, orbax-checkpoint, numpy,
               ml_collections, and torch/torchvision when the `torch` part runs); JAX must see a
               GPU unless `--allow_cpu`. Stops the run with one message.
  correctness  one DARTS and one NB201 search step (first-order DARTS, float32, seed 2, synthetic
               data, reduced sizes `CHECK_SIZES`) on the default device with
               `jax.default_matmul_precision('highest')`, against the same step computed by a CPU
               subprocess (`JAX_PLATFORMS=cpu`, the CPU's own defaults: shifted kernels, rolled
               loops): ||a-b||/||b|| of the loss, alpha and weights after the step must be below
               `--rtol` (the updates' own errors are reported too). A NaN anywhere stops the run
               (exit 1); a mismatch or a failed CPU subprocess fails it at the end, after the
               timings have run.
  core         the DARTS supernet (C=16, 8 cells, batch 64) and NB201 (C=16, N=5, batch 64),
               float32, the platform's `config.backend` defaults: weight step, first-order alpha
               step, exact second-order alpha step (`hypergrad='unrolled'`), search step.
  torch        the same steps of the PyTorch reference code (quark0/darts `cnn/model_search.py`,
               AutoDL's `TinyNetworkDarts`) on the same GPU (`experiments/pytorch_reference.py
               --device=cuda`, one subprocess per space): the side-by-side ratio.
  loops        the search step with rolled loops and/or remat (`config.backend.unroll`, `remat`;
               remat per edge for DARTS, per cell for NB201, as the CPU defaults), against the
               core row (the platform default), so the GPU defaults are chosen by measurement.
  bf16         the search step with `config.compute_dtype='bfloat16'`.
  seeds        the search step vmapped over 1, 4 and 8 seeds (`jaxnas.seeds.jit_vmapped_step`)
               and one seed at batch 64 x S: seed-steps per second.
  gaea         optional: GAEA's NB201 search at full scale (`configs/gaea_nb201.py`: C=24, N=5,
               batch 64, 25 epochs of 782 steps; synthetic CIFAR-sized data, 50,000 images): its
               first steps, as many as the budget leaves (at most one epoch), each with its host
               batch, and the projection compile + 25 epochs x the mean step (no evaluation).

Every timing is ahead-of-time compiled (lower and compile timed apart), `--warmup` untimed steps,
then the median of `--steps` (>= 10 by default) steps, each `jax.block_until_ready`. Memory: the
device's `memory_stats()` after each program (its `peak_bytes_in_use` is the process's peak so
far, so it only grows; JAX's preallocation is off so that PyTorch can share the GPU) and XLA's
buffer assignment of the program (`compiled.memory_analysis()`: temporaries, arguments, outputs).
Timings run at JAX's default matmul precision (on NVIDIA GPUs XLA may use TF32 for float32
convolutions, as PyTorch's cuDNN does by default); the correctness step runs at 'highest'.

Results go to `--out`/results.json, rewritten after every measurement (a run stopped half way
keeps what it measured); the log ends with a short table. `--tiny` shrinks everything for the
CPU test (tests/test_gpu_check.py), so that on the GPU only the GPU is new.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Any, Callable, Sequence

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # PyTorch shares the GPU

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:  # run as a script: make `configs` and `jaxnas` importable
  sys.path.insert(0, ROOT)

PARTS = ("correctness", "core", "torch", "loops", "bf16", "seeds", "gaea")
# (import name, distribution, minimum version or None): what this check and jaxnas import.
REQUIRED = (("jax", "jax", "0.10.2"), ("jaxlib", "jaxlib", "0.10.2"), ("flax", "flax", None),
            ("optax", "optax", None), ("chex", "chex", None),
            ("orbax.checkpoint", "orbax-checkpoint", None), ("numpy", "numpy", None),
            ("ml_collections", "ml_collections", None), ("absl", "absl-py", None),
            ("yaml", "PyYAML", None))
TORCH = (("torch", "torch", "2.0"), ("torchvision", "torchvision", None))

# Sizes: the supernets, the correctness step's reduced ones, and the CPU test's.
FULL_SIZES = {"darts": {"channels": 16, "layers": 8}, "nb201": {"channels": 16,
                                                                 "cells_per_stage": 5}}
CHECK_SIZES = {"darts": {"channels": 8, "layers": 5}, "nb201": {"channels": 8,
                                                                 "cells_per_stage": 2}}
# The CPU test's: two ops per edge keep its compiles short (the GPU runs the full op sets).
TINY_SIZES = {"darts": {"channels": 4, "layers": 3, "ops": "skip_connect,sep_conv_3x3"},
              "nb201": {"channels": 4, "cells_per_stage": 1, "ops": "skip_connect,nor_conv_3x3"}}
SPACES = ("nb201", "darts")
# The loops part: (unroll, remat) beside the platform default; remat scope as the CPU defaults.
LOOP_VARIANTS = ((False, False), (True, True), (False, True))
REMAT_SCOPE = {"darts": "edge", "nb201": "cell"}


# --tiny on a CPU: rolled loops where the config says 'auto', XLA's default scheduler and
# optimisation level 0, so that the test's compiles take seconds (set by `main`).
FAST_CPU_COMPILE = False
FAST_CPU_OPTIONS = {"xla_backend_optimization_level": 0}


def compile_options() -> dict[str, Any] | None:
  return dict(FAST_CPU_OPTIONS) if FAST_CPU_COMPILE else None


class CheckFailed(SystemExit):
  """A NaN or a failed preflight: the run stops with this message (exit status 1)."""

  def __init__(self, message: str):
    super().__init__(message)
    self.message = message


# ------------------------------------------------------------------------------------------------
# The adapter: the only code that names the jaxnas module that builds searches.


def search_module():
  """The module that builds and steps searches (``jaxnas.search``): ``build_search``,
  ``start_state``, ``init_state``, ``jit_search_step``, ``step_batches``."""
  from jaxnas import search  # pylint: disable=import-outside-toplevel
  return search


def make_config(space: str, sizes: dict[str, int], batch_size: int, image_size: int, *,
                hypergrad: str = "first_order", compute_dtype: str = "float32",
                unroll: Any = "auto", remat: Any = "auto", num_seeds: int = 1):
  """The DARTS or NB201 config (``configs/darts_cifar10.py``, ``configs/darts_nb201.py``) at
  these sizes, on synthetic data split 50/50 (two batches per split), one XLA device.
  ``FAST_CPU_COMPILE`` (the CPU test) turns 'auto' loops into rolled ones."""
  from configs import darts_cifar10, darts_nb201  # pylint: disable=import-outside-toplevel
  config = (darts_cifar10 if space == "darts" else darts_nb201).get_config()
  config.space.channels = sizes["channels"]
  if space == "darts":
    config.space.layers = sizes["layers"]
  else:
    config.space.cells_per_stage = sizes["cells_per_stage"]
  if "ops" in sizes:
    config.space.ops = sizes["ops"]
  config.batch_size = batch_size
  config.data.name = "synthetic"
  config.data.split = "darts"
  config.data.train_portion = 0.5
  config.data.synthetic_image_size = image_size
  config.data.synthetic_num_train = 4 * batch_size
  config.data.crop_padding = min(config.data.crop_padding, max(1, image_size // 8))
  config.hypergrad = hypergrad
  config.compute_dtype = compute_dtype
  config.backend.cpu_devices = 1
  config.backend.unroll = False if (FAST_CPU_COMPILE and unroll == "auto") else unroll
  config.backend.remat = remat
  if FAST_CPU_COMPILE:
    config.backend.cpu_scheduler = "default"
  if remat is True:
    config.backend.remat_scope = REMAT_SCOPE[space]
  config.num_seeds = num_seeds
  return config


def gaea_config(image_size: int = 32, num_train: int = 50_000):
  """GAEA's NB201 search (``configs/gaea_nb201.py``) on synthetic CIFAR-sized data."""
  from configs import gaea_nb201  # pylint: disable=import-outside-toplevel
  config = gaea_nb201.get_config()
  config.data.name = "synthetic"
  config.data.synthetic_image_size = image_size
  config.data.synthetic_num_train = num_train
  config.backend.cpu_devices = 1
  return config


def build(config):
  """``(search, fresh state committed to the mesh)``."""
  search_lib = search_module()
  search = search_lib.build_search(config)
  return search, search_lib.start_state(search)


def batches_of(search, count: int) -> list:
  search_lib = search_module()
  return [search_lib.step_batches(search, step) for step in range(count)]


def benchmark_module():
  """``experiments/benchmark.py``, whose weight-only and alpha-only programs are timed here too."""
  import importlib.util  # pylint: disable=import-outside-toplevel
  path = os.path.join(ROOT, "experiments", "benchmark.py")
  spec = importlib.util.spec_from_file_location("experiments_benchmark", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def step_program(search, name: str):
  """The jitted program ``name`` (``(state, batches) -> (state, metrics)``, state donated):
  'search' is the method's search step as the loop compiles it; 'weights' the augmentation and
  weight step; 'arch' the augmentation and alpha step with the config's hypergradient."""
  import functools  # pylint: disable=import-outside-toplevel
  import jax  # pylint: disable=import-outside-toplevel
  if name == "search":
    return search_module().jit_search_step(search)
  bench = benchmark_module()
  fn = {"weights": bench.weights_program, "arch": bench.arch_program}[name]
  return jax.jit(functools.partial(fn, components=search.components), donate_argnums=0,
                 out_shardings=search.parallel.replicated,
                 compiler_options=search.backend.compiler_options())


def seeds_program(search):
  """``(jitted vmapped step, stacked state, stacked batches)`` of ``config.num_seeds`` seeds."""
  from jaxnas import seeds  # pylint: disable=import-outside-toplevel
  searches = seeds.seed_searches(search)
  state = search.parallel.replicate(seeds.init_states(searches))
  return (seeds.jit_vmapped_step(search), state,
          [seeds.step_batches(searches, step) for step in range(2)])


def backend_of(search) -> dict[str, Any]:
  b = search.backend
  return {"platform": b.platform, "kernels": b.kernels, "unroll": b.unroll, "remat": b.remat,
          "remat_scope": b.remat_scope}


# ------------------------------------------------------------------------------------------------
# Preflight.


def _version_tuple(text: str) -> tuple[int, ...]:
  parts = []
  for piece in text.split(".")[:3]:
    digits = "".join(ch for ch in piece if ch.isdigit())
    parts.append(int(digits) if digits else 0)
  return tuple(parts)


def preflight(args: argparse.Namespace) -> dict[str, Any]:
  """Imports every package, checks versions, devices and the reference sources; raises
  ``CheckFailed`` with one message naming everything that is missing."""
  from importlib import metadata  # pylint: disable=import-outside-toplevel
  needed = list(REQUIRED) + (list(TORCH) if "torch" in args.parts else [])
  versions, problems = {}, []
  for module, dist, minimum in needed:
    try:
      importlib.import_module(module)
    except Exception as error:  # noqa: BLE001 - any import failure is reported, not raised
      problems.append(f"{dist} (import {module}: {type(error).__name__}: {error})")
      continue
    try:
      versions[dist] = metadata.version(dist)
    except metadata.PackageNotFoundError:
      versions[dist] = getattr(sys.modules[module], "__version__", "?")
    if minimum and _version_tuple(versions[dist]) < _version_tuple(minimum):
      problems.append(f"{dist} {versions[dist]} (need >= {minimum})")
  if "torch" in args.parts:
    for flag, path in (("--darts_repo", os.path.join(args.darts_repo, "cnn", "model_search.py")),
                       ("--autodl_repo", os.path.join(args.autodl_repo, "xautodl", "models",
                                                      "cell_searchs",
                                                      "search_model_darts.py"))):
      if not os.path.isfile(path):
        problems.append(f"PyTorch reference source {path} ({flag}; fill .ref/ with "
                        "experiments/gpu/get_references.sh, or drop the part: --parts without "
                        "torch)")
  if problems:
    raise CheckFailed("gpu_check: missing or too old: " + "; ".join(problems) + ". Install the "
                      "wheels of .whl/ (bash experiments/gpu/run.sh does it; the pip download "
                      "command is in experiments/gpu/gpu_check.py's docstring).")
  import jax  # pylint: disable=import-outside-toplevel
  backend = jax.default_backend()
  if backend != "gpu" and not args.allow_cpu:
    raise CheckFailed(f"gpu_check: JAX {jax.__version__} sees no GPU (default backend "
                      f"{backend!r}, devices {jax.devices()}); is jax-cuda13-plugin installed and "
                      "the driver visible? (--allow_cpu runs it on the CPU, as the test does)")
  if "torch" in args.parts and args.torch_device.startswith("cuda"):
    import torch  # pylint: disable=import-outside-toplevel
    if not torch.cuda.is_available():
      raise CheckFailed(f"gpu_check: torch {torch.__version__} sees no CUDA device "
                        "(--torch_device=cpu, or drop the torch part)")
  device = jax.local_devices()[0]
  return {"versions": versions, "python": platform.python_version(),
          "jax_backend": backend, "device": str(device), "device_kind": device.device_kind,
          "device_count": jax.device_count(), "cpu_count": os.cpu_count(),
          "platform": platform.platform(),
          "xla_python_client_preallocate": os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE"),
          "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}


# ------------------------------------------------------------------------------------------------
# Measurements.


def device_memory() -> dict[str, float]:
  import jax  # pylint: disable=import-outside-toplevel
  stats = jax.local_devices()[0].memory_stats() or {}
  return {f"device_{k}_mb": round(v / 2**20, 1) for k, v in stats.items()
          if k in ("peak_bytes_in_use", "bytes_in_use", "bytes_limit")}


def program_memory(compiled) -> dict[str, float]:
  try:
    mem = compiled.memory_analysis()
    return {"xla_temp_mb": round(mem.temp_size_in_bytes / 2**20, 1),
            "xla_argument_mb": round(mem.argument_size_in_bytes / 2**20, 1),
            "xla_output_mb": round(mem.output_size_in_bytes / 2**20, 1)}
  except Exception:  # noqa: BLE001 - optional, absent on some backends
    return {}


def check_finite(label: str, state, metrics) -> None:
  """Raises ``CheckFailed`` if the state's weights or alpha, or a loss, hold a NaN or inf."""
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  trees = {"weights": state.weights, "arch": state.arch}
  for name, tree in trees.items():
    for leaf in jax.tree.leaves(tree):
      if not np.all(np.isfinite(np.asarray(jax.device_get(leaf), np.float32))):
        raise CheckFailed(f"gpu_check: NaN/inf in {name} after {label}")
  for key in ("train/loss", "val/loss"):
    if key in metrics:
      value = np.asarray(jax.device_get(metrics[key]), np.float32)
      # val/loss is NaN by design when the alpha step is not due (not in these programs).
      if not np.all(np.isfinite(value)):
        raise CheckFailed(f"gpu_check: {key} is {value} after {label}")


def time_program(label: str, jitted, state, batches: list, args: argparse.Namespace,
                 images_per_step: int) -> dict[str, Any]:
  """Compiles ``jitted(state, batch)`` ahead of time, warms up, times ``args.steps`` steps."""
  import jax  # pylint: disable=import-outside-toplevel
  jax.block_until_ready(state)
  start = time.perf_counter()
  lowered = jitted.lower(state, batches[0])
  lower_s = time.perf_counter() - start
  start = time.perf_counter()
  compiled = lowered.compile(compile_options())
  compile_s = time.perf_counter() - start
  times = []
  metrics = {}
  for i in range(args.warmup + args.steps):
    start = time.perf_counter()
    state, metrics = compiled(state, batches[i % len(batches)])
    jax.block_until_ready((state, metrics))
    if i >= args.warmup:
      times.append(time.perf_counter() - start)
  check_finite(label, state, metrics)
  median = statistics.median(times)
  result = {"median_step_s": median, "min_step_s": min(times), "step_times_s": times,
            "images_per_s": images_per_step / median, "lower_s": lower_s,
            "compile_s": compile_s, **device_memory(), **program_memory(compiled)}
  print(f"  {label}: {median * 1e3:.2f} ms/step (min {min(times) * 1e3:.2f}), lower "
        f"{lower_s:.1f} s + compile {compile_s:.1f} s, "
        f"peak {result.get('device_peak_bytes_in_use_mb', '-')} MB", flush=True)
  del compiled, lowered, state
  return result


class Runner:
  """Runs the parts, keeps the budget, writes results.json after every measurement."""

  def __init__(self, args: argparse.Namespace, report: dict[str, Any]):
    self.args = args
    self.report = report
    self.start = time.perf_counter()
    self.case_s: dict[str, float] = {}  # the longest measurement of each space so far

  def elapsed(self) -> float:
    return time.perf_counter() - self.start

  def save(self) -> None:
    self.report["elapsed_s"] = round(self.elapsed(), 1)
    path = os.path.join(self.args.out, "results.json")
    with open(path + ".tmp", "w") as f:
      json.dump(self.report, f, indent=1, default=str)
    os.replace(path + ".tmp", path)

  def fits(self, part: str, estimate_s: float, key: str = "") -> bool:
    """Whether the next measurement of ``part`` fits the budget: the time so far plus
    ``estimate_s`` stays within it. What does not fit is skipped (recorded in ``skipped``); a
    later, cheaper one may still run."""
    if self.elapsed() + estimate_s < self.args.budget_s:
      return True
    print(f"budget: {self.elapsed():.0f} s spent, about {estimate_s:.0f} s needed for {part} "
          f"{key}: skipped (--budget_s={self.args.budget_s:.0f})", flush=True)
    self.report["skipped"].append(f"{part} {key}".strip())
    return False

  def guard(self, part: str, key: str, fn: Callable[[], Any]) -> Any:
    """``fn()``, or None with the error recorded (an out-of-memory program, say) so that the
    other measurements still run; a NaN (``CheckFailed``) stops the run."""
    try:
      return fn()
    except CheckFailed:
      raise
    except Exception as error:  # noqa: BLE001 - recorded and reported in the table
      message = f"{type(error).__name__}: {str(error)[:2000]}"
      print(f"  {key}: FAILED {message[:300]}", flush=True)
      self.report["results"].setdefault(part, {})[key] = {"error": message}
      self.report.setdefault("errors", []).append(f"{part} {key}")
      self.save()
      return None

  def estimate(self, space: str, factor: float = 1.0) -> float:
    return factor * self.case_s.get(space, max(self.case_s.values(), default=30.0))

  def measure(self, part: str, key: str, space: str, config, program: str,
              images_per_step: int, *, estimate_factor: float = 1.0) -> dict[str, Any] | None:
    if not self.fits(part, self.estimate(space, estimate_factor), key):
      return None
    start = time.perf_counter()

    def run():
      search, state = build(config)
      jitted = step_program(search, program)
      return search, time_program(key, jitted, state, batches_of(search, 2), self.args,
                                  images_per_step)

    outcome = self.guard(part, key, run)
    if outcome is None:
      return None
    search, result = outcome
    result.update({"backend": backend_of(search), "compute_dtype": config.compute_dtype,
                   "hypergrad": config.hypergrad, "batch_size": config.batch_size,
                   "program": program})
    result["wall_s"] = time.perf_counter() - start
    self.case_s[space] = max(self.case_s.get(space, 0.0), result["wall_s"])
    self.report["results"].setdefault(part, {})[key] = result
    self.save()
    return result


def sizes_for(args: argparse.Namespace) -> tuple[dict, dict, int, int]:
  """``(timing sizes, correctness sizes, batch, image side)``."""
  if args.tiny:
    return TINY_SIZES, TINY_SIZES, 8, 8
  return FULL_SIZES, CHECK_SIZES, args.batch_size, 32


def correctness_state(space: str, args: argparse.Namespace) -> dict[str, Any]:
  """One search step of the correctness config on the default device: loss, alpha, weights as
  float64 vectors (at 'highest' matmul precision)."""
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  _, check_sizes, _, image = sizes_for(args)
  batch = 8 if args.tiny else args.check_batch_size
  config = make_config(space, check_sizes[space], batch, image)
  def flat(tree):
    return np.concatenate([np.asarray(jax.device_get(x), np.float64).ravel()
                           for x in jax.tree.leaves(tree)])

  with jax.default_matmul_precision("highest"):
    search, state = build(config)
    arch0, weights0 = flat(state.arch), flat(state.weights)  # before the state is donated
    batch = batches_of(search, 1)[0]
    compiled = step_program(search, "search").lower(state, batch).compile(compile_options())
    state, metrics = compiled(state, batch)
    jax.block_until_ready(state)
  return {"loss": np.asarray([float(metrics["train/loss"]), float(metrics["val/loss"])]),
          "arch": flat(state.arch), "weights": flat(state.weights),
          "arch_update": flat(state.arch) - arch0, "weights_update": flat(state.weights) - weights0,
          "backend": json.dumps(backend_of(search))}


def cpu_reference(args: argparse.Namespace) -> None:
  """The CPU subprocess of the correctness part: writes ``--cpu_reference`` (.npz)."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  arrays = {}
  for space in SPACES:
    for name, value in correctness_state(space, args).items():
      arrays[f"{space}/{name}"] = np.asarray(value)
  np.savez(args.cpu_reference, **arrays)


def relative_error(a, b) -> float:
  import numpy as np  # pylint: disable=import-outside-toplevel
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def part_correctness(run: Runner) -> None:
  import numpy as np  # pylint: disable=import-outside-toplevel
  args = run.args
  path = os.path.join(args.out, "cpu_reference.npz")
  cmd = [sys.executable, os.path.abspath(__file__), f"--out={args.out}",
         f"--cpu_reference={path}", f"--check_batch_size={args.check_batch_size}"]
  if args.tiny:
    cmd.append("--tiny")
  if args.allow_cpu:
    cmd.append("--allow_cpu")
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  print("correctness: CPU reference in a subprocess (JAX_PLATFORMS=cpu) ...", flush=True)
  start = time.perf_counter()
  child = subprocess.Popen(cmd, env=env)  # runs while this process compiles the device's step
  section = run.report["results"].setdefault("correctness", {"rtol": args.rtol})
  mine = {}
  for space in SPACES:  # an error is recorded (the timings still run); a NaN stops the run
    result = run.guard("correctness", f"{space}_device_error",
                       lambda space=space: correctness_state(space, args))
    if result is not None:
      mine[space] = result
  section["device_s"] = time.perf_counter() - start
  try:
    code = child.wait(timeout=args.cpu_reference_timeout_s)
  except subprocess.TimeoutExpired:
    child.kill()
    code = f"killed after --cpu_reference_timeout_s={args.cpu_reference_timeout_s:.0f}"
  section["total_s"] = time.perf_counter() - start
  if code != 0 or not os.path.exists(path):
    section["cpu_reference_error"] = f"the CPU reference subprocess failed (exit {code})"
    print(f"  correctness: {section['cpu_reference_error']}", flush=True)
    run.save()
    return
  reference = np.load(path)
  for space, ours in mine.items():
    row = {"device_backend": json.loads(ours["backend"]),
           "cpu_backend": json.loads(str(reference[f"{space}/backend"]))}
    for name in ("loss", "arch", "weights", "arch_update", "weights_update"):
      if not np.all(np.isfinite(ours[name])):
        run.save()
        raise CheckFailed(f"gpu_check: NaN/inf in the {space} correctness step's {name}")
      row[f"{name}_rel_error"] = relative_error(ours[name], reference[f"{space}/{name}"])
    row["losses_device"] = ours["loss"].tolist()
    row["losses_cpu"] = reference[f"{space}/loss"].tolist()
    # Gated: loss, alpha and weights after the step. The updates' own errors are reported (an
    # Adam step is about lr * sign(g), so alpha's update hides little; the weights' does not).
    row["ok"] = all(row[f"{n}_rel_error"] < args.rtol for n in ("loss", "arch", "weights"))
    section[space] = row
    print(f"  {space}: rel. error loss {row['loss_rel_error']:.2e} alpha "
          f"{row['arch_rel_error']:.2e} weights {row['weights_rel_error']:.2e} (updates: alpha "
          f"{row['arch_update_rel_error']:.2e} weights {row['weights_update_rel_error']:.2e}) "
          f"-> {'ok' if row['ok'] else 'FAILED'} (rtol {args.rtol:g})", flush=True)
  run.save()


def correctness_ok(report: dict[str, Any], args: argparse.Namespace) -> bool:
  """Whether the correctness part, when it ran, passed for every space."""
  if "correctness" not in args.parts:
    return True
  section = report["results"].get("correctness", {})
  return all(section.get(space, {}).get("ok", False) for space in SPACES)


def part_core(run: Runner) -> None:
  sizes, _, batch, image = sizes_for(run.args)
  for space in SPACES:
    for key, program, hypergrad in (("weights", "weights", "first_order"),
                                    ("arch_first", "arch", "first_order"),
                                    ("arch_second", "arch", "unrolled"),
                                    ("search", "search", "first_order")):
      config = make_config(space, sizes[space], batch, image, hypergrad=hypergrad)
      # The exact second-order step differentiates through a weight step: a larger program.
      run.measure("core", f"{space}/{key}", space, config, program, batch,
                  estimate_factor=2.5 if key == "arch_second" else 1.0)


def part_torch(run: Runner) -> None:
  args = run.args
  sizes, _, batch, image = sizes_for(args)
  for space in SPACES:
    if not run.fits("torch", 60.0, space):
      continue
    out = os.path.join(args.out, f"torch_{space}.json")
    size_flags = ([f"--layers={sizes[space]['layers']}"] if space == "darts" else
                  [f"--cells_per_stage={sizes[space]['cells_per_stage']}",
                   f"--autodl_repo={args.autodl_repo}"])
    cmd = [sys.executable, os.path.join(ROOT, "experiments", "pytorch_reference.py"),
           f"--space={space}", f"--darts_repo={args.darts_repo}", *size_flags,
           f"--channels={sizes[space]['channels']}", f"--batch_size={batch}",
           f"--image_size={image}", "--what=weights,arch_first,arch_second",
           f"--device={args.torch_device}", f"--steps={args.steps + 1}",
           f"--threads={os.cpu_count()}", f"--json={out}"]
    print("$ " + " ".join(cmd[1:]), flush=True)
    remaining = max(30.0, args.budget_s - run.elapsed() + 60.0)
    try:
      code = subprocess.run(cmd, check=False, timeout=remaining).returncode
    except subprocess.TimeoutExpired:
      code = "timeout"
    section = run.report["results"].setdefault("torch", {})
    if code == 0 and os.path.exists(out):
      with open(out) as f:
        for result in json.load(f):
          section[f"{space}/{result['what']}"] = result
    else:
      section[f"{space}/error"] = f"exit {code}"
    run.save()


def part_bf16(run: Runner) -> None:
  sizes, _, batch, image = sizes_for(run.args)
  for space in SPACES:
    config = make_config(space, sizes[space], batch, image, compute_dtype="bfloat16")
    run.measure("bf16", f"{space}/search", space, config, "search", batch)


def part_loops(run: Runner) -> None:
  sizes, _, batch, image = sizes_for(run.args)
  for space in SPACES:
    for unroll, remat in LOOP_VARIANTS:
      config = make_config(space, sizes[space], batch, image, unroll=unroll, remat=remat)
      key = (f"{space}/search/{'unrolled' if unroll else 'rolled'}"
             f"{'+remat_' + REMAT_SCOPE[space] if remat else ''}")
      run.measure("loops", key, space, config, "search", batch)


def part_seeds(run: Runner) -> None:
  args = run.args
  sizes, _, batch, image = sizes_for(args)
  counts = (1, 2) if args.tiny else (1, 4, 8)
  for space in SPACES:
    for seeds in counts:
      if not run.fits("seeds", run.estimate(space, 1.0 + 0.25 * seeds),
                      f"{space}/vmapped_x{seeds}"):
        continue
      start = time.perf_counter()

      def vmapped(seeds=seeds, space=space):
        config = make_config(space, sizes[space], batch, image, num_seeds=seeds)
        jitted, state, batches = seeds_program(search_module().build_search(config))
        return time_program(f"{space}/vmapped x{seeds}", jitted, state, batches, args,
                            seeds * batch)

      result = run.guard("seeds", f"{space}/vmapped_x{seeds}", vmapped)
      if result is None:
        continue
      result.update({"seeds": seeds, "batch_size": batch,
                     "seed_steps_per_s": seeds / result["median_step_s"],
                     "wall_s": time.perf_counter() - start})
      run.report["results"].setdefault("seeds", {})[f"{space}/vmapped_x{seeds}"] = result
      run.save()
      if seeds > 1:  # one seed, batch x seeds: the same images per step without vmap
        config = make_config(space, sizes[space], batch * seeds, image)
        result = run.measure("seeds", f"{space}/one_seed_batch_x{seeds}", space, config,
                             "search", batch * seeds, estimate_factor=1.0 + 0.25 * seeds)
        if result is not None:
          result["seeds"] = 1


def part_gaea(run: Runner) -> None:
  args = run.args
  if args.tiny:
    config = gaea_config(image_size=8, num_train=64)
    config.space.channels, config.space.cells_per_stage = 4, 1
    config.space.ops = TINY_SIZES["nb201"]["ops"]
    config.batch_size = 8
    config.data.crop_padding = 1
  else:
    config = gaea_config()
  if not run.fits("gaea", run.estimate("nb201", 1.5), "gaea"):
    return
  run.guard("gaea", "gaea", lambda: _gaea(run, config))


def _gaea(run: Runner, config) -> None:
  import jax  # pylint: disable=import-outside-toplevel
  args = run.args
  search_lib = search_module()
  start = time.perf_counter()
  search, state = build(config)
  jitted = search_lib.jit_search_step(search)
  compile_start = time.perf_counter()
  compiled = jitted.lower(state, search_lib.step_batches(search, 0)).compile(compile_options())
  compile_s = time.perf_counter() - compile_start
  steps_done, step_start, timed_from = 0, time.perf_counter(), 0
  limit = search.steps_per_epoch
  while steps_done < limit and (steps_done < 3 or run.elapsed() < args.budget_s):
    state, metrics = compiled(state, search_lib.step_batches(search, steps_done))
    steps_done += 1
    if steps_done == 2:  # the first two steps are warm-up: time from here
      jax.block_until_ready(state)
      step_start, timed_from = time.perf_counter(), steps_done
  jax.block_until_ready(state)
  check_finite("gaea", state, metrics)
  timed = steps_done - timed_from
  mean_step = (time.perf_counter() - step_start) / max(1, timed)
  result = {"config": "configs/gaea_nb201.py (synthetic CIFAR-sized data)",
            "channels": config.space.channels, "cells_per_stage": config.space.cells_per_stage,
            "batch_size": config.batch_size, "epochs": config.epochs,
            "steps_per_epoch": search.steps_per_epoch, "total_steps": search.total_steps,
            "compile_s": compile_s, "steps_run": steps_done, "timed_steps": timed,
            "mean_step_s_with_host_batches": mean_step,
            "projected_search_s": compile_s + search.total_steps * mean_step,
            "projection_excludes": "evaluation passes, checkpoints, logging, data loading of "
                                   "real CIFAR-10 files",
            "backend": backend_of(search), "setup_s": compile_start - start, **device_memory()}
  print(f"  gaea: {timed} timed steps, {mean_step * 1e3:.1f} ms/step with host batches; "
        f"projected {result['projected_search_s'] / 60:.1f} min for {search.total_steps} "
        "steps", flush=True)
  run.report["results"]["gaea"] = result
  run.save()


PART_FUNCTIONS: dict[str, Callable[[Runner], None]] = {
    "correctness": part_correctness, "core": part_core, "torch": part_torch, "bf16": part_bf16,
    "loops": part_loops, "seeds": part_seeds, "gaea": part_gaea}


# ------------------------------------------------------------------------------------------------
# The table.


def _ms(result: dict[str, Any] | None, field: str = "median_step_s") -> str:
  return f"{result[field] * 1e3:.1f}" if result and field in result else "-"


def table(report: dict[str, Any]) -> str:
  """The short table printed last."""
  results = report["results"]
  lines = [f"jaxnas GPU check: {report['machine'].get('device_kind', '?')} "
           f"(jax {report['machine']['versions'].get('jax', '?')}), "
           f"{report.get('elapsed_s', 0):.0f} s, status {report.get('status', '?')}"]
  correctness = results.get("correctness", {})
  for key in ("cpu_reference_error", "nb201_device_error", "darts_device_error"):
    if key in correctness:
      lines.append(f"correctness: FAILED ({key}: {str(correctness[key])[:200]})")
  for space in SPACES:
    if space in correctness:
      row = correctness[space]
      lines.append(f"correctness {space}: loss {row['loss_rel_error']:.1e} alpha "
                   f"{row['arch_rel_error']:.1e} weights {row['weights_rel_error']:.1e} -> "
                   f"{'ok' if row['ok'] else 'FAILED'}")
  core, torch = results.get("core", {}), results.get("torch", {})
  lines.append("space | step | jax ms | torch ms | torch/jax | compile s | XLA temp MB | "
               "device peak MB so far")
  for space in SPACES:
    for key, torch_key in (("weights", "weights"), ("arch_first", "arch_first"),
                           ("arch_second", "arch_second"), ("search", None)):
      r = core.get(f"{space}/{key}")
      if r is None or "error" in r:
        continue
      t = torch.get(f"{space}/{torch_key}") if torch_key else None
      ratio = (f"{t['median_s'] / r['median_step_s']:.2f}" if t else "-")
      lines.append(f"{space} | {key} | {_ms(r)} | {_ms(t, 'median_s')} | {ratio} | "
                   f"{r['lower_s'] + r['compile_s']:.1f} | {r.get('xla_temp_mb', '-')} | "
                   f"{r.get('device_peak_bytes_in_use_mb', '-')}")
  for part in ("bf16", "loops"):
    for key, r in results.get(part, {}).items():
      if "error" in r:
        continue
      base = core.get(key.split("/")[0] + "/search", {})
      vs = (f" ({r['median_step_s'] / base['median_step_s']:.2f}x default)"
            if "median_step_s" in base else "")
      lines.append(f"{part} {key}: {_ms(r)} ms{vs}, compile "
                   f"{r['lower_s'] + r['compile_s']:.1f} s")
  for key, r in results.get("seeds", {}).items():
    if "error" in r:
      continue
    lines.append(f"seeds {key}: {_ms(r)} ms/step, {r['images_per_s']:.0f} images/s"
                 + (f", {r['seed_steps_per_s']:.1f} seed-steps/s" if "seed_steps_per_s" in r
                    else ""))
  if "projected_search_s" in results.get("gaea", {}):
    g = results["gaea"]
    lines.append(f"gaea full scale: {g['mean_step_s_with_host_batches'] * 1e3:.1f} ms/step, "
                 f"projected {g['projected_search_s'] / 60:.1f} min ({g['total_steps']} steps)")
  if report.get("errors"):
    lines.append(f"errors (results.json has each): {', '.join(report['errors'])}")
  if report.get("skipped"):
    lines.append(f"skipped (budget): {', '.join(report['skipped'])}")
  return "\n".join(lines)


# ------------------------------------------------------------------------------------------------


def _default_backend() -> str:
  try:
    import jax  # pylint: disable=import-outside-toplevel
    return jax.default_backend()
  except Exception:  # noqa: BLE001 - preflight reports a broken jax
    return "?"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", required=True, help="directory for results.json")
  parser.add_argument("--parts", default=",".join(PARTS),
                      help=f"comma-separated subset of {','.join(PARTS)}")
  parser.add_argument("--budget_s", type=float, default=360.0,
                      help="optional parts that would end after this many seconds are dropped")
  parser.add_argument("--steps", type=int, default=10, help="timed steps per program (median)")
  parser.add_argument("--warmup", type=int, default=2, help="untimed steps after compiling")
  parser.add_argument("--batch_size", type=int, default=64)
  parser.add_argument("--check_batch_size", type=int, default=16,
                      help="batch of the correctness step (at CHECK_SIZES)")
  parser.add_argument("--rtol", type=float, default=1e-4,
                      help="correctness: largest ||device - cpu|| / ||cpu||")
  parser.add_argument("--cpu_reference_timeout_s", type=float, default=300.0,
                      help="correctness: the CPU subprocess's time limit")
  parser.add_argument("--tiny", action="store_true", help="tiny sizes (the CPU test)")
  parser.add_argument("--allow_cpu", action="store_true",
                      help="run without a GPU (JAX's default backend, e.g. the CPU)")
  parser.add_argument("--darts_repo", default=os.path.join(ROOT, ".ref", "darts"))
  parser.add_argument("--autodl_repo", default=os.path.join(ROOT, ".ref", "AutoDL-Projects"))
  parser.add_argument("--torch_device", default="cuda")
  parser.add_argument("--cpu_reference", default="", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  args.parts = [p.strip() for p in args.parts.split(",") if p.strip()]
  unknown = sorted(set(args.parts) - set(PARTS))
  if unknown:
    parser.error(f"--parts: unknown {unknown}; choose from {', '.join(PARTS)}")
  if args.steps < 1 or args.warmup < 0:
    parser.error("--steps must be >= 1 and --warmup >= 0")
  return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
  """Runs the check; returns the report (exit status 1 through ``CheckFailed``/at the end)."""
  args = parse_args(argv)
  os.makedirs(args.out, exist_ok=True)
  global FAST_CPU_COMPILE  # pylint: disable=global-statement
  FAST_CPU_COMPILE = args.tiny and args.allow_cpu and _default_backend() == "cpu"
  if args.cpu_reference:
    cpu_reference(args)
    return {}
  start = time.perf_counter()
  report: dict[str, Any] = {"args": vars(args), "machine": {"versions": {}}, "results": {},
                            "skipped": [], "status": "running"}
  run = Runner(args, report)
  try:
    report["machine"] = preflight(args)
    print(f"preflight ok in {time.perf_counter() - start:.1f} s: {report['machine']['device']} "
          f"{report['machine']['versions']}", flush=True)
    run.save()
    for part in PARTS:
      if part in args.parts:
        print(f"== {part} ({run.elapsed():.0f} s)", flush=True)
        PART_FUNCTIONS[part](run)
  except CheckFailed as failure:
    report["status"] = f"FAILED: {failure.message}"
    run.save()
    print(table(report), flush=True)
    raise
  correct = correctness_ok(report, args)
  report["status"] = "ok" if correct else "FAILED: correctness (see results.correctness)"
  run.save()
  print(table(report), flush=True)
  if not correct:
    raise SystemExit(1)
  return report


if __name__ == "__main__":
  main()
