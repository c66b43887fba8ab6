"""RARTS (Xue, Qi, Xin, IEEE Access 2022) on NAS-Bench-201, with AutoDL's DARTS-V1 search setup.

  python -m jaxnas.train --config=configs/rarts_nb201.py --workdir=runs/rarts_nb201 \
      --config.data.data_dir=/path/with/cifar-10-binary.tar.gz \
      --config.benchmark.path=/path/to/nats_bench.csv

w trains on the NB201 train half, y on the valid half (a fixed 50/50 split of the CIFAR-10
training set), coupled by beta/2 ||y - w||^2; one Gauss-Seidel pass per step, w -> y -> alpha
(jaxnas/methods/rarts.py). lambda = 1, beta = 1 (UNCONFIRMED, methods.md §7: see
configs/rarts_cifar10.py for the fields). The networks' optimizer is darts_nb201's: C=16, N=5,
batch 64, 50 epochs, SGD nesterov, momentum 0.9, wd 5e-4, cosine 0.025 -> 0.001 per epoch,
clip 5; alpha Adam 3e-4, betas (0.5, 0.999), wd 1e-3. The paper reports NATS-Bench results;
the benchmark lookup logs each epoch's genotype's ground truth.

Variants: ``:current_alpha``, ``:coupled_w`` (see configs/rarts_cifar10.py) and ``smoke``.
"""
from configs import darts_nb201
from configs import default
from configs import rarts_cifar10


def get_config(arg=None):
  config = darts_nb201.get_config()  # AutoDL's DARTS-V1 setup; RARTS' weight phase fixes the order
  config.method = "rarts"
  config.hypergrad = "first_order"
  return default.maybe_smoke(config, arg, rarts_cifar10.VARIANTS)
