"""Quickstart: a real NAS-Bench-201 search on scikit-learn's 8x8 digits (no download), a few minutes on a CPU.

  python -m jaxnas.train --config=configs/quickstart.py --workdir=/tmp/jaxnas_quickstart

DARTS first order on a small NB201 supernet (C=8, N=2) over the digits dataset; prints the derived
NB201 cell every epoch and at the end. With a NAS-Bench-201 table, add
``--config.benchmark.path=PATH`` to see the found cell's CIFAR-10 accuracy (200-epoch ground truth).
"""
from configs import default


def get_config(arg=None):
  config = default.get_config()
  config.seed = 0
  config.space.name = "nb201"
  config.space.channels = 8
  config.space.cells_per_stage = 2
  config.data.name = "digits"
  config.data.split = "darts"
  config.data.crop_padding = 1
  config.data.flip = False               # digits are not mirror-symmetric
  config.batch_size = 64
  config.epochs = 30
  config.weights_optimizer.epoch_offset = 0
  config.log_every_steps = 22
  config.checkpoint_every_steps = 200
  return default.maybe_smoke(config, arg)
