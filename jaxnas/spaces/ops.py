"""Candidate operations shared by the search spaces (Flax Linen, NHWC).

Each operation is a Linen module called as ``op(x, train=...)``. Definitions follow the reference
implementations exactly (quark0/darts ``cnn/operations.py``; AutoDL-Projects
``models/cell_operations.py`` for NAS-Bench-201), see ``shared/spec/methods.md`` §1.1 and §9.1:

* BatchNorm matches PyTorch's defaults (momentum 0.1 -> Flax momentum 0.9, eps 1e-5); inside
  search cells it has no scale and bias (``affine=False``), as in the references.
* Convolutions have no bias and PyTorch's default initialisation, U(-1/sqrt(fan_in), +1/sqrt(fan_in)).
  For NAS-Bench-201 this is AutoDL's code of the NB201 paper: AutoDL commit ``b9a5d28``
  (2020-07-19) gave ``ReLUConvBN`` (and ``SepConv``'s pointwise conv, ``FactorizedReduce``)
  ``bias=not affine``, i.e. a bias inside search cells, right before an affine-free BatchNorm that
  subtracts it again in training mode; the NB201 supernet (C=16, N=5) has 1,686,106 parameters
  here and in AutoDL before that commit, 1,692,826 at AutoDL's HEAD.
* Padding is explicit and symmetric, so output sizes equal PyTorch's for every input size.

``make_op(name, channels, stride, affine=..., pool_bn=..., kernels=...)`` builds any operation by
name; ``OP_NAMES`` lists them.

``kernels`` (a module attribute of every operation, cell and supernet, fixed at construction)
picks which kernels compute the depthwise and 1x1 convolutions and the pools: ``'xla'`` (XLA's own
convolution and ``reduce_window``) or ``'shifted'`` (``jaxnas.backends.cpu_kernels``: the same
values and parameters as shifted elementwise arithmetic, XLA:CPU's fast path). The backend
(``jaxnas.backends``) chooses it per platform; modules built directly default to ``'xla'``.
"""
from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxnas import backends
from jaxnas.backends import cpu_kernels

KERNELS = backends.KERNELS


def check_kernels(kernels: str) -> str:
  """``kernels`` if it is one of ``KERNELS``, else a ValueError naming the valid values."""
  if kernels not in KERNELS:
    raise ValueError(f"kernels={kernels!r} is not valid; choose one of: {', '.join(KERNELS)}.")
  return kernels


# PyTorch's default conv/linear weight init: kaiming_uniform(a=sqrt(5)) == U(+-1/sqrt(fan_in)).
torch_default_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def batch_norm(train: bool, affine: bool, name: str | None = None) -> nn.BatchNorm:
  """BatchNorm with PyTorch's defaults; batch statistics when ``train`` else running averages."""
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                      use_scale=affine, use_bias=affine, name=name)


def conv(features: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1,
         groups: int = 1, name: str | None = None, kernels: str = "xla") -> nn.Conv:
  """A bias-free 2-D convolution with explicit symmetric padding (PyTorch semantics).

  With ``kernels='shifted'``, depthwise (``groups == features > 1``) and unpadded 1x1
  convolutions run on ``cpu_kernels.FastConv``: the same parameters and values.
  """
  fast = (kernel == 1 and groups == 1 and padding == 0) or (groups > 1 and groups == features)
  return nn.Conv(features, (kernel, kernel), strides=(stride, stride),
                 padding=((padding, padding), (padding, padding)),
                 kernel_dilation=(dilation, dilation), feature_group_count=groups,
                 use_bias=False, kernel_init=torch_default_init, name=name,
                 conv_general_dilated_cls=(cpu_kernels.FastConv
                                           if fast and check_kernels(kernels) == "shifted"
                                           else None))


