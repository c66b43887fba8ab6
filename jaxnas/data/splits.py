"""Search splits: which examples train the weights, which train the architecture, which evaluate.

``make_search_splits(dataset, scheme)`` with ``scheme`` one of ``SPLIT_SCHEMES``:

* ``darts`` (quark0/darts ``train_search.py``, methods.md §1.4): the first ``train_portion`` of the
  training set in index order -> ``weights``, the rest -> ``arch``; ``eval`` = the arch split
  (DARTS' ``infer`` runs on the valid queue). Eval role: validation.
* ``full`` (single-level methods, e.g. GAEA ERM): ``weights`` = ``arch`` = the whole training
  set; ``eval`` = the test set. Eval role: **test** -- no genotype may be selected on it.
* ``nb201`` (AutoDL ``get_nas_search_loaders``, ``xautodl/datasets/get_dataset_with_transform.py``
  at AutoDL-Projects f46486e, lines 241-360; methods.md §9.3), decided by dataset name:

  - ``cifar100``, ``imagenet16_120``: ``weights`` = the whole training set; ``arch`` = ``eval`` =
    the "x-valid" half of the test set. NAS-Bench-201 reports these datasets' test accuracy on
    the other, disjoint half ("x-test"). The official halves are AutoDL's
    ``configs/nas-benchmark/cifar100-test-split.txt`` / ``imagenet-16-120-test-split.txt``
    (JSON ``{"xvalid": ["int", [...]], "xtest": ["int", [...]]}``); pass the file as
    ``split_file`` (``config.data.nb201_split_file``; jaxnas does not ship it) and x-valid is its
    ``xvalid`` list (eval role: validation). Without it x-valid is the first half (``len // 2``)
    of a permutation of the test set drawn from ``default_rng([seed, 201])`` (sorted back into
    index order): a random half that overlaps about half of the official x-test, so alpha trains
    on images behind NB201's x-test accuracy and the eval role is **test**.
  - every other dataset (cifar10-like): a ``train_portion`` (NB201: 0.5) of the training set ->
    ``weights``, the rest -> ``arch`` = ``eval`` (NB201's "cifar10-valid" setting). With
    ``split_file`` (AutoDL's ``cifar-split.txt``, ``{"train": [...], "valid": [...]}``) the halves
    are the file's; without it a permutation drawn from ``default_rng([seed, 201])``, not the
    official one. Eval role: validation either way (the halves are training images).

  NB201 uses one fixed split for all runs, so pass a constant ``seed`` (e.g. the default 0), not
  the run seed, to get the same halves in every run.

Every ``SearchSplits`` knows whether its ``eval`` split is held-out validation data or test data
(``eval_role``, decided here and nowhere else) and says in one line what its splits are
(``note``); ``jaxnas.metrics.Logger.finish`` selects a best genotype only on a validation split.

``max_examples`` keeps only the first ``max_examples`` of each split (smoke runs). Splits share
memory with the dataset where they can (contiguous slices are numpy views).
"""
from __future__ import annotations

import dataclasses
import json

import numpy as np

from jaxnas.data.datasets import ImageDataset

SPLIT_SCHEMES = ("darts", "full", "nb201")
# What a split's examples are to the reported accuracies: 'training' (images the weights train
# on), 'validation' (held out from every reported test figure) or 'test' (test images, or images
# overlapping the test data behind a reported benchmark figure). Genotypes are selected only on
# 'validation'.
SPLIT_ROLES = ("training", "validation", "test")
NB201_TEST_HALF_DATASETS = ("cifar100", "imagenet16_120")
_NB201_STREAM = 201


@dataclasses.dataclass(frozen=True, eq=False)
class Split:
  """Images (uint8 NHWC) and labels (int32) of one split."""
  images: np.ndarray
  labels: np.ndarray

  def __post_init__(self):
    if self.images.dtype != np.uint8 or self.images.ndim != 4:
      raise ValueError(f"Split images must be uint8 NHWC, got {self.images.dtype} "
                       f"{self.images.shape}")
    if self.labels.dtype != np.int32 or self.labels.shape != self.images.shape[:1]:
      raise ValueError(f"Split labels must be int32 ({len(self.images)},), got "
                       f"{self.labels.dtype} {self.labels.shape}")

  def __len__(self) -> int:
    return len(self.labels)

  def take(self, index) -> Split:
    """The sub-split at ``index`` (a slice or an integer index array); lazily decoded images
    (``jaxnas.data.imagenet.LazyImages``) stay lazy."""
    subset = getattr(self.images, "subset", None)
    return Split(subset(index) if subset else self.images[index], self.labels[index])


