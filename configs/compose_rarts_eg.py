"""RARTS + exponentiated gradient (a composition no paper has; config only): RARTS' two coupled
networks and Gauss-Seidel pass (``configs/rarts_nb201.py``) with GAEA's geometry: alpha on the
simplex of each edge (uniform init, the mixing weights as is) and alpha <- normalize(max(alpha *
exp(-0.1 g), 1e-5)) (Li et al., ICLR 2021) instead of Adam on softmax logits.

  python -m jaxnas.train --config=configs/compose_rarts_eg.py --workdir=runs/rarts_eg \
      --config.data.data_dir=/path/with/cifar-10-binary.tar.gz
"""
from configs import default
from configs import rarts_nb201


def get_config(arg=None):
  config = rarts_nb201.get_config()
  config.parametrization = "simplex"
  config.arch_optimizer.name = "exponentiated_gradient"
  config.arch_optimizer.learning_rate = 0.1
  config.arch_optimizer.floor = 1e-5
  return default.maybe_smoke(config, arg)
