"""GAEA + ADMM (a composition no paper has; config only): GAEA's exponentiated gradient on the
simplex (``configs/gaea_nb201.py``: NB201, ERM on the full training set, alpha the mixing weights)
with DARTS-PRIME's ADMM term pulling alpha toward the derived cell (Maile et al., arXiv 2106.11655).

  python -m jaxnas.train --config=configs/compose_gaea_admm.py --workdir=runs/gaea_admm \
      --config.data.data_dir=/path/with/cifar-10-binary.tar.gz

alpha <- EG(alpha, grad_alpha [L(w, alpha) + rho/2 ||alpha - Z + U||_2]) (floor 1e-5, renormalised
per edge), Z = the one-hot NB201 cell of alpha + U and U <- U + alpha - Z every ``admm_freq`` = 10
alpha steps; rho = 0.1. Everything else is GAEA NB201's. Metrics: ``reg/admm``, ``reg/admm_update``.
``:smoke`` updates Z, U after every alpha step.
"""
from configs import default
from configs import gaea_nb201


def get_config(arg=None):
  config = gaea_nb201.get_config()
  config.arch_regularizer.names = "admm"
  config.arch_regularizer.rho = 0.1
  config.arch_regularizer.admm_freq = 10
  return default.maybe_smoke(config, arg, {"smoke": smoke})


def smoke(config):
  """The common smoke variant; ADMM updates after every alpha step."""
  config = default.smoke(config)
  config.arch_regularizer.admm_freq = 1
  return config
