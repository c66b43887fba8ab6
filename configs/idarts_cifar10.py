"""iDARTS (Zhang et al., ICML 2021) on CIFAR-10, DARTS space (the reference has no DARTS-space code;
its NAS-Bench-1Shot1 settings are used: T = 5, K = 2, gamma = weight LR, batch 96, lr 0.025 -> 0.001).

  python -m jaxnas.train --config=configs/idarts_cifar10.py --workdir=runs/idarts_c10 \
      --config.data.data_dir=/path/with/cifar-10-binary.tar.gz
"""
from configs import darts_cifar10
from configs import default
from configs import idarts_nb201


def get_config(arg=None):
  config = darts_cifar10.get_config()
  idarts_nb201.idarts(config)
  config.batch_size = 96
  return default.maybe_smoke(config, arg)
