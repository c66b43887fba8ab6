r"""DARTS- (Chu et al., "DARTS-: Robustly Stepping out of Performance Collapse Without Indicators",
ICLR 2021) on the DARTS CNN space (CIFAR-10), as Meituan-AutoML/DARTS- ``src/search/`` with
``--auxiliary_skip --skip_beta 1 --decay linear``.

  python -m jaxnas.train --config=configs/dartsminus_cifar10.py --workdir=runs/dartsminus_cifar10 \
      --config.data.data_dir=/path/with/cifar-10-binary.tar.gz

First-order DARTS (alpha step first on the next batch of a cycling pass over the validation half,
then the weight step; weights SGD 0.025 cosine -> 0.001 with ``scheduler.step(epoch)`` at each epoch
start (epoch e at T = e), momentum 0.9, wd 3e-4, clip 5; alpha Adam 3e-4, betas (0.5, 0.999), L2 1e-3;
C = 16, 8 cells, batch 64, 50 epochs), every training forward with the auxiliary skip
(``jaxnas/methods/darts_minus.py``)::

  out_e = sum_k softmax(alpha_e)_k op_k(x) + beta(e) x,     beta(e) = 1 - e / 50

The reference's script searches its space ``s3``; this config is the original DARTS space (its
``s5``). Differences (the module's docstring): on the stride-2 edges of reduction cells the
auxiliary branch is the ``skip_connect`` op's FactorizedReduce (the reference: one of its own), and
the per-epoch supernet evaluation has no auxiliary branch.
"""
from configs import default


def get_config(arg=None):
  config = default.get_config()
  default.darts_space(config)
  config.data.name = "cifar10"
  config.data.split = "darts"
  config.data.partial_batch = "fill"  # len(train_queue) = ceil(25000 / 64) = 391 steps per epoch
  config.data.arch_with_replacement = False  # next(valid_gen): a cycling pass over the valid half
  config.weights_optimizer.epoch_offset = 0  # scheduler.step(epoch) at the start of epoch e: T = e
  config.auxiliary_skip.beta = 1.0
  config.auxiliary_skip.decay_epochs = 50
  return default.maybe_smoke(config, arg)
