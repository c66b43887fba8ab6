"""The DARTS CNN cell search space (Liu, Simonyan, Yang, ICLR 2019) and its search supernet.

Follows quark0/darts ``cnn/model_search.py`` and ``genotypes.py`` (``shared/spec/methods.md`` §1.1-1.2):

* 8 operations in the DARTS order ``none, max_pool_3x3, avg_pool_3x3, skip_connect, sep_conv_3x3,
  sep_conv_5x5, dil_conv_3x3, dil_conv_5x5`` (the ``ops`` option selects a subset, e.g. without
  ``none`` for the clamped parametrization of Maile et al.).
* Cell: inputs s0, s1 (outputs of the cells k-2, k-1) preprocessed to C channels (FactorizedReduce
  if the previous cell reduced, else ReLU-Conv1x1-BN); 4 intermediate nodes, node i = sum over the
  2+i earlier states j of MixedOp_{ij}(state j); 14 edges (node 0: edges 0-1, node 1: 2-4, node 2: 5-8,
  node 3: 9-13); output = concat of the intermediate nodes. In a reduction cell the edges from
  s0/s1 have stride 2. Search BatchNorm has no scale/bias; the pools are followed by BN.
* Supernet: stem conv 3x3 (3 -> 3C) + BN, ``layers`` cells with reductions at ``layers//3`` and
  ``2*layers//3`` (channels double), global average pool, linear. Two mixing matrices
  ``{'normal': (14, 8), 'reduce': (14, 8)}`` shared by all normal / all reduction cells.
* Derivation: for each node keep the top-2 incoming edges by their strongest non-``none`` weight
  (ties: the earlier edge), each with its strongest non-``none`` op; genes are listed strongest
  edge first, as in the reference.

PC-DARTS (Xu et al., ICLR 2020; yuhuixu1993/PC-DARTS ``model_search.py``, GAEA's copy
``cnn/search_spaces/pc_darts/model_search.py``; ``shared/spec/methods.md`` §6) as two options:

* ``partial_channels=K`` (4 in PC-DARTS): every MixedOp runs its ops (built with C/K channels) on
  the first C/K channels of its input; the other channels pass through (2x2 max-pooled on stride-2
  edges), are concatenated after the op output and ``channel_shuffle``d with K groups
  (``ops.MixedOp``). K must divide C. K = 1 is plain DARTS.
* ``edge_normalization=True``: per intermediate node i, weights beta_i over its 2+i incoming edges;
  node i = sum_j beta_ij * MixedOp_ij(state_j) (beta scales the whole edge output, pass-through
  channels included, as in the reference). The architecture pytree then has two more entries,
  one leaf per node so that every leaf is a simplex (softmax rows / GAEA simplex) along its last
  axis::

      {'normal': (E, n_ops), 'reduce': (E, n_ops),
       'normal_edges': {'0': (2,), '1': (3,), ..., str(nodes - 1): (nodes + 1,)},
       'reduce_edges': {'0': (2,), ...}}

  Derivation applies the DARTS rule to alpha ⊙ beta (each edge's op weights times its beta), as
  PC-DARTS and GAEA do.

Maile et al. / DARTS-PRIME (k8lion/DARTS-PRIME ``model_admm_hard_statebn.py``, the ``_bns`` of its
cell): ``node_batchnorm=True`` passes every intermediate node through a BatchNorm without scale or
bias before later edges and the output concat read it (node i = BN_i(sum_j MixedOp_ij(state j))),
which the clamped activation needs because its op weights do not sum to one. The inner edges then
run node by node (one scan group ``inner_{i}`` per target node i >= 1, see ``edge_groups``), so
this option compiles a larger program; off, the layout and values are the plain DARTS ones.
"""
from __future__ import annotations

import ast
import collections
from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.spaces import ops as ops_lib
from jaxnas.spaces.base import SearchSpace, check_mixing

DARTS_OPS: tuple[str, ...] = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
                              "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")

# The community's genotype type: prints as DARTS' own ``Genotype(normal=[...], ...)``.
Genotype = collections.namedtuple("Genotype", "normal normal_concat reduce reduce_concat")


