"""The one functional boundary to the Linen supernets: weights and BN state are separate pytrees.

``apply`` is the only way the search code runs a supernet: a pure function of
``(weights, model_state, x, mixing)``; the module never owns the architecture.

Mixed precision (``apply(..., compute_dtype='bfloat16')``, ``config.compute_dtype``): the weights
stay float32 (the master copy the optimizers update; their gradients come back float32 through the
casts) and only the forward runs in bfloat16, with explicit casts so it also runs under JAX's
strict dtype promotion:

* the input and every convolution / linear ``kernel`` (and a linear layer's ``bias``) are cast to
  bfloat16, and every ``nn.Conv`` / ``nn.Dense`` casts its input to bfloat16;
* BatchNorm runs in float32 (its input is cast up, its output back down): its scale, bias and
  running statistics stay float32, so ``model_state`` is float32 and its updates are exact;
* the modules that average-pool (``ops.Pool``, the stride-2 ``ops.ResNetBasicBlock``) take a
  float32 input, since Flax's ``avg_pool`` divides by float32 window counts (their convolutions
  still run in bfloat16 and they return bfloat16);
* the logits are returned as float32 (the loss is computed in float32).
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxnas.spaces import ops as ops_lib

COMPUTE_DTYPES = ("float32", "bfloat16")
_LOW_PRECISION_INPUT_MODULES = (nn.Conv, nn.Dense)


def _runs_in_float32(module: nn.Module) -> bool:
  """Modules whose arithmetic mixes in float32 state or constants: they get a float32 input and
  return the compute dtype (BatchNorm: float32 statistics; average pools: Flax's float32 window
  counts, in ``ops.Pool`` and the stride-2 shortcut of ``ops.ResNetBasicBlock``)."""
  if isinstance(module, (nn.BatchNorm, ops_lib.Pool)):
    return True
  return isinstance(module, ops_lib.ResNetBasicBlock) and module.stride != 1


def init(module: nn.Module, key: jax.Array, sample_x: jax.Array, mixing: Any
         ) -> tuple[Any, Any]:
  """Initialises ``(weights, model_state)``; ``model_state`` is ``{}`` for BN-free modules."""
  variables = module.init(key, sample_x, mixing, train=False)
  return variables["params"], variables.get("batch_stats", {})


def apply(module: nn.Module, weights: Any, model_state: Any, x: jax.Array, mixing: Any, *,
          train: bool, compute_dtype: str | None = None) -> tuple[jax.Array, Any]:
  """Runs the supernet; returns ``(logits, new_model_state)``.

  With ``train=True`` BatchNorm uses batch statistics and the running averages are updated (as
  every training-mode forward does in the PyTorch references); with ``train=False`` the running
  averages are used and ``model_state`` is returned unchanged.

  ``compute_dtype`` (``None`` / ``'float32'``: the plain float32 forward; ``'bfloat16'``): the
  dtype of the forward's convolutions and activations, with float32 master weights, float32
  BatchNorm statistics and float32 logits (module docstring).
  """
  if compute_dtype not in (None, "float32"):
    return _apply_mixed(module, weights, model_state, x, mixing, train=train,
                        dtype=jnp.dtype(check_compute_dtype(compute_dtype)))
  variables = {"params": weights, "batch_stats": model_state}
  if not train:
    return module.apply(variables, x, mixing, train=False), model_state
  logits, updates = module.apply(variables, x, mixing, train=True, mutable=["batch_stats"])
  return logits, updates.get("batch_stats", model_state)


def check_compute_dtype(compute_dtype: str) -> str:
  """Returns ``compute_dtype`` if it is one of ``COMPUTE_DTYPES``, else raises ValueError."""
  if compute_dtype not in COMPUTE_DTYPES:
    raise ValueError(f"compute_dtype={compute_dtype!r} is not valid; choose one of: "
                     f"{', '.join(COMPUTE_DTYPES)}.")
  return compute_dtype


def cast_weights(weights: Any, dtype: Any) -> Any:
  """``weights`` with every ``kernel`` (and the ``bias`` beside a kernel) cast to ``dtype``.

  Everything else (BatchNorm ``scale`` / ``bias``) is left float32, see the module docstring.
  """
  if not isinstance(weights, dict) and not hasattr(weights, "items"):
    return weights
  has_kernel = "kernel" in weights
  return {name: (leaf.astype(dtype) if name == "kernel" or (name == "bias" and has_kernel)
                 else cast_weights(leaf, dtype))
          for name, leaf in weights.items()}


def _apply_mixed(module: nn.Module, weights: Any, model_state: Any, x: jax.Array, mixing: Any, *,
                 train: bool, dtype: Any) -> tuple[jax.Array, Any]:
  """``apply`` with a ``dtype`` forward on float32 master weights (module docstring)."""

  def cast_input(args, to):
    if args and isinstance(args[0], jax.Array) and jnp.issubdtype(args[0].dtype, jnp.floating):
      return (args[0].astype(to),) + tuple(args[1:])
    return args

  def interceptor(next_fun, args, kwargs, context):
    if context.method_name != "__call__":
      return next_fun(*args, **kwargs)
    if _runs_in_float32(context.module):
      return next_fun(*cast_input(args, jnp.float32), **kwargs).astype(dtype)
    if isinstance(context.module, _LOW_PRECISION_INPUT_MODULES):
      return next_fun(*cast_input(args, dtype), **kwargs)
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(interceptor):
    logits, model_state = apply(module, cast_weights(weights, dtype), model_state,
                                x.astype(dtype), mixing, train=train)
  return logits.astype(jnp.float32), model_state


def num_params(weights: Any) -> int:
  """Total number of scalars in a weights pytree."""
  return sum(int(leaf.size) for leaf in jax.tree.leaves(weights))
