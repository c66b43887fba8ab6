"""Console progress, TensorBoard scalars and the genotype log of a search (process 0 writes)."""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from typing import Any, Mapping

import jax
import numpy as np

from jaxnas import workdir as workdir_lib

GENOTYPE_LOG = "genotypes.jsonl"


@dataclasses.dataclass(frozen=True)
class Cadence:
  """When a loop logs, evaluates and checkpoints, as functions of ``done``, the number of steps
  completed (1 after the first step): one schedule for the search, the vmapped seeds and the
  evaluation (training from scratch) loops.

  Train metrics every ``log_every_steps`` and at the last step; at an epoch's end (or the last
  step) the evaluation every ``eval_every_epochs`` epochs and at the last step; a checkpoint every
  ``checkpoint_every_steps`` and at every epoch's end.
  """
  steps_per_epoch: int
  total_steps: int
  log_every_steps: int
  eval_every_epochs: int
  checkpoint_every_steps: int

  @classmethod
  def of(cls, config, steps_per_epoch: int, total_steps: int) -> "Cadence":
    """The cadence of ``config`` (``log_every_steps``, ``eval_every_epochs``,
    ``checkpoint_every_steps``) for a run of ``total_steps``."""
    return cls(steps_per_epoch, total_steps, config.log_every_steps, config.eval_every_epochs,
               config.checkpoint_every_steps)

  def epoch(self, done: int) -> int:
    """The epoch (from 1) that step ``done`` belongs to."""
    return math.ceil(done / self.steps_per_epoch)

  def epoch_end(self, done: int) -> bool:
    return done % self.steps_per_epoch == 0 or done == self.total_steps

  def log(self, done: int) -> bool:
    return done % self.log_every_steps == 0 or done == self.total_steps

  def evaluate(self, done: int) -> bool:
    return self.epoch_end(done) and (self.epoch(done) % self.eval_every_epochs == 0
                                     or done == self.total_steps)

  def checkpoint(self, done: int) -> bool:
    return done % self.checkpoint_every_steps == 0 or self.epoch_end(done)


class StepTimer:
  """Steps per second and ETA since the previous report (the driver starts it after the first,
  compiling, step: NaN until a step has run since)."""

  def __init__(self, start_step: int, total_steps: int):
    self.total = total_steps
    self.last_step, self.last_time = start_step, time.perf_counter()

  def tick(self, step: int) -> dict[str, float]:
    now = time.perf_counter()
    if step == self.last_step:
      return {"perf/steps_per_second": math.nan, "perf/eta_seconds": math.nan}
    rate = (step - self.last_step) / max(now - self.last_time, 1e-9)
    self.last_step, self.last_time = step, now
    return {"perf/steps_per_second": rate, "perf/eta_seconds": (self.total - step) / max(rate, 1e-9)}


# Method metrics shown on the console line when a method reports them (all go to TensorBoard).
SCHEDULE_FIELDS = {
    "schedule/arch_steps": "  alpha steps {:.0f}",          # a schedule other than every step: alpha steps so far
    "schedule/fisher_ewma": "  fisher {:.3g}",              # ... the dynamic schedule's statistic
    "schedule/threshold": " / threshold {:.3g}",            # ... and the threshold it is compared with
}


