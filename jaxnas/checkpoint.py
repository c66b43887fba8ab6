"""Checkpoints of the whole search state, with Orbax. The only jaxnas module that imports Orbax.

The search state is one frozen pytree (a ``flax.struct.dataclass``) whose leaves are numeric arrays,
possibly sharded over a mesh; PRNG keys are stored as raw ``uint32`` key data. Saving it saves
everything needed to continue bit for bit.

Usage::

    with CheckpointManager(workdir / 'checkpoints', keep=3, fingerprint=fp) as ckpt:
      if ckpt.latest_step() is not None:
        state = ckpt.restore(jax.eval_shape(create_state, ...))   # leaves may carry .sharding
      ...
      ckpt.save(step, state)

Layout of one checkpoint (Orbax ``CheckpointManager``, one directory per step)::

    <directory>/<step>/state/...            the state pytree (``ocp.args.StandardSave``)
    <directory>/<step>/meta/metadata        JSON: format, version, step, fingerprint, leaf specs
    <directory>/<step>/commit_success.txt   written by Orbax just before the step is committed

Design decisions (checked against orbax-checkpoint 0.12.8):

* **Atomicity.** Orbax writes every step into ``<step>.orbax-checkpoint-tmp-<timestamp>``, writes
  ``commit_success.txt`` into it, and renames it to ``<step>`` (``AtomicRenameTemporaryPath``; on
  file systems without atomic rename, such as GCS, it writes ``commit_success.txt`` last instead).
  A crash mid-save therefore leaves only a temporary directory. This module counts a step only if
  ``<step>/commit_success.txt`` and its metadata file exist, so leftovers of an interrupted save
  are never listed or restored. Orbax deletes leftover temporary directories in the background
  when a manager opens (done before its first save).
* **Never overwrite a good checkpoint with a bad one.** ``save`` refuses a state with any
  non-finite floating leaf (NaN/Inf): it raises ``CheckpointError`` and writes and deletes nothing.
  Old steps are pruned (``keep``) only after the new step is committed.
* **Duplicate steps are skipped.** Saving a step that already exists writes nothing and logs it,
  so a final save at the same step as the last periodic save is harmless. Saving a step *older*
  than the latest one raises ``CheckpointError`` (steps in one directory only grow).
* **Mismatch protection.** Every checkpoint records the manager's ``fingerprint`` (a JSON-able dict
  describing the run: space, method, shapes...) and the path, shape and dtype of every leaf.
  ``restore`` compares them with the manager and ``abstract_state`` before reading any array, and
  ``save`` compares them with the latest existing checkpoint before writing; a difference raises
  ``CheckpointMismatchError`` and leaves the files untouched. ``fingerprint=None`` disables the
  fingerprint comparison (the leaf comparison always runs).
* **Shardings.** Restored arrays get the ``.sharding`` of the matching ``abstract_state`` leaf;
  leaves without one are restored onto the first local device.
* Orbax's INFO/DEBUG log records are filtered out of absl logging; its warnings still show.
"""
from __future__ import annotations

import json
import logging
import operator
import os
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from absl import logging as absl_logging
from etils import epath

__all__ = ['CheckpointError', 'CheckpointMismatchError', 'CheckpointManager']

_STATE_ITEM = 'state'
_META_ITEM = 'meta'
_FORMAT = 'jaxnas.checkpoint'
_VERSION = 1
_COMMIT_FILE = 'commit_success.txt'
_PRUNING_SUFFIX = '.pruning'  # a step being pruned: renamed first, then removed
_META_FILE = 'metadata'  # the file Orbax's JsonSave writes inside the item directory
_MAX_LISTED = 5  # how many differing keys/leaves an error message names


class CheckpointError(RuntimeError):
  """A checkpoint could not be saved or restored; the message names the problem and the fix."""


class CheckpointMismatchError(CheckpointError):
  """The checkpoint was written by a different configuration or state structure."""


# ------------------------------------------------------------------------------------------------
# Logging: keep Orbax's per-save INFO chatter out of the training log.


