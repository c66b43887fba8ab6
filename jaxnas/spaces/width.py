r"""Channel-width search on a CIFAR ResNet (ResNet-20/56) with differentiable channel masks.

The network (He et al., CVPR 2016, the CIFAR variant): stem conv 3x3 + BN + ReLU -> 3 stages of
``n`` basic blocks at base widths ``C, 2C, 4C`` (``C = channels``, 16 in ResNet-20/56; ``n`` =
``blocks_per_stage``: 3 for ResNet-20, 9 for ResNet-56), the first block of stages 2 and 3 with
stride 2 -> global average pool -> linear. A basic block is

    h = ReLU(BN(conv3x3_s(x)))                       (the block's inner width)
    y = BN(conv3x3(h))                               (the stage's stream width)
    out = ReLU(shortcut(x) + y),

with the identity shortcut, or, in the stride-2 first block of a stage, a projection
``BN(conv1x1_s(x))`` (He et al.'s option B). With full widths and ``n = 3`` this is the usual
ResNet-20 of 272,474 parameters (10 classes) and 40.81M multiply-adds.

**Searchable widths.** Two kinds of layer widths are searched, each row of alpha choosing one of
the candidate fractions ``f_1..f_K`` (the space's ``ops``, e.g. ``'0.25', '0.5', '0.75', '1.0'``)
of the layer's base width:

* ``inner`` (``3n`` rows, stage-major): the output width of the first conv of every block. It
  feeds only the block's second conv, so it can be pruned freely.
* ``stream`` (3 rows): the width of each stage's residual stream: the stem output (stage 1), the
  output of every block's second conv and of the stage's projection shortcut. All of them are added
  together by the residual connections, so one width per stage is shared by all of them.

**Relaxation (the channel-masking relaxation).** Every searchable layer is computed at its full
base width ``C_l``; its output is multiplied channel-wise by the mixed mask

.. math::  m_l = \sum_{k=1}^{K} p_{l,k}\, \mathbb{1}[c < \lceil f_k C_l \rceil]_{c=0..C_l-1},
           \qquad p_l = \mathrm{mixing}_l \ (\text{e.g. } \mathrm{softmax}(\alpha_l)),

i.e. the expectation over candidates of a binary mask that keeps the first ``ceil(f_k C_l)``
channels: channel ``c`` is scaled by the total weight of the candidates wide enough to contain it
(FBNetV2's channel masking, Wan et al., CVPR 2020, arXiv 2004.05565; the same weighted
channel-mask aggregation is TAS's, Dong & Yang, NeurIPS 2019, arXiv 1905.09717, there with sampled
candidates). RARTS (Xue, Qi, Xin, arXiv 2008.03901) searches channel widths of CIFAR ResNets
with its relaxed objective; this space is what it searches over (``configs/rarts_width_cifar10.py``).

Where the masks go (this makes "one-hot mixing = the physically narrower network" exact, BatchNorm
included, in training and evaluation mode):

* the mask multiplies the layer's output **after** its BatchNorm (and ReLU: ``m * ReLU(a) =
  ReLU(m * a)`` for ``m >= 0``). BN normalises each channel with that channel's own statistics, so
  the kept channels see exactly the statistics of the narrow layer, and the dropped channels, whose
  BN output would be ``beta`` (non-zero) if masked before BN, are zeroed afterwards;
* in a stage, the stem / projection output and every block's residual branch ``y`` are multiplied
  by the stage's stream mask ``m_s``. The stream then stays exactly ``m_s`` times the unmasked
  stream (``ReLU(m a + m b) = m ReLU(a + b)``), and with a one-hot row its dropped channels are
  exact zeros, which contribute nothing to the next convolution: the conv of a zero-padded input is
  the conv of the narrow input with the kernel's input channels sliced.

So with one-hot rows the supernet's logits, and the BN statistics of its kept channels, equal those
of ``space.network(genotype)`` with the weights ``narrow_variables`` slices out of the supernet
(tested). Masks keep shapes static: one compiled program for every architecture.

Derivation: per-row argmax; the genotype holds the chosen widths ``ceil(f_k C_l)`` and prints as
``16:8,16,16|32:16,32,32|64:32,64,64`` (per stage: stream width, then the inner width of each
block). ``WidthGenotype.num_params`` / ``.flops`` count the discrete network's parameters and
multiply-adds; ``expected_flops(mixing)`` is the differentiable expected multiply-add count of
the relaxation (a resource term for a regularizer).
"""
from __future__ import annotations

