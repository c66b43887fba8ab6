"""``python -m jaxnas.train --config_help [--config=FILE]``: every config field, its value, its meaning.

The meanings are the trailing ``# comments`` of the ``config.<field> = value`` lines (and the
comment-only lines under them) in ``configs/default.py``, the one config schema, and in the config
file given (for its own fields, e.g. the evaluation configs' ``optimizer``).
"""
from __future__ import annotations

import os
import re

import ml_collections

_ASSIGNMENT = re.compile(r"^\s*config\.([\w.]+)\s*=\s*(.*?)\s*(?:#\s?(.*))?$")
_CONTINUATION = re.compile(r"^\s*#\s?(.*)$")
# Old names kept in the configs only so that setting one raises, naming its config.backend field.
RETIRED = ("space.unroll", "space.remat", "space.remat_scope", "mesh.cpu_devices",
           "xla_cpu_scheduler")


def default_config_path() -> str:
  """``configs/default.py`` of the repository this package lives in."""
  return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs",
                      "default.py")


def meanings(path: str) -> tuple[dict[str, str], set[str]]:
  """``({dotted field: meaning}, {every field assigned})`` from the ``config.x = ...`` lines of
  ``path``: a line's trailing comment, continued by comment-only lines indented under it.

  The first commented assignment of a field wins (``configs/default.py``'s ``smoke`` comments
  say why it changes a value, not what the field means). Only text after ``#`` is read.
  """
  notes: dict[str, str] = {}
  assigned: set[str] = set()
  field = None
  with open(path) as f:
    for line in f:
      match = _ASSIGNMENT.match(line)
      if match:
        field, comment = match.group(1), match.group(3)
        assigned.add(field)
        if comment and field not in notes:
          notes[field] = comment.strip()
        else:
          field = None  # nothing to continue
        continue
      more = _CONTINUATION.match(line)
      if more and field is not None and line.startswith(" " * 10):
        notes[field] += " " + more.group(1).strip()
      else:
        field = None
  return notes, assigned


def merged_meanings(config_path: str | None) -> dict[str, str]:
  """The meanings for the fields of ``config_path``'s config.

  A config built on ``default.get_config()`` takes ``configs/default.py``'s meanings, its own
  comments filling gaps; a config with its own schema (``configs/eval_*.py``) takes its own
  comments for the fields it assigns, ``default.py``'s only for the ones it inherits (``mesh``,
  ``distributed``, ``backend``).
  """
  default_notes, _ = meanings(default_config_path())
  if not config_path or not os.path.isfile(config_path):
    return default_notes
  notes, assigned = meanings(config_path)
  with open(config_path) as f:
    derives = "default.get_config(" in f.read()
  if derives:
    return {**notes, **default_notes}
  return {**{k: v for k, v in default_notes.items() if k not in assigned}, **notes}


def describe(config: ml_collections.ConfigDict, notes: dict[str, str]) -> str:
  """``field = value  # meaning`` for every leaf of ``config``, grouped by top-level section."""
  lines: list[str] = []
  section = None
  for field, value in _leaves(config):
    if field in RETIRED:
      continue
    top = field.split(".")[0] if "." in field else ""
    if top != section:
      lines.append(f"\n[{top}]" if top else "[top level]")
      section = top
    note = notes.get(field)
    lines.append(f"{field} = {value!r}" + (f"  # {note}" if note else ""))
  return "\n".join(lines).lstrip("\n")


def config_help(config: ml_collections.ConfigDict | None, config_path: str | None) -> str:
  """The listing of ``config`` (or of ``configs/default.py``'s config when None), with meanings
  from ``configs/default.py`` and, for fields it lacks, from ``config_path``."""
  default_path = default_config_path()
  if not os.path.isfile(default_path):
    raise FileNotFoundError(f"{default_path} is missing (jaxnas installed without its configs/); "
                            "run from a clone of the repository to list the config fields.")
  notes = merged_meanings(config_path)
  if config is None:
    from configs import default  # the repository root is on sys.path under python -m
    config = default.get_config()
  header = (f"Config fields of {config_path or default_path} (override any with "
            "--config.<field>=<value>):")
  return header + "\n" + describe(config, notes)


def _leaves(config: ml_collections.ConfigDict, prefix: str = ""):
  """``(dotted field, value)`` of every leaf, top-level scalars first, then each section."""
  items = list(config.items())
  for key, value in items:
    if not isinstance(value, ml_collections.ConfigDict):
      yield f"{prefix}{key}", value
  for key, value in items:
    if isinstance(value, ml_collections.ConfigDict):
      yield from _leaves(value, f"{prefix}{key}.")
