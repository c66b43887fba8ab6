"""MiLeNAS (He et al., CVPR 2020) on CIFAR-10, DARTS space: first-order mixed-level search.

  python -m jaxnas.train --config=configs/milenas_cifar10.py --workdir=runs/milenas_c10 \
      --config.data.data_dir=/path/with/cifar-10-binary.tar.gz

alpha <- Adam(grad_alpha L_train + lambda grad_alpha L_val), lambda = 1 (paper Eq. 6; the reference
code weights the train term instead: --config.hypergrad_options.milenas_weighting=code; the two
agree for lambda = 1). The train term uses the same batch as the following weight step. Search
hyperparameters of run_milenas.sh: batch 64, 50 epochs, SGD 0.025 -> 0.001 cosine stepped at the
end of each epoch, momentum 0.9, wd 3e-4; alpha Adam 3e-4, betas (0.5, 0.999), wd 1e-3; seed 2.
Model-size-based search is on (best genotype per (normal convs, reduce convs) bucket in
size_buckets.json); early stopping (6 normal convs, 0 reduce) is off as in the run script:
--config.milenas.early_stopping=True.
Weight clipping: the reference code clips the alpha gradients instead of the weights (a bug), so
its weights are never clipped. Default here: the corrected behaviour (clip weights at 5); the
reference behaviour: --config.weights_optimizer.clip_norm=0.
"""
from configs import default


def get_config(arg=None):
  config = default.get_config()
  default.darts_space(config)
  config.data.name = "cifar10"
  config.data.split = "darts"
  config.hypergrad = "mixed_level"
  config.hypergrad_options.mixed_level_lambda = 1.0
  config.hypergrad_options.milenas_weighting = "paper"
  config.weights_optimizer.epoch_offset = 0
  config.data.partial_batch = "fill"  # len(train_queue) = ceil(25000 / 64) = 391
  config.milenas.size_buckets = True
  config.milenas.early_stopping = False
  return default.maybe_smoke(config, arg)