def num_edges(nodes: int) -> int:
  """Edges of a cell with ``nodes`` intermediate nodes: 2 + 3 + ... + (nodes + 1)."""
  return sum(2 + i for i in range(nodes))


def node_edge_ranges(nodes: int) -> list[range]:
  """The edge indices entering each intermediate node (node 0: edges 0-1, node 1: 2-4, ...)."""
  ranges, start = [], 0
  for i in range(nodes):
    ranges.append(range(start, start + 2 + i))
    start += 2 + i
  return ranges


EDGE_WEIGHTS_SUFFIX = "_edges"  # arch keys of PC-DARTS' edge weights beta: 'normal_edges', ...


def is_edge_weights(path: tuple) -> bool:
  """Whether the arch leaf at ``path`` (a jax.tree_util key path) is an edge weight beta."""
  top = getattr(path[0], "key", None) if path else None
  return isinstance(top, str) and top.endswith(EDGE_WEIGHTS_SUFFIX)


def arch_shapes(nodes: int, num_ops: int, edge_normalization: bool = False) -> dict[str, Any]:
  """The DARTS architecture layout (see the module docstring for the edge-normalization leaves)."""
  shape = (num_edges(nodes), num_ops)
  shapes: dict[str, Any] = {"normal": shape, "reduce": shape}
  if edge_normalization:
    for cell in ("normal", "reduce"):
      shapes[cell + EDGE_WEIGHTS_SUFFIX] = {str(i): (2 + i,) for i in range(nodes)}
  return shapes


def edge_weight_vector(node_weights: Mapping[str, Any], nodes: int) -> jax.Array:
  """One cell's per-node edge weights ``{'0': (2,), '1': (3,), ...}`` as one (edges,) vector."""
  return jnp.concatenate([jnp.asarray(node_weights[str(i)]) for i in range(nodes)])


def edge_groups(nodes: int, per_node: bool = False) -> dict[str, list[tuple[int, int, int]]]:
  """The cell's edges as ``(edge_index, input_state, node)`` triples in scan groups.

  ``front``: the 2 edges of every node from the cell inputs s0/s1 (stride 2 in reduction cells);
  ``inner``: the edges between intermediate nodes (stride 1), ordered by target node. With
  ``per_node`` (the ``node_batchnorm`` cell) the inner edges form one group ``inner_{i}`` per target
  node i >= 1 instead.
  """
  ranges = node_edge_ranges(nodes)
  front = [(ranges[i][j], j, i) for i in range(nodes) for j in (0, 1)]
  if per_node:
    return {"front": front, **{f"inner_{i}": [(ranges[i][j], j, i) for j in range(2, 2 + i)]
                               for i in range(1, nodes)}}
  inner = [(ranges[i][j], j, i) for i in range(nodes) for j in range(2, 2 + i)]
  return {"front": front, "inner": inner}


def edge_variables(cell_variables: Mapping[str, Any], edge: int, nodes: int = 4,
                   per_node: bool = False) -> dict[str, Any]:
  """The variables of one edge's MixedOp, sliced out of a cell's stacked edge variables
  (``per_node``: the layout of a ``node_batchnorm`` cell)."""
  for group, edges in edge_groups(nodes, per_node).items():
    positions = [e for e, _, _ in edges]
    if edge in positions:
      pos = positions.index(edge)
      return {col: jax.tree.map(lambda leaf: leaf[pos], tree[group]["mixed"])
              for col, tree in cell_variables.items() if group in tree}
  raise ValueError(f"Edge {edge} does not exist in a cell with {nodes} nodes.")


