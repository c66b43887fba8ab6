"""The discrete NAS-Bench-201 network (AutoDL-Projects ``TinyNetwork`` with ``InferCell``).

Dong & Yang, "NAS-Bench-201", ICLR 2020; ``shared/spec/methods.md`` §9. The macro skeleton is the
search supernet's (stem conv 3x3 + BN -> N cells @C -> ResNet block (C -> 2C, stride 2) -> N
cells @2C -> ResNet block (2C -> 4C) -> N cells @4C -> BN + ReLU -> global average pool ->
linear), with every cell the discrete cell of the genotype: node j = sum_{i<j} op_{j<-i}(node i),
output node 3; ``none`` edges contribute zeros. All BatchNorms have scale and bias (the benchmark
networks were trained with affine BN). C=16, N=5 is the benchmark's network: its parameter counts
equal the benchmark's ``size_in_mb`` x 1e6 (tested).

``network(genotype, ...)`` returns a Linen module whose ``__call__(x, *, train,
drop_path_prob=0.0)`` returns ``(logits, None)``, the same contract as the DARTS networks
(NB201 has neither an auxiliary head nor drop-path; ``drop_path_prob`` is accepted and ignored).
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxnas.spaces import ops as ops_lib
from jaxnas.spaces.nb201 import NB201Genotype


class NB201Cell(nn.Module):
  """One discrete NB201 cell (``InferCell``): ``edges`` is the op name per edge (string order)."""
  edges: tuple[str, ...]
  channels: int
  kernels: str = "xla"  # 'xla' | 'shifted' (see ops)

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    nodes = [x]
    edge = 0
    for j in range(1, 4):
      total = None
      for i in range(j):
        name = self.edges[edge]
        h = ops_lib.make_op(name, self.channels, 1, affine=True, module_name=f"edge_{j}_{i}",
                            kernels=self.kernels)(nodes[i], train=train)
        total = h if total is None else total + h
        edge += 1
      nodes.append(total)
    return nodes[-1]


class NB201Network(nn.Module):
  """``TinyNetwork``: the NB201 network of one cell genotype (see the module docstring)."""
  edges: tuple[str, ...]
  channels: int = 16
  cells_per_stage: int = 5
  num_classes: int = 10
  kernels: str = "xla"  # 'xla' | 'shifted': which kernels the ops run (see ops)

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool, drop_path_prob: jax.Array | float = 0.0
               ) -> tuple[jax.Array, None]:
    del drop_path_prob
    x = ops_lib.conv(self.channels, 3, padding=1, name="stem_conv", kernels=self.kernels)(x)
    x = ops_lib.batch_norm(train, affine=True, name="stem_bn")(x)
    for stage in range(3):
      width = self.channels * 2**stage
      if stage > 0:
        x = ops_lib.ResNetBasicBlock(width, 2, self.kernels, name=f"reduce_{stage}")(x,
                                                                                     train=train)
      for n in range(self.cells_per_stage):
        x = NB201Cell(self.edges, width, self.kernels, name=f"stage_{stage}_cell_{n}")(
            x, train=train)
    x = nn.relu(ops_lib.batch_norm(train, affine=True, name="last_bn")(x))
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.num_classes, kernel_init=ops_lib.torch_default_init,
                    name="classifier")(x), None


def network(genotype: NB201Genotype | str, *, channels: int = 16, cells_per_stage: int = 5,
            num_classes: int = 10, kernels: str = "xla") -> NB201Network:
  """The discrete NB201 network of ``genotype`` (an ``NB201Genotype`` or its string).

  Args:
    genotype: the cell, e.g. ``'|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|...|'``.
    channels: initial channels C (16 in NAS-Bench-201).
    cells_per_stage: N (5 in NAS-Bench-201).
    num_classes: classifier outputs (10 / 100 / 120).
    kernels: ``'xla'`` or ``'shifted'`` (``spaces.ops``; ``jaxnas.backends`` picks it).
  """
  if isinstance(genotype, str):
    genotype = NB201Genotype.from_string(genotype)
  if channels < 1 or cells_per_stage < 0:
    raise ValueError(f"An NB201 network needs channels >= 1 and cells_per_stage >= 0, got "
                     f"{channels}, {cells_per_stage}.")
  return NB201Network(tuple(genotype.edges), channels, cells_per_stage, num_classes,
                      ops_lib.check_kernels(kernels))
