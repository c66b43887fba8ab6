"""GAEA PC-DARTS (Li et al., ICLR 2021; the reference's `eedarts` configuration, methods.md §6) on
CIFAR-10, DARTS space with partial channels (K = 4) and edge normalization.

  python -m jaxnas.train --config=configs/gaea_pcdarts_cifar10.py --workdir=runs/gaea_pcdarts \
      --config.data.data_dir=/path/with/cifar-10-binary.tar.gz

alpha (per edge) and beta (per node) live on simplices (uniform init) and are updated by
exponentiated gradient, lr 0.1 for both; alpha is clamped at 1e-5 then normalized per edge, beta
normalized per node with no floor (`arch_optimizer.edge_floor = 0`, as the reference's
`architect_edarts.py`); the derived genotype uses
alpha * beta. Ops on C/4 channels + channel shuffle; the 8 DARTS ops including `none`; batch 256;
SGD 0.1 -> 0 cosine over 50 epochs (per epoch), momentum 0.9, wd 3e-4, clip 5; alpha on a random
batch of the validation half (25k/25k split); no alpha warm-up (the GAEA code has none, unlike
the original PC-DARTS).
"""
from configs import default


def get_config(arg=None):
  config = default.get_config()
  default.darts_space(config)
  config.space.partial_channels = 4
  config.space.edge_normalization = True
  config.parametrization = "simplex"
  config.arch_optimizer.name = "exponentiated_gradient"
  config.arch_optimizer.learning_rate = 0.1
  config.arch_optimizer.floor = 1e-5
  config.arch_optimizer.edge_floor = 0.0
  config.data.name = "cifar10"
  config.data.split = "darts"
  config.batch_size = 256
  config.data.partial_batch = "fill"  # len(train_queue) = ceil(25000 / 256) = 98
  config.epochs = 50
  config.weights_optimizer.learning_rate = 0.1
  config.weights_optimizer.min_learning_rate = 0.0
  config.weights_optimizer.epoch_offset = 0
  return default.maybe_smoke(config, arg, {"smoke": pcdarts_smoke})


def pcdarts_smoke(config):
  """The common smoke variant with channels divisible by K = 4."""
  config = default.smoke(config)
  config.space.channels = 4
  return config
