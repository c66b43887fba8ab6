r"""DARTS- (Chu et al., "DARTS-: Robustly Stepping out of Performance Collapse Without Indicators",
ICLR 2021): an auxiliary skip connection on every edge, with a coefficient beta decaying to 0, takes
over the role skip connections play in training, so the alpha of ``skip_connect`` no longer has to
grow for the supernet to train (the cause of DARTS' collapse, by the paper's analysis).

Every training forward (``config.auxiliary_skip``; both the weight step and the alpha step) computes
each edge as::

    out_e = sum_k A_{e,k} op_k(x) + beta(e) x,       A = activate(alpha)
    beta(e) = beta_0 * (1 - e / T)                   (e the epoch, 0-based; T = decay_epochs)

beta is constant within an epoch: 1 at epoch 0, 1/T at the last one (T = 50: 0.02; it reaches 0 only
after the search). jaxnas realises ``beta x`` as beta added to the mixing weight of the edge's
``skip_connect`` op (a forward transform: ``A'_{e,skip} = A_{e,skip} + beta``), which on a stride-1
edge is exactly the reference's identity branch (and adds nothing to the alpha gradient: beta is a
constant).

Reference: Meituan-AutoML/DARTS- ``src/search/model_search.py:17-45`` (``MixedOp``: the auxiliary
``Identity`` or, on stride-2 edges, ``FactorizedReduce(C, C, affine=False)``; ``out + beta *
aux(x)`` on all 14 edges of both cells), ``src/utils.py:171-192`` (``DecayScheduler``, 'linear':
``skip_beta * (T_max - e) / (T_max - T_start)``, stepped at each epoch start), ``src/search/
args.py:76-82`` (``skip_beta=1``, T = 50); otherwise first-order DARTS.

Where jaxnas differs (said here and in the configs): on the stride-2 edges of DARTS' reduction cells
the auxiliary branch is the ``skip_connect`` op's own FactorizedReduce (the reference gives the
auxiliary branch a FactorizedReduce of its own, with its own weights); the per-epoch supernet
evaluation uses the plain mixing (the reference's ``infer`` keeps ``beta x``).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import ml_collections

from jaxnas import parts
from jaxnas import spaces
from jaxnas.methods import compose

SKIP = "skip_connect"


def beta(step: jax.Array, beta0: float, decay_epochs: int, steps_per_epoch: int) -> jax.Array:
  """``beta(e) = beta0 * max(1 - e / decay_epochs, 0)``, e = step // steps_per_epoch."""
  return beta0 * (1.0 - parts.epoch_progress(step, steps_per_epoch, decay_epochs))


@dataclasses.dataclass(frozen=True)
class AuxiliarySkip:
  """DARTS-' auxiliary skip as a forward transform of both training forwards (module docstring):
  ``A'[..., skip_index] = A[..., skip_index] + beta(step)`` on the op-weight cells. Metric
  ``aux/beta``."""
  cell_keys: tuple[str, ...]
  skip_index: int
  beta0: float = 1.0
  decay_epochs: int = 50
  steps_per_epoch: int = 1
  name: str = "auxiliary_skip"
  forwards: tuple[str, ...] = ("weights", "arch")

  def __post_init__(self):
    if not self.beta0 >= 0:
      parts._fail("auxiliary_skip.beta", self.beta0, "use beta >= 0 (0 = off; DARTS-: 1).")
    parts._int_at_least("auxiliary_skip.decay_epochs (0 = config.epochs)", self.decay_epochs, 1)

  def beta(self, step: jax.Array) -> jax.Array:
    return beta(step, self.beta0, self.decay_epochs, self.steps_per_epoch)

  def wrap(self, mix: Callable[[Any], Any], ctx: parts.ForwardContext) -> Callable[[Any], Any]:
    b = self.beta(ctx.step)

    def with_skip(arch):
      mixing = dict(mix(arch))
      for k in self.cell_keys:
        mixing[k] = mixing[k].at[..., self.skip_index].add(b.astype(mixing[k].dtype))
      return mixing
    return with_skip

  def metrics(self, step: jax.Array) -> dict[str, jax.Array]:
    return {"aux/beta": self.beta(step)}


def read_auxiliary_skip(config: ml_collections.ConfigDict, space: spaces.SearchSpace,
                        steps_per_epoch: int) -> AuxiliarySkip | None:
  """``config.auxiliary_skip`` -> the transform, or None with ``beta = 0``."""
  block = config.auxiliary_skip
  if not block.beta:
    return None
  if SKIP not in space.ops:
    raise ValueError(f"config.auxiliary_skip.beta={block.beta} adds beta to each edge's "
                     f"'{SKIP}' branch, which config.space.ops={','.join(space.ops)!r} lacks; add "
                     f"'{SKIP}' to the op set or set config.auxiliary_skip.beta=0.")
  compose.check_every_op_computed(config, "config.auxiliary_skip",
                                  "adds beta to each edge's skip_connect weight")
  return AuxiliarySkip(cell_keys=tuple(space.cell_keys()), skip_index=space.ops.index(SKIP),
                       beta0=float(block.beta),
                       decay_epochs=int(block.decay_epochs or config.epochs),
                       steps_per_epoch=max(int(steps_per_epoch), 1))


compose.register_transform(read_auxiliary_skip)
