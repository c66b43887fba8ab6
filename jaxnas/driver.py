"""The one driver: ``run(program, workdir)`` starts or resumes a run, steps it, logs, evaluates and
checkpoints at the program's cadence, and ends it.

Every run jaxnas offers is a ``Program`` (hooks, below) run by this one loop:

* a gradient search (``jaxnas.search.SearchProgram``: every method, one step skeleton),
* vmapped seeds (``jaxnas.seeds.SeedsProgram``: a ``jax.vmap`` over the same step),
* NAO-V2 (``jaxnas.nao.search.NAOProgram``: supernet steps and host stages as units of work),
* training a genotype from scratch (``jaxnas.evaluate.TrainingProgram``).

The loop, for ``position`` = units of work done (the checkpoint step; one unit per ``step``)::

    open the workdir (config.json, the program's logs)
    state <- the latest checkpoint in <workdir>/checkpoints (fingerprint checked) or a fresh state
    while not program.finished(position):
      state, metrics <- program.step(state, position); position += 1
      due <- program.due(position)            # the program's cadence
      log / evaluate (may stop the run) / checkpoint, as due
    close the checkpoints; return program.finish(state)

The first step compiles the program's step: the driver says so before it and prints how long it
took (compile and first step) after it; speeds and ETAs count only the steps after it. Nothing in
the library imports this module: the entry point (``jaxnas.train``) and users do.
"""
from __future__ import annotations

import os
import time
from typing import Any

import jax
import ml_collections

from jaxnas import checkpoint as checkpoint_lib
from jaxnas import metrics as metrics_lib
from jaxnas.program import Due, Program  # noqa: F401  (re-exported: the hooks live there)

CHECKPOINT_DIR = "checkpoints"


def open_workdir(program: Program, workdir: str) -> None:
  """Creates ``workdir``, writes ``config.json`` and opens the program's logs."""
  os.makedirs(workdir, exist_ok=True)
  metrics_lib.write_config(workdir, program.config)
  program.open(workdir)


def restore_or_start(program: Program, workdir: str
                     ) -> tuple[Any, checkpoint_lib.CheckpointManager, bool]:
  """``(state, manager, resumed)``: the latest checkpoint in ``workdir/checkpoints`` (restored into
  ``program.abstract_state()``'s structure) if there is one, else the fresh state.

  The state is committed replicated to the program's mesh in both cases (restored arrays go there
  directly): the first step then compiles once for that placement, and a resumed run compiles the
  same program as a fresh one.
  """
  manager = checkpoint_lib.CheckpointManager(
      os.path.join(workdir, CHECKPOINT_DIR), keep=program.config.keep_checkpoints,
      fingerprint=program.fingerprint(), retired_keys=program.retired_keys)
  if manager.latest_step() is not None:
    return manager.restore(program.parallel.abstract(program.abstract_state())), manager, True
  return program.parallel.replicate(program.fresh_state()), manager, False


def first_step(program: Program, state: Any, position: int) -> tuple[Any, Any, float]:
  """The first step of this process, which compiles the step: announced, synchronised, timed."""
  program.info("compiling the step (its first call; nothing prints until it is done) ...")
  start = time.perf_counter()
  state, metrics = program.step(state, position)
  jax.block_until_ready(metrics)
  seconds = time.perf_counter() - start
  program.info(f"compiled and ran the first step in {seconds:.1f} s")
  return state, metrics, seconds


def run(program: Program, workdir: str) -> dict[str, Any]:
  """Runs (or resumes) ``program`` in ``workdir``; returns ``program.finish``'s result."""
  open_workdir(program, workdir)
  state, manager, resumed = restore_or_start(program, workdir)
  position = program.position(state)
  program.announce(state, position, resumed)
  program.compile()
  timer = None
  while not program.finished(position):
    if timer is None:
      state, metrics, _ = first_step(program, state, position)
      timer = metrics_lib.StepTimer(position + 1, program.total)  # speeds without the compile
    else:
      state, metrics = program.step(state, position)
    position += 1
    due = program.due(position)
    if due.log:
      program.log(position, metrics, timer.tick(position))
    stop = due.evaluate and program.evaluate(position, state)
    if due.checkpoint or stop:
      manager.save(position, state)
    if stop:
      break
  manager.close()
  return program.finish(state)


def build_program(config: ml_collections.ConfigDict) -> Program:
  """The program ``config`` asks for: training from scratch (``mode='eval'``), NAO-V2
  (``method='nao_v2'``), vmapped seeds (``num_seeds > 1``) or a gradient search."""
  if config.get("mode", "search") == "eval":
    from jaxnas import evaluate  # local imports: a run needs only its own program's modules
    return evaluate.TrainingProgram.from_config(config)
  if config.get("method") == "nao_v2":
    from jaxnas.nao import search as nao_search
    return nao_search.NAOProgram.from_config(config)
  if config.get("num_seeds", 1) > 1:
    from jaxnas import seeds
    return seeds.SeedsProgram.from_config(config)
  from jaxnas import search
  return search.SearchProgram.from_config(config)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Builds the program ``config`` asks for (validating it, loading its data; no compilation) and
  runs (or resumes) it in ``workdir``; returns its result."""
  return run(build_program(config), workdir)
