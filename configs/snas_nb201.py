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
  config = snas_cifar10.get_config()  # SNAS' own settings (its code's), on the NB201 supernet
  config.space.name = "nb201"
  config.space.channels = 16
  config.space.cells_per_stage = 5
  return default.maybe_smoke(config, arg, VARIANTS)


VARIANTS = {"resource": snas_cifar10.resource}
