"""RARTS channel-width search (Xue, Qi, Xin, arXiv 2008.03901) on a CIFAR-10 ResNet-20.

  python -m jaxnas.train --config=configs/rarts_width_cifar10.py --workdir=runs/rarts_width \
      --config.data.data_dir=/path/with/cifar-10-binary.tar.gz

The 'width' space (``jaxnas/spaces/width.py``): every basic block's inner width and every stage's
residual-stream width chooses among 25/50/75/100% of its base width (16/32/64), by a softmax
mixture of channel masks on the full-width network. RARTS' two weight copies and one shared alpha
(``jaxnas/methods/rarts.py``; lambda, beta and the update variants in ``config.rarts``, whose
defaults, lambda = beta = 1, are UNCONFIRMED, methods.md §7). The search setup is DARTS'
(50 epochs, the 50/50 split of the CIFAR-10 training set, batch 64, SGD 0.025 cosine, momentum
0.9, wd 3e-4, clip 5; alpha Adam 3e-4, betas (0.5, 0.999), wd 1e-3): the paper's width-search
hyperparameters are not public (methods.md §7). The derived widths print as
``16:8,16,16|32:16,32,32|64:32,64,64``; ``space.network(genotype)`` is the discrete ResNet, with
``genotype.num_params()`` and ``genotype.flops()``.

Variants: ``:darts`` (first-order DARTS on the same space, for comparison), ``:resnet56``
(9 blocks per stage), ``:smoke`` (base width 4, 1 block per stage, 8x8 synthetic images, 2 steps);
combine them, e.g. ``:darts,smoke``.
"""
from configs import default


def get_config(arg=None):
  config = default.get_config()
  config.method = "rarts"
  config.hypergrad = "first_order"   # RARTS is first order by construction
  config.space.name = "width"
  config.space.ops = "0.25,0.5,0.75,1.0"
  config.space.channels = 16
  config.space.blocks_per_stage = 3
  config.data.name = "cifar10"
  config.data.split = "darts"
  config.epochs = 50
  return default.maybe_smoke(config, arg, {"smoke": smoke, "darts": darts, "resnet56": resnet56})


def darts(config):
  """First-order DARTS (alpha on the validation half, one weight copy) on the width space."""
  config.method = "darts"
  config.hypergrad = "first_order"
  return config


def resnet56(config):
  """ResNet-56: 9 basic blocks per stage."""
  config.space.blocks_per_stage = 9
  return config


def smoke(config):
  """The default smoke run with a 1-block-per-stage ResNet (base width 4, 8x8 images)."""
  config = default.smoke(config)
  config.space.blocks_per_stage = 1
  return config