class _DropOrbaxInfo(logging.Filter):
  """Drops absl log records below WARNING that come from Orbax's source files."""

  def filter(self, record: logging.LogRecord) -> bool:
    from_orbax = f'{os.sep}orbax{os.sep}' in (record.pathname or '')
    return not (from_orbax and record.levelno < logging.WARNING)


def _quiet_orbax_logs() -> None:
  """Installs `_DropOrbaxInfo` on the absl logger once (Orbax logs through absl)."""
  absl_logger = logging.getLogger('absl')
  if not any(isinstance(f, _DropOrbaxInfo) for f in absl_logger.filters):
    absl_logger.addFilter(_DropOrbaxInfo())


_quiet_orbax_logs()


# ------------------------------------------------------------------------------------------------
# Leaf specs and fingerprints (pure helpers).


def _leaf_specs(tree) -> list[list[Any]]:
  """Returns ``[[path, shape, dtype], ...]`` for every leaf, JSON-able, in flattening order."""
  leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
  return [[jax.tree_util.keystr(path), [int(d) for d in np.shape(leaf)], str(leaf.dtype)]
          for path, leaf in leaves]


def _diff_specs(saved: list, wanted: list) -> list[str]:
  """Describes how two leaf-spec lists differ (missing, extra, shape or dtype), path by path."""
  saved_by_path = {path: (shape, dtype) for path, shape, dtype in saved}
  wanted_by_path = {path: (shape, dtype) for path, shape, dtype in wanted}
  problems = [f'{p} is in abstract_state but not in the checkpoint'
              for p in wanted_by_path if p not in saved_by_path]
  problems += [f'{p} is in the checkpoint but not in abstract_state'
               for p in saved_by_path if p not in wanted_by_path]
  for path, (shape, dtype) in wanted_by_path.items():
    if path in saved_by_path and saved_by_path[path] != (shape, dtype):
      s_shape, s_dtype = saved_by_path[path]
      problems.append(f'{path}: checkpoint {s_dtype}{s_shape}, abstract_state {dtype}{shape}')
  return problems


def _normalize_fingerprint(fingerprint: Mapping[str, Any] | None) -> dict[str, Any] | None:
  """Returns the fingerprint as it reads back from JSON (tuples become lists), or None."""
  if fingerprint is None:
    return None
  try:
    return json.loads(json.dumps(dict(fingerprint), sort_keys=True, allow_nan=False))
  except (TypeError, ValueError) as e:
    raise TypeError(f'CheckpointManager fingerprint must be a JSON-able dict of str, numbers, '
                    f'lists and dicts ({e}); convert other values with str() or .to_dict().') from e


def _flatten_dict(d: Mapping[str, Any], prefix: str = '') -> dict[str, Any]:
  """Flattens nested dicts to dotted keys: ``{'a': {'b': 1}} -> {'a.b': 1}``."""
  flat = {}
  for key, value in d.items():
    name = f'{prefix}{key}'
    if isinstance(value, Mapping) and value:
      flat.update(_flatten_dict(value, name + '.'))
    else:
      flat[name] = value
  return flat


