"""Search splits: which examples train the weights, which train the architecture, which evaluate.

``make_search_splits(dataset, scheme)`` with ``scheme`` one of ``SPLIT_SCHEMES``:

* ``darts`` (quark0/darts ``train_search.py``, methods.md §1.4): the first ``train_portion`` of the
  training set in index order -> ``weights``, the rest -> ``arch``; ``eval`` = the arch split
  (DARTS' ``infer`` runs on the valid queue).
* ``full`` (single-level methods, e.g. GAEA ERM): ``weights`` = ``arch`` = the whole training
  set; ``eval`` = the test set.
* ``nb201`` (AutoDL ``get_nas_search_loaders``, methods.md §9.3), decided by dataset name:

  - ``cifar100``, ``imagenet16_120``: ``weights`` = the whole training set; ``arch`` = ``eval`` =
    the "x-valid" half of the test set. NB201 ships the halves as ``cifar100-test-split.txt`` /
    ``imagenet-16-120-test-split.txt``, not available offline: here x-valid is the first half
    (``len // 2``) of a permutation of the test set drawn from ``default_rng([seed, 201])``
    (sorted back into index order); ``train_portion`` is not used.
  - every other dataset (cifar10-like): a random ``train_portion`` (NB201: 0.5) of the training
    set -> ``weights``, the rest -> ``arch`` = ``eval`` (NB201's "cifar10-valid" setting). NB201's
    ``cifar-split.txt`` is not available offline: the split is a permutation drawn from
    ``default_rng([seed, 201])``, not the official one.

  NB201 uses one fixed split for all runs, so pass a constant ``seed`` (e.g. the default 0), not
  the run seed, to get the same halves in every run.

``max_examples`` keeps only the first ``max_examples`` of each split (smoke runs). Splits share
memory with the dataset where they can (contiguous slices are numpy views).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from jaxnas.data.datasets import ImageDataset

SPLIT_SCHEMES = ("darts", "full", "nb201")
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
  """The three splits of a search."""
  weights: Split   # data for the weight (w) step
  arch: Split      # data for the architecture (alpha) step
  eval: Split      # held-out data to evaluate the supernet each epoch


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


def make_search_splits(dataset: ImageDataset, scheme: str, *, train_portion: float = 0.5,
                       seed: int = 0, max_examples: int | None = None) -> SearchSplits:
  """Splits ``dataset`` for a search following ``scheme`` (see the module docstring).

  Args:
    dataset: the loaded dataset.
    scheme: one of ``SPLIT_SCHEMES``.
    train_portion: fraction of the training set for the weights (``darts``, cifar10-like
      ``nb201``); must leave both parts non-empty.
    seed: seed of the ``nb201`` random split (keep it constant across runs).
    max_examples: if set, each split keeps only its first ``max_examples`` examples.

  Raises:
    ValueError: unknown scheme, bad ``train_portion`` or bad ``max_examples``.
  """
  if scheme not in SPLIT_SCHEMES:
    raise ValueError(f"Unknown split scheme {scheme!r}; valid schemes: {', '.join(SPLIT_SCHEMES)}.")
  if max_examples is not None and (not isinstance(max_examples, (int, np.integer))
                                   or max_examples < 1):
    raise ValueError(f"max_examples must be a positive integer or None, got {max_examples!r}")
  train = Split(dataset.train_images, dataset.train_labels)
  test = Split(dataset.test_images, dataset.test_labels)
  n = len(train)
  if scheme == "darts":
    cut = _portion_cut(n, train_portion, scheme)
    weights, arch = train.take(slice(0, cut)), train.take(slice(cut, n))
    splits = SearchSplits(weights, arch, arch)
  elif scheme == "full":
    splits = SearchSplits(train, train, test)
  elif dataset.name in NB201_TEST_HALF_DATASETS:
    if len(test) < 2:
      raise ValueError(f"nb201 needs at least 2 test examples to halve, got {len(test)}")
    xvalid, _ = _random_halves(len(test), len(test) // 2, seed)
    splits = SearchSplits(train, test.take(xvalid), test.take(xvalid))
  else:
    w_idx, a_idx = _random_halves(n, _portion_cut(n, train_portion, scheme), seed)
    arch = train.take(a_idx)
    splits = SearchSplits(train.take(w_idx), arch, arch)
  if max_examples is None:
    return splits
  cap = slice(0, int(max_examples))
  return SearchSplits(*(s.take(cap) for s in (splits.weights, splits.arch, splits.eval)))
