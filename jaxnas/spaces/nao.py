"""NAO's cell search space (Luo et al., NeurIPS 2018; NAO-V2, arXiv 1909.10815): the encoding and
the token space (``shared/spec/methods.md`` §5; reference ``renqianluo/NAO_pytorch``
``NAO_V2/{model_search,model,utils}.py``).

**Encoding.** A cell has B=5 nodes; node i adds two ``op(state[id])`` terms, each input id in
``0..i+1`` (0, 1 = the cell inputs). Raw arch (the reference's ``fixed_arc`` / ``arch_pool`` line):
``[x_id, x_op, y_id, y_op] x B`` for the conv cell then the reduction cell, ints without offsets.
Tokens: ``id + 1`` for ids, ``op + B + 2`` for ops (0 is SOS/EOS), 40 tokens, vocab
``1 + (B + 1) + num_ops`` (12 for the "small" op set).

The supernet and the networks live in ``jaxnas.spaces.nao_network`` (re-exported here).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np

from jaxnas.spaces import ops as ops_lib
from jaxnas.spaces.nao_network import AUX_HEAD as AUX_HEAD
from jaxnas.spaces.nao_network import NAO_MIDDLE_OPS as NAO_MIDDLE_OPS
from jaxnas.spaces.nao_network import NAO_SMALL_OPS as NAO_SMALL_OPS
from jaxnas.spaces.nao_network import NAO_V1_OPS as NAO_V1_OPS
from jaxnas.spaces.nao_network import NAONetwork as NAONetwork
from jaxnas.spaces.nao_network import NAOSupernet as NAOSupernet
from jaxnas.spaces.nao_network import OP_SETS as OP_SETS
from jaxnas.spaces.nao_network import _KIND
from jaxnas.spaces.nao_network import _tokens_to_arch
from jaxnas.spaces.nao_network import check_supernet_ops as check_supernet_ops
from jaxnas.spaces.nao_network import count_network_params as count_network_params
from jaxnas.spaces.nao_network import input_slots as input_slots
from jaxnas.spaces.nao_network import step_keep_prob as step_keep_prob
from jaxnas.spaces.nao_network import (
    supernet_to_network_variables as supernet_to_network_variables)


class NAOSpace:
  """NAO's cell space as a ``TokenSpace`` (``jaxnas.nao.token_space``); see the module docstring.

  Args:
    ops: ``'small'`` (5 ops, NAO-V2's default), ``'middle'`` (10 ops), ``'v1'`` (NAO-V1's 16-op
      numbering, stand-alone networks only: NAONet-A) or a tuple of op names (op index =
      position).
    num_nodes: B, nodes per cell.
  """
  name = "nao"
  drop_path = True  # the supernet takes NAO's drop-path keep probability (config.nao)
  # On CPU NAO's cells compile ~10x longer unrolled (``jaxnas.backends``).
  cpu_loops = {"unroll": False, "remat": False, "remat_scope": "cell"}
  remat_scopes = ("cell",)

  # -- built from a run config --------------------------------------------------------------------
  @classmethod
  def options_from(cls, config: Any) -> dict[str, Any]:
    """``config.space.ops`` (else ``config.nao.op_set``) and ``config.space.nodes`` (B)."""
    ops = tuple(op.strip() for op in config.space.ops.split(",") if op.strip())
    return {"ops": ops or config.nao.op_set, "num_nodes": config.space.nodes}

  @classmethod
  def from_config(cls, config: Any) -> "NAOSpace":
    """The space with the options of ``config`` (``options_from``)."""
    return cls(**cls.options_from(config))

  def token_space(self, config: Any, num_classes: int) -> "NAOSpace":
    """The space as NAO-V2 searches it: itself (a ``TokenSpace``)."""
    del config, num_classes
    return self

  def num_params_from(self, config: Any, tokens: Any, num_classes: int) -> int:
    """``num_params`` at the search's sizes (``config.space``: channels, cells_per_stage)."""
    return self.num_params(tokens, channels=config.space.channels,
                           layers=config.space.cells_per_stage, num_classes=num_classes)

  def standalone_network_from(self, config: Any, tokens: Any, num_classes: int,
                              kernels: str) -> NAONetwork:
    """``model.NASNetworkCIFAR`` of ``tokens`` at the search's sizes: the network NAO counts and
    re-ranks; ``(x, *, train) -> (logits, aux_logits)``."""
    return self.network(tokens, channels=config.space.channels,
                        layers=config.space.cells_per_stage, num_classes=num_classes,
                        kernels=kernels)

  def supernet_from(self, config: Any, backend: Any, num_classes: int) -> NAOSupernet:
    """The supernet at ``config.space``'s channels and cells_per_stage (``layers``), with the
    loops and kernels of ``backend``."""
    return self.supernet(channels=config.space.channels, layers=config.space.cells_per_stage,
                         num_classes=num_classes, unroll=backend.unroll, kernels=backend.kernels)

  @classmethod
  def check_network_config(cls, config: Any) -> None:
    """NAO networks have only the CIFAR stem."""
    if config.network.stem != "cifar":
      raise ValueError(f"config.network.stem={config.network.stem!r}: NAO networks have only the "
                       "CIFAR stem (NAO's ImageNet network is not implemented).")

  plots_genotype = False  # NAO archs are not drawn

  @classmethod
  def network_macs(cls, module: Any, image_shape: tuple[int, ...]) -> int:
    """Multiply-adds read off the forward's jaxpr (``reports.jaxpr_macs``): NAO's layers are
    plain ``lax`` calls, not Linen layers."""
    from jaxnas import reports  # local import: reports imports the networks
    return reports.jaxpr_macs(module, image_shape)

  @classmethod
  def network_from(cls, config: Any, genotype: Any, num_classes: int,
                   kernels: str) -> "NAOEvalNetwork":
    """``NAOEvalNetwork`` of a ``genotypes.NAOArch``: C = ``network.channels``, N =
    ``network.cells_per_stage``, aux head with ``network.auxiliary``, classifier dropout
    ``config.dropout_prob``."""
    net = config.network
    base = genotype.space.network(genotype.tokens(), channels=net.channels,
                                  layers=net.cells_per_stage, num_classes=num_classes,
                                  use_aux_head=net.auxiliary,
                                  keep_prob=1.0 - config.get("dropout_prob", 0.0),
                                  kernels=kernels)
    return NAOEvalNetwork(**{f.name: getattr(base, f.name) for f in dataclasses.fields(base)
                             if f.name not in ("parent", "name")})

  def __init__(self, ops: str | Sequence[str] = "small", num_nodes: int = 5):
    if isinstance(ops, str):
      if ops not in OP_SETS:
        raise ValueError(f"Unknown NAO op set {ops!r}; valid: {', '.join(OP_SETS)} or a tuple "
                         f"of op names from {', '.join(_KIND)}.")
      ops = OP_SETS[ops]
    # Duplicates allowed: NAO-V1's numbering ('v1') names two ops twice, as the reference does.
    self.ops = ops_lib.validate_ops(tuple(ops), tuple(_KIND), self.name, unique=False)
    if num_nodes < 1:
      raise ValueError(f"num_nodes must be >= 1, got {num_nodes}.")
    self.num_nodes = int(num_nodes)
    self.seq_len = 8 * self.num_nodes
    self.op_offset = self.num_nodes + 2
    self.vocab_size = 1 + (self.num_nodes + 1) + len(self.ops)

  # -- encoding ---------------------------------------------------------------------------------
  def allowed_tokens(self) -> np.ndarray:
    mask = np.zeros((self.seq_len, self.vocab_size), bool)
    for pos in range(self.seq_len):
      node = (pos % (4 * self.num_nodes)) // 4
      if pos % 2 == 0:
        mask[pos, 1:node + 3] = True  # ids 0..node+1
      else:
        mask[pos, self.op_offset:self.op_offset + len(self.ops)] = True
    return mask

  def is_valid(self, tokens: Any) -> bool:
    t = np.asarray(tokens)
    if t.shape != (self.seq_len,) or not np.issubdtype(t.dtype, np.integer):
      return False
    if np.any(t < 0) or np.any(t >= self.vocab_size):
      return False
    return bool(np.all(self.allowed_tokens()[np.arange(self.seq_len), t]))

  def arch_to_tokens(self, arch: Any) -> np.ndarray:
    """Tokens of a raw arch: ``(conv, reduc)`` lists or one flat list (reference format)."""
    if len(arch) == 2 and not np.isscalar(arch[0]):
      arch = list(arch[0]) + list(arch[1])
    raw = np.asarray(arch, np.int64)
    self._check_raw(raw, repr(arch))
    t = raw.copy()
    t[0::2] += 1
    t[1::2] += self.op_offset
    return t.astype(np.int32)

  def tokens_to_arch(self, tokens: Any) -> tuple[list[int], list[int]]:
    """The reference's ``[[conv], [reduc]]`` raw arch of ``tokens``."""
    if not self.is_valid(tokens):
      raise ValueError(f"Invalid NAO token sequence {np.asarray(tokens).tolist()}.")
    return _tokens_to_arch(np.asarray(tokens), self.num_nodes)

  def to_string(self, tokens: Any) -> str:
    conv, reduc = self.tokens_to_arch(tokens)
    return " ".join(str(v) for v in conv + reduc)

  def from_string(self, text: str) -> np.ndarray:
    try:
      raw = [int(v) for v in text.split()]
    except ValueError:
      raise ValueError(f"Malformed NAO arch string {text!r}: expected whitespace-separated "
                       "integers.") from None
    return self.arch_to_tokens(raw)

  def _check_raw(self, raw: np.ndarray, what: str) -> None:
    b = self.num_nodes
    if raw.shape != (self.seq_len,):
      raise ValueError(f"Malformed NAO arch {what}: expected {self.seq_len} integers "
                       f"([x_id, x_op, y_id, y_op] x {b} nodes x 2 cells), got {raw.size}.")
    for pos, v in enumerate(raw):
      cell, node = ("conv", "reduction")[pos // (4 * b)], (pos % (4 * b)) // 4
      if pos % 2 == 0 and not 0 <= v <= node + 1:
        raise ValueError(f"Malformed NAO arch {what}: {cell} cell node {node} reads input "
                         f"{v}; valid inputs are 0..{node + 1}.")
      if pos % 2 == 1 and not 0 <= v < len(self.ops):
        raise ValueError(f"Malformed NAO arch {what}: {cell} cell node {node} uses op {v}; "
                         f"valid ops are 0..{len(self.ops) - 1} ({', '.join(self.ops)}).")

  # -- sampling ---------------------------------------------------------------------------------
  def random_arch(self, rng: np.random.Generator) -> np.ndarray:
    """``utils.generate_arch``: every input id and op uniform, conv cell then reduction cell."""
    raw = []
    for _ in range(2):
      for i in range(2, self.num_nodes + 2):
        raw += [rng.integers(0, i), rng.integers(0, len(self.ops)),
                rng.integers(0, i), rng.integers(0, len(self.ops))]
    return self.arch_to_tokens(raw)

  def augment(self, tokens: Any, rng: np.random.Generator) -> np.ndarray:
    """``controller_expand``'s swap of the (id, op) pairs of one random node per cell."""
    t = np.array(tokens, np.int32)
    half = 4 * self.num_nodes
    for base in (4 * int(rng.integers(0, self.num_nodes)),
                 half + 4 * int(rng.integers(0, self.num_nodes))):
      t[base:base + 4] = np.concatenate([t[base + 2:base + 4], t[base:base + 2]])
    return t

  # -- networks -----------------------------------------------------------------------------------
  def num_params(self, tokens: Any, *, channels: int = 20, layers: int = 3,
                 num_classes: int = 10, stem_multiplier: int = 3) -> int:
    """Parameters of the stand-alone network (NAO-V2's sampling weight; aux head excluded)."""
    conv, reduc = self.tokens_to_arch(tokens)
    return count_network_params(conv, reduc, self.ops, channels=channels, layers=layers,
                                num_classes=num_classes, stem_multiplier=stem_multiplier)

  def supernet(self, *, channels: int = 20, layers: int = 3, num_classes: int = 10,
               stem_multiplier: int = 3, keep_prob: float = 1.0,
               unroll: bool = False, kernels: str = "xla") -> NAOSupernet:
    """The weight-sharing supernet (NAO-V2 CIFAR search: C=20, N=3, 11 cells); ValueError for an
    op set it cannot search (``check_supernet_ops``). ``kernels``: ``'xla'`` or ``'shifted'``
    (``spaces.ops``; ``jaxnas.backends`` picks it)."""
    _check_sizes(channels, layers)
    return NAOSupernet(self.ops, channels, layers, num_classes, self.num_nodes, stem_multiplier,
                       keep_prob, unroll, kernels=ops_lib.check_kernels(kernels))

  def network(self, tokens: Any, *, channels: int = 20, layers: int = 3, num_classes: int = 10,
              stem_multiplier: int = 3, combine: str = "concat", use_aux_head: bool = False,
              keep_prob: float = 1.0, kernels: str = "xla") -> NAONetwork:
    """The stand-alone network of ``tokens``.

    ``combine='concat'``: ``model.NASNetworkCIFAR`` (what ``num_params`` counts; the reference
    re-ranks and retrains this one). ``combine='conv'``: the supernet's sub-network, with the
    weight-shared ``final_combine_conv`` (``supernet_to_network_variables`` fills it).
    """
    _check_sizes(channels, layers)
    if combine not in ("concat", "conv"):
      raise ValueError(f"combine must be 'concat' or 'conv', got {combine!r}.")
    conv, reduc = self.tokens_to_arch(tokens)
    return NAONetwork(tuple(conv), tuple(reduc), self.ops, channels, layers, num_classes,
                      stem_multiplier, combine, use_aux_head, keep_prob,
                      ops_lib.check_kernels(kernels))

  def supernet_to_network_variables(self, supernet_variables: Mapping[str, Any],
                                    tokens: Any) -> dict[str, Any]:
    """See the module-level ``supernet_to_network_variables``."""
    if not self.is_valid(tokens):
      raise ValueError(f"Invalid NAO token sequence {np.asarray(tokens).tolist()}.")
    return supernet_to_network_variables(supernet_variables, np.asarray(tokens), ops=self.ops)


def _check_sizes(channels: int, layers: int) -> None:
  if layers < 1 or channels < 2 or channels % 2:
    raise ValueError(f"NAO networks need layers >= 1 and an even channels >= 2, got "
                     f"layers={layers}, channels={channels}.")


class NAOEvalNetwork(NAONetwork):
  """``NAONetwork`` under the evaluation contract ``(x, *, train, drop_path_prob) -> (logits,
  aux_logits)``: drop-path keep probability ``1 - drop_path_prob`` (the network applies NAO's
  per-cell ramp on top). Same fields and parameter tree as ``NAONetwork``."""

  def __call__(self, x, *, train: bool, drop_path_prob: Any = 0.0):
    return super().__call__(x, train=train, drop_path_keep_prob=1.0 - drop_path_prob)