def avg_pool_exclude_pad(x: jax.Array, window: int, stride: int, padding: int,
                         kernels: str = "xla") -> jax.Array:
  """Average pooling whose divisor counts only real pixels (PyTorch ``count_include_pad=False``);
  ``cpu_kernels.avg_pool`` with ``kernels='shifted'``."""
  if check_kernels(kernels) == "shifted":
    return cpu_kernels.avg_pool(x, window, stride, padding)
  pad = ((padding, padding), (padding, padding))
  return nn.avg_pool(x, (window, window), strides=(stride, stride), padding=pad,
                     count_include_pad=False)


def max_pool(x: jax.Array, window: int, stride: int, padding: int,
             kernels: str = "xla") -> jax.Array:
  """Max pooling with -inf padding (PyTorch semantics); ``cpu_kernels.max_pool`` with
  ``kernels='shifted'`` (its backward avoids XLA:CPU's select-and-scatter)."""
  if check_kernels(kernels) == "shifted":
    return cpu_kernels.max_pool(x, window, stride, padding)
  pad = ((padding, padding), (padding, padding))
  return nn.max_pool(x, (window, window), strides=(stride, stride), padding=pad)


class Zero(nn.Module):
  """The ``none`` operation: zeros of the output shape (``x[:, ::s, ::s] * 0`` in the reference)."""
  stride: int = 1

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    del train
    return jnp.zeros_like(x[:, ::self.stride, ::self.stride, :])


class Identity(nn.Module):
  """The ``skip_connect`` operation at stride 1."""

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    del train
    return x


class FactorizedReduce(nn.Module):
  """ReLU -> two 1x1 stride-2 convolutions (the second shifted by one pixel) -> concat -> BN.

  The reference applies the second convolution to ``x[:, 1:, 1:]``, which only matches the first
  for even sizes; for odd sizes we zero-pad one row/column at the end before shifting, so both
  halves have ``ceil(H/2)`` rows (ReLU comes first, so zero is a neutral pad value).
  """
  features: int
  affine: bool = True
  kernels: str = "xla"

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    if self.features % 2:
      raise ValueError(f"FactorizedReduce needs an even number of output channels, got "
                       f"{self.features}.")
    x = nn.relu(x)
    half = self.features // 2
    a = conv(half, 1, stride=2, name="conv_1", kernels=self.kernels)(x)
    padded = jnp.pad(x, ((0, 0), (0, x.shape[1] % 2), (0, x.shape[2] % 2), (0, 0)))
    b = conv(half, 1, stride=2, name="conv_2", kernels=self.kernels)(padded[:, 1:, 1:, :])
    return batch_norm(train, self.affine, name="bn")(jnp.concatenate([a, b], axis=-1))


class ReLUConvBN(nn.Module):
  """ReLU -> Conv k x k -> BN (DARTS preprocessing; NB201's ``nor_conv_kxk``)."""
  features: int
  kernel: int
  stride: int = 1
  padding: int = 0
  dilation: int = 1
  affine: bool = True
  kernels: str = "xla"

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    x = conv(self.features, self.kernel, self.stride, self.padding, self.dilation,
             name="conv", kernels=self.kernels)(nn.relu(x))
    return batch_norm(train, self.affine, name="bn")(x)


class DilConv(nn.Module):
  """ReLU -> depthwise (dilated) k x k -> 1x1 conv -> BN (DARTS ``dil_conv``; half of ``sep_conv``)."""
  features: int
  kernel: int
  stride: int
  padding: int
  dilation: int
  affine: bool = True
  kernels: str = "xla"

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    channels = x.shape[-1]
    x = conv(channels, self.kernel, self.stride, self.padding, self.dilation, groups=channels,
             name="depthwise", kernels=self.kernels)(nn.relu(x))
    x = conv(self.features, 1, name="pointwise", kernels=self.kernels)(x)
    return batch_norm(train, self.affine, name="bn")(x)


