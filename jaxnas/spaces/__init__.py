"""Search spaces by name: one registry, ``SPACES``, that ``config.space.name`` names.

``jaxnas.spaces.get('darts')``, ``jaxnas.spaces.get('nb201', ops=...)``, or from a run config
``jaxnas.spaces.from_config(config)``. The programs (``jaxnas.search``, ``jaxnas.evaluate``,
``jaxnas.nao.search``) and ``jaxnas.backends`` ask the space, never test its name.

**Adding a space** (in the package or in your own code) is one line once the class exists::

    jaxnas.spaces.register("myspace", MySpace)

after which ``--config.space.name=myspace`` searches it with any gradient method. ``MySpace``
subclasses ``jaxnas.spaces.SearchSpace`` (``base.py``) and sets ``name = "myspace"`` and
``all_ops``; it implements

* ``arch_shapes()``: the architecture pytree's leaf shapes (simplex rows along the last axis);
* ``supernet(*, num_classes, unroll, remat, remat_scope, kernels, **sizes)``: a Linen module
  ``(x, mixing, *, train) -> logits``, and ``supernet_sizes(config.space)``, the ``**sizes`` it
  reads from ``config.space``;
* ``derive(mixing) -> genotype``, ``parse_genotype(text)``, and ``discretize(mixing)``: the derived
  cell as a one-hot pytree of ``arch_shapes``, what the prox and ADMM regularizers
  (``jaxnas.parts.CellProjection``) pull alpha to on the leaves ``cell_keys()`` names (default:
  every top-level array leaf); a space without ``discretize`` gets a one-line error from them;
* optionally ``options_from(config)`` (its constructor options; the base reads
  ``config.space.ops``),
  ``network_from(config, genotype, num_classes, kernels)`` for ``mode='eval'`` runs, and the class
  attributes ``cpu_loops`` / ``remat_scopes`` (its CPU loop and remat defaults,
  ``jaxnas.backends``). ``tests/test_user_space.py`` is a complete example (a 2-edge cell space
  with its own ops, registered and searched from the test file). Not yet by the space alone:
  ``mode='eval'`` from a genotype *string* (``jaxnas.genotypes.parse`` knows the DARTS, NB201 and
  NAO formats).

A space whose architectures are token sequences (``'nao'``) is registered the same way; it
implements ``token_space(config, num_classes)`` (``jaxnas.nao.token_space.TokenSpace``) and is
searched by ``method='nao_v2'`` only. ``NB201Space.token_space`` gives NB201's token form.
"""
from __future__ import annotations

from typing import Any

from jaxnas.spaces import ops as ops
from jaxnas.spaces.base import SearchSpace as SearchSpace
from jaxnas.spaces.darts import DARTS_OPS as DARTS_OPS
from jaxnas.spaces.darts import DartsSpace as DartsSpace
from jaxnas.spaces.darts import Genotype as Genotype
from jaxnas.spaces.darts import parse_darts_genotype as parse_darts_genotype
from jaxnas.spaces.nao import NAOSpace as NAOSpace
from jaxnas.spaces.nb201 import NB201_OPS as NB201_OPS
from jaxnas.spaces.nb201 import NB201Genotype as NB201Genotype
from jaxnas.spaces.nb201 import NB201Space as NB201Space
from jaxnas.spaces.width import WIDTH_OPS as WIDTH_OPS
from jaxnas.spaces.width import WidthGenotype as WidthGenotype
from jaxnas.spaces.width import WidthSpace as WidthSpace

SPACES: dict[str, type] = {}


def register(name: str, space_class: type, *, replace: bool = False) -> type:
  """Registers ``space_class`` as ``config.space.name=name``; returns the class.

  Args:
    name: the registry name; it must equal ``space_class.name``.
    space_class: a ``SearchSpace`` subclass (or a token space with ``token_space``) with a
      ``from_config(config)`` classmethod.
    replace: allow replacing a space already registered under ``name``.

  Raises:
    ValueError: ``name`` is taken (and not ``replace``), or differs from ``space_class.name``.
  """
  if getattr(space_class, "name", None) != name:
    raise ValueError(f"Space class {space_class.__name__} has name="
                     f"{getattr(space_class, 'name', None)!r}; set name = {name!r} on the class "
                     f"to register it as {name!r}.")
  if not callable(getattr(space_class, "from_config", None)):
    raise ValueError(f"Space class {space_class.__name__} has no from_config(config) "
                     "classmethod; subclass jaxnas.spaces.SearchSpace.")
  if name in SPACES and SPACES[name] is not space_class and not replace:
    raise ValueError(f"A search space is already registered as {name!r} "
                     f"({SPACES[name].__name__}); pick another name or pass replace=True.")
  SPACES[name] = space_class
  return space_class


register("darts", DartsSpace)
register("nb201", NB201Space)
register("width", WidthSpace)
register("nao", NAOSpace)


def space_class(name: str) -> type:
  """The class registered as ``name``; ValueError lists the registered names."""
  if name not in SPACES:
    raise ValueError(f"Unknown search space {name!r}; valid spaces: {', '.join(SPACES)}.")
  return SPACES[name]


def get(name: str, **options: Any) -> SearchSpace:
  """Builds the search space ``name`` with ``options`` (e.g. ``ops=(...)``, DARTS ``nodes=4``).

  Raises:
    ValueError: unknown name (the message lists the valid names) or invalid options.
  """
  cls = space_class(name)
  try:
    return cls(**options)
  except TypeError as e:
    raise ValueError(f"Invalid options {sorted(options)} for the {name!r} space: {e}") from None


def from_config(config: Any) -> Any:
  """The space ``config.space.name`` names, with the options it reads from ``config``."""
  name = config.space.name
  if name not in SPACES:
    raise ValueError(f"config.space.name={name!r} is not valid; choose one of: "
                     f"{', '.join(SPACES)}.")
  return SPACES[name].from_config(config)


def gradient_spaces() -> list[str]:
  """The registered spaces searched through mixing weights (every method but NAO-V2)."""
  return [name for name, cls in SPACES.items() if issubclass(cls, SearchSpace)]
