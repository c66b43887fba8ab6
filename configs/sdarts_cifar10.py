r"""SDARTS (Chen & Hsieh, ICML 2020) on the DARTS CNN space (CIFAR-10), as the reference's
``sota/cnn/train_search.py --search_space s5`` (xiangning-chen/SmoothDARTS @ d3dbfed). SDARTS-RS by
default; ``:adversarial`` is SDARTS-ADV.

  python -m jaxnas.train --config=configs/sdarts_cifar10.py[:adversarial] \
      --workdir=runs/sdarts_cifar10 --config.data.data_dir=/path/with/cifar-10-binary.tar.gz

First-order DARTS (quark0/darts' settings: alpha step first on the clean alpha, weights SGD 0.025
cosine -> 0.001, momentum 0.9, wd 3e-4, clip 5; alpha Adam 3e-4, betas (0.5, 0.999), L2 1e-3;
C = 16, 8 cells, batch 64, 50 epochs, the 50/50 split), the weight step on the perturbed mixing
``A'`` of ``jaxnas/methods/sdarts.py`` (eps 0.03 -> 0.3 over the 50 epochs). The reference's s5
space comments ``none`` out: the op set here has the 7 other DARTS ops.
"""
from configs import default


def get_config(arg=None):
  config = default.get_config()
  default.darts_space(config)
  config.space.ops = ("max_pool_3x3,avg_pool_3x3,skip_connect,sep_conv_3x3,sep_conv_5x5,"
                      "dil_conv_3x3,dil_conv_5x5")
  config.data.name = "cifar10"
  config.data.split = "darts"
  config.data.partial_batch = "fill"  # len(train_queue) = ceil(25000 / 64) = 391 steps per epoch
  config.arch_perturbation.name = "random"
  return default.maybe_smoke(config, arg, {"adversarial": adversarial})


def adversarial(config):
  """SDARTS-ADV: the 7-step L_inf PGD attack on the mixing instead of uniform noise."""
  config.arch_perturbation.name = "adversarial"
  return config