class SepConv(nn.Module):
  """DARTS ``sep_conv_kxk``: the separable block applied twice, stride only in the first.

  [ReLU -> depthwise k x k (stride s) -> 1x1 -> BN -> ReLU -> depthwise k x k -> 1x1 -> BN]
  """
  features: int
  kernel: int
  stride: int
  padding: int
  affine: bool = True
  kernels: str = "xla"

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    x = DilConv(x.shape[-1], self.kernel, self.stride, self.padding, 1, self.affine,
                self.kernels, name="block_1")(x, train=train)
    return DilConv(self.features, self.kernel, 1, self.padding, 1, self.affine, self.kernels,
                   name="block_2")(x, train=train)


class Pool(nn.Module):
  """3x3 max or average pooling, pad 1 (average excludes padding), optionally followed by BN.

  The DARTS search MixedOp appends ``BatchNorm(affine=False)`` to both pools (``pool_bn=True``);
  NB201 cells and the discrete DARTS networks do not.
  """
  kind: str
  stride: int = 1
  bn: bool = False
  kernels: str = "xla"

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    if self.kind == "max":
      x = max_pool(x, 3, self.stride, 1, self.kernels)
    else:
      x = avg_pool_exclude_pad(x, 3, self.stride, 1, self.kernels)
    if self.bn:
      x = batch_norm(train, affine=False, name="bn")(x)
    return x


class ResNetBasicBlock(nn.Module):
  """NB201's residual reduction block: ReLUConvBN 3x3 (stride s) -> ReLUConvBN 3x3, plus shortcut.

  Shortcut: stride 2 -> AvgPool 2x2 stride 2 -> 1x1 conv (no BN); else ReLUConvBN 1x1 if the
  channel count changes, else identity. BatchNorm is affine (as in AutoDL's ``ResNetBasicblock``).
  """
  features: int
  stride: int
  kernels: str = "xla"

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    k = self.kernels
    y = ReLUConvBN(self.features, 3, self.stride, 1, kernels=k, name="conv_a")(x, train=train)
    y = ReLUConvBN(self.features, 3, 1, 1, kernels=k, name="conv_b")(y, train=train)
    if self.stride == 2:
      shortcut = avg_pool_exclude_pad(x, 2, 2, 0, k)  # no padding: same as count_include_pad=True
      shortcut = conv(self.features, 1, name="downsample", kernels=k)(shortcut)
    elif x.shape[-1] != self.features:
      shortcut = ReLUConvBN(self.features, 1, kernels=k, name="downsample")(x, train=train)
    else:
      shortcut = x
    return shortcut + y


def _skip(features: int, stride: int, affine: bool, pool_bn: bool, name: str,
          kernels: str) -> nn.Module:
  del pool_bn
  if stride == 1:
    return Identity(name=name)
  return FactorizedReduce(features, affine, kernels, name=name)


# (channels, stride, affine, pool_bn, name, kernels) -> module
OpFactory = Callable[[int, int, bool, bool, str, str], nn.Module]

OPS: dict[str, OpFactory] = {
    "none": lambda c, s, affine, pool_bn, name, k: Zero(s, name=name),
    "skip_connect": _skip,
    "max_pool_3x3": lambda c, s, affine, pool_bn, name, k: Pool("max", s, pool_bn, k, name=name),
    "avg_pool_3x3": lambda c, s, affine, pool_bn, name, k: Pool("avg", s, pool_bn, k, name=name),
    "sep_conv_3x3": lambda c, s, affine, pool_bn, name, k: SepConv(c, 3, s, 1, affine, k,
                                                                   name=name),
    "sep_conv_5x5": lambda c, s, affine, pool_bn, name, k: SepConv(c, 5, s, 2, affine, k,
                                                                   name=name),
    "dil_conv_3x3": lambda c, s, affine, pool_bn, name, k: DilConv(c, 3, s, 2, 2, affine, k,
                                                                   name=name),
    "dil_conv_5x5": lambda c, s, affine, pool_bn, name, k: DilConv(c, 5, s, 4, 2, affine, k,
                                                                   name=name),
    "nor_conv_1x1": lambda c, s, affine, pool_bn, name, k: ReLUConvBN(c, 1, s, 0, 1, affine, k,
                                                                      name=name),
    "nor_conv_3x3": lambda c, s, affine, pool_bn, name, k: ReLUConvBN(c, 3, s, 1, 1, affine, k,
                                                                      name=name),
}
OP_NAMES: tuple[str, ...] = tuple(OPS)


