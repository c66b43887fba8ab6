"""DARTS (first order) on CIFAR-10, DARTS space, quark0/darts hyperparameters (methods.md §2(e)).

  python -m jaxnas.train --config=configs/darts_cifar10.py --workdir=runs/darts_c10 \
      --config.data.data_dir=/path/with/cifar-10-binary.tar.gz

C=16, 8 cells, batch 64, 50 epochs, SGD 0.025 -> 0.001 cosine (epoch-start off-by-one of the
reference), momentum 0.9, wd 3e-4, clip 5; alpha Adam 3e-4, betas (0.5, 0.999), wd 1e-3; alpha step
first; 50/50 split of the training set; alpha batches sampled with replacement; seed 2. An epoch
is one pass over the weight half with the last partial batch kept (391 steps of batch 64, as
``len(train_queue)``; ``data.partial_batch='fill'``).

Variants: ``:second_order`` (exact one-step unroll through the real SGD step with momentum and weight
decay: the true gradient of DARTS' unrolled objective; the default second order) and
``:second_order_fd`` (quark0/darts' finite-difference approximation, eps = 0.01/||v||); combine with
``smoke``, e.g. ``configs/darts_cifar10.py:second_order,smoke``.
"""
from configs import default


def get_config(arg=None):
  config = default.get_config()
  default.darts_space(config)
  config.data.name = "cifar10"
  config.data.split = "darts"
  config.data.partial_batch = "fill"  # len(train_queue) = ceil(25000 / 64) = 391 steps per epoch
  return default.maybe_smoke(config, arg)
