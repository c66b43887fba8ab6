"""The search-space contract shared by every space (``shared/DESIGN.md`` §3, §7).

A space knows its candidate operations, the shapes of its architecture pytree, how to build the
weight-sharing supernet (a Linen module taking ``mixing`` as an argument, never owning alpha), and how
to turn mixing weights into a discrete genotype and back from its string form. It also owns how it
is read from a run config: which ``config.space`` fields are its options (``options_from``), which
are its supernet's sizes (``supernet_sizes``), the discrete cell as one-hot mixing weights
(``discretize``) and its stand-alone network at the sizes of ``config.network`` (``network_from``),
so that the drivers build any registered space without knowing its name.
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


def parse_ops(text: str) -> tuple[str, ...] | None:
  """``config.space.ops`` (comma-separated names) as a tuple; None for '' (the full op set)."""
  return tuple(op.strip() for op in text.split(",") if op.strip()) or None


class SearchSpace:
  """Base class: op-set handling, alpha initialisation and validation for a concrete space.

  Subclasses set ``name`` and ``all_ops`` and implement ``arch_shapes``, ``supernet``, ``derive``,
  ``discretize`` (the one-hot of the derived cell; prox / ADMM pull the leaves ``cell_keys()``
  names toward it) and ``parse_genotype``; to be built from a run config
  (``jaxnas.spaces.register``) also ``supernet_sizes`` (and ``options_from`` when the space has
  options besides ``ops``), and, for ``mode='eval'`` runs, ``network_from``.

  Class attributes read by ``jaxnas.backends`` (the CPU defaults of ``config.backend``):
  ``cpu_loops``, the ``unroll`` / ``remat`` / ``remat_scope`` a CPU run takes when they are
  'auto'; ``remat_scopes``, the scopes its supernet can rematerialize ('edge' only where the cells
  scan their edges).
  """
  name: str = ""
  all_ops: tuple[str, ...] = ()
  cpu_loops: Mapping[str, Any] = {"unroll": True, "remat": False, "remat_scope": "cell"}
  remat_scopes: tuple[str, ...] = ("cell",)
  plots_genotype: bool = True  # whether ``jaxnas.reports.plot_genotype`` draws its genotypes

  # -- built from a run config --------------------------------------------------------------------
  @classmethod
  def options_from(cls, config: Any) -> dict[str, Any]:
    """The constructor options this space reads from a run config (here: ``config.space.ops``).

    Args:
      config: the run's ``ml_collections.ConfigDict`` (``configs/default.py``).
    """
    ops = parse_ops(config.space.ops)
    return {"ops": ops} if ops else {}

  @classmethod
  def from_config(cls, config: Any) -> "SearchSpace":
    """The space with the options of ``config`` (``options_from``); ValueError names the field."""
    return cls(**cls.options_from(config))

  def supernet_sizes(self, space_config: Any) -> dict[str, Any]:
    """The keyword arguments of ``supernet`` read from ``config.space`` (channels, depth, ...)."""
    raise NotImplementedError(f"The {self.name!r} space does not say which config.space fields "
                              "size its supernet: implement supernet_sizes.")

  def backend_options(self, backend: Any) -> dict[str, Any]:
    """The keyword arguments of ``supernet`` taken from a resolved ``jaxnas.backends.Backend``."""
    return backend.supernet_options()

  def supernet_from(self, config: Any, backend: Any, num_classes: int) -> nn.Module:
    """The supernet at the sizes of ``config.space`` with the kernels, loops and remat of
    ``backend`` (``jaxnas.backends.resolve(config)``), for ``num_classes`` classes."""
    return self.supernet(num_classes=num_classes, **self.supernet_sizes(config.space),
                         **self.backend_options(backend))

  def discretize(self, mixing: Mapping[str, Any]) -> dict[str, Any]:
    """The derived cell as mixing weights: the pytree of ``arch_shapes`` with the one-hot row of
    each chosen op on each kept edge (zero rows on dropped edges). Jit-able, no gradient; the
    supernet run on it is the network of ``derive(mixing)``."""
    raise NotImplementedError

  def cell_keys(self) -> tuple[str, ...]:
    r"""The top-level architecture leaves that are op-weight cells: (rows, ops) matrices whose
    ``discretize`` rows are one-hot. Prox and ADMM pull these toward ``discretize(mixing)``
    (``jaxnas.parts.CellProjection``: :math:`R = \rho/2 \sum_c \|A_c - Z(A)_c\|`). Default:
    every top-level array leaf of ``arch_shapes`` (nested dicts, such as PC-DARTS' edge weights
    beta, are not cells); override to project fewer."""
    return tuple(k for k, v in self.arch_shapes().items() if not isinstance(v, Mapping))

  @classmethod
  def check_network_config(cls, config: Any) -> None:
    """Raises ValueError (naming the field) on an eval config this space's network cannot use."""
    if config.get("dropout_prob", 0.0):
      raise ValueError(f"config.dropout_prob={config.dropout_prob} is only used by NAO networks; "
                       f"the {cls.name} network has no dropout (set it to 0).")

  @classmethod
  def network_macs(cls, module: nn.Module, image_shape: tuple[int, ...]) -> int:
    """Multiply-adds of the eval-mode forward of ``network_from``'s module: its convolution and
    dense layers (``jaxnas.reports.count_macs``)."""
    from jaxnas import reports  # local import: reports imports the networks
    return reports.count_macs(module, image_shape)

  @classmethod
  def network_from(cls, config: Any, genotype: Any, num_classes: int, kernels: str) -> nn.Module:
    """The stand-alone network of ``genotype`` at the sizes of ``config.network`` (an eval
    config), under the evaluation contract ``(x, *, train, drop_path_prob) -> (logits, aux)``."""
    raise NotImplementedError(f"The {cls.name!r} space has no stand-alone network for "
                              "mode='eval' runs: implement network_from.")

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
