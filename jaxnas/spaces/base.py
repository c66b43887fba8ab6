"""The search-space contract shared by every space (``shared/DESIGN.md`` §3).

A space knows its candidate operations, the shapes of its architecture pytree, how to build the
weight-sharing supernet (a Linen module taking ``mixing`` as an argument, never owning alpha), and how
to turn mixing weights into a discrete genotype and back from its string form.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import numpy as np

from jaxnas.spaces import ops as ops_lib


def check_mixing(mixing: Mapping[str, Any], shapes: Mapping[str, tuple[int, ...]],
                 space: str) -> Mapping[str, Any]:
  """Validates that ``mixing`` (or ``arch``) has exactly the keys and shapes of the space.

  Raises:
    ValueError naming the missing/unexpected keys or the wrong shape, and the expected layout.
  """
  if not isinstance(mixing, Mapping):
    raise ValueError(f"The {space!r} space expects architecture weights as a dict "
                     f"{dict(shapes)}, got {type(mixing).__name__}.")
  if set(mixing) != set(shapes):
    raise ValueError(f"The {space!r} space expects architecture keys {sorted(shapes)}, got "
                     f"{sorted(mixing)} (expected shapes: {dict(shapes)}).")
  for key, shape in shapes.items():
    got = tuple(np.shape(mixing[key]))
    if got != tuple(shape):
      raise ValueError(f"Architecture entry {key!r} of the {space!r} space has shape {got}; "
                       f"expected {tuple(shape)} (edges x operations).")
  return mixing


class SearchSpace:
  """Base class: op-set handling, alpha initialisation and validation for a concrete space.

  Subclasses set ``name`` and ``all_ops`` and implement ``arch_shapes``, ``supernet``, ``derive``
  and ``parse_genotype``.
  """
  name: str = ""
  all_ops: tuple[str, ...] = ()

  def __init__(self, ops: Sequence[str] | None = None):
    """Args: ops: the candidate operations (a subset of ``all_ops``, in that order by default)."""
    self.ops = ops_lib.validate_ops(tuple(ops) if ops else self.all_ops, self.all_ops, self.name)

  def __repr__(self) -> str:
    return f"{type(self).__name__}(ops={self.ops})"

  def arch_shapes(self) -> dict[str, tuple[int, int]]:
    """The shape of each leaf of the architecture pytree."""
    raise NotImplementedError

  def supernet(self, **sizes: Any) -> nn.Module:
    """The weight-sharing supernet module; ``__call__(x, mixing, *, train) -> logits``."""
    raise NotImplementedError

  def derive(self, mixing: Mapping[str, Any]) -> Any:
    """The discrete genotype of the space's derivation rule applied to the mixing weights."""
    raise NotImplementedError

  def parse_genotype(self, text: str) -> Any:
    """Parses the space's genotype string format."""
    raise NotImplementedError

  def init_arch(self, key: jax.Array, parametrization: Any) -> dict[str, jax.Array]:
    """Creates the raw architecture pytree with the parametrization's initialiser.

    Args:
      key: a PRNG key.
      parametrization: a name (``'softmax'``, ``'simplex'``, ...) or a parametrization object.
    """
    from jaxnas import parametrize  # local import: parametrize does not depend on spaces
    param = parametrize.get(parametrization) if isinstance(parametrization, str) else parametrization
    shapes = self.arch_shapes()
    keys = jax.random.split(key, len(shapes))
    return {name: param.init(k, shape) for k, (name, shape) in zip(keys, sorted(shapes.items()))}

  def check_arch(self, arch: Mapping[str, Any]) -> Mapping[str, Any]:
    """Validates an architecture (or mixing) pytree against the space's shapes."""
    return check_mixing(arch, self.arch_shapes(), self.name)

  def _reject_unused(self, unused: Mapping[str, Any]) -> None:
    if unused:
      raise ValueError(f"Unknown size option(s) {sorted(unused)} for the {self.name!r} supernet.")

  def _check_genotype_ops(self, op_names: Sequence[str]) -> None:
    outside = sorted({op for op in op_names if op not in self.ops})
    if outside:
      raise ValueError(f"Genotype uses operation(s) {outside} that are not in this {self.name!r} "
                       f"space's op set {self.ops}.")
