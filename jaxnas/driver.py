"""The one driver: ``run(program, workdir)`` starts or resumes a run, steps it, logs, evaluates and
checkpoints at the program's cadence, and ends it.

Every run jaxnas offers is a ``Program`` (hooks, below) run by this one loop:

* a gradient search (``jaxnas.search.SearchProgram``: every method, one step skeleton),
* vmapped seeds (``jaxnas.seeds.SeedsProgram``: a ``jax.vmap`` over the same step),
* NAO-V2 (``jaxnas.nao.search.NAOProgram``: supernet steps and host stages as units of work),
* training a genotype from scratch (``jaxnas.evaluate.TrainingProgram``).

The loop, for ``position`` = units of work done (the checkpoint step; one unit per ``step``)::

    check the workdir's record (a changed config field is refused unless allowed), take its lock
    state <- the latest checkpoint in <workdir>/checkpoints (fingerprint checked) or a fresh state
    record the config (or the allowed changes); open the logs, cut back to the restored position
    while not program.finished(position):
      state, metrics <- program.step(state, position); position += 1
      due <- program.due(position)            # the program's cadence
      if anything is due: stop if a step so far was non-finite (Health)
      log / evaluate (may stop the run) / checkpoint, as due
    close the checkpoints, release the lock; return program.finish(state)

The first step compiles the program's step: the driver says so before it and prints how long it
took (compile and first step) after it; speeds and ETAs count only the steps after it. Nothing in
the library imports this module: the entry point (``jaxnas.train``) and users do.
"""
from __future__ import annotations

import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from jaxnas import checkpoint as checkpoint_lib
from jaxnas import config_checks
from jaxnas import metrics as metrics_lib
from jaxnas import workdir as workdir_lib
from jaxnas.program import Due, Program, RunError  # noqa: F401  (re-exported: the hooks live there)

CHECKPOINT_DIR = "checkpoints"
SET_ASIDE_DIR = "checkpoints.set_aside"  # incomplete or superseded steps, moved (never deleted)


def restore_or_start(program: Program, workdir: str
                     ) -> tuple[Any, checkpoint_lib.CheckpointManager, bool]:
  """``(state, manager, resumed)``: a checkpoint in ``workdir/checkpoints`` (restored into
  ``program.abstract_state(step)``'s structure) if there is one, else the fresh state.

  Before choosing, what an interrupted save or prune left is repaired (``CheckpointManager.repair``:
  incomplete steps moved to ``checkpoints.set_aside/``, never deleted), with a message. The step is
  the latest, or ``config.resume.step`` when set (later steps are then moved aside too, so the run
  continues from it as one uninterrupted run).

  The state is committed replicated to the program's mesh in both cases (restored arrays go there
  directly): the first step then compiles once for that placement, and a resumed run compiles the
  same program as a fresh one.
  """
  manager = checkpoint_lib.CheckpointManager(
      os.path.join(workdir, CHECKPOINT_DIR), keep=program.config.keep_checkpoints,
      fingerprint=program.fingerprint(), retired_keys=program.retired_keys)
  aside = os.path.join(workdir, SET_ASIDE_DIR)
  if jax.process_index() == 0:
    for line in manager.repair(aside):
      program.info(f"checkpoints: {line}")
  chosen = resume_step(program.config)
  if chosen is not None:
    if chosen not in manager.all_steps():
      raise checkpoint_lib.CheckpointError(
          f"config.resume.step={chosen} is not a checkpoint in {manager.directory}; available "
          f"steps: {manager.all_steps()}.")
    state = manager.restore(program.parallel.abstract(program.abstract_state(chosen)),
                            step=chosen)
    if jax.process_index() == 0:
      for line in manager.set_aside_after(chosen, aside):
        program.info(f"checkpoints: {line} (config.resume.step={chosen})")
    return state, manager, True
  latest = manager.latest_step()
  if latest is not None:
    abstract = program.parallel.abstract(program.abstract_state(latest))
    return manager.restore(abstract, step=latest), manager, True
  return program.parallel.replicate(program.fresh_state()), manager, False


def resume_step(config: ml_collections.ConfigDict) -> int | None:
  """``config.resume.step`` (a checkpoint step to restore instead of the latest), or None."""
  step = config.get("resume", {}).get("step", -1) if "resume" in config else -1
  return None if step is None or step < 0 else int(step)


def first_step(program: Program, state: Any, position: int) -> tuple[Any, Any]:
  """The first step of this process, which compiles the step: announced, synchronised, timed."""
  program.info("compiling the step (its first call; nothing prints until it is done) ...")
  start = time.perf_counter()
  state, metrics = program.step(state, position)
  jax.block_until_ready(metrics)
  program.info(f"compiled and ran the first step in {time.perf_counter() - start:.1f} s")
  return state, metrics