class Logger:
  """Writes console lines, TensorBoard events and ``genotypes.jsonl`` (one JSON line per epoch).

  Opened at ``resume_at`` (the restored checkpoint's step; 0 for a fresh run), it first cuts its
  logs back to that step: ``genotypes.jsonl`` lines of later steps are removed and TensorBoard
  hides the events of later steps (``purge_step``), so after a crash or a fallback to an older
  checkpoint the workdir reads as one uninterrupted run.
  """

  LOG_NAME = GENOTYPE_LOG

  def __init__(self, workdir: str, space, prefix: str = "", resume_at: int = 0):
    self.workdir, self.space, self.prefix = workdir, space, prefix
    self.is_writer = jax.process_index() == 0
    self.writer = None
    self.genotype_path = os.path.join(workdir, self.LOG_NAME)
    self.cut_lines = workdir_lib.cut_jsonl(self.genotype_path, last=resume_at)
    if self.is_writer:
      from tensorboardX import SummaryWriter  # local import: only the writer process needs it
      events = os.path.join(workdir, "tensorboard")
      self.writer = SummaryWriter(events, purge_step=resume_at + 1 if os.path.isdir(events)
                                  else None)

  def info(self, message: str) -> None:
    if self.is_writer:
      print(self.prefix + message, flush=True)

  def scalars(self, step: int, values: Mapping[str, Any]) -> None:
    if self.writer is not None:
      for name, value in values.items():
        if name.startswith("perf/") and not math.isfinite(float(value)):
          continue  # no speed yet (the first step compiled)
        self.writer.add_scalar(name, float(value), step)

  def train(self, step: int, steps_per_epoch: int, metrics: Mapping[str, Any],
            perf: Mapping[str, float]) -> None:
    """One progress line: step, epoch, losses, accuracies, learning rate, speed, ETA."""
    values = {**{k: float(np.asarray(v)) for k, v in metrics.items()}, **perf}
    self.scalars(step, values)
    epoch = step / steps_per_epoch
    schedule = "".join(fmt.format(values[key]) for key, fmt in SCHEDULE_FIELDS.items()
                       if key in values)
    self.info(
        f"step {step:6d}  epoch {epoch:6.2f}  train loss {values['train/loss']:.4f} "
        f"acc {values['train/accuracy']:.3f}  val loss {values['val/loss']:.4f} "
        f"acc {values['val/accuracy']:.3f}  lr {values['lr/weights']:.5f}{schedule}  "
        f"{speed(values)}")

  def diagnostics(self, step: int, values: Mapping[str, Any]) -> None:
    """Logs the hypergradient diagnostics (before the update of ``step``)."""
    values = {k: float(v) for k, v in values.items()}
    self.scalars(step, values)
    self.info(f"step {step:6d}  diagnostics: " + "  ".join(
        f"{k.split('/')[-1]} {v:.4g}" for k, v in values.items()))

  def epoch(self, step: int, epoch: int, genotype, mixing: Mapping[str, Any],
            eval_metrics: Mapping[str, float]) -> None:
    """Logs the evaluation, the derived genotype and every edge's mixing weights."""
    self.scalars(step, eval_metrics)
    if self.writer is not None:
      for path, weights in jax.tree_util.tree_leaves_with_path(mixing):
        name = "/".join(str(getattr(p, "key", p)) for p in path)
        weights = np.asarray(weights)
        if weights.ndim == 2:  # (edges, ops): one scalar per edge and operation
          for edge in range(weights.shape[0]):
            for k, op in enumerate(self.space.ops):
              self.writer.add_scalar(f"mixing/{name}/edge_{edge}/{op}", float(weights[edge, k]),
                                     step)
        else:                  # a node's edge weights (PC-DARTS beta)
          for j, value in enumerate(np.ravel(weights)):
            self.writer.add_scalar(f"mixing/{name}/input_{j}", float(value), step)
    record = {"step": step, "epoch": epoch, "genotype": str(genotype),
              **{k: float(v) for k, v in eval_metrics.items()}}
    if self.is_writer:
      with open(self.genotype_path, "a") as f:
        f.write(json.dumps(record) + "\n")
    bench = "".join(f"  {k.split('/')[-1]} {v:.2f}" for k, v in eval_metrics.items()
                    if k.startswith("benchmark/") and "accuracy" in k and "std" not in k)
    self.info(f"epoch {epoch} (step {step}): eval loss {eval_metrics['eval/loss']:.4f} "
              f"acc {eval_metrics['eval/accuracy']:.3f}{bench}\n  genotype = {genotype}")

  def records(self) -> list[dict[str, Any]]:
    """All genotype-log records (this run and earlier runs resumed in the same workdir)."""
    if not os.path.exists(self.genotype_path):
      return []
    with open(self.genotype_path) as f:
      return [json.loads(line) for line in f if line.strip()]

  def _write_result_and_close(self, summary: dict[str, Any], write: bool = True
                              ) -> dict[str, Any]:
    """Writes ``summary`` to ``result.json`` (process 0; when ``write``), closes TensorBoard."""
    if write and self.is_writer:
      with open(os.path.join(self.workdir, "result.json"), "w") as f:
        json.dump(summary, f, indent=2)
    if self.writer is not None:
      self.writer.flush()
      self.writer.close()
    return summary

  def finish(self, state_step: int, *, splits: Mapping[str, Any],
             benchmark: str | None = None) -> dict[str, Any]:
    """Prints and returns (``result.json``) the final genotype, and a best one only where the eval
    split is held-out validation data.

    ``splits`` is ``SearchSplits.describe()``: its ``eval_role`` decides. On ``'validation'``
    ``best_genotype`` is the genotype of the epoch with the highest ``eval/accuracy``; otherwise
    (the eval split is test data, e.g. ``data.split='full'``) ``best_genotype`` is null and the
    final genotype is the result, as the reference codes report the last epoch's cell. The
    ``selection`` field says which. ``benchmark`` labels the ``benchmark/*`` figures.
    """
    role = splits.get("eval_role")
    if role not in ("training", "validation", "test"):
      raise ValueError(f"Logger.finish needs splits=SearchSplits.describe() with an eval_role, "
                       f"got {dict(splits)!r}")
    records = [r for r in self.records() if r["step"] <= state_step]
    summary: dict[str, Any] = {"step": state_step, "splits": dict(splits)}
    if benchmark:
      summary["benchmark"] = benchmark
    if records:
      final = records[-1]
      summary.update(final_genotype=final["genotype"], final_record=final)
      lines = [f"Final genotype (step {final['step']}): {final['genotype']}"
               + benchmark_summary(final)]
      if role == "validation":
        best = max(records, key=lambda r: r["eval/accuracy"])
        summary.update(best_genotype=best["genotype"], best_step=best["step"], best_record=best,
                       selection="best_genotype: highest eval/accuracy over the logged epochs "
                                 "on the held-out validation split")
        lines.append(f"Best genotype by validation accuracy (step {best['step']}, "
                     f"{best['eval/accuracy']:.3f}): {best['genotype']}"
                     + benchmark_summary(best))
      else:
        summary.update(best_genotype=None, best_step=None, selection=(
            f"final genotype only: the eval split is {role} data ({splits.get('note', '')}), "
            "so no genotype is selected on it; the reference codes report the last epoch's cell"))
        lines.append(f"No best genotype: the eval split is {role} data, not held-out validation; "
                     "the result is the final genotype (as the references).")
      self.info("\n".join(lines))
    return self._write_result_and_close(summary, write=bool(records))