def make_op(name: str, channels: int, stride: int, *, affine: bool, pool_bn: bool = False,
            module_name: str | None = None, kernels: str = "xla") -> nn.Module:
  """Builds the candidate operation ``name`` mapping ``channels`` to ``channels`` at ``stride``.

  Args:
    name: one of ``OP_NAMES``.
    channels: input and output channels.
    stride: 1, or 2 on the reduction edges of DARTS reduction cells.
    affine: whether BatchNorm layers have scale and bias (False inside search cells).
    pool_bn: append BatchNorm(affine=False) to pooling ops (the DARTS search MixedOp).
    module_name: the Linen name of the module (defaults to ``name``).
    kernels: ``'xla'`` or ``'shifted'`` (module docstring).
  """
  if name not in OPS:
    raise ValueError(f"Unknown operation {name!r}; valid operations: {', '.join(OP_NAMES)}.")
  return OPS[name](channels, stride, affine, pool_bn, module_name or name, check_kernels(kernels))


def validate_ops(ops: tuple[str, ...], allowed: tuple[str, ...], space: str, *,
                 unique: bool = True) -> tuple[str, ...]:
  """Checks that ``ops`` is a non-empty subset of ``allowed``, duplicate-free if ``unique``;
  returns it as a tuple."""
  ops = tuple(ops)
  unknown = [op for op in ops if op not in allowed]
  if unknown:
    raise ValueError(f"Unknown operation(s) {unknown} for the {space!r} space; valid operations: "
                     f"{', '.join(allowed)}.")
  if unique and len(set(ops)) != len(ops):
    raise ValueError(f"Operation set {ops} for the {space!r} space must be duplicate-free.")
  if not [op for op in ops if op != "none"]:
    raise ValueError(f"Operation set {ops} for the {space!r} space must contain at least one "
                     "operation other than 'none'.")
  return ops