class DartsSearchCell(nn.Module):
  """One DARTS search cell (normal or reduction) over mixing weights of shape (edges, ops).

  The 2·nodes edges from s0/s1 run as one scanned MixedOp body (``front``), the edges between
  intermediate nodes as another (``inner``, accumulating into a buffer of node states), so a cell
  compiles two MixedOps instead of 14. Edge weights are stacked along a leading axis in each
  group's order (``edge_groups``); ``edge_variables`` slices one edge out.

  ``partial_channels``: PC-DARTS' channel proportion K of every MixedOp. ``edge_weights``: an
  optional (edges,) vector (PC-DARTS' beta, in edge order) scaling each edge's output.
  ``node_batchnorm``: DARTS-PRIME's BatchNorm (no affine) on every intermediate node (module
  docstring); the inner edges then run as one scan group per target node.
  """
  ops: tuple[str, ...]
  channels: int
  reduction: bool
  reduction_prev: bool
  nodes: int = 4
  multiplier: int = 4
  partial_channels: int = 1
  unroll: bool = False  # unroll the edge scans in the compiled program (see ops.scan_edges)
  node_batchnorm: bool = False
  remat_edges: bool = False  # nn.remat every edge's MixedOp (see ops.scan_edges)
  kernels: str = "xla"  # 'xla' | 'shifted' (see ops)
  sampled: bool = False  # GDAS: only the sampled op of each edge runs (ops.SampledMixedOp)

  @nn.compact
  def __call__(self, s0: jax.Array, s1: jax.Array, mixing: jax.Array,
               edge_weights: jax.Array | None = None, *, train: bool):
    c, k = self.channels, self.kernels
    if self.reduction_prev:
      s0 = ops_lib.FactorizedReduce(c, affine=False, kernels=k, name="preprocess0")(s0,
                                                                                   train=train)
    else:
      s0 = ops_lib.ReLUConvBN(c, 1, affine=False, kernels=k, name="preprocess0")(s0, train=train)
    s1 = ops_lib.ReLUConvBN(c, 1, affine=False, kernels=k, name="preprocess1")(s1, train=train)
    groups = edge_groups(self.nodes, per_node=self.node_batchnorm)
    common = dict(ops=self.ops, channels=c, pool_bn=True, train=train,
                  partial_channels=self.partial_channels, unroll=self.unroll,
                  remat=self.remat_edges, kernels=k,
                  sampled="nasnet" if self.sampled else "")

    def scales(edges):
      if edge_weights is None:
        return {}
      return {"edge_scales": edge_weights[jnp.array([e for e, _, _ in edges])]}

    front = groups["front"]
    outputs = ops_lib.scan_edges(
        jnp.stack([s0, s1]), [j for _, j, _ in front], None,
        mixing[jnp.array([e for e, _, _ in front])], stride=2 if self.reduction else 1,
        name="front", **scales(front), **common)
    states = outputs[0::2] + outputs[1::2]  # (nodes, B, H, W, C): each node's s0 + s1 terms
    if self.node_batchnorm:
      for i in range(self.nodes):  # node i is complete (and normalised) before node i+1 reads it
        if i > 0:
          inner = groups[f"inner_{i}"]
          states = ops_lib.scan_edges(
              states, [j - 2 for _, j, _ in inner], [i] * len(inner),
              mixing[jnp.array([e for e, _, _ in inner])], stride=1, name=f"inner_{i}",
              **scales(inner), **common)
        node = ops_lib.batch_norm(train, affine=False, name=f"node_bn_{i}")(states[i])
        states = states.at[i].set(node)
      return jnp.concatenate(list(states[-self.multiplier:]), axis=-1)
    inner = groups["inner"]
    if inner:
      states = ops_lib.scan_edges(
          states, [j - 2 for _, j, _ in inner], [i for _, _, i in inner],
          mixing[jnp.array([e for e, _, _ in inner])], stride=1, name="inner", **scales(inner),
          **common)
    return jnp.concatenate(list(states[-self.multiplier:]), axis=-1)


def _run_cell(cell: DartsSearchCell, s0: jax.Array, s1: jax.Array, mixing: jax.Array,
              edge_weights: jax.Array | None, train: bool) -> jax.Array:
  return cell(s0, s1, mixing, edge_weights, train=train)


# The cell under nn.remat; ``train`` (argument 5, counting the cell) is static (a Python bool).
_run_cell_remat = nn.remat(_run_cell, static_argnums=(5,))


