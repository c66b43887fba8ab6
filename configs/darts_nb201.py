"""DARTS-V1 (first order) on NAS-Bench-201, as AutoDL's baseline (methods.md §9.4).

  python -m jaxnas.train --config=configs/darts_nb201.py --workdir=runs/darts_nb201 \
      --config.data.data_dir=/path/with/cifar-10-binary.tar.gz \
      --config.benchmark.path=/path/to/nats_bench.csv

C=16, N=5, batch 64, 50 epochs; SGD nesterov, momentum 0.9, wd 5e-4, cosine 0.025 -> 0.001 per
epoch (xautodl's ``CosineAnnealingLR.get_lr`` reads only ``current_epoch``; the per-iteration
``scheduler.update(None, step / len)`` changes nothing), clip 5; 391 steps per epoch (the last
partial batch kept); alpha Adam 3e-4, betas (0.5, 0.999), wd 1e-3; the weight step comes first; the
NB201 split (CIFAR-10: a fixed 50/50 split of the training set). Expect the collapse to skip
connections that NB201 reports for DARTS (54.30% CIFAR-10 test).

Variants: ``:second_order`` (DARTS-V2 with the exact one-step unroll, the default second order) and
``:second_order_fd`` (AutoDL's DARTS-V2 finite differences); DARTS-V2 takes the alpha step first.
"""
from configs import default


def get_config(arg=None):
  config = default.get_config()
  config.space.name = "nb201"
  config.space.channels = 16
  config.space.cells_per_stage = 5
  config.data.name = "cifar10"
  config.data.split = "nb201"
  config.step_order = "weights_first"
  config.weights_optimizer.nesterov = True
  config.weights_optimizer.weight_decay = 5e-4
  config.weights_optimizer.per_step_schedule = False  # CosineAnnealingLR.get_lr uses current_epoch only
  config.data.partial_batch = "fill"  # len(search_loader) = ceil(25000 / 64) = 391
  config.weights_optimizer.epoch_offset = 0
  return default.maybe_smoke(config, arg, {"second_order": darts_v2, "second_order_fd":
                                           lambda c: darts_v2(c, "finite_difference")})


def darts_v2(config, estimator="unrolled"):
  """AutoDL's DARTS-V2: second-order hypergradient, alpha step before the weight step."""
  config = default.second_order(config, estimator)
  config.step_order = "arch_first"
  return config
