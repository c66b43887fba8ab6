"""Many seeds in one program: ``config.num_seeds = S`` runs S independent searches, vmapped.

Seeds ``config.seed, ..., config.seed + S - 1`` each get their own initial weights and alpha,
their own data order (batch indices are a pure function of (seed, step)) and their own augmentation
and sampling keys: exactly the searches ``config.num_seeds = 1`` would run with those seeds (tested:
seed i of the vmapped run equals the single run with seed i). The step is

    state_s <- search_step(state_s, batches_s)   for every seed s, as one ``jax.vmap``-ed program,

with the states stacked along a leading seed axis (replicated on the mesh; each seed's batch split
over the mesh's 'data' axis as in a single search). One compilation serves all seeds, and the
device runs them as one batched program: the answer to "how much does the architecture depend on
the seed?" in one run.

Outputs: ``<workdir>/seed_<s>/`` holds each seed's ``genotypes.jsonl``, ``result.json`` and
TensorBoard events (as a single search's workdir); ``<workdir>/checkpoints`` holds the stacked state;
``<workdir>/seeds.json`` reports each seed's final and best genotype and the across-seed spread
(how many distinct genotypes, mean and standard deviation of the eval and benchmark accuracies).
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxnas import loop
from jaxnas import metrics as metrics_lib
from jaxnas.state import SearchState

SEEDS_FILE = "seeds.json"


def seed_list(config: ml_collections.ConfigDict) -> list[int]:
  """The seeds of a vmapped run: ``config.seed + i`` for ``i < config.num_seeds``."""
  return [config.seed + i for i in range(config.num_seeds)]


def check_supported(config: ml_collections.ConfigDict) -> None:
  """Raises for the features a vmapped multi-seed run does not offer, naming the fix."""
  unsupported = {
      "config.method='nao_v2' (NAO's controller stages are host loops)": config.method == "nao_v2",
      "config.milenas.size_buckets": config.milenas.size_buckets,
      "config.milenas.early_stopping (seeds would stop at different steps)":
          config.milenas.early_stopping,
      "config.diagnostics.every_steps": config.diagnostics.every_steps > 0,
  }
  for name, used in unsupported.items():
    if used:
      raise ValueError(f"config.num_seeds={config.num_seeds} runs the seeds vmapped, which does "
                       f"not support {name}; turn it off or run one seed per process "
                       "(--config.num_seeds=1 --config.seed=...).")


def stack(trees: list[Any]) -> Any:
  """Stacks pytrees of identical structure along a new leading (seed) axis."""
  return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def unstack(tree: Any, index: int) -> Any:
  """Seed ``index``'s slice of a stacked pytree."""
  return jax.tree.map(lambda leaf: leaf[index], tree)


def seed_searches(search: loop.Search) -> list[loop.Search]:
  """One ``Search`` per seed: the same data, space and compiled components, its own ``seed``."""
  searches = []
  for seed in seed_list(search.config):
    config = search.config.copy_and_resolve_references()
    config.seed = seed
    searches.append(dataclasses.replace(search, config=config))
  return searches


def init_states(searches: list[loop.Search]) -> SearchState:
  """The seeds' fresh states, stacked."""
  return stack([loop.init_state(s) for s in searches])


def step_batches(searches: list[loop.Search], step: int) -> dict[str, Any]:
  """Every seed's batches of ``step`` (its own data order), stacked along the seed axis."""
  return stack([loop.step_batches(s, step) for s in searches])


def jit_vmapped_step(search: loop.Search):
  """The method's search step vmapped over the seed axis, jitted once (state donated, outputs
  replicated on the mesh)."""
  step = functools.partial(search.method.search_step, components=search.components)
  return jax.jit(jax.vmap(step), donate_argnums=0, out_shardings=search.parallel.replicated,
                 compiler_options=search.backend.compiler_options())


def fingerprint(search: loop.Search) -> dict[str, Any]:
  """A single search's fingerprint plus the seeds (a stacked checkpoint resumes only itself)."""
  return {**loop.fingerprint(search), "seeds": seed_list(search.config)}