def reduction_layers(layers: int) -> tuple[int, ...]:
  """Indices of the reduction cells: ``layers//3`` and ``2*layers//3``."""
  return (layers // 3, 2 * layers // 3)


class DartsSupernet(nn.Module):
  """The DARTS search network (``model_search.Network``); ``mixing = {'normal', 'reduce'}``.

  With ``partial_channels`` / ``edge_normalization`` it is the PC-DARTS search network
  (``mixing`` then also has ``'normal_edges'`` and ``'reduce_edges'``, see ``arch_shapes``).
  ``remat=True`` rematerializes activations: the backward pass recomputes them instead of storing
  them, less memory for about one more forward pass of compute. ``remat_scope='cell'`` wraps every
  cell in ``nn.remat`` (the backward keeps each cell's inputs); ``'edge'`` every edge's MixedOp
  inside the edge scans (the backward keeps each edge's input: a quarter of the cell scope's XLA
  temporaries in the rolled C=16 weight step, at the same speed). Same variables (names and
  shapes) as without.
  """
  ops: tuple[str, ...] = DARTS_OPS
  channels: int = 16
  layers: int = 8
  num_classes: int = 10
  nodes: int = 4
  multiplier: int = 4
  stem_multiplier: int = 3
  partial_channels: int = 1
  edge_normalization: bool = False
  unroll: bool = False  # unroll the edge scans: slower compile, much faster on CPU
  node_batchnorm: bool = False  # DARTS-PRIME: BatchNorm (no affine) on every intermediate node
  remat: bool = False  # recompute activations in the backward pass (at remat_scope)
  remat_scope: str = "cell"  # 'cell': nn.remat each cell; 'edge': each edge's MixedOp
  kernels: str = "xla"  # 'xla' | 'shifted': which kernels the ops run (see ops)
  sampled: bool = False  # GDAS' sampled-op forward (ops.SampledMixedOp); mixing = hard samples

  @nn.compact
  def __call__(self, x: jax.Array, mixing: Mapping[str, Any], *, train: bool) -> jax.Array:
    check_mixing(mixing, arch_shapes(self.nodes, len(self.ops), self.edge_normalization), "darts")
    remat_cells, remat_edges = ops_lib.remat_placement(self.remat, self.remat_scope)
    run_cell = _run_cell_remat if remat_cells else _run_cell
    x = ops_lib.conv(self.stem_multiplier * self.channels, 3, padding=1, name="stem_conv",
                     kernels=self.kernels)(x)
    s0 = s1 = ops_lib.batch_norm(train, affine=True, name="stem_bn")(x)
    width, reduction_prev = self.channels, False
    for layer in range(self.layers):
      reduction = layer in reduction_layers(self.layers)
      width = width * 2 if reduction else width
      cell = DartsSearchCell(self.ops, width, reduction, reduction_prev, self.nodes,
                             self.multiplier, partial_channels=self.partial_channels,
                             unroll=self.unroll, node_batchnorm=self.node_batchnorm,
                             remat_edges=remat_edges, kernels=self.kernels,
                             sampled=self.sampled, name=f"cell_{layer}")
      kind = "reduce" if reduction else "normal"
      betas = (edge_weight_vector(mixing[kind + "_edges"], self.nodes)
               if self.edge_normalization else None)
      s0, s1 = s1, run_cell(cell, s0, s1, mixing[kind], betas, train)
      reduction_prev = reduction
    x = jnp.mean(s1, axis=(1, 2))
    return nn.Dense(self.num_classes, kernel_init=ops_lib.torch_default_init,
                    name="classifier")(x)


def derive_cell(weights: np.ndarray, ops: Sequence[str], nodes: int) -> list[tuple[str, int]]:
  """The DARTS rule on one cell's mixing weights ``(edges, ops)``; see the module docstring."""
  candidates = [k for k, op in enumerate(ops) if op != "none"]
  genes = []
  for node, edges in enumerate(node_edge_ranges(nodes)):
    strength = [max(weights[e, k] for k in candidates) for e in edges]
    # Stable sort on descending strength: ties keep the earlier edge, as Python's sorted does.
    kept = sorted(range(len(edges)), key=lambda j: -strength[j])[:2]
    for j in kept:
      row = weights[edges[j]]
      best = max(candidates, key=lambda k: (row[k], -k))  # first maximum on ties
      genes.append((ops[best], j))
    del node
  return genes


def cell_one_hot(weights: jax.Array, ops: Sequence[str], nodes: int,
                 include_none: bool = False) -> jax.Array:
  """The one-hot ``(edges, ops)`` matrix of the cell ``derive_cell`` derives from ``weights``
  (in JAX).

  The DARTS rule (Liu et al. 2019; DARTS-PRIME ``_parse``): for each node keep the 2 incoming edges
  with the largest strongest-op weight (ties: the earlier edge) and on each the strongest op (ties:
  the earlier op); ``none`` is excluded unless ``include_none`` (DARTS-PRIME before its commit
  ``7107829``). Dropped edges get zero rows. Jit-able; no gradient flows through it.
  """
  candidate = jnp.array([include_none or op != "none" for op in ops])
  masked = jnp.where(candidate, weights, -jnp.inf)
  strength = jnp.max(masked, axis=-1)
  best = jnp.argmax(masked, axis=-1)  # first maximum on ties
  keep = jnp.zeros(weights.shape[0], bool)
  for edges in node_edge_ranges(nodes):
    order = jnp.argsort(-strength[edges.start:edges.stop], stable=True)  # ties: earlier edge
    keep = keep.at[order[:2] + edges.start].set(True)
  one_hot = jax.nn.one_hot(best, weights.shape[-1], dtype=weights.dtype)
  return jnp.where(keep[:, None], one_hot, jnp.zeros_like(one_hot))


def _literal_or_range(node: ast.AST) -> Any:
  """Evaluates a literal, or a ``range(a, b)`` call (as printed by DARTS logs)."""
  if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range"
      and not node.keywords):
    return list(range(*[ast.literal_eval(a) for a in node.args]))
  return ast.literal_eval(node)


