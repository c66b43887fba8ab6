"""RARTS (Xue, Qi, Xin, IEEE Access 2022) on CIFAR-10, DARTS space, DARTS' search hyperparameters.

  python -m jaxnas.train --config=configs/rarts_cifar10.py --workdir=runs/rarts_c10 \
      --config.data.data_dir=/path/with/cifar-10-binary.tar.gz

Two supernets share one alpha: w trains on the training half, y on the validation half of the
CIFAR-10 training set (the 50/50 DARTS split), coupled by beta/2 ||y - w||^2. One Gauss-Seidel pass
per step (jaxnas/methods/rarts.py): w <- SGD(grad L_train(w)); y <- SGD(grad L_val(y) + beta (y - w));
alpha <- Adam(grad_alpha L_val(y) + lambda grad_alpha L_train(w)) at the new w and y.
Objective L_val(y) + lambda L_train(w) + beta/2 ||y - w||^2 with lambda = 1, beta = 1: the paper's
values are UNCONFIRMED (methods.md §7); change them with --config.rarts.lam / --config.rarts.beta,
and the weighting with --config.rarts.lam_on=val (L_train(w) + lambda L_val(y), issue #7's form).
DARTS search setup: C=16, 8 cells, batch 64, 50 epochs, SGD 0.025 -> 0.001 cosine, momentum 0.9,
wd 3e-4, clip 5 (w and y, separate momentum buffers); alpha Adam 3e-4, betas (0.5, 0.999), wd 1e-3.

Variants: ``:current_alpha`` takes the alpha gradient from the network steps' own backward passes
(two fwd+bwd per step, the cost of DARTS first order, instead of four); ``:coupled_w`` adds the
coupling to the w step as well; combine with ``smoke``, e.g. ``configs/rarts_cifar10.py:smoke``.
"""
from configs import default


def get_config(arg=None):
  config = default.get_config()
  default.darts_space(config)
  config.data.name = "cifar10"
  config.data.split = "darts"
  config.method = "rarts"
  config.data.partial_batch = "fill"  # DARTS' epoch: ceil(25000 / 64) = 391 steps (no RARTS code)
  config.hypergrad = "first_order"
  return default.maybe_smoke(config, arg, VARIANTS)


def current_alpha(config):
  """The alpha gradient at the step's old w and y, from the network steps' backward passes."""
  config.rarts.alpha_gradient_at = "current"
  return config


def coupled_w(config):
  """The w step descends L_train(w) + beta/2 ||y - w||^2 (the full partial gradient in w)."""
  config.rarts.coupling_in_w_step = True
  return config


VARIANTS = {"current_alpha": current_alpha, "coupled_w": coupled_w}