def benchmark_summary(record: Mapping[str, Any]) -> str:
  """``'  (benchmark: test_accuracy 94.36, valid_accuracy 91.61)'``: a record's ground truth, or
  ``''`` when no table is configured or the cell is not in it."""
  figures = [f"{k.split('/')[-1]} {v:.2f}" for k, v in record.items()
             if k.startswith("benchmark/") and "accuracy" in k and "std" not in k]
  return f"  (benchmark: {', '.join(figures)})" if figures else ""


def speed(perf: Mapping[str, float]) -> str:
  """``'12.34 steps/s  ETA 0:01:02'`` (``'- steps/s  ETA ?'`` before a step has been timed)."""
  rate = perf["perf/steps_per_second"]
  shown = f"{rate:.2f}" if math.isfinite(rate) else "-"
  return f"{shown} steps/s  ETA {_duration(perf['perf/eta_seconds'])}"


def _duration(seconds: float) -> str:
  if not math.isfinite(seconds):
    return "?"
  seconds = int(max(seconds, 0))
  return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


EVAL_LOG = "evaluation.jsonl"


class EvalLogger(Logger):
  """The logger of training a discrete network from scratch (``jaxnas.evaluate``).

  Console lines and TensorBoard scalars as in a search; one JSON line per epoch with the test
  loss and accuracy in ``evaluation.jsonl``; ``finish`` writes ``result.json``.
  """

  LOG_NAME = EVAL_LOG

  def __init__(self, workdir: str, resume_at: int = 0):
    super().__init__(workdir, space=None, resume_at=resume_at)

  def train(self, step: int, steps_per_epoch: int, metrics: Mapping[str, Any],
            perf: Mapping[str, float]) -> None:
    values = {**{k: float(np.asarray(v)) for k, v in metrics.items()}, **perf}
    self.scalars(step, values)
    self.info(
        f"step {step:6d}  epoch {step / steps_per_epoch:6.2f}  train loss "
        f"{values['train/loss']:.4f} acc {values['train/accuracy']:.3f}  lr "
        f"{values['lr/weights']:.5f}  drop-path {values['train/drop_path_prob']:.3f}  "
        f"{speed(values)}")

  def test(self, step: int, epoch: int, test_metrics: Mapping[str, float]) -> None:
    """Logs the per-epoch test loss and accuracy (TensorBoard, console, ``evaluation.jsonl``)."""
    self.scalars(step, test_metrics)
    record = {"step": step, "epoch": epoch, **{k: float(v) for k, v in test_metrics.items()}}
    if self.is_writer:
      with open(self.genotype_path, "a") as f:
        f.write(json.dumps(record) + "\n")
    self.info(f"epoch {epoch} (step {step}): test loss {test_metrics['test/loss']:.4f} "
              f"acc {test_metrics['test/accuracy']:.4f}")

  def finish_eval(self, state_step: int, info: Mapping[str, Any]) -> dict[str, Any]:
    """Prints and writes ``result.json``: the final test accuracy, plus ``info``.

    No maximum over epochs: picking the epoch by test accuracy would select on test data (the
    per-epoch figures stay in ``evaluation.jsonl``)."""
    records = [r for r in self.records() if r["step"] <= state_step]
    summary: dict[str, Any] = {"step": state_step, **info}
    if records:
      final = records[-1]
      summary.update(final_test_accuracy=final["test/accuracy"], final_record=final)
      self.info(f"Final test accuracy (epoch {final['epoch']}): {final['test/accuracy']:.4f}.")
    return self._write_result_and_close(summary)
