"""MiLeNAS (He et al., CVPR 2020) on NAS-Bench-201: first-order mixed-level search on the NB201
supernet. Ours: MiLeNAS' code searches the DARTS space only (``configs/milenas_cifar10.py``), so
this is its update on AutoDL's DARTS-V1 NB201 setup (``configs/darts_nb201.py``).

  python -m jaxnas.train --config=configs/milenas_nb201.py --workdir=runs/milenas_nb201 \
      --config.data.data_dir=/path/with/cifar-10-binary.tar.gz \
      --config.benchmark.path=/path/to/nats_bench.csv

alpha <- Adam(grad_alpha L_train + lambda grad_alpha L_val), lambda = 1 (paper Eq. 6), the train
term on the batch of the following weight step (alpha step first, as MiLeNAS' loop); then
w <- SGD(grad_w L_train). Everything else is darts_nb201's: C=16, N=5, batch 64, 50 epochs, SGD
nesterov 0.025 -> 0.001 cosine, momentum 0.9, wd 5e-4, clip 5; alpha Adam 3e-4, betas (0.5,
0.999), wd 1e-3; the NB201 split. No model-size buckets (an NB201 cell has no normal / reduction
pair to bucket).
"""
from configs import darts_nb201
from configs import default


def get_config(arg=None):
  config = darts_nb201.get_config()
  config.hypergrad = "mixed_level"
  config.hypergrad_options.mixed_level_lambda = 1.0
  config.hypergrad_options.milenas_weighting = "paper"
  config.step_order = "arch_first"
  return default.maybe_smoke(config, arg)