@dataclasses.dataclass(frozen=True, eq=False)
class SearchSplits:
  """The three splits of a search, what the arch and eval splits are (``SPLIT_ROLES``) and a
  one-line description (``note``, written to ``result.json``)."""
  weights: Split   # data for the weight (w) step
  arch: Split      # data for the architecture (alpha) step
  eval: Split      # data to evaluate the supernet each epoch
  arch_role: str = "validation"
  eval_role: str = "validation"
  note: str = ""

  def __post_init__(self):
    for name in ("arch_role", "eval_role"):
      if getattr(self, name) not in SPLIT_ROLES:
        raise ValueError(f"SearchSplits.{name} must be one of {', '.join(SPLIT_ROLES)}, got "
                         f"{getattr(self, name)!r}")

  @property
  def eval_is_validation(self) -> bool:
    """Whether a genotype may be selected by its accuracy on ``eval`` (held-out validation)."""
    return self.eval_role == "validation"

  def describe(self) -> dict:
    """The roles, sizes and note, for ``result.json``."""
    return {"arch_role": self.arch_role, "eval_role": self.eval_role, "note": self.note,
            "sizes": {"weights": len(self.weights), "arch": len(self.arch),
                      "eval": len(self.eval)}}


def _portion_cut(n: int, train_portion: float, what: str) -> int:
  if not 0.0 < train_portion < 1.0:
    raise ValueError(f"train_portion must be in (0, 1) for scheme {what!r}, got {train_portion}")
  cut = int(np.floor(train_portion * n))
  if cut < 1 or cut > n - 1:
    raise ValueError(f"train_portion={train_portion} of {n} training examples leaves an empty "
                     f"split (scheme {what!r})")
  return cut