def parse_darts_genotype(text: str) -> Genotype:
  """Parses ``Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5], ...)``.

  Accepts ``range(2, 6)`` for the concat fields (DARTS' own logs print that). No code is executed.
  """
  try:
    tree = ast.parse(text.strip(), mode="eval").body
    if not (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name)
            and tree.func.id == "Genotype" and not tree.args):
      raise ValueError("expected Genotype(normal=..., normal_concat=..., reduce=..., "
                       "reduce_concat=...)")
    fields = {kw.arg: _literal_or_range(kw.value) for kw in tree.keywords}
  except (SyntaxError, ValueError, TypeError) as e:
    raise ValueError(f"Malformed DARTS genotype string {text!r}: {e}") from None
  if set(fields) != set(Genotype._fields):
    raise ValueError(f"Malformed DARTS genotype string {text!r}: fields {sorted(fields)}, "
                     f"expected {list(Genotype._fields)}.")
  for cell in ("normal", "reduce"):
    genes = fields[cell]
    if not isinstance(genes, (list, tuple)) or not all(
        isinstance(g, (list, tuple)) and len(g) == 2 and isinstance(g[0], str)
        and isinstance(g[1], int) for g in genes):
      raise ValueError(f"Malformed DARTS genotype string {text!r}: {cell!r} must be a list of "
                       "(op_name, input_index) pairs.")
    fields[cell] = [(op, idx) for op, idx in genes]
    fields[cell + "_concat"] = list(fields[cell + "_concat"])
  return Genotype(**fields)


