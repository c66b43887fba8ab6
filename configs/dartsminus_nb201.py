r"""DARTS- (Chu et al., ICLR 2021) on NAS-Bench-201: jaxnas' NB201 first-order DARTS
(``configs/darts_nb201.py``, AutoDL's DARTS-V1 settings) with DARTS-' auxiliary skip.

  python -m jaxnas.train --config=configs/dartsminus_nb201.py --workdir=runs/dartsminus_nb201 \
      --config.data.data_dir=/path/with/cifar-10-binary.tar.gz \
      --config.benchmark.path=/path/to/nats_bench.csv

The paper reports NB201 results but its code has no NB201 search (Meituan-AutoML/DARTS- searches
the DARTS spaces only), so this preset is ours: AutoDL's DARTS-V1 (weights first, Nesterov SGD
0.025 cosine -> 0.001 per epoch, wd 5e-4; alpha Adam 3e-4, betas (0.5, 0.999), L2 1e-3; C = 16,
N = 5, batch 64, the NB201 split) for 50 epochs with ``beta(e) = 1 - e / 50`` on every edge
(``jaxnas/methods/darts_minus.py``; NB201 cells have no stride-2 edge, so the auxiliary skip is the
identity everywhere, exactly as the reference's).
"""
from configs import darts_nb201
from configs import default


def get_config(arg=None):
  config = darts_nb201.get_config()
  config.epochs = 50
  config.auxiliary_skip.beta = 1.0
  config.auxiliary_skip.decay_epochs = 50
  return default.maybe_smoke(config, arg)
