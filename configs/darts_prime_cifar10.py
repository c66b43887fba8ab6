"""DARTS-PRIME (Maile et al., arXiv 2106.11655 v3) on CIFAR-10, DARTS space: the README recipe of
k8lion/DARTS-PRIME (``--reg prox --schedfreq 10 --dyno_split --dyno_schedule``; methods.md §4).

  python -m jaxnas.train --config=configs/darts_prime_cifar10.py --workdir=runs/prime_c10 \
      --config.data.data_dir=/path/with/cifar-10-binary.tar.gz

Softmax activation over the 8 DARTS ops; alpha loss L_val + (t/T) rho/2 ||act(alpha) - Z||_2 with
Z the derived cell (rho = 0.1); dynamic alpha-step schedule on the Fisher-trace EWMA (0.2) with
threshold 1.0 x 1.05^-10 after an alpha step, x 1.05 otherwise (k = 10); dynamic split: 10/11 of
the training set for the weights, alpha batches an epoch-wise stream; C=16, 8 cells, batch 64,
50 epochs, SGD 0.025 -> 0.001 cosine, momentum 0.9, wd 3e-4, clip 5; alpha Adam 3e-4, betas
(0.5, 0.999), wd 1e-3; alpha step first; seed 2. TensorBoard: ``prime/arch_step``,
``prime/fisher_trace``, ``prime/fisher_ewma``, ``prime/threshold``, ``prime/reg``.

Variants (comma-separated, e.g. ``:admm,smoke``): ``admm`` (ADMM instead of prox, Z/U every 10
alpha steps), ``clamp`` (Maile et al. v1's activation: clip(alpha, 0, 1) over the 7 ops without
``none``, permanent pruning, BatchNorm on every node), ``cifar100``, ``fixed`` (an alpha step every
k steps instead of the dynamic schedule), ``smoke``.
"""
from configs import default
from jaxnas import spaces
from jaxnas.methods import darts_prime


def get_config(arg=None):
  config = default.get_config()
  default.darts_space(config)
  config.data.name = "cifar10"
  config.method = "darts_prime"
  config.parametrization = "softmax"
  config.step_order = "arch_first"
  config.darts_prime.regularizer = "prox"
  config.darts_prime.schedule = "dynamic"
  config.darts_prime.schedule_freq = 10
  dynamic_split(config)
  return default.maybe_smoke(config, arg, VARIANTS)


def dynamic_split(config):
  """The dynamic split: train portion 1 - 1/(1 + k), alpha batches without replacement."""
  config.darts_prime.dynamic_split = True
  config.data.split = "darts"
  config.data.train_portion = darts_prime.dynamic_train_portion(config.darts_prime.schedule_freq)
  config.data.arch_with_replacement = False
  config.data.partial_batch = "fill"  # len(train_queue) = ceil(45454 / 64) = 711
  return config


def admm(config):
  """ADMM: rho/2 ||act(alpha) - Z + U||_2, Z and U updated every admm_freq alpha steps."""
  config.darts_prime.regularizer = "admm"
  config.darts_prime.admm_freq = 10
  return config


def clamp(config):
  """Maile et al.'s activation: clip(alpha, 0, 1), no 'none', pruning, node BatchNorm."""
  config.parametrization = "clamp"
  config.space.ops = ",".join(op for op in _ops(config.space.name) if op != "none")
  config.space.node_batchnorm = True
  return config


def _ops(space_name):
  return spaces.get(space_name).ops


def cifar100(config):
  """CIFAR-100 (the README's ``--task CIFAR100``)."""
  config.data.name = "cifar100"
  return config


def fixed(config):
  """An alpha step every k weight steps ((step + 1) % k == 0) instead of the dynamic schedule."""
  config.darts_prime.schedule = "fixed"
  return config


def smoke(config):
  """2 tiny steps; a huge initial threshold so that the dynamic schedule skips the alpha step at
  step 0 (no Fisher trace yet) and takes it at step 1; ADMM updates after every alpha step."""
  config = default.smoke(config)
  config.data.synthetic_num_train = 128  # the dynamic split leaves 12 images for alpha batches of 8
  config.darts_prime.init_threshold = 1e9
  config.darts_prime.admm_freq = 1
  return config


VARIANTS = {"admm": admm, "clamp": clamp, "cifar100": cifar100, "fixed": fixed, "smoke": smoke}
