"""Search spaces by name: ``jaxnas.spaces.get('darts')``, ``jaxnas.spaces.get('nb201', ops=...)``."""
from __future__ import annotations

from typing import Any, Callable

from jaxnas.spaces import ops as ops
from jaxnas.spaces.base import SearchSpace as SearchSpace
from jaxnas.spaces.darts import DARTS_OPS as DARTS_OPS
from jaxnas.spaces.darts import DartsSpace as DartsSpace
from jaxnas.spaces.darts import Genotype as Genotype
from jaxnas.spaces.darts import parse_darts_genotype as parse_darts_genotype
from jaxnas.spaces.nb201 import NB201_OPS as NB201_OPS
from jaxnas.spaces.nb201 import NB201Genotype as NB201Genotype
from jaxnas.spaces.nb201 import NB201Space as NB201Space
from jaxnas.spaces.width import WIDTH_OPS as WIDTH_OPS
from jaxnas.spaces.width import WidthGenotype as WidthGenotype
from jaxnas.spaces.width import WidthSpace as WidthSpace

SPACES: dict[str, Callable[..., SearchSpace]] = {
    "darts": DartsSpace,
    "nb201": NB201Space,
    "width": WidthSpace,
}


def get(name: str, **options: Any) -> SearchSpace:
  """Builds the search space ``name`` with ``options`` (e.g. ``ops=(...)``, DARTS ``nodes=4``).

  Raises:
    ValueError: unknown name (the message lists the valid names) or invalid options.
  """
  if name not in SPACES:
    raise ValueError(f"Unknown search space {name!r}; valid spaces: {', '.join(SPACES)}.")
  try:
    return SPACES[name](**options)
  except TypeError as e:
    raise ValueError(f"Invalid options {sorted(options)} for the {name!r} space: {e}") from None
