r"""Fair-DARTS (Chu et al., "Fair DARTS: Eliminating Unfair Advantages in Differentiable
Architecture Search", ECCV 2020) on CIFAR-10, DARTS space, as xiaomi-automl/FairDARTS
``fairdarts/train_search.py`` (its defaults = the README's search command).

  python -m jaxnas.train --config=configs/fairdarts_cifar10.py --workdir=runs/fairdarts_c10 \
      --config.data.data_dir=/path/with/cifar-10-binary.tar.gz

Mixing by independent sigmoids (``parametrization='sigmoid'``, alpha initialised to 0), 7 ops
without ``none``; the zero-one loss on the alpha objective (``jaxnas/methods/fair_darts.py``):

  alpha <- Adam(grad_alpha [L_val(w, sigmoid(alpha)) - 10 mean((sigmoid(alpha) - 0.5)^2)])
  w     <- SGD(grad_w L_train(w, sigmoid(alpha)))

the mean over all 2 x 14 x 7 = 196 entries of the normal and reduce cells together. First order,
the alpha step first on a fresh random validation batch (with replacement). Adam lr 3e-3, betas
(0.9, 0.999), L2 1e-3 (``architect.py:15-16``: ``arch_lr_gamma`` = 0.9 is beta1); SGD lr 0.005,
cosine to 0.001 per epoch (``scheduler.step()`` at epoch start: ``epoch_offset=1``), momentum 0.9,
wd 3e-4, clip 5; batch 128 for both steps; 50 epochs; C=16, 8 cells; 50/50 split of the training
set; 196 steps per epoch (ceil(25000 / 128), the last partial batch kept).

Where jaxnas differs: the logged and evaluated genotype is the DARTS rule on sigmoid(alpha) (top-2
edges per node, their best op) WITHOUT the reference's 0.85 threshold (``parse_method=
'threshold_sparse'``: an edge kept only if its best sigmoid >= 0.85, so 0-2 inputs per node); the
reference rule is ``jaxnas.methods.fair_darts.threshold_genotype`` (a helper to apply to a
restored state's sigmoid(alpha), not wired into the driver). As in the reference, the search cell's pooling ops
are followed by BatchNorm without affine (``spaces.ops``, ``pool_bn``).
"""
from configs import default

OPS = "max_pool_3x3,avg_pool_3x3,skip_connect,sep_conv_3x3,sep_conv_5x5,dil_conv_3x3,dil_conv_5x5"


def get_config(arg=None):
  config = default.get_config()
  default.darts_space(config)
  config.space.ops = OPS
  config.space.channels = 16
  config.space.layers = 8
  config.parametrization = "sigmoid"
  config.arch_regularizer.names = "zero_one"
  config.arch_regularizer.zero_one_weight = 10.0
  config.hypergrad = "first_order"
  config.step_order = "arch_first"
  config.arch_optimizer.learning_rate = 3e-3
  config.arch_optimizer.b1 = 0.9
  config.arch_optimizer.b2 = 0.999
  config.arch_optimizer.weight_decay = 1e-3
  config.weights_optimizer.learning_rate = 0.005
  config.weights_optimizer.min_learning_rate = 0.001
  config.weights_optimizer.momentum = 0.9
  config.weights_optimizer.weight_decay = 3e-4
  config.weights_optimizer.clip_norm = 5.0
  config.weights_optimizer.epoch_offset = 1
  config.batch_size = 128
  config.epochs = 50
  config.data.name = "cifar10"
  config.data.split = "darts"
  config.data.train_portion = 0.5
  config.data.partial_batch = "fill"  # len(train_queue) = ceil(25000 / 128) = 196 steps per epoch
  return default.maybe_smoke(config, arg, {"smoke": smoke})


def smoke(config):
  """The default smoke with 3 of the 7 ops (one of each kind, no ``none``)."""
  config = default.smoke(config)
  config.space.ops = "max_pool_3x3,skip_connect,dil_conv_3x3"
  return config
