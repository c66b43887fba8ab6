"""iDARTS (Zhang et al., ICML 2021) on CIFAR-10, DARTS space (the reference has no DARTS-space code;
its NAS-Bench-1Shot1 settings are used: T = 5, K = 2, gamma = weight LR, batch 96, lr 0.025 -> 0.001).

  python -m jaxnas.train --config=configs/idarts_cifar10.py --workdir=runs/idarts_c10 \
      --config.data.data_dir=/path/with/cifar-10-binary.tar.gz

How an epoch is counted (``config.epoch_unit='arch'``), as in NAS-Bench-1Shot1
``optimizers/idarts_v2/train_search.py`` (l. 199-207: the epoch loops over ``valid_queue``; l. 207
``architect.step``) and ``architect_approx.py`` (l. 34-50: ``for step in range(5)`` weight steps on
``next(iter(train_queue))``): one pass over the alpha half of the 50/50 split, ceil(25000 / 96) =
261 alpha steps, and 5 x 261 = 1305 weight steps per epoch; the cosine (0.025 -> 0.001 over 50
epochs) steps once per such epoch, at its start (l. 151-153, ``epoch_offset=1``). 50 epochs: 13050
alpha steps, 65250 weight steps.
"""
from configs import darts_cifar10
from configs import default
from configs import idarts_nb201


def get_config(arg=None):
  config = darts_cifar10.get_config()
  idarts_nb201.idarts(config)
  config.batch_size = 96
  return default.maybe_smoke(config, arg)
