r"""SDARTS (Chen & Hsieh, "Stabilizing Differentiable Architecture Search via Perturbation-based
Regularization", ICML 2020) on NAS-Bench-201, as the reference's ``nasbench201/train_search.py``
(xiangning-chen/SmoothDARTS @ d3dbfed). SDARTS-RS by default; ``:adversarial`` is SDARTS-ADV.

  python -m jaxnas.train --config=configs/sdarts_nb201.py[:adversarial] --workdir=runs/sdarts_nb201 \
      --config.data.data_dir=/path/with/cifar-10-binary.tar.gz \
      --config.benchmark.path=/path/to/nats_bench.csv

First-order DARTS, alpha step first on the clean alpha, then the weight step on a perturbed
``A' = P(softmax(alpha))`` (``jaxnas/methods/sdarts.py``, ``config.arch_perturbation``)::

  alpha <- Adam(alpha, grad_alpha L_val(w, softmax(alpha)))    (lr 3e-4, betas (0.5, 0.999), L2 1e-3)
  w     <- SGD(w, grad_w L_train(w, A'))                         (0.025 cosine -> 0.001, wd 3e-4, clip 5)

  RS:  A' = clip(A + U(-eps, eps));  ADV: 7 sign-PGD steps of 2 eps / 7 on L_train (eval-mode BN)
  eps(e) = 0.03 + (0.3 - 0.03) e / 100

The NB201 op set with ``none``, C = 16, N = 5, batch 64, 100 epochs, the 50/50 split of the CIFAR-10
training set (``train_portion 0.5``); the genotype is the per-edge argmax (``none`` may win, as the
reference's ``model.py:182-193``).
"""
from configs import default


def get_config(arg=None):
  config = default.get_config()
  config.space.name = "nb201"
  config.space.channels = 16
  config.space.cells_per_stage = 5
  config.data.name = "cifar10"
  config.data.split = "darts"
  config.data.partial_batch = "fill"  # len(train_queue) = ceil(25000 / 64) = 391 steps per epoch
  config.epochs = 100
  config.step_order = "arch_first"
  config.arch_perturbation.name = "random"
  config.arch_perturbation.epsilon_min = 0.03
  config.arch_perturbation.epsilon_max = 0.3
  config.arch_perturbation.attack_steps = 7
  return default.maybe_smoke(config, arg, {"adversarial": adversarial})


def adversarial(config):
  """SDARTS-ADV: the 7-step L_inf PGD attack on the mixing instead of uniform noise."""
  config.arch_perturbation.name = "adversarial"
  return config
