r"""SNAS (Xie, Zheng, Liu, Lin, "SNAS: Stochastic Neural Architecture Search", ICLR 2019) on
CIFAR-10, DARTS space, as the only public SNAS search code (``SNAS-Series/SNAS-Series``
``Analysis/snas/train_search.py`` with ``--snas``; ``jaxnas/methods/snas.py`` cites it by line).

  python -m jaxnas.train --config=configs/snas_cifar10.py --workdir=runs/snas_c10 \
      --config.data.data_dir=/path/with/cifar-10-binary.tar.gz

Single level, one loss and one backward per step on a batch of the FULL training set
(``data.split='full'``; the reference's "valid" queue is the test set, for monitoring only):

  Z_c = softmax((log softmax(alpha_c) + G) / tau),  G ~ Gumbel(0, 1), one draw per cell type
  L = CE(f(x; w, Z), y);  (g_w, g_alpha) = grad_{w, alpha} L            (config.joint_step)
  w <- SGD(w, clip_5(g_w))                  (lr 0.025 cosine -> 0.001, momentum 0.9, L2 3e-4)
  alpha <- Adam(alpha, clip_10(g_alpha))    (lr 3e-4, betas (0.5, 0.999), L2 1e-3)

tau linear per epoch 1.0 -> 0.03 over 150 epochs (``arch_sampler.tau_epochs``). C=16, 8 cells (6
normal, reductions at 2 and 5), 4 nodes, batch 96, 150 epochs, no cutout, no drop path (the
reference's scripts pass 0), the last partial batch kept (PyTorch's ``DataLoader`` default).
The resource constraint is off, as the reference without ``--loss``; variant ``:resource`` adds
``lambda E_p[params]`` with lambda = 1e-4 (the reference's default for its exact-expectation
``--method discrete``; its default score-function estimator uses 1e-5).

Where jaxnas differs (details in ``jaxnas/methods/snas.py``): the reference's temperature is one
epoch ahead (``--config.arch_sampler.tau_max=0.993533`` reproduces it) and its annealing is off
unless ``--temp_annealing``; its analysis model has no reduction cells (here the paper's DARTS
network); the genotype excludes ``none`` (DARTS rule); the resource cost is the exact expectation
of the parameter count (the reference: score-function estimate of a size/FLOPs/MAC mix); the
supernet evaluation mixes with softmax(alpha).
"""
from configs import default


def get_config(arg=None):
  config = default.get_config()
  default.darts_space(config)
  config.space.channels = 16
  config.space.layers = 8
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
  config.data.partial_batch = "fill"  # len(train_queue) = ceil(50000 / 96) = 521
  config.batch_size = 96
  config.epochs = 150
  config.weights_optimizer.learning_rate = 0.025
  config.weights_optimizer.min_learning_rate = 0.001
  config.weights_optimizer.momentum = 0.9
  config.weights_optimizer.weight_decay = 3e-4
  config.weights_optimizer.clip_norm = 5.0
  config.weights_optimizer.epoch_offset = 1  # scheduler.step() at each epoch start
  config.arch_optimizer.name = "adam"
  config.arch_optimizer.learning_rate = 3e-4
  config.arch_optimizer.b1 = 0.5
  config.arch_optimizer.b2 = 0.999
  config.arch_optimizer.weight_decay = 1e-3
  config.arch_optimizer.clip_norm = 10.0
  config.arch_regularizer.names = ""
  config.arch_regularizer.resource_cost = "params"
  return default.maybe_smoke(config, arg, VARIANTS)


def resource(config):
  """SNAS' resource constraint on: lambda * E_p[parameter count] (exact expectation)."""
  config.arch_regularizer.names = "resource"
  config.arch_regularizer.resource_weight = 1e-4
  return config


VARIANTS = {"resource": resource}
