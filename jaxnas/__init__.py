"""jaxnas: differentiable neural architecture search in JAX.

What a researcher composes (README "The library API"):
  jaxnas.spaces       search spaces and their registry (``get``, ``register``): init_arch, supernet,
                      derive, discretize, network
  jaxnas.parametrize  alpha -> mixing weights (``softmax``, ``simplex``, ``clamp``)
  jaxnas.supernet     the pure functional boundary: init / apply / num_params
  jaxnas.hypergrad    bilevel hypergradient estimators (NAS-free math; ``HYPERGRADS``)
  jaxnas.optim        optax transforms: PyTorch SGD / Adam chains, mirror descent on the simplex
  jaxnas.parts        alpha-step schedules and alpha regularizers with typed state
  jaxnas.steps        the one search-step skeleton ``search_step(state, batches, components=...)``
                      and its default weight phase (``SingleNetwork``; RARTS': ``CoupledNetworks``)
  jaxnas.methods      method registry and presets (DARTS-PRIME, RARTS, the config readers)
  jaxnas.backends     platform-specific settings (kernels, loops, remat, CPU device split)
  jaxnas.data         datasets (``register_dataset``), splits, batch indices, augmentation
  jaxnas.search      a search built from the config (``build_search``, ``start_state``,
                      ``jit_search_step``, ``step_batches``) and its program for the driver
  jaxnas.driver      the one driver: ``run(program, workdir)``, ``train_and_evaluate(config, workdir)``
  jaxnas.program     the driver's hooks (``Program``, ``Due``) that every run implements
No library module imports ``jaxnas.driver`` (only this package's namespace and the entry point).
"""
from jaxnas import backends as backends
from jaxnas import data as data
from jaxnas import driver as driver
from jaxnas import hypergrad as hypergrad
from jaxnas import methods as methods
from jaxnas import optim as optim
from jaxnas import parametrize as parametrize
from jaxnas import parts as parts
from jaxnas import program as program
from jaxnas import search as search
from jaxnas import spaces as spaces
from jaxnas import steps as steps
from jaxnas import supernet as supernet

__version__ = "0.1.0"
