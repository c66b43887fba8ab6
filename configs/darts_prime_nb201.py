"""DARTS-PRIME (Maile et al., arXiv 2106.11655 v3) on NAS-Bench-201: the CIFAR-10 recipe
(``configs/darts_prime_cifar10.py``) on the NB201 space and its supernet (methods.md §4, §9).

  python -m jaxnas.train --config=configs/darts_prime_nb201.py --workdir=runs/prime_nb201 \
      --config.data.data_dir=/path/with/cifar-10-binary.tar.gz \
      --config.benchmark.path=/path/to/nats_bench.csv

Softmax over the 5 NB201 ops, prox (rho 0.1) toward the per-edge argmax cell, dynamic schedule
(k = 10, EWMA 0.2, threshold 1.0, x1.05), dynamic split (10/11 of the CIFAR-10 training set for
the weights); C=16, N=5, batch 64, 50 epochs, SGD 0.025 -> 0.001 cosine per epoch, momentum 0.9,
wd 3e-4, clip 5; alpha Adam 3e-4, betas (0.5, 0.999), wd 1e-3; alpha step first. The reference
has no NB201 runs: these are DARTS-PRIME's CIFAR-10 hyperparameters.

Variants: ``admm``, ``clamp`` (clip(alpha, 0, 1) over the 4 ops without ``none``, pruning, node
BatchNorm), ``cifar100``, ``fixed``, ``smoke`` (as in ``darts_prime_cifar10.py``).
"""
from configs import darts_prime_cifar10 as prime
from configs import default


def get_config(arg=None):
  config = prime.get_config()
  config.space.name = "nb201"
  config.space.channels = 16
  config.space.cells_per_stage = 5
  return default.maybe_smoke(config, arg, prime.VARIANTS)
