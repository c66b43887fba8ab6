r"""DrNAS (Chen et al., ICLR 2021) on CIFAR-10, DARTS space, with progressive learning (op pruning)
and PC-DARTS partial channels, as ``xiangning-chen/DrNAS`` ``DARTS-space/train_search.py``.

  python -m jaxnas.train --config=configs/drnas_cifar10.py --workdir=runs/drnas_cifar10 \
      --config.data.data_dir=/path/with/cifar-10-binary.tar.gz

Each training forward mixes with ``theta_e ~ Dir(elu(alpha_e) + 1)`` over the edge's kept ops
(one draw per edge row, shared by the cells of a type; the alpha step and the weight step each draw
their own). First order, alpha step first:

  alpha <- Adam(alpha, grad_alpha L_val(w, theta))   (lr 6e-4, betas (0.5, 0.999), L2 1e-3)
  w     <- SGD(w, grad_w L_train(w, theta'))          (0.1 -> 0 cosine over 50 epochs, momentum 0.9,
                                                       wd 3e-4, clip 5)

Progressive learning (``config.method='drnas'``, ``jaxnas.methods.drnas``): stage 1 = 25 epochs
with all 7 ops; then each edge keeps its 4 ops of largest alpha (pruned alpha set to 0, the
Dirichlet renormalised over the kept ops, derivation over the kept ops); stage 2 = 25 epochs. In
each stage alpha is frozen for its first 10 epochs (the reference's stage-local ``epoch >= 10``).
At the boundary the partial channels widen, K 6 -> 4 (``config.drnas.stage2_partial_channels``):
every op grows from C/6 to C/4 channels, its new channels copies of random old ones (Net2Wider
without rescaling, ``jaxnas.spaces.net2wider``), SGD's momentum widened with them. One cosine over
all 50 epochs, stepped at epoch end.

Reference settings: the search network is the evaluation-size one (C=36, 20 cells), the 7 DARTS
ops without ``none`` (pools followed by BatchNorm), partial channels K = 6 (PC-DARTS' channel
sampling with channel shuffle, no edge normalization), batch 64, CIFAR-10 train split 50/50, a
random alpha batch every step, ``reg_type='l2'`` (Adam weight decay 1e-3). Genotype: DARTS' rule
(top-2 incoming edges by the strongest op, no ``none`` to exclude) on softmax(alpha) over the kept
ops, as the reference's ``process_step_matrix(alpha, 'softmax', mask)``.

Variant ``:kl``: ``--reg_type kl`` (``arch_regularizer.names='dirichlet_kl'``, no Adam decay).

Where jaxnas differs: the widening's random channel indices come from JAX's PRNG (the
reference's ``torch.randint``); the per-epoch supernet evaluation uses softmax(alpha) over the
kept ops (the reference's ``infer`` samples).
"""
from configs import default
from configs import drnas_nb201

OPS = "max_pool_3x3,avg_pool_3x3,skip_connect,sep_conv_3x3,sep_conv_5x5,dil_conv_3x3,dil_conv_5x5"


def get_config(arg=None):
  config = default.get_config()
  default.darts_space(config)
  config.method = "drnas"
  config.space.ops = OPS
  config.space.channels = 36
  config.space.layers = 20
  config.space.partial_channels = 6
  config.parametrization = "dirichlet"
  config.arch_sampler.name = "dirichlet"
  config.drnas.stage_epochs = 25
  config.drnas.num_keep = 4
  config.drnas.stage_warmup_epochs = 10
  config.drnas.stage2_partial_channels = 4
  config.data.name = "cifar10"
  config.data.split = "darts"
  config.data.train_portion = 0.5
  config.data.partial_batch = "fill"  # len(train_queue) = ceil(25000 / 64) = 391
  config.batch_size = 64
  config.epochs = 50
  config.step_order = "arch_first"
  config.weights_optimizer.learning_rate = 0.1
  config.weights_optimizer.min_learning_rate = 0.0
  config.weights_optimizer.epoch_offset = 0  # scheduler.step() at epoch end
  config.arch_optimizer.learning_rate = 6e-4
  config.arch_optimizer.b1 = 0.5
  config.arch_optimizer.b2 = 0.999
  config.arch_optimizer.weight_decay = 1e-3
  return default.maybe_smoke(config, arg, VARIANTS)


def drnas_smoke(config):
  """The common smoke variant with 3 ops, channels divisible by K = 6 and 4 (ops of 2 -> 3
  channels, 4 -> 6 in the reduction cell), and a stage boundary after the 2 steps of epoch 0 (16
  examples per split, batch 8), one stage-2 step."""
  config = default.smoke(config)
  config.space.ops = "max_pool_3x3,skip_connect,dil_conv_3x3"
  config.space.channels = 12
  config.data.synthetic_num_train = 32
  config.drnas.stage_epochs = 1
  config.drnas.num_keep = 2
  config.drnas.stage_warmup_epochs = 0
  config.max_steps = 3
  return config


VARIANTS = {"smoke": drnas_smoke, "kl": drnas_nb201.kl}