def _random_halves(n: int, cut: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  perm = np.random.default_rng([seed, _NB201_STREAM]).permutation(n)
  return np.sort(perm[:cut]), np.sort(perm[cut:])


def read_split_file(path: str, keys: tuple[str, ...], size: int, what: str
                    ) -> dict[str, np.ndarray]:
  """The index lists ``keys`` of an AutoDL split file (``{"key": ["int", ["1", ...]], ...}``),
  checked to be distinct indices below ``size`` (the ``what`` set's size)."""
  fix = (f"pass AutoDL-Projects' configs/nas-benchmark split file for this dataset as "
         f"--config.data.nb201_split_file")
  try:
    with open(path) as f:
      content = json.load(f)
  except (OSError, ValueError) as e:
    raise ValueError(f"Cannot read the NB201 split file {path!r} ({e}); {fix}.") from None
  out = {}
  for key in keys:
    entry = content.get(key) if isinstance(content, dict) else None
    values = entry[1] if isinstance(entry, list) and len(entry) == 2 else entry
    try:
      idx = np.asarray([int(v) for v in values], np.int64)
    except (TypeError, ValueError):
      found = sorted(content) if isinstance(content, dict) else "?"
      raise ValueError(f"NB201 split file {path!r} has no index list {key!r} (keys: {found}); "
                       f"{fix}.") from None
    if len(idx) == 0 or idx.min() < 0 or idx.max() >= size or len(np.unique(idx)) != len(idx):
      raise ValueError(f"NB201 split file {path!r}: {key!r} must be distinct indices into the "
                       f"{size} {what} images; {fix}.")
    out[key] = np.sort(idx)
  return out


def _nb201_test_half(test: Split, path: str) -> np.ndarray:
  halves = read_split_file(path, ("xvalid", "xtest"), len(test), "test")
  if (len(halves["xvalid"]) + len(halves["xtest"]) != len(test)
      or np.intersect1d(halves["xvalid"], halves["xtest"]).size):
    raise ValueError(f"NB201 split file {path!r}: xvalid and xtest must be disjoint halves of the "
                     f"{len(test)} test images (is it the file of another dataset?).")
  return halves["xvalid"]


def make_search_splits(dataset: ImageDataset, scheme: str, *, train_portion: float = 0.5,
                       seed: int = 0, max_examples: int | None = None,
                       split_file: str | None = None) -> SearchSplits:
  """Splits ``dataset`` for a search following ``scheme`` (see the module docstring).

  Args:
    dataset: the loaded dataset.
    scheme: one of ``SPLIT_SCHEMES``.
    train_portion: fraction of the training set for the weights (``darts``, cifar10-like
      ``nb201``); must leave both parts non-empty.
    seed: seed of the ``nb201`` random split (keep it constant across runs).
    max_examples: if set, each split keeps only its first ``max_examples`` examples.
    split_file: ``nb201`` only: AutoDL's official split file of the dataset (module docstring);
      None = the seeded random halves.

  Raises:
    ValueError: unknown scheme, bad ``train_portion``, ``max_examples`` or ``split_file``.
  """
  if scheme not in SPLIT_SCHEMES:
    raise ValueError(f"Unknown split scheme {scheme!r}; valid schemes: {', '.join(SPLIT_SCHEMES)}.")
  if max_examples is not None and (not isinstance(max_examples, (int, np.integer))
                                   or max_examples < 1):
    raise ValueError(f"max_examples must be a positive integer or None, got {max_examples!r}")
  if split_file and scheme != "nb201":
    raise ValueError(f"An NB201 split file ({split_file!r}) is used only by the 'nb201' split "
                     f"scheme, not {scheme!r}; unset config.data.nb201_split_file.")
  train = Split(dataset.train_images, dataset.train_labels)
  test = Split(dataset.test_images, dataset.test_labels)
  n = len(train)
  if scheme == "darts":
    cut = _portion_cut(n, train_portion, scheme)
    weights, arch = train.take(slice(0, cut)), train.take(slice(cut, n))
    splits = SearchSplits(weights, arch, arch, note=(
        f"darts: w on the first {train_portion:g} of the training set, alpha and eval on the "
        "rest (validation)"))
  elif scheme == "full":
    splits = SearchSplits(train, train, test, arch_role="training", eval_role="test", note=(
        "full: w and alpha on the whole training set, eval on the TEST set (no held-out "
        "validation split: no genotype is selected on it)"))
  elif dataset.name in NB201_TEST_HALF_DATASETS:
    if len(test) < 2:
      raise ValueError(f"nb201 needs at least 2 test examples to halve, got {len(test)}")
    if split_file:
      xvalid = _nb201_test_half(test, split_file)
      splits = SearchSplits(train, test.take(xvalid), test.take(xvalid), note=(
          f"nb201: w on the training set, alpha and eval on the official x-valid half of the "
          f"test set ({split_file}), disjoint from the x-test half NB201 reports"))
    else:
      xvalid, _ = _random_halves(len(test), len(test) // 2, seed)
      splits = SearchSplits(
          train, test.take(xvalid), test.take(xvalid), arch_role="test", eval_role="test",
          note=(f"nb201 without data.nb201_split_file: alpha and eval on a RANDOM half of the "
                f"test set (default_rng([{seed}, 201])), not NB201's x-valid; it overlaps about "
                f"half of the x-test images behind NB201's {dataset.name} test accuracy"))
  elif split_file:
    halves = read_split_file(split_file, ("train", "valid"), n, "training")
    if np.intersect1d(halves["train"], halves["valid"]).size:
      raise ValueError(f"NB201 split file {split_file!r}: train and valid overlap (is it "
                       "AutoDL's cifar-split.txt?).")
    arch = train.take(halves["valid"])
    splits = SearchSplits(train.take(halves["train"]), arch, arch, note=(
        f"nb201 (cifar10-valid): w and alpha/eval on the official train/valid halves of the "
        f"training set ({split_file})"))
  else:
    w_idx, a_idx = _random_halves(n, _portion_cut(n, train_portion, scheme), seed)
    arch = train.take(a_idx)
    splits = SearchSplits(train.take(w_idx), arch, arch, note=(
        f"nb201 (cifar10-valid) without data.nb201_split_file: w and alpha/eval on random "
        f"{train_portion:g}/{1 - train_portion:g} parts of the training set "
        f"(default_rng([{seed}, 201])), not NB201's cifar-split.txt"))
  if max_examples is None:
    return splits
  cap = slice(0, int(max_examples))
  return dataclasses.replace(splits, weights=splits.weights.take(cap),
                             arch=splits.arch.take(cap), eval=splits.eval.take(cap))
