"""The discrete DARTS networks trained from scratch: CIFAR (``NetworkCIFAR``) and ImageNet mobile.

Follows quark0/darts ``cnn/model.py``, ``train.py`` and ``train_imagenet.py``
(``shared/spec/methods.md`` §1.3; Liu, Simonyan, Yang, "DARTS: Differentiable Architecture
Search", ICLR 2019):

* **Cell.** Inputs s0, s1 (outputs of the cells k-2, k-1) preprocessed to C channels
  (FactorizedReduce if the previous cell reduced, else ReLU-Conv1x1-BN); intermediate node i =
  ``op_a(state_a) + op_b(state_b)`` for the genotype's genes ``2i, 2i+1``; output = channel concat
  of the ``concat`` states. In a reduction cell the ops reading s0/s1 have stride 2. Every
  BatchNorm has scale and bias (unlike the search cells), pools have no BN.
* **Drop-path** (training only): every op output except the identity (``skip_connect`` at stride
  1) is multiplied by a per-example Bernoulli(1 - p) mask and rescaled by ``1 / (1 - p)``; the
  training loop ramps ``p = drop_path_prob * epoch / epochs`` (0 -> 0.2 on CIFAR).
* **CIFAR macro** (20 cells, C=36): stem conv 3x3 (3 -> 3C) + BN; reductions at ``layers//3``
  and ``2*layers//3`` (channels double); global average pool; linear.
* **ImageNet mobile macro** (14 cells, C=48): ``stem0`` = conv 3x3/2 (3 -> C/2) + BN + ReLU +
  conv 3x3/2 (C/2 -> C) + BN; ``stem1`` = ReLU + conv 3x3/2 (C -> C) + BN; the first cell reads
  s0 = stem0, s1 = stem1 and treats the previous cell as a reduction (FactorizedReduce on s0).
* **Auxiliary head** after cell ``2*layers//3`` (the second reduction cell), training only:
  ReLU -> AvgPool 5x5 (stride 3 CIFAR, 2 ImageNet; no padding) -> conv 1x1 (128) -> BN -> ReLU
  -> conv 2x2 (768) -> BN (CIFAR only: the reference omits it on ImageNet) -> ReLU -> linear.

``network(genotype, ...)`` returns a Linen module whose ``__call__(x, *, train,
drop_path_prob=0.0)`` returns ``(logits, aux_logits)``; ``aux_logits`` is None unless ``train``
and ``auxiliary``. Drop-path draws from the ``'drop_path'`` RNG stream. The auxiliary head's
parameters are created at ``init`` (under ``'auxiliary_head'``), so training can apply them;
``reports.num_params(weights, auxiliary=False)`` leaves them out, as the reference's
``count_parameters_in_MB`` does (3,349,342 parameters for DARTS V2 at C=36, 20 cells).
"""
from __future__ import annotations

import functools

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxnas.spaces import ops as ops_lib
from jaxnas.spaces.darts import DARTS_OPS, Genotype

STEMS = ("cifar", "imagenet")
AUX_HEAD = "auxiliary_head"


def drop_path(x: jax.Array, drop_prob: jax.Array | float, key: jax.Array) -> jax.Array:
  """Zeroes whole examples of ``x`` with probability ``drop_prob``, rescaling the rest by 1/keep.

  DARTS ``utils.drop_path``: ``x / keep * Bernoulli(keep)`` with one draw per example (leading
  axis). ``drop_prob`` may be a traced scalar.
  """
  keep = 1.0 - jnp.asarray(drop_prob, jnp.float32)
  mask = jax.random.bernoulli(key, keep, (x.shape[0],) + (1,) * (x.ndim - 1))
  return jnp.where(mask, x / keep.astype(x.dtype), jnp.zeros((), x.dtype))


def _tuple_genes(genes: Sequence[Sequence[Any]]) -> tuple[tuple[str, int], ...]:
  return tuple((str(op), int(j)) for op, j in genes)


def freeze_genotype(genotype: Genotype) -> Genotype:
  """The genotype with tuples instead of lists/ranges (hashable: usable as a module field)."""
  return Genotype(normal=_tuple_genes(genotype.normal),
                  normal_concat=tuple(int(i) for i in genotype.normal_concat),
                  reduce=_tuple_genes(genotype.reduce),
                  reduce_concat=tuple(int(i) for i in genotype.reduce_concat))


