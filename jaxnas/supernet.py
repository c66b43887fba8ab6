"""The one functional boundary to the Linen supernets: weights and BN state are separate pytrees.

``apply`` is the only way the search code runs a supernet: a pure function of
``(weights, model_state, x, mixing)``; the module never owns the architecture.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax


def init(module: nn.Module, key: jax.Array, sample_x: jax.Array, mixing: Any
         ) -> tuple[Any, Any]:
  """Initialises ``(weights, model_state)``; ``model_state`` is ``{}`` for BN-free modules."""
  variables = module.init(key, sample_x, mixing, train=False)
  return variables["params"], variables.get("batch_stats", {})


def apply(module: nn.Module, weights: Any, model_state: Any, x: jax.Array, mixing: Any, *,
          train: bool) -> tuple[jax.Array, Any]:
  """Runs the supernet; returns ``(logits, new_model_state)``.

  With ``train=True`` BatchNorm uses batch statistics and the running averages are updated (as
  every training-mode forward does in the PyTorch references); with ``train=False`` the running
  averages are used and ``model_state`` is returned unchanged.
  """
  variables = {"params": weights, "batch_stats": model_state}
  if not train:
    return module.apply(variables, x, mixing, train=False), model_state
  logits, updates = module.apply(variables, x, mixing, train=True, mutable=["batch_stats"])
  return logits, updates.get("batch_stats", model_state)


def num_params(weights: Any) -> int:
  """Total number of scalars in a weights pytree."""
  return sum(int(leaf.size) for leaf in jax.tree.leaves(weights))
