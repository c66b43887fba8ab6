r"""Fair-DARTS: Chu, Zhou, Zhang, Li, "Fair DARTS: Eliminating Unfair Advantages in Differentiable
Architecture Search" (ECCV 2020); reference code xiaomi-automl/FairDARTS (``fairdarts/``).

A preset of parts plus one new part, the **zero-one regularizer** ``'zero_one'`` (registered here
with ``jaxnas.methods.compose.register_regularizer``). Mixing weights are the elementwise sigmoid
(``jaxnas.parametrize.Sigmoid``, ``config.parametrization='sigmoid'``, alpha initialised to 0), so
the ops of an edge do not compete. One step (alpha step first, first order; the weight step is
DARTS' plain one):

.. math::

   w_{e,k} = \sigma(\alpha_{e,k}),\qquad \bar o_e(x) = \sum_k w_{e,k}\, o_k(x)

   L_{01}(\alpha) = -\frac{1}{N}\sum_{c \in \mathrm{cells}}\sum_{e,k}
       \big(\sigma(\alpha_{c,e,k}) - \tfrac12\big)^2 \qquad (N = \text{all cell entries})

   \alpha \leftarrow \mathrm{Adam}\big(\nabla_\alpha [L_{val}(w, \sigma(\alpha))
       + \lambda_{01} L_{01}(\alpha)]\big)\qquad
   w \leftarrow \mathrm{SGD}\big(\nabla_w L_{train}(w, \sigma(\alpha))\big)

with ``lambda_01 = config.arch_regularizer.zero_one_weight`` (10). The gradient is
``dR/dalpha = -2 lambda_01 / N (s - 1/2) s (1 - s)``, ``s = sigmoid(alpha)``: zero at alpha = 0 (an
unstable stationary point: only the validation loss moves alpha off it).

Reference (xiaomi-automl/FairDARTS @ 270cfc9, ``fairdarts/``):

* ``separate_loss.py:14-17`` (``ConvSeparateLoss``): ``loss = CE - weight * mse_loss(sig, 0.5)``,
  i.e. the mean over ALL entries of ``cat([sigmoid(a_normal), sigmoid(a_reduce)])`` (28 x 7 = 196
  in the DARTS space); jaxnas: the mean over the concatenation of every cell leaf
  (``space.cell_keys()``: normal and reduce; NB201's one cell; PC-DARTS' edge weights excluded);
* ``architect.py:15-26``: first order, Adam lr 3e-3, betas (0.9, 0.999), weight decay 1e-3;
* ``train_search.py:193-220``: the alpha step on a fresh random validation batch, then the weight
  step (its loss carries the term too, which has no w-dependence);
* ``model_search.py:104-111, 125-126``: sigmoid mixing, alpha initialised to zeros;
  ``genotypes.py:8-16``: 7 ops, no ``none``;
* ``utils.py:143-189`` (``parse_method='threshold_sparse'``, ``op_threshold=0.85``): per node, the
  top-2 incoming edges by their best sigmoid weight, each kept only if that weight >= 0.85 (0, 1 or
  2 inputs per node).

Where jaxnas differs:

* **derivation**: the search loop derives (and evaluates, and looks up) the DARTS genotype of
  ``space.derive`` -- top-2 edges per node and their best op, *without* the 0.85 threshold: a
  DARTS genotype (and the evaluation network built from it) has exactly two inputs per node. The
  reference's rule is :func:`threshold_sparse` / :func:`threshold_genotype` here (helpers to
  apply to a restored state's sigmoid(alpha); not wired into the driver's genotype log); its
  kept edges are a subset of the derived genotype's (the same ranking, ties aside).
* only the ``'l2'`` separation loss (the default); the ``'l1'`` variant (``TriSeparateLoss``:
  ``-mean|sigmoid(alpha) - 0.5|``) and ``--single_level`` are not built.
* the regularizer is on the raw alpha (``sigmoid(alpha)``), as the reference; with a pruning mask
  the masked entries still count in N (no Fair-DARTS config prunes).
* NAS-Bench-201: the reference has no NB201 code; ``configs/fairdarts_nb201.py`` is ours.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxnas import parts
from jaxnas import spaces
from jaxnas.methods import compose
from jaxnas.spaces import darts as darts_space


def zero_one_loss(arch: dict[str, jax.Array], keys: Sequence[str]) -> jax.Array:
  """``L01 = -mean((sigmoid(alpha) - 0.5)^2)`` over all entries of the leaves ``keys`` together
  (the mean over their concatenation, as the reference's ``mse_loss`` on ``cat``).

  ``sigmoid(a) - 0.5`` is computed as ``tanh(a / 2) / 2`` (the same value): near the reference's
  init alpha = 0 the float32 difference of sigmoid and 0.5 loses about 3 digits."""
  total = sum(jnp.sum(jnp.square(0.5 * jnp.tanh(0.5 * arch[k]))) for k in keys)
  count = sum(int(np.prod(arch[k].shape)) for k in keys)
  return -total / count


@dataclasses.dataclass(frozen=True)
class ZeroOne:
  """Fair-DARTS' zero-one loss ``weight * -mean((sigmoid(alpha) - 0.5)^2)`` over every entry of
  the cell leaves ``keys`` (normal and reduce together). Metric ``reg/zero_one``."""
  weight: float = 10.0
  keys: tuple[str, ...] = ("normal", "reduce")
  name: str = "zero_one"

  def __post_init__(self):
    if not self.weight >= 0:
      raise ValueError(f"config.arch_regularizer.zero_one_weight={self.weight!r} is not valid: "
                       "use a weight >= 0 (the reference: 10).")
    if not self.keys:
      raise ValueError("The zero-one regularizer needs at least one cell leaf (space.cell_keys()).")

  def init(self, arch: Any, ctx: parts.Context) -> parts.NoState:
    del arch, ctx
    return parts.NoState()

  def penalty(self, arch: Any, state: parts.NoState, ctx: parts.Context) -> jax.Array:
    del state, ctx
    return self.weight * zero_one_loss(arch, self.keys)

  def advance(self, state: parts.NoState, arch: Any, due: jax.Array, ctx: parts.Context):
    del arch, due, ctx
    return state, {}


def read_zero_one(config: ml_collections.ConfigDict, space: spaces.SearchSpace,
                  steps_per_epoch: int) -> ZeroOne:
  """``'zero_one'`` in ``config.arch_regularizer.names``: needs the sigmoid parametrization (the
  loss pushes sigmoid(alpha) to 0 or 1) and an op set without ``none`` (Fair-DARTS removes it:
  under independent sigmoids a zero op's weight gets no loss gradient)."""
  del steps_per_epoch
  if config.parametrization != "sigmoid":
    raise ValueError(
        f"config.arch_regularizer.names has 'zero_one', which pushes sigmoid(alpha) toward 0 or 1: "
        f"it needs config.parametrization='sigmoid' (Fair-DARTS), not "
        f"{config.parametrization!r}; set --config.parametrization=sigmoid or drop 'zero_one'.")
  if "none" in space.ops:
    raise ValueError(
        f"config.space.ops={config.space.ops!r} holds 'none', which Fair-DARTS removes (a zero op "
        "gets no loss gradient under independent sigmoids); set --config.space.ops="
        + ",".join(op for op in space.ops if op != "none") + ".")
  return ZeroOne(weight=float(config.arch_regularizer.zero_one_weight),
                 keys=tuple(space.cell_keys()))


def threshold_sparse(weights: np.ndarray, ops: Sequence[str], nodes: int = 4,
                     threshold: float = 0.85) -> list[tuple[str, int, int]]:
  """The reference's ``parse_method='threshold_sparse'`` on one cell's sigmoid weights
  ``(edges, ops)``: for each node ``i``, its 2 incoming edges with the largest best-op weight
  (ties: the earlier edge), each kept only if that weight >= ``threshold``; entries
  ``(op, node_index = i + 2, input j)`` as the reference's genotypes (``utils.py:143-189``).
  ``none`` (absent in Fair-DARTS' op set) is never chosen."""
  weights = np.asarray(weights)
  candidates = [k for k, op in enumerate(ops) if op != "none"]
  genes = []
  for node, edges in enumerate(darts_space.node_edge_ranges(nodes)):
    strength = [max(weights[e, k] for k in candidates) for e in edges]
    for j in sorted(range(len(edges)), key=lambda j: -strength[j])[:2]:
      row = weights[edges[j]]
      best = max(candidates, key=lambda k: (row[k], -k))
      if row[best] >= threshold:
        genes.append((ops[best], node + 2, j))
  return genes


def threshold_genotype(mixing: dict[str, Any], space: Any, threshold: float = 0.85
                       ) -> dict[str, list[tuple[str, int, int]]]:
  """:func:`threshold_sparse` on each cell of a DARTS-space mixing (``sigmoid(alpha)``, e.g.
  ``jaxnas.steps.mixing(components, state)`` of a restored search state): ``{'normal': [...],
  'reduce': [...]}``, the reference's genotype."""
  return {cell: threshold_sparse(np.asarray(mixing[cell]), space.ops, space.nodes, threshold)
          for cell in ("normal", "reduce")}


compose.register_regularizer("zero_one", read_zero_one)