import dataclasses
import fractions
import math
from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.spaces import ops as ops_lib
from jaxnas.spaces.base import SearchSpace, check_mixing

WIDTH_OPS: tuple[str, ...] = ("0.25", "0.5", "0.75", "1.0")
NUM_STAGES = 3


def parse_fractions(ops: Sequence[str]) -> tuple[fractions.Fraction, ...]:
  """The candidate width fractions named by ``ops`` (exact rationals, each in (0, 1]).

  Raises:
    ValueError: a name that is not a number in (0, 1], duplicates, or an empty set.
  """
  values = []
  for op in ops:
    try:
      value = fractions.Fraction(op.strip())
    except (ValueError, ZeroDivisionError):
      raise ValueError(f"Width candidate {op!r} is not a number; the 'width' space's operations "
                       f"are width fractions in (0, 1], e.g. {','.join(WIDTH_OPS)}.") from None
    if not 0 < value <= 1:
      raise ValueError(f"Width candidate {op!r} is outside (0, 1].")
    values.append(value)
  if not values or len(set(values)) != len(values):
    raise ValueError(f"Width candidates {tuple(ops)} must be non-empty and duplicate-free.")
  return tuple(values)


def candidate_widths(ops: Sequence[str], base: int) -> tuple[int, ...]:
  """``ceil(f_k * base)`` for each candidate fraction (at least 1 channel)."""
  return tuple(max(1, math.ceil(f * base)) for f in parse_fractions(ops))


def stage_widths(channels: int) -> tuple[int, ...]:
  """The base (maximum) width of each stage: ``C, 2C, 4C``."""
  return tuple(channels * 2**s for s in range(NUM_STAGES))


def candidate_masks(ops: Sequence[str], base: int) -> np.ndarray:
  """``(K, base)`` 0/1 masks; row k keeps the first ``ceil(f_k * base)`` channels."""
  widths = np.asarray(candidate_widths(ops, base))
  return (np.arange(base)[None, :] < widths[:, None]).astype(np.float32)


def mixed_mask(mixing_rows: jax.Array, ops: Sequence[str], base: int) -> jax.Array:
  """``m = sum_k p_k mask_k`` for each row of ``mixing_rows`` (..., K) -> (..., base)."""
  return mixing_rows @ jnp.asarray(candidate_masks(ops, base), mixing_rows.dtype)


def _masked(x: jax.Array, mask: jax.Array | None) -> jax.Array:
  """``x * mask`` over the channel (last) axis; ``mask=None`` leaves ``x`` as is."""
  if mask is None:
    return x
  return x * mask.astype(x.dtype).reshape((1,) * (x.ndim - 1) + mask.shape)


