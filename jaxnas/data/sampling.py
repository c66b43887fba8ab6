"""Batch indices as a pure function of (seed, stream, step): resuming needs no iterator state.

* Without replacement (an epoch-style shuffled pass): epoch ``step // steps_per_epoch``, whose
  permutation is drawn from ``default_rng([seed, stream, epoch])``; the step takes its slice of that
  permutation. The last, partial slice (``split_size % batch_size`` examples) is either dropped
  (``partial_batch='drop'``: ``floor(n / b)`` steps per epoch) or kept and filled up to the full
  batch with the first examples of the same permutation (``partial_batch='fill'``: ``ceil(n / b)``
  steps per epoch, the count of a PyTorch ``DataLoader`` with ``drop_last=False``, which every
  reference search loop uses; the batch shape stays fixed, so the jitted step compiles once).
* With replacement (DARTS' ``next(iter(valid_queue))``, a fresh random batch every step): each
  step draws ``batch_size`` distinct indices from ``default_rng([seed, stream, step])``; batches of
  different steps are independent.

``stream`` separates independent index streams of one run (e.g. 0 for the weight step, 1 for the
architecture step, 2 for evaluation), so they never share a permutation.
"""
from __future__ import annotations

import collections
import concurrent.futures
import functools
import itertools
from typing import Callable, Iterable, Iterator, TypeVar

import numpy as np

K = TypeVar("K")
V = TypeVar("V")


def _check_nonnegative(**values: int) -> None:
  for name, value in values.items():
    if not isinstance(value, (int, np.integer)) or value < 0:
      raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


@functools.lru_cache(maxsize=16)
def _epoch_permutation(seed: int, stream: int, epoch: int, split_size: int) -> np.ndarray:
  perm = np.random.default_rng([seed, stream, epoch]).permutation(split_size)
  perm.setflags(write=False)   # cached: callers get copies of slices
  return perm


PARTIAL_BATCHES = ("drop", "fill")


def steps_per_epoch(split_size: int, batch_size: int, partial_batch: str = "drop") -> int:
  """Number of batches in one pass over ``split_size`` examples: ``floor(n / b)`` with
  ``partial_batch='drop'`` (remainder dropped), ``ceil(n / b)`` with ``'fill'`` (PyTorch's
  ``len(DataLoader)`` with ``drop_last=False``).

  Raises:
    ValueError: ``batch_size < 1``, ``batch_size > split_size`` or an unknown ``partial_batch``.
  """
  if partial_batch not in PARTIAL_BATCHES:
    raise ValueError(f"partial_batch={partial_batch!r} is not valid; choose one of: "
                     f"{', '.join(PARTIAL_BATCHES)}.")
  _check_nonnegative(split_size=split_size, batch_size=batch_size)
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  if batch_size > split_size:
    raise ValueError(f"batch_size {batch_size} is larger than the split size {split_size}")
  full, rest = divmod(int(split_size), int(batch_size))
  return full + (1 if rest and partial_batch == "fill" else 0)


def batch_indices(seed: int, step: int, split_size: int, batch_size: int, *, stream: int,
                  with_replacement: bool, partial_batch: str = "drop") -> np.ndarray:
  """Indices (int32, shape ``(batch_size,)``, distinct) of the examples of batch ``step``.

  Args:
    seed: run seed.
    step: global step (0-based); the epoch is derived from it.
    split_size: number of examples in the split.
    batch_size: examples per batch.
    stream: id of the index stream (weights, arch, eval, ...).
    with_replacement: if True, an independent random batch per step (DARTS' validation batches);
      if False, shuffled epochs without replacement.
    partial_batch: without replacement, what happens to an epoch's last ``split_size %
      batch_size`` examples: ``'drop'`` (not seen this epoch) or ``'fill'`` (one more batch: those
      examples plus the first ones of the epoch's permutation); see ``steps_per_epoch``.

  Raises:
    ValueError: negative arguments, or ``batch_size`` larger than ``split_size``.
  """
  _check_nonnegative(seed=seed, step=step, stream=stream)
  spe = steps_per_epoch(split_size, batch_size, partial_batch)
  if with_replacement:
    rng = np.random.default_rng([seed, stream, step])
    idx = rng.choice(split_size, size=batch_size, replace=False)
  else:
    epoch, i = divmod(int(step), spe)
    perm = _epoch_permutation(int(seed), int(stream), epoch, int(split_size))
    idx = perm[i * batch_size:(i + 1) * batch_size]
    if len(idx) < batch_size:  # 'fill': the epoch's partial last batch, filled from its start
      idx = np.concatenate([idx, perm[:batch_size - len(idx)]])
  return idx.astype(np.int32)


def prefetch(produce: Callable[[K], V], keys: Iterable[K], depth: int) -> Iterator[V]:
  """``produce(key) for key in keys``, computed ``depth`` keys ahead on a background thread.

  For host-side batch work (decoding ImageNet JPEGs, gathering and placing a batch on the mesh):
  the next batches are prepared while the device runs the current step. Results come in key
  order; an exception in ``produce`` is raised where its result would have been yielded.
  ``depth=0`` computes each result when it is asked for (no thread). Closing the generator early
  (a ``break``) cancels what has not started and waits for what has.
  """
  if depth < 0:
    raise ValueError(f"prefetch depth must be >= 0, got {depth}")
  keys = iter(keys)
  if depth == 0:
    yield from map(produce, keys)
    return
  pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="jaxnas-prefetch")
  try:
    pending = collections.deque(pool.submit(produce, key)
                                for key in itertools.islice(keys, depth))
    while pending:
      result = pending.popleft().result()
      pending.extend(pool.submit(produce, key) for key in itertools.islice(keys, 1))
      yield result
  finally:
    pool.shutdown(wait=True, cancel_futures=True)