class DartsSpace(SearchSpace):
  """The DARTS CNN cell space; ``nodes`` intermediate nodes per cell (4 in DARTS).

  PC-DARTS: ``partial_channels=4, edge_normalization=True`` (see the module docstring).
  """
  name = "darts"
  all_ops = DARTS_OPS
  # On CPU the shifted kernels leave no XLA convolution in the cells: rolled edge scans run as
  # fast as unrolled ones and compile much faster, and per-edge remat cuts memory at the same speed.
  cpu_loops = {"unroll": False, "remat": True, "remat_scope": "edge"}
  remat_scopes = ("cell", "edge")

  @classmethod
  def options_from(cls, config: Any) -> dict[str, Any]:
    """``config.space``: ``ops``, ``nodes``, ``partial_channels``, ``edge_normalization``."""
    return {**super().options_from(config), "nodes": config.space.nodes,
            "partial_channels": config.space.partial_channels,
            "edge_normalization": config.space.edge_normalization}

  def supernet_sizes(self, space_config: Any) -> dict[str, Any]:
    """``config.space``: ``channels`` (even), ``layers``, ``node_batchnorm``, ``sampled_forward``
    (GDAS)."""
    if space_config.channels % 2:
      raise ValueError(f"config.space.channels must be even for the DARTS space (FactorizedReduce "
                       f"halves it), got {space_config.channels}.")
    sizes = {"channels": space_config.channels, "layers": space_config.layers,
             "node_batchnorm": space_config.node_batchnorm}
    if space_config.get("sampled_forward", False):
      sizes["sampled"] = True
    return sizes

  @classmethod
  def network_from(cls, config: Any, genotype: Genotype, num_classes: int,
                   kernels: str) -> nn.Module:
    """``darts_network.network`` at ``config.network``'s channels, layers, auxiliary and stem."""
    from jaxnas.spaces import darts_network  # local import: darts_network imports this module
    net = config.network
    return darts_network.network(genotype, channels=net.channels, layers=net.layers,
                                 num_classes=num_classes, auxiliary=net.auxiliary, stem=net.stem,
                                 kernels=kernels)

  def __init__(self, ops: Sequence[str] | None = None, nodes: int = 4, partial_channels: int = 1,
               edge_normalization: bool = False):
    super().__init__(ops)
    if nodes < 1:
      raise ValueError(f"A DARTS cell needs at least one intermediate node, got nodes={nodes}.")
    if (isinstance(partial_channels, bool) or not isinstance(partial_channels, (int, np.integer))
        or partial_channels < 1):
      raise ValueError(f"partial_channels must be a positive integer (the PC-DARTS channel "
                       f"proportion K; 1 = plain DARTS), got {partial_channels!r}.")
    if not isinstance(edge_normalization, (bool, np.bool_)):
      raise ValueError(f"edge_normalization must be a bool, got {edge_normalization!r}.")
    self.nodes = nodes
    self.partial_channels = int(partial_channels)
    self.edge_normalization = bool(edge_normalization)

  def __repr__(self) -> str:
    extra = ""
    if self.partial_channels != 1:
      extra += f", partial_channels={self.partial_channels}"
    if self.edge_normalization:
      extra += ", edge_normalization=True"
    return f"DartsSpace(ops={self.ops}, nodes={self.nodes}{extra})"

  def arch_shapes(self) -> dict[str, Any]:
    """``{'normal': (E, n_ops), 'reduce': (E, n_ops)}``, plus with edge normalization
    ``'normal_edges'`` / ``'reduce_edges'``: ``{'0': (2,), '1': (3,), ...}`` (one leaf per node)."""
    return arch_shapes(self.nodes, len(self.ops), self.edge_normalization)

  def supernet(self, *, channels: int = 16, layers: int = 8, num_classes: int = 10,
               unroll: bool = True, node_batchnorm: bool = False, remat: bool = False,
               remat_scope: str = "cell", kernels: str = "xla", sampled: bool = False,
               **unused: Any) -> DartsSupernet:
    """The search supernet (C=16, 8 layers for CIFAR-10 in DARTS).

    ``unroll=False`` keeps the per-cell edge loops rolled: a much shorter compile (tests, smoke
    runs); with XLA's kernels on CPU the loops' convolution gradients run much slower.
    ``node_batchnorm=True``: DARTS-PRIME's BatchNorm (no affine) after every intermediate node.
    ``remat=True``: recompute activations in the backward pass (the same variables), with
    ``nn.remat`` on every cell (``remat_scope='cell'``) or on every edge's MixedOp (``'edge'``).
    ``kernels``: ``'xla'`` or ``'shifted'`` (``spaces.ops``; ``jaxnas.backends`` picks it).
    ``sampled=True``: GDAS' sampled-op forward (``ops.SampledMixedOp``; not with partial channels).
    """
    self._reject_unused(unused)
    if sampled and self.partial_channels != 1:
      raise ValueError("config.space.sampled_forward=True does not combine with partial channels "
                       f"(partial_channels={self.partial_channels}); set one of them off.")
    if layers < 1:
      raise ValueError(f"The DARTS supernet needs at least one layer, got layers={layers}.")
    if channels % self.partial_channels:
      raise ValueError(f"partial_channels={self.partial_channels} must divide the supernet's "
                       f"channels={channels} (PC-DARTS runs the ops on C/K channels).")
    return DartsSupernet(self.ops, channels, layers, num_classes, self.nodes,
                         multiplier=self.nodes, partial_channels=self.partial_channels,
                         edge_normalization=self.edge_normalization, unroll=unroll,
                         node_batchnorm=bool(node_batchnorm), remat=bool(remat),
                         remat_scope=ops_lib.check_remat_scope(remat_scope),
                         kernels=ops_lib.check_kernels(kernels), sampled=bool(sampled))

  def network(self, genotype: Genotype, **sizes: Any) -> nn.Module:
    """The discrete evaluation network of ``genotype`` (``darts_network.network``: C=36, 20
    cells, auxiliary head by default; ``stem='imagenet'`` for the mobile setting)."""
    from jaxnas.spaces import darts_network  # local import: darts_network imports this module
    return darts_network.network(genotype, **sizes)

  def derive(self, mixing: Mapping[str, Any]) -> Genotype:
    """The DARTS derivation rule on both cells (``none`` excluded, top-2 edges per node).

    With edge normalization the rule is applied to alpha ⊙ beta (each edge's row times its beta).
    """
    check_mixing(mixing, self.arch_shapes(), self.name)
    concat = list(range(2, 2 + self.nodes))

    def cell_weights(cell: str) -> np.ndarray:
      weights = np.asarray(mixing[cell])
      if self.edge_normalization:
        betas = np.concatenate([np.asarray(mixing[cell + "_edges"][str(i)])
                                for i in range(self.nodes)])
        weights = weights * betas[:, None]
      return weights

    return Genotype(
        normal=derive_cell(cell_weights("normal"), self.ops, self.nodes),
        normal_concat=concat,
        reduce=derive_cell(cell_weights("reduce"), self.ops, self.nodes),
        reduce_concat=concat)

  def discretize(self, mixing: Mapping[str, Any], include_none: bool = False) -> dict[str, Any]:
    """The derived cells as one-hot ``(edges, ops)`` matrices (``cell_one_hot``; ``include_none``:
    DARTS-PRIME's early quirk). With edge normalization the rule sees alpha ⊙ beta, as ``derive``,
    and the edge weights beta are all ones (the one-hot rows already drop the unkept edges)."""
    check_mixing(mixing, self.arch_shapes(), self.name)
    out: dict[str, Any] = {}
    for cell in ("normal", "reduce"):
      weights = jnp.asarray(mixing[cell])
      if self.edge_normalization:
        weights = weights * edge_weight_vector(mixing[cell + EDGE_WEIGHTS_SUFFIX],
                                               self.nodes)[:, None]
        out[cell + EDGE_WEIGHTS_SUFFIX] = {
            k: jnp.ones_like(jnp.asarray(v)) for k, v in mixing[cell + EDGE_WEIGHTS_SUFFIX].items()}
      out[cell] = cell_one_hot(weights, self.ops, self.nodes, include_none)
    return out

  def parse_genotype(self, text: str) -> Genotype:
    """Parses a DARTS genotype string and checks it against this space (ops, nodes, inputs)."""
    genotype = parse_darts_genotype(text)
    self._check_genotype_ops([op for op, _ in genotype.normal + genotype.reduce])
    for cell in ("normal", "reduce"):
      genes = getattr(genotype, cell)
      if len(genes) != 2 * self.nodes:
        raise ValueError(f"Genotype cell {cell!r} has {len(genes)} genes; a DARTS cell with "
                         f"{self.nodes} nodes has {2 * self.nodes} (two inputs per node).")
      for g, (_, j) in enumerate(genes):
        if not 0 <= j < 2 + g // 2:
          raise ValueError(f"Gene {g} of cell {cell!r} reads state {j}, but node {g // 2} can "
                           f"only read states 0..{1 + g // 2}.")
    return genotype