@dataclasses.dataclass(frozen=True)
class WidthGenotype:
  """The chosen widths of a width-searched CIFAR ResNet.

  Attributes:
    stages: the residual-stream width of each of the 3 stages (stage 1's is the stem's output).
    blocks: per stage, the inner width (first conv's output) of each of its blocks.
  """
  stages: tuple[int, ...]
  blocks: tuple[tuple[int, ...], ...]

  def __post_init__(self):
    object.__setattr__(self, "stages", tuple(int(w) for w in self.stages))
    object.__setattr__(self, "blocks", tuple(tuple(int(w) for w in b) for b in self.blocks))
    if len(self.stages) != NUM_STAGES or len(self.blocks) != NUM_STAGES:
      raise ValueError(f"A width genotype has {NUM_STAGES} stages, got stream widths "
                       f"{self.stages} and block widths {self.blocks}.")
    depths = {len(b) for b in self.blocks}
    if len(depths) != 1 or 0 in depths:
      raise ValueError(f"Every stage needs the same number (>= 1) of blocks, got {self.blocks}.")
    if min(self.stages) < 1 or min(min(b) for b in self.blocks) < 1:
      raise ValueError(f"Widths must be >= 1, got {self}.")

  @property
  def blocks_per_stage(self) -> int:
    return len(self.blocks[0])

  def __str__(self) -> str:
    return "|".join(f"{s}:" + ",".join(str(w) for w in b)
                    for s, b in zip(self.stages, self.blocks))

  @classmethod
  def from_string(cls, text: str) -> "WidthGenotype":
    """Parses ``'16:8,16,16|32:16,32,32|64:32,64,64'`` (stream width: inner widths, per stage)."""
    stages, blocks = [], []
    try:
      for group in text.strip().split("|"):
        stream, sep, inner = group.partition(":")
        if not sep:
          raise ValueError("no ':'")
        stages.append(int(stream))
        blocks.append(tuple(int(w) for w in inner.split(",")))
      return cls(tuple(stages), tuple(blocks))
    except ValueError as e:
      raise ValueError(f"Malformed width genotype {text!r} ({e}); expected "
                       "'16:8,16,16|32:16,32,32|64:32,64,64' (per stage: stream width, then the "
                       "inner width of each block).") from None

  def convs(self, image_size: int = 32) -> list[tuple[int, int, int, int]]:
    """``(in_channels, out_channels, kernel, output_size)`` of every conv of the discrete network
    (stem, then per block conv1, conv2 and, in a stage's first block, the 1x1 projection)."""
    layers = [(3, self.stages[0], 3, image_size)]
    prev, size = self.stages[0], image_size
    for s, (stream, inner) in enumerate(zip(self.stages, self.blocks)):
      for i, hidden in enumerate(inner):
        if s > 0 and i == 0:  # stride 2: 3x3 pad 1 and 1x1 pad 0 both give ceil(size / 2)
          size = -(-size // 2)
          layers += [(prev, hidden, 3, size), (hidden, stream, 3, size), (prev, stream, 1, size)]
        else:
          layers += [(prev, hidden, 3, size), (hidden, stream, 3, size)]
        prev = stream
    return layers

  def num_params(self, num_classes: int = 10) -> int:
    r"""Parameters of the discrete network: conv kernels ``k^2 C_in C_out``, BN scale and bias
    ``2 C_out`` after every conv, the linear layer ``(C_3 + 1) num_classes``."""
    convs = sum(k * k * cin * cout + 2 * cout for cin, cout, k, _ in self.convs())
    return convs + (self.stages[-1] + 1) * num_classes

  def flops(self, num_classes: int = 10, image_size: int = 32) -> int:
    r"""Multiply-adds of the convolutions and the linear layer for one ``image_size``^2 image.

    .. math:: \mathrm{FLOPs} = \sum_{\mathrm{conv}} H_{out} W_{out} k^2 C_{in} C_{out}
              + C_3 \cdot \mathrm{num\_classes},

    with ``H_out = ceil(H_in / stride)`` (3x3 convs pad 1, the 1x1 shortcut pads 0). BatchNorm,
    ReLU, additions and pooling are not counted (the convention of the pruning literature:
    ResNet-20 = 40.81M with projection shortcuts).
    """
    convs = sum(size * size * k * k * cin * cout for cin, cout, k, size in self.convs(image_size))
    return convs + self.stages[-1] * num_classes


class BasicBlock(nn.Module):
  """The CIFAR ResNet basic block (module docstring), optionally with channel masks.

  ``inner`` / ``features`` are the physical widths (the maximum widths in the supernet). With
  ``inner_mask`` / ``out_mask`` (the supernet) the inner activation and the residual branch and
  projection outputs are multiplied by them after BatchNorm; without (the discrete network) the
  block is a plain block of these widths. ``carry_output`` makes it a ``nn.scan`` body.
  """
  inner: int
  features: int
  stride: int = 1
  train: bool = False
  carry_output: bool = False
  kernels: str = "xla"  # 'xla' | 'shifted' (see ops)

  @nn.compact
  def __call__(self, x: jax.Array, inner_mask: jax.Array | None = None,
               out_mask: jax.Array | None = None):
    if self.stride == 1 and x.shape[-1] != self.features:
      raise ValueError(f"A stride-1 block keeps its stream width: input has {x.shape[-1]} "
                       f"channels, output {self.features}.")
    h = ops_lib.conv(self.inner, 3, self.stride, 1, name="conv1", kernels=self.kernels)(x)
    h = _masked(nn.relu(ops_lib.batch_norm(self.train, True, name="bn1")(h)), inner_mask)
    y = ops_lib.conv(self.features, 3, 1, 1, name="conv2", kernels=self.kernels)(h)
    y = _masked(ops_lib.batch_norm(self.train, True, name="bn2")(y), out_mask)
    shortcut = x
    if self.stride != 1:
      shortcut = ops_lib.conv(self.features, 1, self.stride, 0, name="shortcut_conv",
                              kernels=self.kernels)(x)
      shortcut = _masked(ops_lib.batch_norm(self.train, True, name="shortcut_bn")(shortcut),
                         out_mask)
    out = nn.relu(shortcut + y)
    return (out, None) if self.carry_output else out


class WidthSupernet(nn.Module):
  """The width-search supernet; ``mixing = {'stream': (3, K), 'inner': (3n, K)}``.

  ``remat=True`` wraps every residual block in ``nn.remat`` (activation rematerialization): the
  backward pass recomputes a block's activations from its input instead of storing them, less
  memory for about one more forward pass of compute. Same variables as without.
  """
  ops: tuple[str, ...] = WIDTH_OPS
  channels: int = 16
  blocks_per_stage: int = 3
  num_classes: int = 10
  unroll: bool = False  # unroll the scan over a stage's blocks 2..n
  remat: bool = False  # nn.remat each block: its activations are recomputed in the backward pass
  kernels: str = "xla"  # 'xla' | 'shifted': which kernels the convolutions run (see ops)

  @nn.compact
  def __call__(self, x: jax.Array, mixing: Mapping[str, jax.Array], *, train: bool) -> jax.Array:
    n, widths = self.blocks_per_stage, stage_widths(self.channels)
    # remat before scan; inside a scan CSE cannot merge the recomputation with the forward.
    block = nn.remat(BasicBlock) if self.remat else BasicBlock
    scanned = nn.remat(BasicBlock, prevent_cse=False) if self.remat else BasicBlock
    check_mixing(mixing, width_arch_shapes(len(self.ops), n), "width")
    inner = mixing["inner"].reshape(NUM_STAGES, n, len(self.ops))
    x = ops_lib.conv(widths[0], 3, 1, 1, name="stem_conv", kernels=self.kernels)(x)
    stream_mask = mixed_mask(mixing["stream"][0], self.ops, widths[0])
    x = _masked(nn.relu(ops_lib.batch_norm(train, True, name="stem_bn")(x)), stream_mask)
    for s, width in enumerate(widths):
      stream_mask = mixed_mask(mixing["stream"][s], self.ops, width)
      inner_masks = mixed_mask(inner[s], self.ops, width)  # (n, width)
      x = block(width, width, 2 if s else 1, train, kernels=self.kernels,
                name=f"stage_{s}_block_0")(
          x, inner_masks[0], stream_mask)
      if n > 1:
        blocks = nn.scan(scanned, variable_axes={"params": 0, "batch_stats": 0},
                         split_rngs={"params": True}, in_axes=(0, nn.broadcast), length=n - 1,
                         unroll=n - 1 if self.unroll else 1)
        x, _ = blocks(width, width, 1, train, carry_output=True, kernels=self.kernels,
                      name=f"stage_{s}_blocks")(
            x, inner_masks[1:], stream_mask)
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.num_classes, kernel_init=ops_lib.torch_default_init,
                    name="classifier")(x)


