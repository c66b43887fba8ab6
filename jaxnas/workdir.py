"""The workdir as the user's record of one run: its identity (the config it was started with and
every change made on resume), a lock against a second run, and logs cut back to the checkpoint.

Files (process 0 writes them):

* ``config.json``: the config the run was **started** with; never rewritten.
* ``config_history.jsonl``: one line per resume that changed a field: the step it took effect at,
  each changed field ``{"old", "new"}``, and whether ``config.resume.allow_changes`` allowed it or
  it is a reporting field (``REPORTING_FIELDS``) that changes no computed value. Append-only.
* ``.lock``: held (``fcntl.flock``) by the running process, with its pid, host and start time.

A rerun compares its config with ``config.json`` plus the history. A changed field that
``config.resume.allow_changes`` does not name is refused with every changed field listed
(``old -> new``), before anything is loaded, and nothing on disk changes. Fields only one side has
(added or retired by another jaxnas version) and ``REPORTING_FIELDS`` are recorded, not refused.
"""
from __future__ import annotations

import datetime
import errno
import json
import math
import os
import socket
from typing import Any, Mapping

import jax
import ml_collections

from jaxnas.program import RunError

CONFIG_FILE = "config.json"
HISTORY_FILE = "config_history.jsonl"
LOCK_FILE = ".lock"
# Fields that change how far a run goes, how often it reports and where it reads from, but no
# computed value: a resume may change them without permission (each change is still recorded).
REPORTING_FIELDS = ("max_steps", "log_every_steps", "checkpoint_every_steps", "keep_checkpoints",
                    "data.data_dir", "data.prefetch", "plots")
# Fields never compared: the resume options themselves, and per-process multi-host settings.
UNCOMPARED_PREFIXES = ("resume.", "distributed.")


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  """``{'a': {'b': 1}} -> {'a.b': 1}`` (JSON-normalised values: tuples become lists)."""
  flat: dict[str, Any] = {}
  for key, value in tree.items():
    name = f"{prefix}{key}"
    if isinstance(value, Mapping):
      flat.update(flatten(value, name + "."))
    else:
      flat[name] = json.loads(json.dumps(value, default=str))
  return flat


def compared(flat: Mapping[str, Any]) -> dict[str, Any]:
  """The fields that make a run's identity (not ``UNCOMPARED_PREFIXES``)."""
  return {k: v for k, v in flat.items() if not k.startswith(UNCOMPARED_PREFIXES)}


def read_record(workdir: str) -> dict[str, Any] | None:
  """The config the workdir's run has now: ``config.json`` with the history's changes applied
  (flattened), or None for a new workdir."""
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      flat = flatten(json.load(f))
  except (OSError, ValueError) as e:
    raise RunError(f"{path} cannot be read ({e}); it records the run's config. Restore it, or use "
                   "a new --workdir.") from e
  for entry in read_history(workdir):
    for field, change in entry["changes"].items():
      flat[field] = change["new"]
  return flat