def channel_shuffle(x: jax.Array, groups: int) -> jax.Array:
  """ShuffleNet's channel shuffle on NHWC ``x`` (PC-DARTS ``model_search.channel_shuffle``).

  PyTorch: ``x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)``, i.e.
  output channel ``i * groups + g`` is input channel ``g * (c // groups) + i``.
  """
  *lead, c = x.shape
  if c % groups:
    raise ValueError(f"channel_shuffle: {c} channels are not divisible into {groups} groups.")
  x = x.reshape(*lead, groups, c // groups)
  return jnp.swapaxes(x, -1, -2).reshape(*lead, c)


def max_pool_2x2_ceil(x: jax.Array) -> jax.Array:
  """2x2 max pooling, stride 2 (PyTorch ``MaxPool2d(2, 2)``) with ceil-mode output size.

  For even sizes this is exactly PyTorch's; odd sizes get a ``-inf`` row/column at the end, so
  the output has ``ceil(H/2)`` rows like every stride-2 candidate operation (the reference would
  fail on odd sizes, where its concat sees mismatched shapes).
  """
  pad = ((0, x.shape[1] % 2), (0, x.shape[2] % 2))
  return nn.max_pool(x, (2, 2), strides=(2, 2), padding=pad)


class MixedOp(nn.Module):
  """The continuous relaxation of one edge: ``sum_k mixing[k] * op_k(x)``.

  ``none`` contributes exactly zero, so it is not computed (its mixing weight still takes part
  in the parametrization, e.g. the softmax, as in the references).

  ``partial_channels = K > 1`` is PC-DARTS' partial channel connection (Xu et al., ICLR 2020,
  ``model_search.MixedOp``): the ops are built with ``channels // K`` channels and run on the first
  ``C // K`` input channels only; the other ``C - C // K`` channels pass through untouched (2x2
  max-pooled when ``stride == 2``), are concatenated after the op output, and the result is
  ``channel_shuffle``d with ``K`` groups. With ``K = 1`` this is the plain MixedOp (same
  variables, same output).
  """
  ops: tuple[str, ...]
  channels: int
  stride: int = 1
  affine: bool = False
  pool_bn: bool = False
  partial_channels: int = 1
  kernels: str = "xla"

  @nn.compact
  def __call__(self, x: jax.Array, mixing: jax.Array, *, train: bool) -> jax.Array:
    k = self.partial_channels
    if k < 1 or self.channels % k or x.shape[-1] % k:
      raise ValueError(f"partial_channels={k} must be a positive divisor of the edge's channel "
                       f"count (input {x.shape[-1]}, output {self.channels}).")
    if k > 1 and x.shape[-1] != self.channels:
      raise ValueError(f"A partial-channel MixedOp keeps the channel count: input has "
                       f"{x.shape[-1]} channels, output {self.channels}.")
    part = x.shape[-1] // k
    active = x[..., :part] if k > 1 else x
    out = None
    for i, name in enumerate(self.ops):
      if name == "none":
        continue
      y = make_op(name, self.channels // k, self.stride, affine=self.affine,
                  pool_bn=self.pool_bn, kernels=self.kernels)(active, train=train)
      term = mixing[i].astype(y.dtype) * y
      out = term if out is None else out + term
    if k == 1:
      return out
    rest = x[..., part:]
    if self.stride == 2:
      rest = max_pool_2x2_ceil(rest)
    return channel_shuffle(jnp.concatenate([out, rest], axis=-1), k)


SAMPLED_FORWARDS = ("nb201", "nasnet")


class SampledMixedOp(nn.Module):
  """GDAS' edge (the supernets' ``sampled=True``): in training forwards only the sampled op runs.

  ``mixing`` is GDAS' straight-through sample ``h`` (``parametrize.gumbel_hard``: one-hot in
  value); the sampled op is ``j = argmax(h)``, and the edge computes, as AutoDL-Projects:

  * ``form='nb201'`` (``xautodl/models/cell_searchs/search_cells.py:72-86``,
    ``NAS201SearchCell.forward_gdas``)::

        out = h_j * op_j(x) + sum_{k != j} h_k      (the h_k, k != j, are exactly 0 in value)

    so ``dL/dh_j = <dL/dout, op_j(x)>`` and ``dL/dh_k = sum(dL/dout)`` for the ops not run;
  * ``form='nasnet'`` (``search_cells.py:180-181``, ``MixedOp.forward_gdas``, which GDAS' DARTS-
    space cell ``NASNetSearchCell.forward_gdas`` l. 236-251 calls): ``out = h_j * op_j(x)``, so only
    ``h_j`` gets a gradient.

  Both differ from the all-ops straight-through estimator ``dL/dh_k = <dL/dout, op_k(x)>`` (which
  needs every op's output: the plain ``MixedOp`` fed ``h``). ``op_j`` runs under ``nn.switch``
  (``lax.switch``): the other ops are not computed and their BatchNorm statistics do not move.
  Under ``vmap`` over seeds the index is batched and ``lax.switch`` becomes a select of every
  branch (the same values, no saving).

  Evaluation forwards (``train=False``) mix every op, as ``MixedOp`` (jaxnas evaluates the
  supernet at the deterministic mixing). Variables: the same names as ``MixedOp``'s (one module
  per op, named by the op); initialisation runs every op to create them.
  """
  ops: tuple[str, ...]
  channels: int
  stride: int = 1
  affine: bool = False
  pool_bn: bool = False
  partial_channels: int = 1
  kernels: str = "xla"
  form: str = "nb201"

  def setup(self):
    if self.form not in SAMPLED_FORWARDS:
      raise ValueError(f"SampledMixedOp form={self.form!r}; choose one of {SAMPLED_FORWARDS}.")
    if self.partial_channels != 1:
      raise ValueError("The sampled-op forward (space.sampled_forward) does not combine with "
                       "partial channels (PC-DARTS); set one of them off.")
    # Constructed in setup with their op names (the names MixedOp gives them); kept in a plain
    # dict so that nn.switch's branches reach them through the lifted module.
    object.__setattr__(self, "_candidates", {
        name: make_op(name, self.channels, self.stride, affine=self.affine,
                      pool_bn=self.pool_bn, kernels=self.kernels)
        for name in self.ops if name != "none"})

  def _branch(self, name: str, train: bool):
    if name == "none":
      stride = self.stride
      return lambda mdl, x: jnp.zeros(
          x[:, ::stride, ::stride, :].shape[:-1] + (self.channels,), x.dtype)
    return lambda mdl, x: mdl._candidates[name](x, train=train)

  def __call__(self, x: jax.Array, mixing: jax.Array, *, train: bool) -> jax.Array:
    branches = [self._branch(name, train) for name in self.ops]
    if not train or self.is_initializing():
      outs = [b(self, x) for b in branches]
      if not train:
        return sum(mixing[i].astype(y.dtype) * y for i, (name, y) in
                   enumerate(zip(self.ops, outs)) if name != "none")
      index = jnp.argmax(jax.lax.stop_gradient(mixing))
      y = jnp.stack(outs)[index]
    else:
      index = jnp.argmax(jax.lax.stop_gradient(mixing))
      y = nn.switch(index, branches, self, x)
    chosen = jnp.arange(len(self.ops)) == index
    h = mixing.astype(y.dtype)
    out = jnp.sum(jnp.where(chosen, h, 0)) * y
    if self.form == "nb201":
      out = out + jnp.sum(jnp.where(chosen, 0, h))
    return out


# What ``remat=True`` rematerializes in the spaces whose cells scan their edges (DARTS, NB201):
# 'cell' = nn.remat per cell (the backward keeps each cell's inputs, and its recomputation stacks
# every edge's activations), 'edge' = nn.remat per MixedOp inside the edge scan (the backward keeps
# each edge's input and recomputes one edge at a time).
REMAT_SCOPES = backends.REMAT_SCOPES


def check_remat_scope(remat_scope: str) -> str:
  if remat_scope not in REMAT_SCOPES:
    raise ValueError(f"remat_scope must be one of {', '.join(map(repr, REMAT_SCOPES))}, got "
                     f"{remat_scope!r}.")
  return remat_scope


def remat_placement(remat: bool, remat_scope: str) -> tuple[bool, bool]:
  """``(remat each cell, remat each edge's MixedOp)`` for a supernet's ``remat`` and scope."""
  remat_cells = remat and check_remat_scope(remat_scope) == "cell"
  return remat_cells, remat and not remat_cells


def _apply_mixed(op: MixedOp, h: jax.Array, mixing_row: jax.Array, train: bool) -> jax.Array:
  return op(h, mixing_row, train=train)


# The MixedOp under nn.remat; ``train`` (argument 3, counting the module) is static. Inside a scan
# CSE cannot merge the recomputation with the forward, so prevent_cse is not needed.
_apply_mixed_remat = nn.remat(_apply_mixed, static_argnums=(3,), prevent_cse=False)


class _ScanEdge(nn.Module):
  """Scan body: one edge of a cell reading and accumulating into a buffer of node states.

  ``xs = (src, dst, mixing_row)`` or ``(src, dst, mixing_row, edge_scale)``; the carry is the
  buffer ``(num_nodes, B, H, W, C)``. ``nodes[dst] += edge_scale * MixedOp(nodes[src])``. With
  ``dst < 0`` the edge's output is emitted as the scan output instead of being accumulated (used
  for the stride-2 edges of reduction cells). ``remat=True`` runs the MixedOp under ``nn.remat``.
  """
  ops: tuple[str, ...]
  channels: int
  stride: int
  pool_bn: bool
  train: bool
  accumulate: bool
  partial_channels: int = 1
  remat: bool = False
  kernels: str = "xla"
  sampled: str = ""  # GDAS: SampledMixedOp of this form (only the sampled op runs in training)

  @nn.compact
  def __call__(self, nodes: jax.Array, xs: tuple[jax.Array, ...]):
    src, dst, mixing_row = xs[:3]
    h = jax.lax.dynamic_index_in_dim(nodes, src, axis=0, keepdims=False)
    if self.sampled:
      op = SampledMixedOp(self.ops, self.channels, self.stride, pool_bn=self.pool_bn,
                          partial_channels=self.partial_channels, kernels=self.kernels,
                          form=self.sampled, name="mixed")
    else:
      op = MixedOp(self.ops, self.channels, self.stride, pool_bn=self.pool_bn,
                   partial_channels=self.partial_channels, kernels=self.kernels, name="mixed")
    y = (_apply_mixed_remat if self.remat else _apply_mixed)(op, h, mixing_row, self.train)
    if len(xs) == 4:  # PC-DARTS edge normalization: beta scales the whole edge output
      y = xs[3].astype(y.dtype) * y
    if not self.accumulate:
      return nodes, y
    updated = jax.lax.dynamic_index_in_dim(nodes, dst, axis=0, keepdims=False) + y
    return jax.lax.dynamic_update_index_in_dim(nodes, updated, dst, axis=0), None


def scan_edges(nodes: jax.Array, sources: list[int], targets: list[int] | None,
               mixing_rows: jax.Array, *, ops: tuple[str, ...], channels: int, stride: int,
               pool_bn: bool, train: bool, name: str, partial_channels: int = 1,
               edge_scales: jax.Array | None = None, unroll: bool = False, remat: bool = False,
               kernels: str = "xla", sampled: str = ""):
  """Runs a list of same-shaped edges as ONE compiled MixedOp body under ``nn.scan``.

  XLA compiles a loop body once, so a cell costs the compile time of one or two MixedOps instead
  of one per edge (a DARTS cell has 14). Edge ``e`` reads ``nodes[sources[e]]``; with ``targets``
  it adds its output into ``nodes[targets[e]]`` (edges must be ordered so that every node is
  complete before it is read) and the final buffer is returned; without, the stacked edge
  outputs are returned. The edges' weights are stacked along a leading axis (edge order).
  ``partial_channels`` is the PC-DARTS channel proportion K of every MixedOp; ``edge_scales``
  (one scalar per edge, e.g. PC-DARTS' edge-normalization weights beta) multiplies each edge's
  output.

  ``unroll=True`` unrolls the loop in the compiled program (same weight layout): compilation takes
  longer, but XLA:CPU runs XLA convolutions' gradients inside a loop body much slower than
  unrolled (README.md, "Compile time and speed on CPU"); the backend picks it per platform and
  space (``jaxnas.backends``), tests keep the loop rolled for fast compiles.

  ``remat=True`` rematerializes every edge's MixedOp: the scan keeps only each edge's input for the
  backward pass and recomputes the MixedOp's activations inside the backward loop, instead of
  stacking them in the forward loop (those stacks are most of a rolled DARTS step's memory).
  Same variables, same values.

  ``sampled='nb201'`` or ``'nasnet'`` runs GDAS' ``SampledMixedOp`` of that form on every edge
  (the rows of ``mixing_rows`` are straight-through one-hot samples; only the sampled op of each
  edge is computed in training); ``''`` the ``MixedOp``.
  """
  accumulate = targets is not None
  body = nn.scan(_ScanEdge, variable_axes={"params": 0, "batch_stats": 0},
                 split_rngs={"params": True}, in_axes=0, length=len(sources),
                 unroll=len(sources) if unroll else 1)
  xs = (jnp.asarray(sources, jnp.int32),
        jnp.asarray(targets if accumulate else [-1] * len(sources), jnp.int32), mixing_rows)
  if edge_scales is not None:
    xs = xs + (edge_scales,)
  nodes, outputs = body(ops, channels, stride, pool_bn, train, accumulate,
                        partial_channels=partial_channels, remat=remat, kernels=kernels,
                        sampled=sampled, name=name)(nodes, xs)
  return nodes if accumulate else outputs