class WidthResNet(nn.Module):
  """The discrete CIFAR ResNet with the physical widths of ``genotype`` (no masks)."""
  genotype: WidthGenotype
  num_classes: int = 10
  kernels: str = "xla"  # 'xla' | 'shifted' (see ops)

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    g = self.genotype
    x = ops_lib.conv(g.stages[0], 3, 1, 1, name="stem_conv", kernels=self.kernels)(x)
    x = nn.relu(ops_lib.batch_norm(train, True, name="stem_bn")(x))
    for s, (stream, inner) in enumerate(zip(g.stages, g.blocks)):
      for i, hidden in enumerate(inner):
        stride = 2 if s > 0 and i == 0 else 1
        x = BasicBlock(hidden, stream, stride, train, kernels=self.kernels,
                       name=f"stage_{s}_block_{i}")(x)
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.num_classes, kernel_init=ops_lib.torch_default_init,
                    name="classifier")(x)


def width_arch_shapes(num_ops: int, blocks_per_stage: int) -> dict[str, tuple[int, int]]:
  return {"stream": (NUM_STAGES, num_ops), "inner": (NUM_STAGES * blocks_per_stage, num_ops)}


def _slice_block(tree: Mapping[str, Any], cin: int, hidden: int, stream: int) -> dict[str, Any]:
  """A block's variables (one collection) cut to ``cin -> hidden -> stream`` channels."""
  out_channels = {"conv1": hidden, "bn1": hidden, "conv2": stream, "bn2": stream,
                  "shortcut_conv": stream, "shortcut_bn": stream}
  in_channels = {"conv1": cin, "conv2": hidden, "shortcut_conv": cin}
  sliced = {}
  for layer, leaves in tree.items():
    c_out = out_channels[layer]
    if layer in in_channels:  # a conv kernel (kh, kw, in, out)
      sliced[layer] = {k: v[:, :, :in_channels[layer], :c_out] for k, v in leaves.items()}
    else:                     # BatchNorm scale/bias/mean/var (C,)
      sliced[layer] = {k: v[:c_out] for k, v in leaves.items()}
  return sliced


