r"""β-DARTS: Ye, Li, Zhang, Chen, Luo, Wu, Tang, "β-DARTS: Beta-Decay Regularization for
Differentiable Architecture Search" (CVPR 2022); reference code Sunshine-Ye/Beta-DARTS.

A preset of DARTS (first order, softmax mixing) plus one new part, the **beta-decay regularizer**
``'beta_decay'`` (registered here with ``jaxnas.methods.compose.register_regularizer``), added to
the alpha objective only:

.. math::

   R(\alpha; e) = \lambda(e)\,\frac{1}{E}\sum_{c \in \mathrm{cells}}\sum_{i}
       \log\sum_k \exp \alpha_{c,i,k},\qquad
   \lambda(e) = \lambda_{\max}\,\frac{e}{T}

   \alpha \leftarrow \mathrm{Adam}_{L2}\big(\nabla_\alpha [L_{val}(w, \mathrm{softmax}(\alpha))
       + R(\alpha; e)]\big)\qquad
   w \leftarrow \mathrm{SGD}\big(\nabla_w L_{train}(w, \mathrm{softmax}(\alpha))\big)

on the RAW alpha (logits), E = the number of edges of all cell leaves together (normal and reduce;
NB201: 6), e = the epoch (from 0, constant within an epoch: ``step // steps_per_epoch`` at the
alpha step), ``lambda_max = config.arch_regularizer.beta_decay_weight`` (50) and
``T = config.arch_regularizer.beta_decay_epochs`` (0 = ``config.epochs``). The gradient is
``dR/dalpha_{c,i,k} = (lambda(e) / E) softmax(alpha_{c,i})_k``: a decay of each alpha in
proportion to its softmax probability ("beta decay"). Adam's own L2 weight decay (1e-3) stays on.

Reference (Sunshine-Ye/Beta-DARTS @ f307704):

* ``optimizers/darts/architect.py:55-59`` (``mlc_loss``): ``mean(logsumexp(alpha, dim=-1))``;
  ``:80-85``: ``loss = L_val + (50 * epoch / 100) * mlc_loss(alpha)`` in the first-order path
  only (the unrolled path, ``:87-107``, has no regularizer: β-DARTS is first order);
  ``:18-20``: Adam lr 3e-4, betas (0.5, 0.999), weight decay 1e-3;
* ``nasbench201/train_search.py``: 100 epochs, the 0-based epoch passed to the architect (so
  lambda runs 0 -> 49.5), alpha step first on a random batch of the second half of the CIFAR-10
  training set, then DARTS' weight step (SGD 0.025 -> 0.001 cosine, momentum 0.9, wd 3e-4, clip 5,
  ``scheduler.step()`` before ``get_lr()``); genotype: per-edge argmax of alpha, ``none``
  included.

Where jaxnas differs:

* the reference hard-codes ``/100`` (its NB201 epochs); jaxnas divides by ``beta_decay_epochs``
  (``configs/betadarts_nb201.py``: 100 = its epochs, the same values). The released DARTS-space
  script (``sota/cnn/train_search.py:213``) calls ``architect.step`` without ``epoch`` (a TypeError)
  and would pass the list ``[alphas_normal, alphas_reduce]`` to ``mlc_loss``: there is no runnable
  DARTS-space reference. ``configs/betadarts_cifar10.py`` uses the mean over the edges of both
  cells and ``T = config.epochs`` (50), so lambda reaches 49 as on NB201; the code's literal
  ``50 * epoch / 100`` over 50 epochs (lambda up to 24.5) is ``beta_decay_epochs=100``.
* the regularizer joins the alpha gradient for any hypergradient estimator (the reference: first
  order only); the β-DARTS configs are first order.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import ml_collections

from jaxnas import parts
from jaxnas import spaces
from jaxnas.methods import compose


def mean_logsumexp(arch: dict[str, jax.Array], keys: Sequence[str]) -> jax.Array:
  """``mean over edges of logsumexp(alpha_edge)`` over the edges (rows) of the leaves ``keys``
  together (the reference's ``mean(logsumexp(alpha, -1))`` on the stacked cells)."""
  total = sum(jnp.sum(jax.nn.logsumexp(arch[k], axis=-1)) for k in keys)
  rows = sum(int(arch[k].size // arch[k].shape[-1]) for k in keys)
  return total / rows


@dataclasses.dataclass(frozen=True)
class BetaDecay:
  """β-DARTS' ``lambda(e) * mean_edges logsumexp(alpha_edge)`` with ``lambda(e) = weight * e /
  epochs``, e = ``step // steps_per_epoch`` (the epoch of the alpha step, from 0). Metrics
  ``reg/beta_decay`` (the weighted term) and ``reg/beta_decay_lambda``."""
  weight: float = 50.0
  epochs: int = 100
  steps_per_epoch: int = 1
  keys: tuple[str, ...] = ("cell",)
  name: str = "beta_decay"

  def __post_init__(self):
    if not self.weight >= 0:
      raise ValueError(f"config.arch_regularizer.beta_decay_weight={self.weight!r} is not valid: "
                       "use a weight >= 0 (the reference: 50).")
    if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
      raise ValueError(f"config.arch_regularizer.beta_decay_epochs gives {self.epochs!r} epochs for "
                       "lambda's ramp: use an integer >= 1 (0 = config.epochs).")
    if not isinstance(self.steps_per_epoch, int) or self.steps_per_epoch < 1:
      raise ValueError(f"steps_per_epoch={self.steps_per_epoch!r}: use an integer >= 1.")
    if not self.keys:
      raise ValueError("The beta-decay regularizer needs at least one cell leaf "
                       "(space.cell_keys()).")

  def lam(self, step: jax.Array | int) -> jax.Array:
    """``lambda(e) = weight * e / epochs`` with ``e = step // steps_per_epoch``."""
    return self.weight * parts.epoch_progress(step, self.steps_per_epoch, self.epochs, hold=False)

  def init(self, arch: Any, ctx: parts.Context) -> parts.NoState:
    del arch, ctx
    return parts.NoState()

  def penalty(self, arch: Any, state: parts.NoState, ctx: parts.Context) -> jax.Array:
    del state
    value = mean_logsumexp(arch, self.keys)
    return self.lam(ctx.step).astype(value.dtype) * value

  def advance(self, state: parts.NoState, arch: Any, due: jax.Array, ctx: parts.Context):
    del arch, due
    return state, {"reg/beta_decay_lambda": self.lam(ctx.step)}


def read_beta_decay(config: ml_collections.ConfigDict, space: spaces.SearchSpace,
                    steps_per_epoch: int) -> BetaDecay:
  """``'beta_decay'`` in ``config.arch_regularizer.names``: needs softmax mixing (the term is the
  log-partition of softmax(alpha); its gradient is lambda/E softmax(alpha))."""
  if config.parametrization != "softmax":
    raise ValueError(
        f"config.arch_regularizer.names has 'beta_decay', the log-partition of softmax(alpha): it "
        f"needs config.parametrization='softmax' (β-DARTS), not {config.parametrization!r}; set "
        "--config.parametrization=softmax or drop 'beta_decay'.")
  block = config.arch_regularizer
  epochs = int(block.beta_decay_epochs) or int(config.epochs)
  return BetaDecay(weight=float(block.beta_decay_weight), epochs=epochs,
                   steps_per_epoch=max(int(steps_per_epoch), 1), keys=tuple(space.cell_keys()))


compose.register_regularizer("beta_decay", read_beta_decay)
