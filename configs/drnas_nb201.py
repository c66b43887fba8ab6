r"""DrNAS (Chen et al., "DrNAS: Dirichlet Neural Architecture Search", ICLR 2021) on NAS-Bench-201,
as the reference's headline NB201 run (``xiangning-chen/DrNAS`` ``201-space/train_search.py``
with ``--method dirichlet``: no progressive pruning, no partial channels, no alpha warm-up).

  python -m jaxnas.train --config=configs/drnas_nb201.py --workdir=runs/drnas_nb201 \
      --config.data.data_dir=/path/with/cifar-10-binary.tar.gz \
      --config.benchmark.path=/path/to/nats_bench.csv

Every training forward (the alpha step's on a validation batch, then the weight step's on a
training batch, each its own draw; one draw per edge shared by all cells) mixes with

.. math:: \theta_e \sim \mathrm{Dir}(\mathrm{elu}(\alpha_e) + 1)

(``jaxnas.methods.drnas``: parametrization and sampler ``'dirichlet'``, pathwise gradients through
``jax.random.dirichlet``). First order, alpha step first:

  alpha <- Adam(alpha, grad_alpha L_val(w, theta))   (lr 3e-4, betas (0.5, 0.999), L2 1e-3)
  w     <- SGD(w, grad_w L_train(w, theta'))          (0.025 -> 0.001 cosine, momentum 0.9, wd 3e-4,
                                                       clip 5)

Reference settings: C=16, N=5, the 5 NB201 ops including ``none``, batch 64, 100 epochs, the
CIFAR-10 training set split 50/50 (first half w, second half alpha, a random alpha batch every
step), cosine stepped at epoch end, ``reg_type='l2'`` (the Adam weight decay 1e-3 pulls alpha -> 0,
i.e. the concentration toward the anchor Dir(1)). The genotype is the per-edge argmax of
softmax(alpha) (= of alpha), ``none`` included.

Variant ``:kl``: the reference's ``--reg_type kl``: ``arch_regularizer.names='dirichlet_kl'``
(``kl_weight * sum_e KL(Dir(elu(alpha_e) + 1) || Dir(1))``, ``kl_weight`` = the reference's
``reg_scale`` 1e-3, whose help says it must be retuned for kl) and no Adam weight decay.

Where jaxnas differs: the per-epoch supernet evaluation uses softmax(alpha) (the reference's
``infer`` samples).
"""
from configs import default


def get_config(arg=None):
  config = default.get_config()
  config.space.name = "nb201"
  config.space.channels = 16
  config.space.cells_per_stage = 5
  config.parametrization = "dirichlet"
  config.arch_sampler.name = "dirichlet"
  config.data.name = "cifar10"
  config.data.split = "darts"
  config.data.train_portion = 0.5
  config.data.partial_batch = "fill"  # len(train_queue) = ceil(25000 / 64) = 391
  config.batch_size = 64
  config.epochs = 100
  config.step_order = "arch_first"
  config.weights_optimizer.learning_rate = 0.025
  config.weights_optimizer.min_learning_rate = 0.001
  config.weights_optimizer.epoch_offset = 0  # scheduler.step() at epoch end
  config.arch_optimizer.learning_rate = 3e-4
  config.arch_optimizer.b1 = 0.5
  config.arch_optimizer.b2 = 0.999
  config.arch_optimizer.weight_decay = 1e-3
  return default.maybe_smoke(config, arg, VARIANTS)


def kl(config):
  """The reference's ``--reg_type kl``: the KL anchor instead of Adam's L2."""
  config.arch_regularizer.names = "dirichlet_kl"
  config.arch_regularizer.kl_weight = 1e-3
  config.arch_optimizer.weight_decay = 0.0
  return config


VARIANTS = {"kl": kl}