def narrow_variables(variables: Mapping[str, Any], genotype: WidthGenotype) -> dict[str, Any]:
  """Cuts a supernet's variables down to the discrete network of ``genotype``.

  Every layer keeps its first channels, which is what the supernet computes under the one-hot
  mixing of ``genotype`` (``WidthSpace.one_hot_mixing``), so the narrowed network computes the
  same function (tested). Layouts: the supernet has ``stem_conv``, ``stem_bn``,
  ``stage_{s}_block_0`` and the scanned blocks 2..n stacked under ``stage_{s}_blocks``, then
  ``classifier``; the discrete network has ``stage_{s}_block_{i}`` for every block.

  Args:
    variables: ``{'params': ..., 'batch_stats': ...}`` of a ``WidthSupernet`` (either collection
      may be absent).
    genotype: widths that fit the supernet (each at most its layer's base width).
  """
  g = genotype
  result: dict[str, Any] = {}
  for col, tree in variables.items():
    out: dict[str, Any] = {}
    if "stem_conv" in tree:
      out["stem_conv"] = {"kernel": tree["stem_conv"]["kernel"][..., :g.stages[0]]}
    out["stem_bn"] = {k: v[:g.stages[0]] for k, v in tree["stem_bn"].items()}
    prev = g.stages[0]
    for s, (stream, inner) in enumerate(zip(g.stages, g.blocks)):
      for i, hidden in enumerate(inner):
        block = (tree[f"stage_{s}_block_0"] if i == 0 else
                 jax.tree.map(lambda leaf, i=i: leaf[i - 1], tree[f"stage_{s}_blocks"]))
        out[f"stage_{s}_block_{i}"] = _slice_block(block, prev, hidden, stream)
        prev = stream
    if "classifier" in tree:
      out["classifier"] = {"kernel": tree["classifier"]["kernel"][:g.stages[-1]],
                           "bias": tree["classifier"]["bias"]}
    result[col] = out
  return result


