r"""Fair-DARTS (Chu et al., ECCV 2020) on NAS-Bench-201: OUR setting (the reference,
xiaomi-automl/FairDARTS, has no NB201 code): the NB201 DARTS first-order baseline
(``configs/darts_nb201.py``, AutoDL's DARTS-V1) with Fair-DARTS' two changes -- independent
sigmoids instead of the softmax, over the 4 ops without ``none``, and the zero-one loss on the
alpha objective (``jaxnas/methods/fair_darts.py``):

  python -m jaxnas.train --config=configs/fairdarts_nb201.py --workdir=runs/fairdarts_nb201 \
      --config.data.data_dir=/path/with/cifar-10-binary.tar.gz \
      --config.benchmark.path=/path/to/nats_bench.csv

  w     <- SGD(grad_w L_train(w, sigmoid(alpha)))            (weight step first, as AutoDL)
  alpha <- Adam(grad_alpha [L_val(w, sigmoid(alpha)) - 10 mean((sigmoid(alpha) - 0.5)^2)])

the mean over the 6 x 4 = 24 entries of the one cell matrix; alpha initialised to 0. Everything
else is ``darts_nb201.py``: C=16, N=5, batch 64, 50 epochs, SGD nesterov 0.025 -> 0.001 cosine,
momentum 0.9, wd 5e-4, clip 5, 391 steps per epoch; alpha Adam 3e-4, betas (0.5, 0.999), wd 1e-3
(Fair-DARTS' own DARTS-space alpha optimizer is Adam 3e-3, betas (0.9, 0.999):
``--config.arch_optimizer.learning_rate=3e-3 --config.arch_optimizer.b1=0.9``); the NB201 split.
Genotype: the per-edge argmax of sigmoid(alpha) (NB201 needs exactly one op per edge, so there is
no 0.85 threshold: the best op is kept whatever its weight).
"""
from configs import default


def get_config(arg=None):
  config = default.get_config()
  config.space.name = "nb201"
  config.space.ops = "skip_connect,nor_conv_1x1,nor_conv_3x3,avg_pool_3x3"
  config.space.channels = 16
  config.space.cells_per_stage = 5
  config.parametrization = "sigmoid"
  config.arch_regularizer.names = "zero_one"
  config.arch_regularizer.zero_one_weight = 10.0
  config.hypergrad = "first_order"
  config.data.name = "cifar10"
  config.data.split = "nb201"
  config.step_order = "weights_first"
  config.weights_optimizer.nesterov = True
  config.weights_optimizer.weight_decay = 5e-4
  config.data.partial_batch = "fill"  # len(search_loader) = ceil(25000 / 64) = 391
  config.weights_optimizer.epoch_offset = 0
  return default.maybe_smoke(config, arg)
