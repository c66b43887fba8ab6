"""Search methods: how one search step updates the ``SearchState``, and what extra state it keeps.

The search (``jaxnas.search``, run by the one driver) is method-agnostic: it asks the method named by ``config.method`` for

* ``init_method_state(components, state)`` — the method's extra arrays (``state.method_state``:
  schedules, masks, a second weight pytree, ...), checkpointed with everything else;
* ``search_step(state, batches, *, components)`` — the pure, jitted step;
* ``mixing(components, state)`` — the mixing weights the genotype is derived from;
* ``eval_step(state, images, labels, *, components)`` — the per-epoch supernet evaluation.

``SearchMethod`` runs the one step skeleton ``steps.search_step`` on the parts that
``steps.SearchComponents`` carries (weight phase, parametrization, estimator, optimizers, schedule,
regularizers, pruning; read by ``jaxnas.methods.compose``): DARTS first/second order, MiLeNAS,
iDARTS, GAEA, PC-DARTS, DARTS-PRIME (a preset: ``jaxnas.methods.darts_prime``) and RARTS (its two
coupled networks are a weight phase, ``jaxnas.methods.rarts.CoupledNetworks``) are values of it,
and a combination no preset has is a config file. A method registers a builder ``config ->
method`` with ``register`` (it checks the method's config block early) and, if it reads its parts
from its own config block, a reader with ``compose.register_reader``.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import ml_collections

from jaxnas import steps
from jaxnas.state import SearchState


@dataclasses.dataclass(frozen=True)
class SearchMethod:
  """A method run by the step skeleton ``steps.search_step``; its state holds the parts' states."""
  name: str = "darts"

  def init_method_state(self, components: steps.SearchComponents, state: SearchState) -> Any:
    """The parts' states at step 0 (schedule, regularizers, pruning mask, the weight phase's)."""
    return steps.init_state_of_parts(components, state)

  def search_step(self, state: SearchState, batches, *, components: steps.SearchComponents):
    """One pure search step: ``(state, batches) -> (state, metrics)``."""
    return steps.search_step(state, batches, components=components)

  def mixing(self, components: steps.SearchComponents, state: SearchState) -> Any:
    """The mixing weights of the current architecture (what ``space.derive`` reads)."""
    return steps.mixing(components, state)

  def eval_step(self, state: SearchState, images: jax.Array, labels: jax.Array, *,
                components: steps.SearchComponents) -> dict[str, jax.Array]:
    """Loss and correct-prediction sums of the supernet on an evaluation batch."""
    return steps.eval_step(state, images, labels, components=components)


MethodBuilder = Callable[[ml_collections.ConfigDict], SearchMethod]
_BUILDERS: dict[str, MethodBuilder] = {"darts": lambda config: SearchMethod()}


def register(name: str, builder: MethodBuilder) -> None:
  """Makes ``config.method=name`` build its method with ``builder(config)``."""
  _BUILDERS[name] = builder


def method_names() -> tuple[str, ...]:
  """The valid values of ``config.method``."""
  return tuple(_BUILDERS)


def build_method(config: ml_collections.ConfigDict) -> SearchMethod:
  """The method named by ``config.method``; lists the valid names on error."""
  if config.method not in _BUILDERS:
    raise ValueError(f"config.method={config.method!r} is not valid; choose one of: "
                     f"{', '.join(_BUILDERS)}.")
  return _BUILDERS[config.method](config)