class WidthSpace(SearchSpace):
  """Channel-width search on a CIFAR ResNet: each alpha row picks a width fraction of one layer.

  ``ops`` are the candidate fractions as strings (default ``0.25, 0.5, 0.75, 1.0``); any exact
  decimals or ratios in (0, 1] work, e.g. ``('1/3', '2/3', '1')``. The depth is a size of the
  supernet (``blocks_per_stage``), so ``arch_shapes`` depends on it: build the space with the
  same ``blocks_per_stage`` as the supernet.
  """
  name = "width"
  all_ops = WIDTH_OPS

  @classmethod
  def options_from(cls, config: Any) -> dict[str, Any]:
    """``config.space``: ``ops``, ``blocks_per_stage``, ``channels``."""
    return {**super().options_from(config), "blocks_per_stage": config.space.blocks_per_stage,
            "channels": config.space.channels}

  def supernet_sizes(self, space_config: Any) -> dict[str, Any]:
    """``config.space``: ``channels``, ``blocks_per_stage`` (those of the space)."""
    return {"channels": space_config.channels,
            "blocks_per_stage": space_config.blocks_per_stage}

  def backend_options(self, backend: Any) -> dict[str, Any]:
    """The backend's kernels, loops and remat; no ``remat_scope``: the scope is the block."""
    options = backend.supernet_options()
    del options["remat_scope"]  # one scope ('cell'), checked by backends.resolve
    return options

  def __init__(self, ops: Sequence[str] | None = None, blocks_per_stage: int = 3,
               channels: int = 16):
    """Args: ops: candidate width fractions; blocks_per_stage: n (ResNet-20: 3, ResNet-56: 9);
    channels: the base width C (stages C, 2C, 4C), used by ``derive``."""
    self.ops = tuple(op.strip() for op in (ops or WIDTH_OPS))
    self.fractions = parse_fractions(self.ops)
    if blocks_per_stage < 1 or channels < 1:
      raise ValueError(f"The width space needs blocks_per_stage >= 1 and channels >= 1, got "
                       f"{blocks_per_stage} and {channels}.")
    self.blocks_per_stage, self.channels = blocks_per_stage, channels

  def __repr__(self) -> str:
    return (f"WidthSpace(ops={self.ops}, blocks_per_stage={self.blocks_per_stage}, "
            f"channels={self.channels})")

  def arch_shapes(self) -> dict[str, tuple[int, int]]:
    return width_arch_shapes(len(self.ops), self.blocks_per_stage)

  def supernet(self, *, channels: int | None = None, blocks_per_stage: int | None = None,
               num_classes: int = 10, unroll: bool = True, remat: bool = False,
               kernels: str = "xla", **unused: Any) -> WidthSupernet:
    """The masked full-width ResNet (sizes default to the space's; they must agree with it).

    ``remat=True``: ``nn.remat`` on every residual block (recompute activations in the backward
    pass; the same variables). ``kernels``: ``'xla'`` or ``'shifted'`` (``spaces.ops``).
    """
    self._reject_unused(unused)
    channels = self.channels if channels is None else channels
    blocks = self.blocks_per_stage if blocks_per_stage is None else blocks_per_stage
    if (channels, blocks) != (self.channels, self.blocks_per_stage):
      raise ValueError(f"The supernet's sizes (channels={channels}, blocks_per_stage={blocks}) "
                       f"differ from the space's ({self.channels}, {self.blocks_per_stage}).")
    return WidthSupernet(self.ops, channels, blocks, num_classes, unroll, bool(remat),
                         ops_lib.check_kernels(kernels))

  def derive(self, mixing: Mapping[str, Any]) -> WidthGenotype:
    """Per-row argmax: each layer's width is ``ceil(f_k * C_layer)`` of its strongest candidate."""
    check_mixing(mixing, self.arch_shapes(), self.name)
    stream, inner = np.asarray(mixing["stream"]), np.asarray(mixing["inner"])
    n = self.blocks_per_stage
    stages, blocks = [], []
    for s, base in enumerate(stage_widths(self.channels)):
      widths = candidate_widths(self.ops, base)
      stages.append(widths[int(np.argmax(stream[s]))])
      blocks.append(tuple(widths[int(np.argmax(row))] for row in inner[s * n:(s + 1) * n]))
    return WidthGenotype(tuple(stages), tuple(blocks))

  def parse_genotype(self, text: str) -> WidthGenotype:
    genotype = WidthGenotype.from_string(text)
    self.one_hot_mixing(genotype)  # raises if a width is not one of this space's candidates
    return genotype

  def discretize(self, mixing: Mapping[str, Any]) -> dict[str, jax.Array]:
    """The derived widths as one-hot rows (per-row argmax, as ``derive``). Jit-able."""
    check_mixing(mixing, self.arch_shapes(), self.name)
    return {k: jax.nn.one_hot(jnp.argmax(jnp.asarray(v), axis=-1), jnp.shape(v)[-1],
                              dtype=jnp.asarray(v).dtype) for k, v in mixing.items()}

  def one_hot_mixing(self, genotype: WidthGenotype) -> dict[str, np.ndarray]:
    """The one-hot mixing weights under which the supernet computes ``genotype``'s network."""
    if genotype.blocks_per_stage != self.blocks_per_stage:
      raise ValueError(f"Genotype {genotype} has {genotype.blocks_per_stage} blocks per stage; "
                       f"this space has {self.blocks_per_stage}.")
    eye = np.eye(len(self.ops), dtype=np.float32)
    stream, inner = [], []
    for s, base in enumerate(stage_widths(self.channels)):
      widths = candidate_widths(self.ops, base)
      for w in (genotype.stages[s],) + genotype.blocks[s]:
        if w not in widths:
          raise ValueError(f"Width {w} in genotype {genotype} is not a candidate of stage {s + 1} "
                           f"(base width {base}): candidates {widths}.")
      stream.append(eye[widths.index(genotype.stages[s])])
      inner += [eye[widths.index(w)] for w in genotype.blocks[s]]
    return {"stream": np.stack(stream), "inner": np.stack(inner)}

  def network(self, genotype: WidthGenotype, *, num_classes: int = 10,
              kernels: str = "xla") -> WidthResNet:
    """The discrete ResNet of ``genotype`` (for training from scratch or from narrowed weights)."""
    return WidthResNet(genotype, num_classes, ops_lib.check_kernels(kernels))

  def expected_flops(self, mixing: Mapping[str, jax.Array], *, num_classes: int = 10,
                     image_size: int = 32) -> jax.Array:
    """Differentiable expected multiply-adds of the relaxation: ``WidthGenotype.flops`` with every
    width replaced by its expectation ``E[w_l] = sum_k p_{l,k} ceil(f_k C_l)`` (each conv's input
    and output widths come from different rows, so for independent rows this is the exact
    expectation). Equals ``derive(mixing).flops()`` for one-hot mixing."""
    n = self.blocks_per_stage
    expect = lambda rows, base: rows @ jnp.asarray(candidate_widths(self.ops, base), rows.dtype)
    bases = stage_widths(self.channels)
    stream = [expect(mixing["stream"][s], b) for s, b in enumerate(bases)]
    inner = [expect(mixing["inner"][s * n:(s + 1) * n], b) for s, b in enumerate(bases)]
    size = image_size
    total = size * size * 9 * 3 * stream[0]
    prev = stream[0]
    for s in range(NUM_STAGES):
      if s:
        size = -(-size // 2)
        total = total + size * size * prev * stream[s]  # the 1x1 projection shortcut
      ins = jnp.concatenate([prev[None], jnp.broadcast_to(stream[s], (n - 1,))])
      total = total + size * size * 9 * jnp.sum(ins * inner[s] + inner[s] * stream[s])
      prev = stream[s]
    return total + prev * num_classes