def read_history(workdir: str) -> list[dict[str, Any]]:
  """The resume changes recorded in ``config_history.jsonl`` (oldest first)."""
  path = os.path.join(workdir, HISTORY_FILE)
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def allowed_fields(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  """``config.resume.allow_changes`` as a tuple of field names (``'*'``: any field)."""
  text = config.get("resume", {}).get("allow_changes", "") if "resume" in config else ""
  return tuple(name.strip() for name in text.split(",") if name.strip())


def _shown(value: Any) -> str:
  return "(absent)" if value is _ABSENT else json.dumps(value)


_ABSENT = object()


def config_changes(config: ml_collections.ConfigDict, workdir: str
                   ) -> dict[str, tuple[Any, Any]]:
  """``{field: (old, new)}`` for every compared field that differs from the workdir's record
  (empty for a new workdir)."""
  record = read_record(workdir)
  if record is None:
    return {}
  old, new = compared(record), compared(flatten(config.to_dict()))
  return {k: (old.get(k, _ABSENT), new.get(k, _ABSENT)) for k in sorted(set(old) | set(new))
          if old.get(k, _ABSENT) != new.get(k, _ABSENT)}


def version_change(old: Any, new: Any) -> bool:
  """A field the record lacks (added by a newer jaxnas, at its default: a user cannot add a field)
  or that this config lacks (retired): recorded on resume, never refused."""
  return old is _ABSENT or new is _ABSENT


def check_identity(config: ml_collections.ConfigDict, workdir: str) -> dict[str, tuple[Any, Any]]:
  """Refuses a rerun whose config differs from the workdir's record in a field that neither
  ``config.resume.allow_changes`` names nor ``REPORTING_FIELDS`` holds; returns the changes
  (to record once the run has resumed). Reads only: nothing on disk changes."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise RunError(f"--workdir={workdir} is a file, not a directory; choose another --workdir.")
  changes = config_changes(config, workdir)
  allowed = allowed_fields(config)
  unknown = [f for f in allowed if f != "*" and f not in flatten(config.to_dict())]
  if unknown:
    raise RunError(f"config.resume.allow_changes names {', '.join(unknown)}, which is not a "
                   "config field; name fields as --config.<field> does (e.g. 'epochs,"
                   "weights_optimizer.learning_rate').")
  refused = {k: v for k, v in changes.items()
             if k not in REPORTING_FIELDS and "*" not in allowed and k not in allowed
             and not version_change(*v)}
  if refused:
    listed = "; ".join(f"{k}: {_shown(old)} -> {_shown(new)}" for k, (old, new) in refused.items())
    raise RunError(
        f"{workdir} holds a run started with another config; changed: {listed}. Nothing was "
        f"changed on disk. Rerun with the recorded values ({os.path.join(workdir, CONFIG_FILE)}), "
        "allow the changes with --config.resume.allow_changes="
        f"{','.join(refused)} (recorded in {HISTORY_FILE}), or use a new --workdir.")
  return changes


def record_start(config: ml_collections.ConfigDict, workdir: str,
                 changes: Mapping[str, tuple[Any, Any]], step: int) -> None:
  """Writes ``config.json`` for a new run, or appends the resume's changes (taking effect at
  ``step``) to ``config_history.jsonl``. Process 0 only."""
  if jax.process_index() != 0:
    return
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    with open(path, "w") as f:
      json.dump(config.to_dict(), f, indent=2, sort_keys=True, default=str)
    return
  if not changes:
    return
  allowed = allowed_fields(config)
  entry = {"time": _now(), "step": int(step), "changes": {
      k: {"old": None if old is _ABSENT else old, "new": None if new is _ABSENT else new,
          "by": why_allowed(k, old, new, allowed)}
      for k, (old, new) in changes.items()}}
  with open(os.path.join(workdir, HISTORY_FILE), "a") as f:
    f.write(json.dumps(entry) + "\n")


def why_allowed(field: str, old: Any, new: Any, allowed: tuple[str, ...]) -> str:
  """Why a recorded change was allowed."""
  if field in allowed or "*" in allowed:
    return "config.resume.allow_changes"
  if version_change(old, new):
    return "a field added or retired by another jaxnas version"
  return "reporting field"


def _now() -> str:
  return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


# ------------------------------------------------------------------------------------------------
# The lock


class Lock:
  """An exclusive lock on a workdir (``fcntl.flock`` on ``.lock``; process 0), released when the
  run ends or its process dies. A second run on the same workdir is refused with the holder's pid,
  host and start time."""

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, LOCK_FILE)
    self.fd: int | None = None

  def acquire(self) -> "Lock":
    if jax.process_index() != 0:
      return self
    import fcntl  # local import: POSIX only
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      os.close(fd)
      if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
        raise
      raise RunError(f"{os.path.dirname(self.path)} is in use by another run ({self.holder()}); "
                     "wait for it to end or stop it. If no such process runs (a file system "
                     f"without locks), delete {self.path}.") from None
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "started": _now()}).encode())
    self.fd = fd
    return self

  def holder(self) -> str:
    """Who holds the lock, as its file says."""
    try:
      with open(self.path) as f:
        info = json.load(f)
      return f"pid {info['pid']} on {info['host']}, started {info['started']}"
    except (OSError, ValueError, KeyError):
      return "holder unknown"

  def release(self) -> None:
    if self.fd is not None:
      os.close(self.fd)  # closing releases the flock; the file stays (it records the last run)
      self.fd = None


# ------------------------------------------------------------------------------------------------
# Logs cut back to the checkpoint


def cut_jsonl(path: str, *, last: int, key: str = "step") -> int:
  """Removes the lines of a JSON-lines log whose ``key`` exceeds ``last`` (written after the
  checkpoint the run resumes from), atomically; returns how many were removed. Lines without
  ``key`` are kept."""
  if jax.process_index() != 0 or not os.path.exists(path):
    return 0
  with open(path) as f:
    lines = [line for line in f if line.strip()]
  kept = [line for line in lines if json.loads(line).get(key, -math.inf) <= last]
  if len(kept) == len(lines):
    return 0
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.writelines(kept)
  os.replace(tmp, path)
  return len(lines) - len(kept)
