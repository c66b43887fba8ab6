"""Batch indices as a pure function of (seed, stream, step): resuming needs no iterator state.

* Without replacement (an epoch-style shuffled pass, remainder dropped): epoch
  ``step // steps_per_epoch``, whose permutation is drawn from ``default_rng([seed, stream,
  epoch])``; the step takes its slice of that permutation.
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


def steps_per_epoch(split_size: int, batch_size: int) -> int:
  """Number of full batches in one pass over ``split_size`` examples (remainder dropped).

  Raises:
    ValueError: ``batch_size < 1`` or ``batch_size > split_size``.
  """
  _check_nonnegative(split_size=split_size, batch_size=batch_size)
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  if batch_size > split_size:
    raise ValueError(f"batch_size {batch_size} is larger than the split size {split_size}")
  return int(split_size) // int(batch_size)


def batch_indices(seed: int, step: int, split_size: int, batch_size: int, *, stream: int,
                  with_replacement: bool) -> np.ndarray:
  """Indices (int32, shape ``(batch_size,)``, distinct) of the examples of batch ``step``.

  Args:
    seed: run seed.
    step: global step (0-based); the epoch is derived from it.
    split_size: number of examples in the split.
    batch_size: examples per batch.
    stream: id of the index stream (weights, arch, eval, ...).
    with_replacement: if True, an independent random batch per step (DARTS' validation batches);
      if False, shuffled epochs without replacement.

  Raises:
    ValueError: negative arguments, or ``batch_size`` larger than ``split_size``.
  """
  _check_nonnegative(seed=seed, step=step, stream=stream)
  spe = steps_per_epoch(split_size, batch_size)
  if with_replacement:
    rng = np.random.default_rng([seed, stream, step])
    idx = rng.choice(split_size, size=batch_size, replace=False)
  else:
    epoch, i = divmod(int(step), spe)
    perm = _epoch_permutation(int(seed), int(stream), epoch, int(split_size))
    idx = perm[i * batch_size:(i + 1) * batch_size]
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
