"""The hooks a run offers the one driver (``jaxnas.driver.run``): ``Program`` and ``Due``.

A search, vmapped seeds, NAO-V2 and training from scratch each subclass ``Program``; the library's
modules import this module, never the driver.
"""
from __future__ import annotations

import abc
import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from jaxnas import sharding


class RunError(RuntimeError):
  """A run cannot start or go on as asked (its workdir, its lock, a divergence); the message is one
  line naming the problem and the fix, and nothing the user has was changed."""


@dataclasses.dataclass(frozen=True)
class Due:
  """What the driver does after a step: log its metrics, evaluate, checkpoint."""
  log: bool = False
  evaluate: bool = False
  checkpoint: bool = False


class Program(abc.ABC):
  """The hooks the driver runs. Subclasses set ``config`` and ``parallel`` and implement the
  abstract methods; the others have defaults.

  Attributes:
    config: the run's config (``keep_checkpoints`` is read here).
    parallel: the device mesh (placement of fresh and restored states).
    total: units of work in the whole run (progress and ETA).
    retired_keys: fingerprint keys older checkpoints may still carry (they resume).
  """
  config: ml_collections.ConfigDict
  parallel: sharding.DataParallel
  total: int = 0
  retired_keys: tuple[str, ...] = ()

  # ------------------------------------------------------------------ start
  @classmethod
  def validate(cls, config: ml_collections.ConfigDict) -> None:
    """Checks the program's own config fields before anything is loaded or compiled (one-line
    errors naming the field and the fix; default: nothing beyond the shared checks)."""

  @abc.abstractmethod
  def open(self, workdir: str, position: int) -> None:
    """Opens the program's logs in ``workdir``, cut back to ``position`` (the restored
    checkpoint's units; 0 for a fresh run): whatever a log holds beyond it was written after that
    checkpoint and is recomputed now, so the workdir reads as one uninterrupted run."""

  @abc.abstractmethod
  def fingerprint(self) -> dict[str, Any]:
    """What a checkpoint must agree with to be resumed (``checkpoint.CheckpointManager``)."""

  @abc.abstractmethod
  def fresh_state(self) -> Any:
    """The state at position 0 (not yet placed on the mesh)."""

  def abstract_state(self, position: int = 0) -> Any:
    """A state of the structure a checkpoint at ``position`` holds, to restore into (default:
    ``fresh_state()``; a program whose state changes shape on the way, like a search in supernet
    stages, maps it)."""
    del position
    return self.fresh_state()

  @abc.abstractmethod
  def position(self, state: Any) -> int:
    """The units of work ``state`` has done (read once, at the start)."""

  def announce(self, state: Any, position: int, resumed: bool) -> None:
    """Prints the run's start lines (default: nothing)."""

  def compile(self) -> None:
    """Builds the jitted functions (compiled by the first call; default: nothing)."""

  # ------------------------------------------------------------------ steps
  def finished(self, position: int) -> bool:
    """Whether the run is done at ``position`` (default: ``position >= total``)."""
    return position >= self.total

  @abc.abstractmethod
  def step(self, state: Any, position: int) -> tuple[Any, Any]:
    """One unit of work at ``position``: ``(state, metrics)`` (metrics stay on device)."""

  @abc.abstractmethod
  def due(self, done: int) -> Due:
    """What follows the step that brought the run to ``done`` units."""

  def healthy(self, metrics: Any) -> jax.Array:
    """Whether a step's metrics show a sound step (traced; default: every floating metric is
    finite). The driver stops the run at the first unhealthy step."""
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(metrics)
              if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)

  def log(self, done: int, metrics: Any, perf: dict[str, float]) -> None:
    """Logs a step's metrics (``perf``: steps per second and ETA; default: nothing)."""

  def evaluate(self, done: int, state: Any) -> bool:
    """Evaluates at ``done``; returns whether the run stops early (default: no evaluation)."""
    return False

  # ------------------------------------------------------------------ end
  @abc.abstractmethod
  def finish(self, state: Any) -> dict[str, Any]:
    """Writes and returns the run's result (``result.json``)."""

  def info(self, message: str) -> None:
    """A console line (process 0)."""
    if jax.process_index() == 0:
      print(message, flush=True)
