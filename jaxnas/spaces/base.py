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


ShapeTree = Mapping[str, Any]  # str -> shape tuple, or str -> a nested ShapeTree


def shape_leaves(shapes: ShapeTree, prefix: tuple[str, ...] = ()
                 ) -> list[tuple[tuple[str, ...], tuple[int, ...]]]:
  """The leaves of a (possibly nested) dict of shapes as ``(key_path, shape)``, sorted by path."""
  leaves = []
  for key, value in shapes.items():
    if isinstance(value, Mapping):
      leaves.extend(shape_leaves(value, prefix + (key,)))
    else:
      leaves.append((prefix + (key,), tuple(value)))
  return sorted(leaves)


def _path_str(path: tuple[str, ...]) -> str:
  return "/".join(path)


def check_mixing(mixing: Mapping[str, Any], shapes: ShapeTree, space: str,
                 _path: tuple[str, ...] = ()) -> Mapping[str, Any]:
  """Validates that ``mixing`` (or ``arch``) has exactly the keys and shapes of the space.

  ``shapes`` may be nested (a dict value is a sub-dict of leaves, e.g. PC-DARTS' per-node edge
  weights); ``mixing`` must then have the same nesting.

  Raises:
    ValueError naming the missing/unexpected keys or the wrong shape, and the expected layout.
  """
  where = f" under {_path_str(_path)!r}" if _path else ""
  if not isinstance(mixing, Mapping):
    raise ValueError(f"The {space!r} space expects architecture weights{where} as a dict "
                     f"{dict(shapes)}, got {type(mixing).__name__}.")
  if set(mixing) != set(shapes):
    raise ValueError(f"The {space!r} space expects architecture keys{where} {sorted(shapes)}, "
                     f"got {sorted(mixing)} (expected shapes: {dict(shapes)}).")
  for key, shape in shapes.items():
    if isinstance(shape, Mapping):
      check_mixing(mixing[key], shape, space, _path + (key,))
      continue
    if isinstance(mixing[key], Mapping):
      raise ValueError(f"Architecture entry {_path_str(_path + (key,))!r} of the {space!r} space "
                       f"is a dict; expected an array of shape {tuple(shape)}.")
    got = tuple(np.shape(mixing[key]))
    if got != tuple(shape):
      what = "(edges x operations)" if len(shape) == 2 else "(one weight per incoming edge)"
      raise ValueError(f"Architecture entry {_path_str(_path + (key,))!r} of the {space!r} space "
                       f"has shape {got}; expected {tuple(shape)} {what}.")
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

  def arch_shapes(self) -> dict[str, Any]:
    """The shape of each leaf of the architecture pytree (a dict; values may be nested dicts).

    Every leaf is a set of simplex rows along its last axis (the parametrizations act per row).
    """
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
    leaves = shape_leaves(self.arch_shapes())
    keys = jax.random.split(key, len(leaves))
    arch: dict[str, Any] = {}
    for k, (path, shape) in zip(keys, leaves):  # sorted by path: flat dicts keep the key order
      node = arch
      for name in path[:-1]:
        node = node.setdefault(name, {})
      node[path[-1]] = param.init(k, shape)
    return arch

  def flat_arch_shapes(self) -> dict[str, tuple[int, ...]]:
    """``arch_shapes()`` flattened to ``{'a/b': shape}`` (nested keys joined by ``/``)."""
    return {_path_str(path): shape for path, shape in shape_leaves(self.arch_shapes())}

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
