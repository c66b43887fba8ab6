"""jaxnas: differentiable neural architecture search in JAX.

Public API (see README.md):
  jaxnas.spaces.get(name, **options) -> SearchSpace   (init_arch, supernet, derive, parse_genotype)
  jaxnas.parametrize.get(name) -> Parametrization     (init, activate)
  jaxnas.supernet.init / apply / num_params            (pure functional wrapper over the modules)
"""
from jaxnas import parametrize as parametrize
from jaxnas import spaces as spaces
from jaxnas import supernet as supernet

__version__ = "0.1.0"
