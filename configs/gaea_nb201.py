"""GAEA (Li, Khodak, Balcan, Talwalkar, ICLR 2021) on NAS-Bench-201: exponentiated gradient on the
simplex, single-level ERM (the reference's `edarts` NB201 configuration, methods.md §6).

  python -m jaxnas.train --config=configs/gaea_nb201.py --workdir=runs/gaea_nb201 \
      --config.data.data_dir=/path/with/cifar-10-binary.tar.gz --config.benchmark.path=nats_bench.csv

alpha lives on the simplex of each edge (uniform init) and is the mixing weight itself (no
softmax); alpha <- normalize(max(alpha * exp(-0.1 g), 1e-5)) on a random batch of the FULL
training set (ERM; the reference's ``next(iter(valid_queue))``, a fresh shuffle every step), taken
before the weight step; 782 steps per epoch (ceil(50000 / 64), the last partial batch kept); the op set has no `none`
(exclude_zero); C = 24, N = 5; 25 epochs of SGD 0.025 with the reference's 50-epoch cosine (so
the LR only anneals halfway, to ~0.0138), per-epoch steps, momentum 0.9, wd 3e-4, clip 5.
Variant ``:bilevel``: alpha on the NB201 validation split (AutoDL split), batches with replacement.
"""
from configs import default


def get_config(arg=None):
  config = default.get_config()
  config.space.name = "nb201"
  config.space.ops = "skip_connect,nor_conv_1x1,nor_conv_3x3,avg_pool_3x3"
  config.space.channels = 24
  config.space.cells_per_stage = 5
  config.parametrization = "simplex"
  config.arch_optimizer.name = "exponentiated_gradient"
  config.arch_optimizer.learning_rate = 0.1
  config.arch_optimizer.floor = 1e-5
  config.arch_optimizer.entropy_reg = 0.0
  config.data.name = "cifar10"
  config.data.split = "full"
  # train_search.py l. 241: next(iter(valid_queue)), a fresh shuffle per step: a random batch each step
  config.data.arch_with_replacement = True
  config.data.partial_batch = "fill"  # len(train_queue) = ceil(50000 / 64) = 782
  config.epochs = 25
  config.weights_optimizer.schedule_epochs = 50
  config.weights_optimizer.epoch_offset = 0
  config.step_order = "arch_first"
  return default.maybe_smoke(config, arg, {"bilevel": bilevel})


def bilevel(config):
  """GAEA bilevel: alpha on the NB201 validation split (random batches with replacement)."""
  config.data.split = "nb201"
  config.data.arch_with_replacement = True
  return config
