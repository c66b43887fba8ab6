"""PC-DARTS + DARTS-PRIME's clamp activation (a composition no paper has; config only): partial
channels (K = 4) and edge normalization (Xu et al., ICLR 2020) with alpha -> clip(alpha, 0, 1)
and the permanent pruning mask of Maile et al. (arXiv 2106.11655 v1) in place of the softmax.

  python -m jaxnas.train --config=configs/compose_pcdarts_clamp.py --workdir=runs/pc_clamp \
      --config.data.data_dir=/path/with/cifar-10-binary.tar.gz

The 7 DARTS ops without 'none' (the clamp activation does not normalise, so 'none' would be an
inert op), BatchNorm on every node (the clamped weights do not sum to one); the edge weights beta
are clamped and pruned like alpha; alpha Adam 3e-4 (betas 0.5, 0.999, wd 1e-3) every step on the
validation half, first order; weights SGD 0.1 -> 0 cosine, batch 256 (PC-DARTS' CIFAR-10 search).
``:smoke``: 3 ops, no node BatchNorm (compile time).
"""
from configs import default
from configs import darts_prime_cifar10 as prime


def get_config(arg=None):
  config = default.get_config()
  default.darts_space(config)
  config.space.partial_channels = 4
  config.space.edge_normalization = True
  prime.clamp(config)  # parametrization 'clamp', the ops without 'none', node BatchNorm
  config.prune_arch = True
  config.data.name = "cifar10"
  config.data.split = "darts"
  config.batch_size = 256
  config.data.partial_batch = "fill"
  config.weights_optimizer.learning_rate = 0.1
  config.weights_optimizer.min_learning_rate = 0.0
  config.weights_optimizer.epoch_offset = 0
  return default.maybe_smoke(config, arg, {"smoke": smoke})


def smoke(config):
  """The common smoke variant: channels divisible by K = 4, 3 ops without 'none'."""
  config = default.smoke(config)
  config.space.ops = "max_pool_3x3,skip_connect,dil_conv_3x3"
  config.space.channels = 4
  config.space.node_batchnorm = False
  return config
