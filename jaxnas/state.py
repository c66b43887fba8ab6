"""The search state: one frozen pytree holding everything needed to continue a search bit for bit."""
from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp


@flax.struct.dataclass
class SearchState:
  """All arrays of a search (``shared/DESIGN.md`` §3).

  Attributes:
    step: number of completed search steps (int32 scalar).
    weights: supernet parameters.
    model_state: BatchNorm running statistics.
    arch: raw architecture parameters (alpha), e.g. ``{'cell': (6, 5)}``.
    weights_opt_state, arch_opt_state: optax states of the two optimizers.
    method_state: the parts' states (``'schedule'``, ``'regularizers'``, the pruning ``'mask'``:
      ``steps.init_method_state``) and a method's own (RARTS' second weights); ``{}`` if none.
    key: raw PRNG key data (uint32), split every step for augmentation and sampling.
  """
  step: jax.Array
  weights: Any
  model_state: Any
  arch: Any
  weights_opt_state: Any
  arch_opt_state: Any
  method_state: Any
  key: jax.Array


def create_search_state(*, weights: Any, model_state: Any, arch: Any, weights_tx, arch_tx,
                        key: jax.Array, method_state: Any = None) -> SearchState:
  """A fresh state at step 0 with initialised optimizer states."""
  return SearchState(
      step=jnp.zeros((), jnp.int32), weights=weights, model_state=model_state, arch=arch,
      weights_opt_state=weights_tx.init(weights), arch_opt_state=arch_tx.init(arch),
      method_state={} if method_state is None else method_state,
      key=jax.random.key_data(key))
