"""MiLeNAS' model-size-based search and early stopping (He et al., CVPR 2020, §3.3 and §5).

* **Model-size buckets**: after every epoch the derived DARTS genotype's convolutions are counted,
  ``n`` in the normal cell and ``r`` in the reduction cell (ops ``sep_conv_*`` and ``dil_conv_*``, the
  reference's ``_isCNNStructure``: DARTS primitive index >= 4), and the genotype with the best
  validation accuracy is kept per ``(n, r)`` bucket, so one search yields candidates of several sizes.
* **Early stopping**: stop as soon as the derived genotype has ``n = 6`` and ``r = 0`` (the paper's
  rule; off by default, as in the reference run script).
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Callable, Iterable, Mapping

CONV_PREFIXES = ("sep_conv", "dil_conv")


def conv_counts(genotype) -> tuple[int, int]:
  """Number of convolution genes (sep/dil convs) in the normal and in the reduction cell."""
  count = lambda genes: sum(1 for op, _ in genes if op.startswith(CONV_PREFIXES))
  return count(genotype.normal), count(genotype.reduce)


def should_stop_early(genotype, normal_convs: int = 6, reduce_convs: int = 0) -> bool:
  """MiLeNAS' early-stopping rule: the genotype has exactly (6, 0) convolutions."""
  return conv_counts(genotype) == (normal_convs, reduce_convs)


@dataclasses.dataclass
class SizeBuckets:
  """The best-validation genotype per (normal convs, reduce convs) bucket."""
  best: dict[tuple[int, int], dict[str, Any]] = dataclasses.field(default_factory=dict)

  def update(self, genotype, accuracy: float, step: int) -> bool:
    """Records ``genotype`` if it beats its bucket's best accuracy; returns whether it did."""
    bucket = conv_counts(genotype)
    current = self.best.get(bucket)
    if current is not None and current["accuracy"] >= accuracy:
      return False
    self.best[bucket] = {"genotype": str(genotype), "accuracy": float(accuracy), "step": int(step)}
    return True

  def to_json(self) -> str:
    """The buckets as JSON, keyed ``"n<normal>_r<reduce>"``, sorted."""
    return json.dumps({f"n{n}_r{r}": v for (n, r), v in sorted(self.best.items())}, indent=2)

  @classmethod
  def from_json(cls, text: str) -> "SizeBuckets":
    """Inverse of ``to_json`` (used when a search resumes)."""
    best = {}
    for key, value in json.loads(text).items():
      n, r = key[1:].split("_r")
      best[(int(n), int(r))] = value
    return cls(best)


SIZE_BUCKETS_FILE = "size_buckets.json"


class SizeBucketBook:
  """The search's MiLeNAS bookkeeping after each evaluation: the size buckets (``size_buckets.json``
  in the workdir) and the early-stopping rule.

  The buckets are derived from the genotype log: rebuilt from its records when a run opens (the
  log already cut back to the restored checkpoint), then updated per evaluation, so they always
  agree with ``genotypes.jsonl``.
  """

  def __init__(self, workdir: str, *, buckets: bool, early_stopping: bool,
               records: Iterable[Mapping[str, Any]], parse: Callable[[str], Any],
               is_writer: bool = True):
    self.path = os.path.join(workdir, SIZE_BUCKETS_FILE)
    self.early_stopping, self.is_writer = early_stopping, is_writer
    self.buckets = None
    if buckets:
      self.buckets = SizeBuckets()
      for record in records:
        self.buckets.update(parse(record["genotype"]), record["eval/accuracy"], record["step"])
      self._write()

  def _write(self) -> None:
    if self.is_writer:
      with open(self.path, "w") as f:
        f.write(self.buckets.to_json())

  def after_evaluation(self, genotype, accuracy: float, step: int) -> str | None:
    """Updates the buckets; returns why the search stops early (MiLeNAS' rule), or None."""
    if self.buckets is not None and self.buckets.update(genotype, accuracy, step):
      self._write()
    if self.early_stopping and should_stop_early(genotype):
      return (f"Early stopping at step {step}: the genotype has 6 convolutions in the normal "
              "cell and 0 in the reduction cell (MiLeNAS).")
    return None
