"""MiLeNAS + prox (a composition no paper has; config only): MiLeNAS' mixed-level gradient
(``configs/milenas_cifar10.py``: g = grad_alpha L_train + lambda grad_alpha L_val, DARTS space)
plus DARTS-PRIME's prox term toward the derived cell (Maile et al., arXiv 2106.11655).

  python -m jaxnas.train --config=configs/compose_milenas_prox.py --workdir=runs/milenas_prox \
      --config.data.data_dir=/path/with/cifar-10-binary.tar.gz

The alpha objective adds (t/T) rho/2 sum_cells ||softmax(alpha_c) - Z_c||_2, Z the one-hot DARTS
cell (top-2 edges per node, no 'none') of the current mixing weights, t the step, T = 50 epochs of
steps, rho = 0.1. Everything else is MiLeNAS'. Metric: ``reg/prox``.
"""
from configs import default
from configs import milenas_cifar10


def get_config(arg=None):
  config = milenas_cifar10.get_config()
  config.arch_regularizer.names = "prox"
  config.arch_regularizer.rho = 0.1
  config.arch_regularizer.prox_epochs = 0  # = config.epochs
  return default.maybe_smoke(config, arg)