def check_genotype(genotype: Genotype) -> None:
  """Raises ValueError unless every gene is a known DARTS op reading an existing state."""
  for cell in ("normal", "reduce"):
    genes, concat = getattr(genotype, cell), getattr(genotype, cell + "_concat")
    if not genes or len(genes) % 2:
      raise ValueError(f"Genotype cell {cell!r} must have an even, non-zero number of genes "
                       f"(two per node), got {len(genes)}.")
    for g, (op, j) in enumerate(genes):
      if op not in DARTS_OPS:
        raise ValueError(f"Genotype cell {cell!r} gene {g} uses {op!r}, which is not a DARTS "
                         f"operation ({', '.join(DARTS_OPS)}).")
      if not 0 <= j < 2 + g // 2:
        raise ValueError(f"Genotype cell {cell!r} gene {g} reads state {j}; node {g // 2} can "
                         f"only read states 0..{1 + g // 2}.")
    states = 2 + len(genes) // 2
    if not concat or any(not 0 <= i < states for i in concat):
      raise ValueError(f"Genotype {cell}_concat={list(concat)} must name states in 0..{states - 1}.")


class DartsCell(nn.Module):
  """One discrete DARTS cell (``model.Cell``): two ops per node, drop-path on non-identity ops."""
  genes: tuple[tuple[str, int], ...]
  concat: tuple[int, ...]
  channels: int
  reduction: bool
  reduction_prev: bool
  kernels: str = "xla"  # 'xla' | 'shifted' (see ops)

  @nn.compact
  def __call__(self, s0: jax.Array, s1: jax.Array, *, train: bool,
               drop_path_prob: jax.Array | float = 0.0) -> jax.Array:
    c, k = self.channels, self.kernels
    if self.reduction_prev:
      s0 = ops_lib.FactorizedReduce(c, affine=True, kernels=k, name="preprocess0")(s0,
                                                                                  train=train)
    else:
      s0 = ops_lib.ReLUConvBN(c, 1, kernels=k, name="preprocess0")(s0, train=train)
    s1 = ops_lib.ReLUConvBN(c, 1, kernels=k, name="preprocess1")(s1, train=train)
    states = [s0, s1]
    drop = train and not (isinstance(drop_path_prob, (int, float)) and drop_path_prob == 0)
    for node in range(len(self.genes) // 2):
      total = None
      for g in (2 * node, 2 * node + 1):
        name, j = self.genes[g]
        stride = 2 if self.reduction and j < 2 else 1
        h = ops_lib.make_op(name, c, stride, affine=True, module_name=f"op_{g}", kernels=k)(
            states[j], train=train)
        if drop and not (name == "skip_connect" and stride == 1):
          h = drop_path(h, drop_path_prob, self.make_rng("drop_path"))
        total = h if total is None else total + h
      states.append(total)
    return jnp.concatenate([states[i] for i in self.concat], axis=-1)


class AuxiliaryHead(nn.Module):
  """DARTS' auxiliary classifier (``AuxiliaryHeadCIFAR`` / ``AuxiliaryHeadImageNet``)."""
  num_classes: int
  imagenet: bool = False
  kernels: str = "xla"  # 'xla' | 'shifted' (see ops)

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    x = ops_lib.avg_pool_exclude_pad(nn.relu(x), 5, 2 if self.imagenet else 3, 0, self.kernels)
    x = ops_lib.conv(128, 1, name="conv_1", kernels=self.kernels)(x)
    x = nn.relu(ops_lib.batch_norm(train, affine=True, name="bn_1")(x))
    x = ops_lib.conv(768, 2, name="conv_2")(x)
    if not self.imagenet:  # the reference ImageNet head has no BN here (see its code comment)
      x = ops_lib.batch_norm(train, affine=True, name="bn_2")(x)
    x = nn.relu(x).reshape(x.shape[0], -1)
    return nn.Dense(self.num_classes, kernel_init=ops_lib.torch_default_init,
                    name="classifier")(x)


def reduction_layers(layers: int) -> tuple[int, ...]:
  """Indices of the reduction cells: ``layers//3`` and ``2*layers//3``."""
  return (layers // 3, 2 * layers // 3)


class DartsNetwork(nn.Module):
  """The discrete DARTS network (``NetworkCIFAR`` / ``NetworkImageNet``); see the module docstring.

  ``genotype`` must be frozen (``freeze_genotype``); ``network()`` does that.
  """
  genotype: Genotype
  channels: int = 36
  layers: int = 20
  num_classes: int = 10
  auxiliary: bool = True
  stem: str = "cifar"
  stem_multiplier: int = 3
  kernels: str = "xla"  # 'xla' | 'shifted': which kernels the ops run (see ops)

  def _stem(self, x: jax.Array, train: bool) -> tuple[jax.Array, jax.Array]:
    c, bn = self.channels, ops_lib.batch_norm
    conv = functools.partial(ops_lib.conv, kernels=self.kernels)
    if self.stem == "cifar":
      x = conv(self.stem_multiplier * c, 3, padding=1, name="stem_conv")(x)
      x = bn(train, affine=True, name="stem_bn")(x)
      return x, x
    x = conv(c // 2, 3, stride=2, padding=1, name="stem0_conv_1")(x)
    x = nn.relu(bn(train, affine=True, name="stem0_bn_1")(x))
    x = conv(c, 3, stride=2, padding=1, name="stem0_conv_2")(x)
    s0 = bn(train, affine=True, name="stem0_bn_2")(x)
    x = conv(c, 3, stride=2, padding=1, name="stem1_conv")(nn.relu(s0))
    return s0, bn(train, affine=True, name="stem1_bn")(x)

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool, drop_path_prob: jax.Array | float = 0.0
               ) -> tuple[jax.Array, jax.Array | None]:
    if self.stem not in STEMS:
      raise ValueError(f"Unknown stem {self.stem!r}; valid: {', '.join(STEMS)}.")
    s0, s1 = self._stem(x, train)
    width, reduction_prev = self.channels, self.stem == "imagenet"
    aux_logits = None
    for layer in range(self.layers):
      reduction = layer in reduction_layers(self.layers)
      width = width * 2 if reduction else width
      genes = self.genotype.reduce if reduction else self.genotype.normal
      concat = self.genotype.reduce_concat if reduction else self.genotype.normal_concat
      cell = DartsCell(genes, concat, width, reduction, reduction_prev, self.kernels,
                       name=f"cell_{layer}")
      s0, s1 = s1, cell(s0, s1, train=train, drop_path_prob=drop_path_prob)
      reduction_prev = reduction
      # Built at init (so training finds its weights), run in training only.
      if (layer == 2 * self.layers // 3 and self.auxiliary
          and (train or self.is_initializing())):
        out = AuxiliaryHead(self.num_classes, self.stem == "imagenet", self.kernels,
                            name=AUX_HEAD)(
            s1, train=train)
        aux_logits = out if train else None
    x = jnp.mean(s1, axis=(1, 2))
    logits = nn.Dense(self.num_classes, kernel_init=ops_lib.torch_default_init,
                      name="classifier")(x)
    return logits, aux_logits


def network(genotype: Genotype, *, channels: int = 36, layers: int = 20, num_classes: int = 10,
            auxiliary: bool = True, stem: str = "cifar", kernels: str = "xla") -> DartsNetwork:
  """The discrete DARTS network of ``genotype`` (CIFAR: C=36, 20 cells; ImageNet: C=48, 14 cells,
  ``stem='imagenet'``).

  Args:
    genotype: a DARTS ``Genotype`` (lists, tuples or ranges).
    channels: initial channels C.
    layers: number of cells (reductions at ``layers//3`` and ``2*layers//3``).
    num_classes: classifier outputs.
    auxiliary: build the auxiliary head (after cell ``2*layers//3``, training only).
    stem: ``'cifar'`` (3x3 conv to 3C) or ``'imagenet'`` (the mobile setting's three stride-2 convs).
    kernels: ``'xla'`` or ``'shifted'`` (``spaces.ops``; ``jaxnas.backends`` picks it).

  Raises:
    ValueError: malformed genotype, unknown stem, or too few layers.
  """
  genotype = freeze_genotype(genotype)
  check_genotype(genotype)
  if stem not in STEMS:
    raise ValueError(f"Unknown stem {stem!r}; valid: {', '.join(STEMS)}.")
  if layers < 1 or channels < 2 or channels % 2:
    raise ValueError(f"A DARTS network needs layers >= 1 and an even channels >= 2, got "
                     f"layers={layers}, channels={channels}.")
  return DartsNetwork(genotype, channels, layers, num_classes, auxiliary, stem,
                      kernels=ops_lib.check_kernels(kernels))
