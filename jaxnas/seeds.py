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

from jaxnas import search as search_lib
from jaxnas import supernet
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


def seed_searches(search: search_lib.Search) -> list[search_lib.Search]:
  """One ``Search`` per seed: the same data, space and compiled components, its own ``seed``."""
  searches = []
  for seed in seed_list(search.config):
    config = search.config.copy_and_resolve_references()
    config.seed = seed
    searches.append(dataclasses.replace(search, config=config))
  return searches


def init_states(searches: list[search_lib.Search]) -> SearchState:
  """The seeds' fresh states, stacked."""
  return stack([search_lib.init_state(s) for s in searches])


def step_batches(searches: list[search_lib.Search], step: int) -> dict[str, Any]:
  """Every seed's batches of ``step`` (its own data order), stacked along the seed axis."""
  return stack([search_lib.step_batches(s, step) for s in searches])


def jit_vmapped_step(search: search_lib.Search):
  """The method's search step vmapped over the seed axis, jitted once (state donated, outputs
  replicated on the mesh)."""
  step = functools.partial(search.method.search_step, components=search.components)
  return jax.jit(jax.vmap(step), donate_argnums=0, out_shardings=search.parallel.replicated,
                 compiler_options=search.backend.compiler_options())


def fingerprint(search: search_lib.Search) -> dict[str, Any]:
  """A single search's fingerprint plus the seeds (a stacked checkpoint resumes only itself)."""
  return {**search_lib.fingerprint(search), "seeds": seed_list(search.config)}


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


class SeedsProgram(search_lib.SearchProgram):
  """``config.num_seeds`` searches as one vmapped program, run by the one driver: the search's
  hooks with the step vmapped over the seed axis and one logger per seed."""

  @classmethod
  def validate(cls, config: ml_collections.ConfigDict) -> None:
    super().validate(config)
    check_supported(config)

  def __init__(self, search: search_lib.Search):
    check_supported(search.config)
    super().__init__(search)
    self.searches = seed_searches(search)
    self.seeds = seed_list(search.config)

  def open(self, workdir: str, position: int) -> None:
    self.enter_stage(search_lib.stage_of_state(self.stages, position))
    self.workdir = workdir
    self.loggers = []
    for seed in self.seeds:
      seed_dir = os.path.join(workdir, f"seed_{seed}")
      os.makedirs(seed_dir, exist_ok=True)
      self.loggers.append(metrics_lib.Logger(seed_dir, self.search.space,
                                             prefix=f"[seed {seed}] ", resume_at=position))
    self.logger = self.loggers[0]  # the console

  def fingerprint(self) -> dict[str, Any]:
    return fingerprint(self.search)

  def fresh_state(self) -> SearchState:
    return init_states(self.searches)

  def position(self, state: SearchState) -> int:
    return int(state.step[0])

  def announce(self, state: SearchState, position: int, resumed: bool) -> None:
    base, config = self.search, self.config
    if resumed:
      self.info(f"Resumed from step {position} in {self.workdir}."
                + search_lib.resumed_note(sum(logger.cut_lines for logger in self.loggers)))
    self.info(f"{len(self.seeds)} seeds {self.seeds} vmapped in one program: "
              f"space={config.space.name} steps/epoch={base.steps_per_epoch} "
              f"total_steps={base.total_steps} devices={base.parallel.size}")

  def compile(self) -> None:
    base = self.search
    self.step_fn = jit_vmapped_step(base)
    self.eval_fn = jax.jit(jax.vmap(functools.partial(base.method.eval_step,
                                                      components=base.components),
                                    in_axes=(0, None, None)),
                           out_shardings=base.parallel.replicated)
    self.mixing_fn = jax.jit(jax.vmap(functools.partial(base.method.mixing, base.components)))

  def param_count(self, state: SearchState) -> int:
    return supernet.num_params(state.weights) // len(self.seeds)

  def widen(self, state: SearchState, stage: int) -> SearchState:
    """Each seed's state widened onto the stage's supernet with its own draws (``stage_key`` of
    its seed), vmapped."""
    start, search, _ = self.stages[stage]
    keys = jax.vmap(lambda seed: search_lib.stage_key(seed, start))(jnp.asarray(self.seeds))
    return jax.vmap(lambda s, k: search_lib.widen_state(s, search, k))(state, keys)

  def step(self, state: SearchState, position: int):
    if search_lib.stage_of_step(self.stages, position) != self.stage:
      state = self.next_stage(state, position)
    return self.step_fn(state, step_batches(self.searches, position))

  def log(self, done: int, metrics, perf: dict[str, float]) -> None:
    metrics = jax.device_get(metrics)
    for i, logger in enumerate(self.loggers):
      logger.train(done, self.search.steps_per_epoch, unstack(metrics, i), perf)

  def evaluate(self, done: int, state: SearchState) -> bool:
    base, config = self.search, self.config
    mixing = jax.device_get(self.mixing_fn(state))
    eval_metrics = search_lib.evaluate(base, self.eval_fn, state)
    for i, logger in enumerate(self.loggers):
      genotype = base.space.derive(unstack(mixing, i))
      seed_metrics = {k: v[i] for k, v in eval_metrics.items()}
      seed_metrics.update(search_lib.benchmark_metrics(self.table, genotype,
                                                       config.benchmark.dataset))
      logger.epoch(done, self.cadence.epoch(done), genotype, unstack(mixing, i), seed_metrics)
    return False  # seeds never stop early (check_supported)

  def finish(self, state: SearchState) -> dict[str, Any]:
    """Each seed's ``result.json``, and ``seeds.json``: the summaries and their spread."""
    final_step = int(state.step[0])
    split_info = self.search.splits.describe()
    bench = search_lib.benchmark_label(self.config, self.search.splits)
    summaries = [logger.finish(state_step=final_step, splits=split_info, benchmark=bench)
                 for logger in self.loggers]
    report = {"seeds": self.seeds, "step": final_step, "splits": split_info,
              "spread": spread(summaries),
              "per_seed": {str(seed): summary for seed, summary in zip(self.seeds, summaries)}}
    if jax.process_index() == 0:
      accuracies = "".join(f"; {key} {v['mean']:.4f} +- {v['std']:.4f}"
                           for key, v in report["spread"].items()
                           if isinstance(v, dict) and "mean" in v and "accuracy" in key)
      print(f"{len(self.seeds)} seeds: {report['spread']['distinct_final_genotypes']} distinct "
            f"final genotype(s){accuracies}", flush=True)
      with open(os.path.join(self.workdir, SEEDS_FILE), "w") as f:
        json.dump(report, f, indent=2)
    return report
