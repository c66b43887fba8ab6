r"""β-DARTS (Ye et al., CVPR 2022) on CIFAR-10, DARTS space: DARTS first order (quark0/darts'
hyperparameters, ``configs/darts_cifar10.py``) with the beta-decay term on the alpha objective
(``jaxnas/methods/beta_darts.py``).

  python -m jaxnas.train --config=configs/betadarts_cifar10.py --workdir=runs/betadarts_c10 \
      --config.data.data_dir=/path/with/cifar-10-binary.tar.gz

  alpha <- Adam(grad_alpha [L_val(w, softmax(alpha)) + (50 e / 50) mean_edges logsumexp(alpha_e)])
  w     <- SGD(grad_w L_train(w, softmax(alpha)))

the mean over the 28 edges of the normal and reduce cells together, on the raw alpha; e the epoch
from 0, lambda = 50 e / ``beta_decay_epochs`` with ``beta_decay_epochs = config.epochs`` (0 =
follow ``--config.epochs``), so lambda runs 0 -> 49 as on NB201. C=16, 8 cells, batch 64, 50
epochs, the 7 ops without ``none`` (the reference's ``--search_space s5``,
``sota/cnn/spaces.py``); SGD 0.025 -> 0.001 cosine (epoch-start off-by-one), momentum 0.9, wd
3e-4, clip 5; alpha Adam 3e-4, betas (0.5, 0.999), L2 1e-3; alpha step first on a random
validation batch; 50/50 split; 391 steps per epoch.

The released DARTS-space script cannot run β-DARTS: ``sota/cnn/train_search.py:213`` calls
``architect.step`` without the epoch (a TypeError) and ``mlc_loss`` would receive the list
``[alphas_normal, alphas_reduce]``; its default ``--perturb_alpha=random`` would also add
SDARTS-RS' perturbation (not part of β-DARTS; off here). Reusing the NB201 code's literal
``50 * epoch / 100`` over 50 epochs (lambda only up to 24.5) is
``--config.arch_regularizer.beta_decay_epochs=100``.
"""
from configs import default

OPS = "max_pool_3x3,avg_pool_3x3,skip_connect,sep_conv_3x3,sep_conv_5x5,dil_conv_3x3,dil_conv_5x5"


def get_config(arg=None):
  config = default.get_config()
  default.darts_space(config)
  config.space.ops = OPS
  config.space.channels = 16
  config.space.layers = 8
  config.parametrization = "softmax"
  config.hypergrad = "first_order"
  config.step_order = "arch_first"
  config.arch_regularizer.names = "beta_decay"
  config.arch_regularizer.beta_decay_weight = 50.0
  config.arch_regularizer.beta_decay_epochs = 0  # = config.epochs (50)
  config.arch_optimizer.learning_rate = 3e-4
  config.arch_optimizer.b1 = 0.5
  config.arch_optimizer.weight_decay = 1e-3
  config.batch_size = 64
  config.epochs = 50
  config.data.name = "cifar10"
  config.data.split = "darts"
  config.data.partial_batch = "fill"  # len(train_queue) = ceil(25000 / 64) = 391 steps per epoch
  return default.maybe_smoke(config, arg, {"smoke": smoke})


def smoke(config):
  """The default smoke with 3 of the 7 ops (one of each kind, no ``none``)."""
  config = default.smoke(config)
  config.space.ops = "max_pool_3x3,skip_connect,dil_conv_3x3"
  return config