def _diff_fingerprints(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
  """Describes the keys whose values differ between two fingerprints."""
  saved_flat, current_flat = _flatten_dict(saved), _flatten_dict(current)
  missing = object()
  return [f'{k} (checkpoint: {saved_flat.get(k, "<absent>")!r}, now: '
          f'{current_flat.get(k, "<absent>")!r})'
          for k in sorted(set(saved_flat) | set(current_flat))
          if saved_flat.get(k, missing) != current_flat.get(k, missing)]


def _first_few(problems: list[str]) -> str:
  """Joins the first `_MAX_LISTED` problems, saying how many more there are."""
  shown = '; '.join(problems[:_MAX_LISTED])
  more = len(problems) - _MAX_LISTED
  return shown + (f'; and {more} more' if more > 0 else '')


# ------------------------------------------------------------------------------------------------
# State validation before saving.

_all_finite = jax.jit(lambda x: jnp.all(jnp.isfinite(x)))


def _check_leaf_types(state) -> None:
  """Raises CheckpointError unless every leaf is a numeric array (no Python scalars, typed keys)."""
  for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
    name = jax.tree_util.keystr(path)
    if not isinstance(leaf, (jax.Array, np.ndarray, np.generic)):
      raise CheckpointError(f'Cannot save leaf {name} of type {type(leaf).__name__}: every leaf '
                            'of the search state must be an array; wrap it, e.g. jnp.int32(x).')
    if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
      raise CheckpointError(f'Cannot save typed PRNG key {name}: store raw key data instead '
                            '(jax.random.key_data(key)) and rewrap it with '
                            'jax.random.wrap_key_data after restore.')


def _non_finite_leaves(state) -> list[str]:
  """Returns the paths of floating leaves that contain a NaN or an Inf."""
  named = [(jax.tree_util.keystr(p), x) for p, x in jax.tree_util.tree_flatten_with_path(state)[0]
           if jnp.issubdtype(x.dtype, jnp.inexact)]
  flags = jax.device_get([_all_finite(x) for _, x in named])  # one transfer for all leaves
  return [name for (name, _), ok in zip(named, flags) if not ok]


def _abstract_leaf(leaf) -> jax.ShapeDtypeStruct:
  """Turns an abstract or concrete leaf into a ShapeDtypeStruct that carries a sharding."""
  sharding = getattr(leaf, 'sharding', None)
  if sharding is None:
    sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  return jax.ShapeDtypeStruct(np.shape(leaf), leaf.dtype, sharding=sharding)


# ------------------------------------------------------------------------------------------------


class CheckpointManager:
  """Saves and restores the search state in one directory, keeping the last `keep` steps.

  Args:
    directory: where the step directories live (created if missing). Local path or any path
      Orbax/etils understands (``gs://...``).
    keep: how many most recent checkpoints to keep (>= 1).
    fingerprint: a JSON-able dict describing the run (space, method, arch shapes...). It is saved
      with every checkpoint; restoring or saving against checkpoints with a different fingerprint
      raises `CheckpointMismatchError`. None disables the fingerprint comparison.
    retired_keys: dotted fingerprint keys (``'space_sizes.unroll'``) that checkpoints written by
      older versions recorded and this one no longer compares: a saved checkpoint that has them
      still restores.

  Raises:
    CheckpointError: `directory` is a file, or Orbax cannot open it.
    TypeError: `fingerprint` is not JSON-able.
    ValueError: `keep` < 1.
  """

  def __init__(self, directory: str | os.PathLike, *, keep: int = 3,
               fingerprint: Mapping[str, Any] | None = None, retired_keys: Sequence[str] = ()):
    if int(keep) < 1:
      raise ValueError(f'keep must be >= 1, got {keep}.')
    self._keep = int(keep)
    self._fingerprint = _normalize_fingerprint(fingerprint)
    self._retired_keys = frozenset(retired_keys)
    self._directory = self._resolve(directory)
    self._checked_existing = False  # whether `save` compared itself with the latest checkpoint
    self._manager = self._open_orbax()

  @staticmethod
  def _resolve(directory: str | os.PathLike) -> epath.Path:
    """Returns the directory as an absolute path; raises CheckpointError if it is a file."""
    text = os.fspath(directory)
    path = epath.Path(text if '://' in text else os.path.abspath(text))
    if path.exists() and not path.is_dir():
      raise CheckpointError(f'Checkpoint directory {path} is a file, not a directory; choose '
                            'another --workdir or remove the file.')
    return path

  def _open_orbax(self) -> ocp.CheckpointManager:
    """Opens a synchronous Orbax manager; pruning is done here, not by Orbax (see `save`)."""
    options = ocp.CheckpointManagerOptions(
        max_to_keep=None, create=True, enable_async_checkpointing=False,
        cleanup_tmp_directories=True)
    try:
      return ocp.CheckpointManager(self._directory, options=options,
                                   item_names=(_STATE_ITEM, _META_ITEM))
    except Exception as e:  # Orbax raises assorted types for unusable paths
      raise CheckpointError(f'Cannot open checkpoint directory {self._directory}: {e}. Check the '
                            'path and its permissions, or choose another --workdir.') from e

  @property
  def directory(self) -> epath.Path:
    """The checkpoint directory (absolute)."""
    return self._directory

  @property
  def fingerprint(self) -> dict[str, Any] | None:
    """The fingerprint as saved (after a JSON round trip), or None."""
    return self._fingerprint

  # ------------------------------------------------------------------------------ listing steps

  def _is_complete(self, step_dir: epath.Path) -> bool:
    """True if Orbax committed the step and our metadata item is present."""
    return ((step_dir / _COMMIT_FILE).exists()
            and (step_dir / _META_ITEM / _META_FILE).exists())

  def all_steps(self) -> list[int]:
    """Returns the committed steps in increasing order (interrupted saves are never listed)."""
    if not self._directory.exists():
      return []
    steps = [int(p.name) for p in self._directory.iterdir()
             if p.name.isdigit() and p.is_dir() and self._is_complete(p)]
    return sorted(steps)

  def latest_step(self) -> int | None:
    """Returns the newest committed step, or None if there is none."""
    steps = self.all_steps()
    return steps[-1] if steps else None

  # ------------------------------------------------------------------------------ metadata

  def _read_meta(self, step: int) -> dict[str, Any]:
    """Reads and checks the JSON metadata of a committed step; raises CheckpointError if bad."""
    try:
      meta = self._manager.restore(
          step, args=ocp.args.Composite(**{_META_ITEM: ocp.args.JsonRestore()}))[_META_ITEM]
    except Exception as e:
      raise self._corrupt(step, f'its metadata cannot be read ({e})') from e
    if not isinstance(meta, dict) or meta.get('format') != _FORMAT:
      raise self._corrupt(step, 'its metadata is not a jaxnas checkpoint record')
    if meta.get('version') != _VERSION or not isinstance(meta.get('leaves'), list):
      raise self._corrupt(step, f'unsupported checkpoint version {meta.get("version")!r}')
    return meta

  def _corrupt(self, step: int, problem: str) -> CheckpointError:
    """Builds the error for an unreadable step."""
    return CheckpointError(
        f'Checkpoint step {step} in {self._directory} is not usable: {problem}. Restore another '
        f'step with --config.resume.step=N (available: {self.all_steps()}), or move '
        f'{self._directory / str(step)} away, or use a new --workdir.')

  def _make_meta(self, step: int, state) -> dict[str, Any]:
    """The JSON record saved next to the state."""
    return {'format': _FORMAT, 'version': _VERSION, 'step': step,
            'fingerprint': self._fingerprint if self._fingerprint is not None else {},
            'leaves': _leaf_specs(state)}

  def _check_compatible(self, meta: Mapping[str, Any], leaves: list, doing: str) -> None:
    """Raises CheckpointMismatchError if `meta` differs in fingerprint or leaf specs."""
    problems = []
    if self._fingerprint is not None:
      saved = {k: v for k, v in _flatten_dict(meta.get('fingerprint', {})).items()
               if k not in self._retired_keys}
      problems += [f'fingerprint {d}' for d in _diff_fingerprints(saved, self._fingerprint)]
    problems += _diff_specs(meta['leaves'], leaves)
    if problems:
      raise CheckpointMismatchError(
          f'Cannot {doing}: checkpoint step {meta.get("step")} in {self._directory} comes from a '
          f'different configuration or state structure: {_first_few(problems)}. Nothing was '
          f'changed on disk. To start over, use a new --workdir, or delete {self._directory}.')

  # ------------------------------------------------------------------------------ save

  def save(self, step: int, state) -> None:
    """Saves `state` as checkpoint `step`, synchronously and atomically, then prunes old steps.

    Args:
      step: the step number (>= 0); steps in one directory must increase.
      state: the search state pytree (numeric array leaves, possibly sharded).

    Raises:
      CheckpointError: a floating leaf is NaN/Inf (the last good checkpoint is kept, nothing is
        written), a leaf is not an array, or `step` is older than the latest checkpoint.
      CheckpointMismatchError: the directory already holds checkpoints of a different run.

    If `step` already exists, nothing is written (logged) and the existing checkpoint is kept.
    """
    step = self._check_step(step)
    _check_leaf_types(state)
    self._refuse_non_finite(step, state)
    meta = self._make_meta(step, state)
    if self._skip_or_refuse_step(step, meta):
      return
    self._write(step, state, meta)
    self._prune()

  @staticmethod
  def _check_step(step) -> int:
    """Returns `step` as a non-negative Python int."""
    try:  # int, numpy or jax integer scalar; not float, not bool
      value = -1 if isinstance(step, (bool, np.bool_)) else operator.index(step)
    except TypeError:
      value = -1
    if value < 0:
      raise CheckpointError(f'Checkpoint step must be a non-negative integer, got {step!r}.')
    return value

  def _refuse_non_finite(self, step: int, state) -> None:
    """Raises CheckpointError if any floating leaf has a NaN or an Inf."""
    bad = _non_finite_leaves(state)
    if bad:
      raise CheckpointError(
          f'Refusing to save step {step} to {self._directory}: non-finite values (NaN/Inf) in '
          f'{_first_few(bad)}. Nothing was written; the last good checkpoint '
          f'(step {self.latest_step()}) is kept. Lower the learning rates or enable gradient '
          'clipping, then resume from it.')

  def _skip_or_refuse_step(self, step: int, meta: Mapping[str, Any]) -> bool:
    """Checks the new step against the directory; True means 'already saved, skip'."""
    steps = self.all_steps()
    if (self._directory / str(step)).exists() and step not in steps:
      raise CheckpointError(
          f'Cannot save step {step}: {self._directory / str(step)} exists but is not a committed '
          'jaxnas checkpoint (an interrupted copy, or foreign files). Delete that directory, or '
          'use a new --workdir.')
    if not steps:
      return False
    latest = steps[-1]
    if not self._checked_existing:
      self._check_compatible(self._read_meta(latest), meta['leaves'],
                             f'save step {step} into this directory')
      self._checked_existing = True
    if step in steps:
      absl_logging.info('Checkpoint step %d already exists in %s; not saving it again.',
                        step, self._directory)
      return True
    if step < latest:
      raise CheckpointError(
          f'Cannot save step {step} to {self._directory}: it already holds the later step '
          f'{latest}, and steps in one directory must increase. To branch from an older step, '
          'use a new --workdir.')
    return False

  def _write(self, step: int, state, meta: Mapping[str, Any]) -> None:
    """Writes one step through Orbax (temporary directory, then atomic commit)."""
    args = ocp.args.Composite(**{_STATE_ITEM: ocp.args.StandardSave(state),
                                 _META_ITEM: ocp.args.JsonSave(dict(meta))})
    try:
      self._manager.reload()  # Orbax caches the step list; the directory is the truth
      self._manager.save(step, args=args, force=True)
      self._manager.wait_until_finished()
    except Exception as e:
      raise CheckpointError(f'Saving step {step} to {self._directory} failed: {e}. Earlier '
                            'checkpoints are untouched; check disk space and permissions.') from e

  def _prune(self) -> None:
    """Deletes committed steps older than the newest `keep` ones: each is first renamed to
    ``<step>.pruning`` (one atomic rename: the step is never half there), then removed; a kill in
    between leaves only a ``.pruning`` folder, which the next ``repair`` removes."""
    steps = self.all_steps()
    if len(steps) <= self._keep:
      return
    for step in steps[:-self._keep]:
      doomed = self._directory / f'{step}{_PRUNING_SUFFIX}'
      (self._directory / str(step)).rename(doomed)
      doomed.rmtree()
    self._manager.reload()  # Orbax caches the step list; the directory is the truth

  # ------------------------------------------------------------------------------ repair

  def repair(self, aside: str | os.PathLike) -> list[str]:
    """Finds what an interrupted save or prune left and deals with it before the run goes on:
    step folders without a commit marker or metadata are moved into ``aside`` (never deleted),
    leftovers of a prune (``<step>.pruning``) are removed. Returns one line per action."""
    actions = []
    if not self._directory.exists():
      return actions
    for path in sorted(self._directory.iterdir(), key=lambda p: p.name):
      if path.name.endswith(_PRUNING_SUFFIX) and path.is_dir():
        path.rmtree()
        actions.append(f'removed {path} (left by an interrupted prune of an old step)')
      elif path.name.isdigit() and path.is_dir() and not self._is_complete(path):
        actions.append(f'moved the incomplete step {path} (no commit marker or metadata) to '
                       f'{self._move_aside(path, aside)}')
    self._manager.reload()
    return actions

  def set_aside_after(self, step: int, aside: str | os.PathLike) -> list[str]:
    """Moves every committed step newer than ``step`` into ``aside`` (never deleted), so that a
    run restored at ``step`` saves its later steps here again. Returns one line per step moved."""
    moved = [f'moved step {s} to {self._move_aside(self._directory / str(s), aside)}'
             for s in self.all_steps() if s > step]
    self._manager.reload()
    return moved

  @staticmethod
  def _move_aside(path: epath.Path, aside: str | os.PathLike) -> epath.Path:
    """Renames ``path`` into the folder ``aside`` (created), never overwriting."""
    folder = epath.Path(os.fspath(aside))
    folder.mkdir(parents=True, exist_ok=True)
    target, n = folder / path.name, 1
    while target.exists():
      target, n = folder / f'{path.name}.{n}', n + 1
    path.rename(target)
    return target

  # ------------------------------------------------------------------------------ restore

  def restore(self, abstract_state, step: int | None = None):
    """Restores a checkpoint into the structure, dtypes and shardings of `abstract_state`.

    Args:
      abstract_state: pytree of `jax.ShapeDtypeStruct` (e.g. from `jax.eval_shape`), optionally
        with `.sharding` set; concrete arrays are accepted too. Leaves without a sharding are
        restored onto the first local device.
      step: which step; the latest committed one if None.

    Returns:
      The state, with the tree structure of `abstract_state`.

    Raises:
      CheckpointError: no (such) checkpoint, or it is corrupt.
      CheckpointMismatchError: fingerprint or leaf paths/shapes/dtypes differ.
    """
    step = self._pick_step(step)
    meta = self._read_meta(step)
    self._check_compatible(meta, _leaf_specs(abstract_state), f'restore step {step}')
    self._checked_existing = self._checked_existing or step == self.latest_step()
    target = jax.tree.map(_abstract_leaf, abstract_state)
    try:
      restored = self._manager.restore(
          step, args=ocp.args.Composite(**{_STATE_ITEM: ocp.args.StandardRestore(target)}))
    except Exception as e:
      raise self._corrupt(step, f'its arrays cannot be read ({type(e).__name__}: {e})') from e
    return restored[_STATE_ITEM]

  def _pick_step(self, step: int | None) -> int:
    """Returns the step to restore, or raises CheckpointError listing what is available."""
    steps = self.all_steps()
    if step is None:
      if not steps:
        raise CheckpointError(f'No checkpoint in {self._directory}. Check --workdir, or call '
                              'latest_step() first and start from scratch when it is None.')
      return steps[-1]
    step = self._check_step(step)
    if step not in steps:
      raise CheckpointError(f'No checkpoint for step {step} in {self._directory}; available '
                            f'steps: {steps}.')
    return step

  # ------------------------------------------------------------------------------ lifetime

  def close(self) -> None:
    """Waits for pending Orbax work and releases its resources."""
    self._manager.close()

  def __enter__(self) -> CheckpointManager:
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()

  def __repr__(self) -> str:
    return f'CheckpointManager({str(self._directory)!r}, keep={self._keep})'
