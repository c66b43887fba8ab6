r"""β-DARTS (Ye et al., "β-DARTS: Beta-Decay Regularization for Differentiable Architecture
Search", CVPR 2022) on NAS-Bench-201, as Sunshine-Ye/Beta-DARTS ``nasbench201/train_search.py``
with ``optimizers/darts/architect.py`` (its defaults).

  python -m jaxnas.train --config=configs/betadarts_nb201.py --workdir=runs/betadarts_nb201 \
      --config.data.data_dir=/path/with/cifar-10-binary.tar.gz \
      --config.benchmark.path=/path/to/nats_bench.csv

DARTS first order with the beta-decay term on the alpha objective (``jaxnas/methods/
beta_darts.py``), on the raw alpha:

  alpha <- Adam(grad_alpha [L_val(w, softmax(alpha)) + (50 e / 100) mean_edges logsumexp(alpha_e)])
  w     <- SGD(grad_w L_train(w, softmax(alpha)))

e the epoch from 0 (lambda 0 -> 49.5 over the 100 epochs; the reference's hard-coded ``/100``:
``beta_decay_epochs=100``). Alpha step first on a random batch (with replacement) of the second
half of the CIFAR-10 training set, weight step on the first half (``data.split='darts'``); Adam
3e-4, betas (0.5, 0.999), L2 1e-3 (kept together with the term); SGD 0.025 -> 0.001 cosine per
epoch (``scheduler.step()`` before ``get_lr()``: ``epoch_offset=1``), momentum 0.9, wd 3e-4
(no nesterov), clip 5; batch 64, 391 steps per epoch; C=16, N=5, the 5 NB201 ops with ``none``;
genotype: the per-edge argmax, ``none`` included; the supernet evaluation on the second half (the
reference's ``infer(valid_queue)``). The reference queries NB201 with ``hp='200'``.
"""
from configs import default


def get_config(arg=None):
  config = default.get_config()
  config.space.name = "nb201"
  config.space.channels = 16
  config.space.cells_per_stage = 5
  config.parametrization = "softmax"
  config.hypergrad = "first_order"
  config.step_order = "arch_first"
  config.arch_regularizer.names = "beta_decay"
  config.arch_regularizer.beta_decay_weight = 50.0
  config.arch_regularizer.beta_decay_epochs = 100
  config.arch_optimizer.learning_rate = 3e-4
  config.arch_optimizer.b1 = 0.5
  config.arch_optimizer.b2 = 0.999
  config.arch_optimizer.weight_decay = 1e-3
  config.weights_optimizer.learning_rate = 0.025
  config.weights_optimizer.min_learning_rate = 0.001
  config.weights_optimizer.nesterov = False
  config.weights_optimizer.weight_decay = 3e-4
  config.weights_optimizer.epoch_offset = 1
  config.batch_size = 64
  config.epochs = 100
  config.data.name = "cifar10"
  config.data.split = "darts"
  config.data.train_portion = 0.5
  config.data.partial_batch = "fill"  # len(train_queue) = ceil(25000 / 64) = 391
  return default.maybe_smoke(config, arg)
