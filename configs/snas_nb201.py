r"""SNAS (Xie, Zheng, Liu, Lin, "SNAS: Stochastic Neural Architecture Search", ICLR 2019) on
NAS-Bench-201: SNAS' own settings (``configs/snas_cifar10.py``, the reference
``SNAS-Series/SNAS-Series`` ``Analysis/snas/train_search.py``) on the NB201 supernet; the authors
did not run NB201, so there is no reference setting for this space.

  python -m jaxnas.train --config=configs/snas_nb201.py --workdir=runs/snas_nb201 \
      --config.data.data_dir=/path/with/cifar-10-binary.tar.gz \
      --config.benchmark.path=/path/to/nats_bench.csv

Single level, one loss and one backward per step on a batch of the FULL training set
(``data.split='full'``):

  Z = softmax((log softmax(alpha) + G) / tau),  G ~ Gumbel(0, 1), one (6, ops) draw per forward,
      shared by all 15 cells
  L = CE(f(x; w, Z), y);  (g_w, g_alpha) = grad_{w, alpha} L            (config.joint_step)
  w <- SGD(w, clip_5(g_w))                  (lr 0.025 cosine -> 0.001, momentum 0.9, L2 3e-4)
  alpha <- Adam(alpha, clip_10(g_alpha))    (lr 3e-4, betas (0.5, 0.999), L2 1e-3)

tau linear per epoch 1.0 -> 0.03 over 150 epochs; C=16, N=5; batch 96, 150 epochs, the last
partial batch kept; the genotype is the per-edge argmax. Resource constraint off; variant
``:resource``: lambda E_p[params] with lambda = 1e-4, the cost of an op the mean of its parameter
count over the 15 cells (widths 16, 32, 64). Differences from the reference: see
``jaxnas/methods/snas.py`` (temperature one epoch ahead there, exact expectation of the resource
term, evaluation with softmax(alpha)).
"""
from configs import default
from configs import snas_cifar10


def get_config(arg=None):
  config = default.get_config()
  config.space.name = "nb201"
  config.space.channels = 16
  config.space.cells_per_stage = 5
  config.parametrization = "softmax"
  config.arch_sampler.name = "gumbel_soft"
  config.arch_sampler.tau_max = 1.0
  config.arch_sampler.tau_min = 0.03
  config.arch_sampler.tau_epochs = 150
  config.joint_step = True
  config.hypergrad = "first_order"
  config.step_order = "weights_first"
  config.data.name = "cifar10"
  config.data.split = "full"
  config.data.partial_batch = "fill"  # ceil(50000 / 96) = 521 steps per epoch
  config.batch_size = 96
  config.epochs = 150
  config.weights_optimizer.learning_rate = 0.025
  config.weights_optimizer.min_learning_rate = 0.001
  config.weights_optimizer.momentum = 0.9
  config.weights_optimizer.weight_decay = 3e-4
  config.weights_optimizer.clip_norm = 5.0
  config.weights_optimizer.epoch_offset = 1
  config.arch_optimizer.name = "adam"
  config.arch_optimizer.learning_rate = 3e-4
  config.arch_optimizer.b1 = 0.5
  config.arch_optimizer.b2 = 0.999
  config.arch_optimizer.weight_decay = 1e-3
  config.arch_optimizer.clip_norm = 10.0
  config.arch_regularizer.names = ""
  config.arch_regularizer.resource_cost = "params"
  return default.maybe_smoke(config, arg, VARIANTS)


VARIANTS = {"resource": snas_cifar10.resource}