def spread(summaries: list[dict[str, Any]]) -> dict[str, Any]:
  """The across-seed spread of the final genotypes and of their accuracies."""
  finals = [s["final_genotype"] for s in summaries if "final_genotype" in s]
  counts: dict[str, int] = {}
  for genotype in finals:
    counts[genotype] = counts.get(genotype, 0) + 1
  report: dict[str, Any] = {"num_seeds": len(summaries), "distinct_final_genotypes": len(counts),
                            "final_genotype_counts": counts}
  records = [s["final_record"] for s in summaries if "final_record" in s]
  keys = sorted({k for r in records for k in r
                 if k.startswith(("eval/", "benchmark/")) and isinstance(r[k], float)})
  for key in keys:
    values = np.array([r[key] for r in records if key in r], np.float64)
    report[key] = {"mean": float(values.mean()), "std": float(values.std()),
                   "min": float(values.min()), "max": float(values.max())}
  return report


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Runs (or resumes) ``config.num_seeds`` searches vmapped in ``workdir``; returns the report
  written to ``seeds.json`` (each seed's summary and the spread)."""
  check_supported(config)
  # ---------------------------------------------------------------- build (fails fast, no compile)
  base = loop.build_search(config)
  searches = seed_searches(base)
  seeds = seed_list(config)
  table = loop.load_benchmark(config)
  os.makedirs(workdir, exist_ok=True)
  metrics_lib.write_config(workdir, config)
  loggers = []
  for seed in seeds:
    seed_dir = os.path.join(workdir, f"seed_{seed}")
    os.makedirs(seed_dir, exist_ok=True)
    loggers.append(metrics_lib.Logger(seed_dir, base.space, prefix=f"[seed {seed}] "))
  console = loggers[0]
  # ---------------------------------------------------------------- state: fresh or resumed
  state, manager, resumed = loop.restore_or_start(config, workdir, init_states(searches),
                                                  fingerprint(base), base.parallel)
  start = int(state.step[0])
  if resumed:
    console.info(f"Resumed from step {start} in {workdir}.")
  console.info(f"{len(seeds)} seeds {seeds} vmapped in one program: space={config.space.name} "
               f"steps/epoch={base.steps_per_epoch} total_steps={base.total_steps} "
               f"devices={base.parallel.size}")
  # ---------------------------------------------------------------- compiled steps
  step_fn = jit_vmapped_step(base)
  eval_fn = jax.jit(jax.vmap(functools.partial(base.method.eval_step,
                                               components=base.components),
                             in_axes=(0, None, None)),
                    out_shardings=base.parallel.replicated)
  mixing_fn = jax.jit(jax.vmap(functools.partial(base.method.mixing, base.components)))
  # ---------------------------------------------------------------- the loop
  cadence = metrics_lib.Cadence.of(config, base.steps_per_epoch, base.total_steps)
  timer = metrics_lib.StepTimer(start, base.total_steps)
  for step in range(start, base.total_steps):
    state, metrics = step_fn(state, step_batches(searches, step))
    done = step + 1
    if cadence.log(done):
      metrics, perf = jax.device_get(metrics), timer.tick(done)
      for i, logger in enumerate(loggers):
        logger.train(done, base.steps_per_epoch, unstack(metrics, i), perf)
    if cadence.evaluate(done):
      mixing = jax.device_get(mixing_fn(state))
      eval_metrics = loop.evaluate(base, eval_fn, state)
      for i, logger in enumerate(loggers):
        genotype = base.space.derive(unstack(mixing, i))
        seed_metrics = {k: v[i] for k, v in eval_metrics.items()}
        seed_metrics.update(loop.benchmark_metrics(table, genotype, config.benchmark.dataset))
        logger.epoch(done, cadence.epoch(done), genotype, unstack(mixing, i), seed_metrics)
    if cadence.checkpoint(done):
      manager.save(done, state)
  # ---------------------------------------------------------------- the result
  manager.close()
  final_step = int(state.step[0])
  split_info = base.splits.describe()
  bench = loop.benchmark_label(config, base.splits)
  summaries = [logger.finish(state_step=final_step, splits=split_info, benchmark=bench)
               for logger in loggers]
  report = {"seeds": seeds, "step": final_step, "splits": split_info, "spread": spread(summaries),
            "per_seed": {str(seed): summary for seed, summary in zip(seeds, summaries)}}
  if jax.process_index() == 0:
    accuracies = "".join(f"; {key} {v['mean']:.4f} +- {v['std']:.4f}"
                         for key, v in report["spread"].items()
                         if isinstance(v, dict) and "mean" in v and "accuracy" in key)
    print(f"{len(seeds)} seeds: {report['spread']['distinct_final_genotypes']} distinct final "
          f"genotype(s){accuracies}", flush=True)
    with open(os.path.join(workdir, SEEDS_FILE), "w") as f:
      json.dump(report, f, indent=2)
  return report
