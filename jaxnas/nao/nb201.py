"""NAS-Bench-201 as a NAO token space: 6 tokens, one per edge (``token = op index + 1``).

NAO's controller sees a NB201 cell as the op of each of its 6 edges in architecture-string order
(``1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2``); every op is valid on every edge, so the allowed-token
mask is the same at every position and there is no symmetry to augment with. Here the ground-truth
table tells how well the one-shot supernet ranks architectures (NAO-V2's central claim: Kendall tau
of supernet scores vs. trained accuracy is higher with size-proportional sampling).

The one-shot supernet is NB201's DARTS-style supernet (``jaxnas.spaces.nb201``) with one-hot
mixing weights, so the sampled cell's output is exact: the other ops' terms are multiplied by 0.0,
and their weights receive exactly zero gradient (``nao.update_unused`` decides whether weight decay
and momentum still move them). It computes every op of every edge; that costs time, not
correctness.
"""
from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.spaces import nb201 as nb201_space


class NB201TokenSupernet(nn.Module):
  """NB201's weight-sharing supernet driven by a token sequence: ``(x, tokens, *, train)``."""
  ops: tuple[str, ...]
  channels: int = 16
  cells_per_stage: int = 5
  num_classes: int = 10
  unroll: bool = False
  kernels: str = "xla"  # 'xla' | 'shifted' (see spaces.ops)

  @nn.compact
  def __call__(self, x: jax.Array, tokens: jax.Array, *, train: bool) -> jax.Array:
    mixing = jax.nn.one_hot(tokens - 1, len(self.ops), dtype=x.dtype)
    net = nb201_space.NB201Supernet(self.ops, self.channels, self.cells_per_stage,
                                    self.num_classes, self.unroll, kernels=self.kernels,
                                    name="supernet")
    return net(x, {"cell": mixing}, train=train)


class NB201TokenSpace:
  """The NB201 cell space in NAO's token form (implements ``jaxnas.nao.token_space.TokenSpace``).

  Args:
    ops: the candidate ops (a subset of NB201's five, in NB201 order by default).
    channels, cells_per_stage, num_classes: the sizes of the stand-alone network whose parameter
      count is NAO-V2's sampling weight (the supernet's sizes, as in NAO).
  """
  name = "nb201"
  seq_len = nb201_space.NUM_EDGES
  drop_path = False  # NB201 networks have no drop-path

  def __init__(self, ops: tuple[str, ...] | None = None, *, channels: int = 16,
               cells_per_stage: int = 5, num_classes: int = 10):
    self.ops = nb201_space.NB201Space(ops).ops
    self.vocab_size = 1 + len(self.ops)
    self.sizes = dict(channels=channels, cells_per_stage=cells_per_stage,
                      num_classes=num_classes)

  def __repr__(self) -> str:
    return f"NB201TokenSpace(ops={self.ops}, {self.sizes})"

  def allowed_tokens(self) -> np.ndarray:
    allowed = np.zeros((self.seq_len, self.vocab_size), bool)
    allowed[:, 1:] = True
    return allowed

  def random_arch(self, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(1, self.vocab_size, size=self.seq_len).astype(np.int32)

  def augment(self, tokens: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    del rng  # a NB201 cell has no symmetric token swap: edges are ordered by (target, source)
    return np.asarray(tokens, np.int32).copy()

  def _check(self, tokens: Any) -> np.ndarray:
    tokens = np.asarray(tokens)
    if tokens.shape != (self.seq_len,) or tokens.min() < 1 or tokens.max() >= self.vocab_size:
      raise ValueError(f"A NB201 token sequence has {self.seq_len} tokens in [1, "
                       f"{self.vocab_size - 1}] (op index + 1 for ops {self.ops}); got "
                       f"{tokens.tolist()}.")
    return tokens.astype(np.int32)

  def genotype(self, tokens: Any) -> nb201_space.NB201Genotype:
    """The NB201 genotype (cell) of a token sequence."""
    return nb201_space.NB201Genotype.from_edges([self.ops[t - 1] for t in self._check(tokens)])

  def to_string(self, tokens: Any) -> str:
    return str(self.genotype(tokens))

  def from_string(self, text: str) -> np.ndarray:
    genotype = nb201_space.NB201Space(self.ops).parse_genotype(text)
    return np.asarray([self.ops.index(op) + 1 for op in genotype.edges], np.int32)

  def num_params(self, tokens: Any) -> int:
    """Parameters of the stand-alone network: a base plus one term per edge's op.

    Each edge's op adds its own parameters in every cell independently of the other edges, so
    ``params(cell) = base + sum_e (params(all edges = op_e) - base) / 6`` with ``base`` the
    all-``none`` network: 1 + len(ops) shape inferences in all, exact (tested against the network).
    """
    edges = self.genotype(tokens).edges
    base = _network_params(("none",) * self.seq_len, **self.sizes)
    return base + sum((_network_params((op,) * self.seq_len, **self.sizes) - base) // self.seq_len
                      for op in edges)

  def supernet(self, *, unroll: bool = False, kernels: str = "xla",
               **unused: Any) -> NB201TokenSupernet:
    """The one-shot supernet at this space's sizes (``unroll``, ``kernels``: see
    ``NB201Space.supernet``)."""
    if unused:
      raise ValueError(f"Unknown options for the NB201 token supernet: {sorted(unused)}.")
    return NB201TokenSupernet(self.ops, unroll=unroll, kernels=kernels, **self.sizes)


  def num_params_from(self, config: Any, tokens: Any, num_classes: int) -> int:
    """``num_params`` (this space holds the search's sizes)."""
    del config, num_classes
    return self.num_params(tokens)

  def standalone_network_from(self, config: Any, tokens: Any, num_classes: int,
                              kernels: str) -> nn.Module:
    """The NB201 network of ``tokens`` at ``config.space``'s channels and cells_per_stage;
    ``(x, *, train) -> (logits, aux)``."""
    from jaxnas.spaces import nb201_network  # local import, as in _network_params
    return nb201_network.NB201Network(tuple(self.genotype(tokens).edges), config.space.channels,
                                      config.space.cells_per_stage, num_classes, kernels)

  def supernet_from(self, config: Any, backend: Any, num_classes: int) -> NB201TokenSupernet:
    """The supernet at this space's sizes (those of ``config.space``, ``num_classes``) with the
    loops and kernels of ``backend``."""
    del config, num_classes  # this space holds its sizes
    return self.supernet(unroll=backend.unroll, kernels=backend.kernels)


@functools.lru_cache(maxsize=None)
def _network_params(edges: tuple[str, ...], *, channels: int, cells_per_stage: int,
                    num_classes: int) -> int:
  """Parameters of the stand-alone NB201 network of ``edges`` (shape inference only)."""
  from jaxnas.spaces import nb201_network  # local import: only size-proportional sampling needs it
  net = nb201_network.NB201Network(edges, channels, cells_per_stage, num_classes)
  shapes = jax.eval_shape(lambda: net.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)),
                                           train=False))
  return int(sum(np.prod(leaf.shape) for leaf in jax.tree.leaves(shapes["params"])))