class Health:
  """Whether every step so far was finite, tracked on device: ``first_bad`` is the first
  position whose metrics ``program.healthy`` found non-finite (-1: none). Updated after each step
  without a host sync; read only when the driver is about to log, evaluate or checkpoint."""

  def __init__(self, program: Program):
    self.program = program
    self.first_bad = jnp.asarray(-1, jnp.int32)
    self.update_fn = jax.jit(self._update)

  def _update(self, first_bad, metrics, position):
    bad = jnp.logical_not(self.program.healthy(metrics))
    return jnp.where((first_bad < 0) & bad, position, first_bad)

  def update(self, metrics: Any, position: int) -> None:
    self.first_bad = self.update_fn(self.first_bad, metrics, jnp.asarray(position, jnp.int32))

  def check(self, done: int, manager: checkpoint_lib.CheckpointManager) -> None:
    """Raises ``RunError`` naming the first non-finite step, the last finite step and the last
    good checkpoint if a step so far was non-finite (nothing of it is logged or saved)."""
    first_bad = int(self.first_bad)
    if first_bad < 0:
      return
    step = first_bad + 1  # positions count from 0, steps (units done) from 1
    latest = manager.latest_step()
    raise RunError(
        f"the run diverged: step {step} produced a non-finite loss or gradient (seen at step "
        f"{done}); the last finite step is {step - 1}, the last good checkpoint is "
        f"{'step ' + str(latest) if latest is not None else 'none'}. Nothing of the non-finite "
        "steps was logged or saved. Lower the learning rates (or clip gradients) and resume with "
        "--config.resume.allow_changes=<the fields you change>.")


def run(program: Program, workdir: str) -> dict[str, Any]:
  """Runs (or resumes) ``program`` in ``workdir``; returns ``program.finish``'s result.

  Before any computation: the workdir's identity (``workdir.check_identity``: a changed field is
  refused unless allowed) and its lock. Then the state (``restore_or_start``), the record of the
  run (``config.json`` / ``config_history.jsonl``), the logs opened and cut back to the restored
  position, and the loop. A non-finite step stops the run at the next log, evaluation or
  checkpoint (``Health``).
  """
  changes = workdir_lib.check_identity(program.config, workdir)
  os.makedirs(workdir, exist_ok=True)
  lock = workdir_lib.Lock(workdir).acquire()
  manager = None
  try:
    state, manager, resumed = restore_or_start(program, workdir)
    position = program.position(state)
    workdir_lib.record_start(program.config, workdir, changes, position)
    program.open(workdir, position)
    if changes and resumed:
      program.info("config changes from this resume on (recorded in "
                   f"{workdir_lib.HISTORY_FILE}): " + "; ".join(
                       f"{k}: {old} -> {new}" for k, (old, new) in changes.items()))
    program.announce(state, position, resumed)
    program.compile()
    state = loop(program, state, position, manager)
    manager.close()
    manager = None
    return program.finish(state)
  finally:
    if manager is not None:
      manager.close()
    lock.release()


def loop(program: Program, state: Any, position: int,
         manager: checkpoint_lib.CheckpointManager) -> Any:
  """Steps ``program`` from ``position`` until it is finished (or an evaluation stops it)."""
  timer, health = None, Health(program)
  while not program.finished(position):
    if timer is None:
      state, metrics = first_step(program, state, position)
      timer = metrics_lib.StepTimer(position + 1, program.total)  # speeds without the compile
    else:
      state, metrics = program.step(state, position)
    health.update(metrics, position)
    position += 1
    due = program.due(position)
    if due.log or due.evaluate or due.checkpoint:
      health.check(position, manager)
    if due.log:
      program.log(position, metrics, timer.tick(position))
    stop = due.evaluate and program.evaluate(position, state)
    if due.checkpoint or stop:
      manager.save(position, state)
    if stop:
      break
  return state


def program_class(config: ml_collections.ConfigDict) -> type[Program]:
  """The program ``config`` asks for: training from scratch (``mode='eval'``), NAO-V2
  (``method='nao_v2'``), vmapped seeds (``num_seeds > 1``) or a gradient search."""
  if config.get("mode", "search") == "eval":
    from jaxnas import evaluate  # local imports: a run needs only its own program's modules
    return evaluate.TrainingProgram
  if config.get("method") == "nao_v2":
    from jaxnas.nao import search as nao_search
    return nao_search.NAOProgram
  if config.get("num_seeds", 1) > 1:
    from jaxnas import seeds
    return seeds.SeedsProgram
  from jaxnas import search
  return search.SearchProgram


def validate_before_compute(config: ml_collections.ConfigDict, workdir: str | None = None
                            ) -> None:
  """Every check that needs neither data nor compilation, for any mode: the shared ones
  (``config_checks.check_shared``) and the program's own (``Program.validate``)."""
  config_checks.check_shared(config, workdir)
  program_class(config).validate(config)


def build_program(config: ml_collections.ConfigDict) -> Program:
  """The program ``config`` asks for (``program_class``), built: validated, data loaded, nothing
  compiled."""
  return program_class(config).from_config(config)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Checks every field (``validate_before_compute``) and the workdir's identity (before any data
  is loaded), builds the program ``config`` asks for (loading its data; no compilation) and runs
  (or resumes) it in ``workdir``; returns its result."""
  validate_before_compute(config, workdir)
  workdir_lib.check_identity(config, workdir)
  return run(build_program(config), workdir)
