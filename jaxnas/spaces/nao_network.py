"""NAO's weight-sharing supernet and stand-alone networks (the networks of ``jaxnas.spaces.nao``).

Luo et al., NeurIPS 2018; NAO-V2, arXiv 1909.10815; reference ``renqianluo/NAO_pytorch``
``NAO_V2/{model_search,model,operations}.py``. The encoding and the token space are in
``jaxnas.spaces.nao``, which re-exports the public names below.

**Supernet** (``model_search.NASWSNetworkCIFAR``): stem conv 3x3 (3C) + BN; 3N+2 cells, reductions
at N and 2N+1 (C doubles). A cell calibrates its inputs (``MaybeCalibrateSize``: ReLU +
FactorizedReduce after a reduction, else ReLU-conv1x1-BN when the channels differ), then each of
its 2B node inputs, in order, picks its state by id and its op by ``lax.switch``. Every parametric
op holds one weight set per (node input, possible input id), ``WSSepConv``: its BatchNorms have
per-id scale/bias and one running mean/var per node input (``WSBN``). In reduction cells ops on
ids 0, 1 have stride 2 and ``identity`` becomes a FactorizedReduce (one per node input and id,
each with its own BN); ops on inner nodes have stride 1 (the switch has both variants). Cell
output: ``final_combine_conv`` = ReLU, 1x1 conv of the concat of the never-used states (a C x C
block per state; a concatenated cell input of a reduction cell is first FactorizedReduced), BN;
computed as a masked sum over all states, equal to the concat-conv. Drop-path (training only) on
both terms of every node, keep prob ``1 - (layer+1)/cells * (1 - p)``, ``p`` given by the caller
(``step_keep_prob``). Only the chosen branch of a switch/cond runs, so unused weights get exactly
zero gradient and unused BatchNorms keep their running statistics, as in PyTorch.

Layout (for compile time): the 2B node inputs of a cell run as one ``lax.scan``, so all per-input
weight sets of an op are stacked along one leading axis (rows ``input_slots``), and the identical
normal cells of a stage run under ``nn.scan``. No auxiliary head in the supernet (NAO-V2 searches
without). ``init`` declares the variables without running the cells.

**Op sets** (``OP_SETS``): NAO-V2's ``small`` (its default) and ``middle``, searched by the
supernet; NAO-V1's ``v1`` numbering (0-4 = ``small``, 5-15 = NAO's original 11 ops: 1x1, 3x3,
1x3+3x1 and 1x7+7x1 convolutions, 2x2/3x3/5x5 max and average pools), for the stand-alone networks
of NAO-V1's archs (NAONet-A) only.

**Networks** (``network``): ``combine='concat'`` is ``model.NASNetworkCIFAR`` (cell output = the
channel concat, C*k channels; the reference instantiates it to weight sampling by size and to
re-rank the top archs; ``num_params`` counts it analytically); ``combine='conv'`` is the
supernet's sub-network (``final_combine_conv``, C channels), which
``supernet_to_network_variables`` fills with the supernet's chosen weights.

Conventions: NHWC; kernels HWIO; Kaiming-normal (fan-in) init for every >=2-D weight, like the
reference; BatchNorm momentum 0.1, eps 1e-5, PyTorch running-variance update (unbiased).
``train=True`` means batch statistics in every BatchNorm (the reference's arch scoring with
``bn_train=True`` leaves the stem BN and the reduction cells' ``fac_1/fac_2`` BNs on running
statistics, an artefact of ``model.eval()`` we do not copy). On XLA:CPU the rolled scans run
convolution gradients slowly (``unroll=True`` trades compile time for speed). ``kernels`` (every
module's attribute, passed down to the operation functions) picks XLA's convolutions and pools
(``'xla'``) or ``jaxnas.backends.cpu_kernels``' (``'shifted'``), as in ``spaces.ops``.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.backends import cpu_kernels
from jaxnas.spaces import ops as ops_lib

NAO_SMALL_OPS: tuple[str, ...] = ("sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3",
                                  "identity")
NAO_MIDDLE_OPS: tuple[str, ...] = ("zero", "identity", "sep_conv_3x3", "sep_conv_5x5",
                                   "sep_conv_7x7", "dil_sep_conv_3x3", "dil_sep_conv_5x5",
                                   "dil_sep_conv_7x7", "avg_pool_3x3", "max_pool_3x3")
# NAO-V1's numbering (``NAO_V1/model.py`` @418ff71, which trains NAONet-A and NAONet-B): ops 0-4
# are the small set, 5-15 NAO's original 11-op space (``OPERATIONS_large``), so 4/5 and 3/11 name
# the same op. NAONet-A uses ops 5-15 only. NAO_V2's own 'large' set renumbers these 11 ops but
# differs (no zero pad before the 2x2 pools, whose stride-1 outputs then lose a row and a column;
# average pools that exclude the padding), so it is not offered.
NAO_V1_OPS: tuple[str, ...] = NAO_SMALL_OPS + (
    "identity", "conv_1x1", "conv_3x3", "conv_1x3_3x1", "conv_1x7_7x1", "max_pool_2x2",
    "max_pool_3x3", "max_pool_5x5", "avg_pool_2x2", "avg_pool_3x3_count_pad",
    "avg_pool_5x5_count_pad")
OP_SETS = {"small": NAO_SMALL_OPS, "middle": NAO_MIDDLE_OPS, "v1": NAO_V1_OPS}
# name -> (kind, kernel). sep: [ReLU dw pw BN] x 2; dil: ReLU dw(dilation 2) pw BN; conv: ReLU
# conv k x k BN; conv_fact: ReLU conv 1 x k (stride on the width) BN ReLU conv k x 1 (stride on the
# height) BN; avg: padding excluded from the divisor; avg_count_pad: included (PyTorch's default,
# NAO-V1's ops 14, 15); max: -inf padding. The 2x2 pools (NAO-V1's ops 10, 13) zero-pad one row
# and column at the bottom and right, then pool without padding (so both count the zeros).
_KIND = {"sep_conv_3x3": ("sep", 3), "sep_conv_5x5": ("sep", 5), "sep_conv_7x7": ("sep", 7),
         "dil_sep_conv_3x3": ("dil", 3), "dil_sep_conv_5x5": ("dil", 5),
         "dil_sep_conv_7x7": ("dil", 7), "avg_pool_3x3": ("avg", 3), "max_pool_3x3": ("max", 3),
         "identity": ("identity", 0), "zero": ("zero", 0), "conv_1x1": ("conv", 1),
         "conv_3x3": ("conv", 3), "conv_1x3_3x1": ("conv_fact", 3),
         "conv_1x7_7x1": ("conv_fact", 7), "max_pool_2x2": ("max_zero_pad", 2),
         "max_pool_5x5": ("max", 5), "avg_pool_2x2": ("avg_zero_pad", 2),
         "avg_pool_3x3_count_pad": ("avg_count_pad", 3),
         "avg_pool_5x5_count_pad": ("avg_count_pad", 5)}
# The op kinds the weight-sharing supernet implements (per-input-id weight stacks).
SUPERNET_KINDS = ("sep", "dil", "avg", "max", "identity", "zero")
AUX_HEAD = "auxiliary_head"
_EPS, _MOMENTUM = 1e-5, 0.1


def step_keep_prob(drop_path_keep_prob: float, step: Any, steps: int) -> Any:
  """The reference's global-step ramp: ``1 - (step + 1) / steps * (1 - drop_path_keep_prob)``.

  Pass the result as ``drop_path_keep_prob`` to the supernet/network, which apply the layer ramp.
  """
  return 1.0 - (step + 1) / steps * (1.0 - drop_path_keep_prob)


# ----------------------------------------------------------------------------------------------
# Variable declaration: a nested spec of leaves, declared by a generic Linen module.
# ----------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Leaf:
  shape: tuple[int, ...]
  init: str = "kaiming"  # kaiming | ones | zeros | uniform
  stack: int = 0  # leading per-input-id axes, excluded from the fan-in
  stats: bool = False  # a 'batch_stats' variable
  bound: float = 0.0  # for 'uniform'


def _initializer(leaf: _Leaf):
  if leaf.init == "kaiming":  # torch.nn.init.kaiming_normal_ (fan_in, gain sqrt(2))
    return nn.initializers.variance_scaling(2.0, "fan_in", "normal",
                                            batch_axis=tuple(range(leaf.stack)))
  if leaf.init == "uniform":
    return lambda key, shape, dtype=jnp.float32: jax.random.uniform(
        key, shape, dtype, -leaf.bound, leaf.bound)
  return nn.initializers.ones if leaf.init == "ones" else nn.initializers.zeros


class _Vars(nn.Module):
  """Declares the variables of a spec ``((name, _Leaf | spec), ...)``; returns (params, stats).

  ``stats`` holds the ``batch_stats`` Variables (assign ``.value`` to update them).
  """
  spec: tuple

  @nn.compact
  def __call__(self):
    params, stats = {}, {}
    for name, item in self.spec:
      if isinstance(item, _Leaf) and item.stats:
        stats[name] = self.variable("batch_stats", name, _initializer(item), None, item.shape)
      elif isinstance(item, _Leaf):
        params[name] = self.param(name, _initializer(item), item.shape)
      else:
        params[name], stats[name] = _Vars(item, name=name)()
    return params, stats


def _declare(spec: tuple) -> tuple[dict, dict]:
  """Declares each top-level entry of ``spec`` as a child of the calling compact module."""
  params, stats = {}, {}
  for name, item in spec:
    params[name], stats[name] = _Vars(item, name=name)()
  return params, stats


def _read(tree):
  return {k: _read(v) if isinstance(v, dict) else v.value for k, v in tree.items()}


def _write(tree, values) -> None:
  for k, v in tree.items():
    if isinstance(v, dict):
      _write(v, values[k])
    else:
      v.value = values[k]


# ----------------------------------------------------------------------------------------------
# Operations: pure functions of (x, params, stats) shared by the supernet and the networks.
# ----------------------------------------------------------------------------------------------

def _conv_any(x, w, strides, padding, dilation=(1, 1), groups=1, *, kernels: str):
  """NHWC/HWIO convolution; with ``kernels='shifted'`` depthwise and 1x1 ones run on
  ``cpu_kernels``."""
  if ops_lib.check_kernels(kernels) == "shifted":
    return cpu_kernels.conv(x, w, strides, padding, dilation, groups)
  return jax.lax.conv_general_dilated(x, w, strides, padding, rhs_dilation=dilation,
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                      feature_group_count=groups)


def _conv(x, w, stride=1, padding=0, dilation=1, groups=1, *, kernels: str):
  """A square-strided, symmetrically padded ``_conv_any``."""
  return _conv_any(x, w, (stride, stride), ((padding, padding), (padding, padding)),
                   (dilation, dilation), groups, kernels=kernels)


def _row(v):
  return v.reshape(1, 1, 1, -1)


def _bn(x, p, s, train, sfx=""):
  """BatchNorm (PyTorch semantics); returns ``(y, new_stats)``."""
  mean, var = s["mean" + sfx], s["var" + sfx]
  if train:
    m = jnp.mean(x, axis=(0, 1, 2))
    v = jnp.mean(jnp.square(x - _row(m)), axis=(0, 1, 2))
    n = x.shape[0] * x.shape[1] * x.shape[2]
    new = {"mean" + sfx: (1 - _MOMENTUM) * mean + _MOMENTUM * m,
           "var" + sfx: (1 - _MOMENTUM) * var + _MOMENTUM * v * (n / max(n - 1, 1))}
  else:
    m, v, new = mean, var, {"mean" + sfx: mean, "var" + sfx: var}
  y = (x - _row(m)) * _row(jax.lax.rsqrt(v + _EPS) * p["scale" + sfx]) + _row(p["bias" + sfx])
  return y, new


def _sep(x, p, s, kernel, stride, train, kernels):
  c, pad, k = x.shape[-1], kernel // 2, kernels
  h = _conv(_conv(nn.relu(x), p["dw_1"], stride, pad, groups=c, kernels=k), p["pw_1"], kernels=k)
  h, s1 = _bn(h, p, s, train, "_1")
  h = _conv(_conv(nn.relu(h), p["dw_2"], 1, pad, groups=c, kernels=k), p["pw_2"], kernels=k)
  h, s2 = _bn(h, p, s, train, "_2")
  return h, {**s1, **s2}


def _dil(x, p, s, kernel, stride, train, kernels):
  c, k = x.shape[-1], kernels
  h = _conv(_conv(nn.relu(x), p["dw"], stride, kernel - 1, 2, groups=c, kernels=k), p["pw"],
            kernels=k)
  return _bn(h, p, s, train)


def _factorized_conv_bn(x, p, s, kernel, stride, train, kernels):
  """NAO-V1's ``Conv`` with a (1, k) kernel: ReLU, 1 x k conv (stride (1, s), padding (0, k // 2)),
  BN, ReLU, k x 1 conv (stride (s, 1), padding (k // 2, 0)), BN."""
  pad = kernel // 2
  h = _conv_any(nn.relu(x), p["conv_1"], (1, stride), ((0, 0), (pad, pad)), kernels=kernels)
  h, s1 = _bn(h, p, s, train, "_1")
  h = _conv_any(nn.relu(h), p["conv_2"], (stride, 1), ((pad, pad), (0, 0)), kernels=kernels)
  h, s2 = _bn(h, p, s, train, "_2")
  return h, {**s1, **s2}


def _pool(kind: str, x, kernel: int, stride: int, kernels: str):
  """The pooling kinds of ``_KIND`` (see there)."""
  pad = kernel // 2
  if kind in ("max_zero_pad", "avg_zero_pad"):  # F.pad(x, [0, 1, 0, 1]), then pool, no padding
    x, pad = jnp.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0))), 0
  elif kind == "avg_count_pad":  # zeros padded in, then every window divides by k * k
    x, pad = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0))), 0
  if kind.startswith("max"):
    return ops_lib.max_pool(x, kernel, stride, pad, kernels)
  return ops_lib.avg_pool_exclude_pad(x, kernel, stride, pad, kernels)


def _fr(x, p, s, train, kernels):
  """The reference's FactorizedReduce (no ReLU): two 1x1 stride-2 convs, one shifted, concat, BN."""
  shifted = jnp.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)))[:, 1:, 1:, :]
  h = jnp.concatenate([_conv(x, p["conv_1"], 2, kernels=kernels),
                       _conv(shifted, p["conv_2"], 2, kernels=kernels)], axis=-1)
  return _bn(h, p, s, train)


def _relu_conv_bn(x, p, s, train, stride: int = 1, padding: int = 0, *, kernels: str):
  """ReLU, conv ``p['conv']``, BN: ``ReLUConvBN`` and NAO-V1's square ``Conv``."""
  return _bn(_conv(nn.relu(x), p["conv"], stride, padding, kernels=kernels), p, s, train)


def _apply_op(name: str, x, p, s, stride: int, train: bool, kernels: str):
  """Op ``name`` at ``stride``; ``p``/``s`` are its params/stats (unused for parameter-free ops)."""
  kind, k = _KIND[name]
  if kind == "sep":
    return _sep(x, p, s, k, stride, train, kernels)
  if kind == "dil":
    return _dil(x, p, s, k, stride, train, kernels)
  if kind == "conv":
    return _relu_conv_bn(x, p, s, train, stride, k // 2, kernels=kernels)
  if kind == "conv_fact":
    return _factorized_conv_bn(x, p, s, k, stride, train, kernels)
  if kind == "identity":
    return _fr(x, p, s, train, kernels) if stride == 2 else (x, s)
  if kind == "zero":
    return jnp.zeros_like(x[:, ::stride, ::stride, :]), s
  return _pool(kind, x, k, stride, kernels), s


def _has_params(name: str, stride: int) -> bool:
  kind = _KIND[name][0]
  return kind in ("sep", "dil", "conv", "conv_fact") or (kind == "identity" and stride == 2)


# ----------------------------------------------------------------------------------------------
# Variable specs (``stack`` = number of per-input-id copies; 0 = none).
# ----------------------------------------------------------------------------------------------

def _lead(n: int) -> tuple[int, ...]:
  return (n,) if n else ()


def _bn_leaves(c: int, stack: int = 0, stats_stack: int = 0, sfx: str = "") -> tuple:
  return ((f"scale{sfx}", _Leaf(_lead(stack) + (c,), "ones")),
          (f"bias{sfx}", _Leaf(_lead(stack) + (c,), "zeros")),
          (f"mean{sfx}", _Leaf(_lead(stats_stack) + (c,), "zeros", stats=True)),
          (f"var{sfx}", _Leaf(_lead(stats_stack) + (c,), "ones", stats=True)))


def _kernel(shape: tuple[int, ...], stack: int = 0) -> _Leaf:
  return _Leaf(_lead(stack) + shape, "kaiming", stack=int(bool(stack)))


def _op_spec(name: str, c: int, stack: int = 0) -> tuple:
  """Variables of op ``name`` (stride 2 for ``identity``); per-id copies when ``stack``.

  WSBN: the per-id copies share one running mean/var (``stats_stack=0``); the per-id
  FactorizedReduces of ``WSIdentity`` are separate modules with their own statistics.
  """
  kind, k = _KIND[name]
  if kind == "sep":
    return sum(((("dw" + sfx, _kernel((k, k, 1, c), stack)),
                 ("pw" + sfx, _kernel((1, 1, c, c), stack)))
                + _bn_leaves(c, stack, 0, sfx) for sfx in ("_1", "_2")), ())
  if kind == "dil":
    return (("dw", _kernel((k, k, 1, c), stack)), ("pw", _kernel((1, 1, c, c), stack))
            ) + _bn_leaves(c, stack, 0)
  if kind == "conv":
    return (("conv", _kernel((k, k, c, c), stack)),) + _bn_leaves(c, stack, 0)
  if kind == "conv_fact":
    return (("conv_1", _kernel((1, k, c, c), stack)),) + _bn_leaves(c, stack, 0, "_1") + (
        ("conv_2", _kernel((k, 1, c, c), stack)),) + _bn_leaves(c, stack, 0, "_2")
  return _fr_spec(c, c, stack)


def _fr_spec(c_in: int, c: int, stack: int = 0) -> tuple:
  return (("conv_1", _kernel((1, 1, c_in, c // 2), stack)),
          ("conv_2", _kernel((1, 1, c_in, c // 2), stack))) + _bn_leaves(c, stack, stack)


def _calibration(shape0, shape1, c: int) -> tuple[str | None, str | None]:
  """``MaybeCalibrateSize``: how to bring s0, s1 to ``c`` channels at s1's resolution."""
  k0 = "fr" if shape0[1] != shape1[1] else ("rcb" if shape0[-1] != c else None)
  return k0, ("rcb" if shape1[-1] != c else None)


def _calib_spec(kind: str, c_in: int, c: int) -> tuple:
  if kind == "fr":
    return _fr_spec(c_in, c)
  return (("conv", _kernel((1, 1, c_in, c))),) + _bn_leaves(c)


def _calib_apply(kind: str, x, p, s, train, kernels: str):
  return (_fr(nn.relu(x), p, s, train, kernels) if kind == "fr"
          else _relu_conv_bn(x, p, s, train, kernels=kernels))


def _drop_path_key(key, x, keep):
  """The reference's ``apply_drop_path``: ``x / keep * Bernoulli(keep)``, one draw per example."""
  mask = jax.random.bernoulli(key, keep, (x.shape[0], 1, 1, 1))
  return jnp.where(mask, x / keep, jnp.zeros((), x.dtype))


def _drop_path(module: nn.Module, x, keep):
  return _drop_path_key(module.make_rng("dropout"), x, keep)


def _layer_keep(layer_ratio, keep_prob):
  return 1.0 - layer_ratio * (1.0 - keep_prob)


def _stem_spec(c_stem: int) -> tuple:
  return (("conv", _kernel((3, 3, 3, c_stem))),) + _bn_leaves(c_stem)


def _classifier(module: nn.Module, x, num_classes: int, keep_prob: float, train: bool):
  """Global average pool -> dropout (keep ``keep_prob``) -> linear (PyTorch Linear init)."""
  x = jnp.mean(x, axis=(1, 2))
  if train and keep_prob < 1.0:
    x = nn.Dropout(1.0 - keep_prob, deterministic=False)(x, rng=module.make_rng("dropout"))
  c = x.shape[-1]
  p, _ = _declare((("classifier", (
      ("kernel", _kernel((c, num_classes))),
      ("bias", _Leaf((num_classes,), "uniform", bound=float(1.0 / np.sqrt(c)))))),))
  return x @ p["classifier"]["kernel"] + p["classifier"]["bias"].reshape(1, -1)


def _stem(x, c_stem: int, train: bool, kernels: str):
  p, s = _declare((("stem", _stem_spec(c_stem)),))
  y, new = _bn(_conv(x, p["stem"]["conv"], 1, 1, kernels=kernels), p["stem"], _read(s["stem"]),
               train)
  if train:
    _write(s["stem"], new)
  return y


# ----------------------------------------------------------------------------------------------
# The weight-sharing supernet.
# ----------------------------------------------------------------------------------------------

def input_slots(nodes: int) -> tuple[np.ndarray, np.ndarray]:
  """Where the per-id weight sets of the 2*nodes node inputs live in a supernet cell's stacks.

  Node input ``s = 2*i + t`` (node i, t = 0 for x, 1 for y) owns ``i + 2`` weight sets (one per
  possible input id) of every parametric op, at rows ``base[s] + id`` of the op's stacked
  leaves; the stride-2 ``identity`` (FactorizedReduce) has 2 sets per input, at rows
  ``2*s + id``. Returns ``(base, counts)``.
  """
  counts = np.repeat(np.arange(nodes) + 2, 2)
  return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int32), counts


def _ws_branches(get_x, idx, slot, fr_slot, ops: tuple[str, ...], params, stats, stride: int,
                 train: bool, kernels: str):
  """The ``lax.switch`` branches (one per op, at ``stride``) of one node input reading
  ``get_x()``, each op using its weights for this input and id (row ``slot`` of its stacks;
  ``fr_slot`` for the stride-2 FactorizedReduce). ``stats``: this input's statistics
  (``identity``: one row per id). A branch returns ``(y, new stats)``; only the chosen op's
  statistics change."""
  def pick(tree, i):
    return jax.tree.map(lambda a: jax.lax.dynamic_index_in_dim(a, i, 0, keepdims=False), tree)

  def branch(name):
    def run():
      x = get_x()
      if not _has_params(name, stride):
        return _apply_op(name, x, None, None, stride, train, kernels)[0], stats
      if _KIND[name][0] != "identity":  # WSBN: per-id weights, shared running statistics
        y, new = _apply_op(name, x, pick(params[name], slot), stats[name], stride, train,
                           kernels)
        return y, {**stats, name: new}
      y, new = _fr(x, pick(params[name], fr_slot), pick(stats[name], idx), train, kernels)
      new = jax.tree.map(lambda a, b: jax.lax.dynamic_update_index_in_dim(a, b, idx, 0),
                         stats[name], new)
      return y, {**stats, name: new}
    return run

  return [branch(name) for name in ops]


class SupernetCell(nn.Module):
  """One supernet cell as a scan body: ``((s0, s1), layer_ratio, cell_tokens, keep_prob) ->
  ((s1, out), None)``; ``cell_tokens`` is this cell type's ``4 * nodes`` tokens (traced).

  The 2*nodes node inputs run as one ``lax.scan`` over a buffer of node states (one compiled
  switch per cell); their weights are stacked per op under ``inputs`` (rows: ``input_slots``),
  their BatchNorm statistics with one row per node input (``identity``: per input and id).
  """
  ops: tuple[str, ...]
  channels: int
  nodes: int
  reduction: bool
  train: bool
  drop_path: bool
  unroll: bool = False
  kernels: str = "xla"

  def _spec(self, kinds, c_in) -> tuple:
    c, b, spec = self.channels, self.nodes, []
    for j, kind in enumerate(kinds):
      if kind:
        spec.append((f"calib_{j}", _calib_spec(kind, c_in[j], c)))
    slots = int(input_slots(b)[1].sum())
    inputs = []
    for name in self.ops:
      if _KIND[name][0] in ("sep", "dil"):
        leaves = _op_spec(name, c, slots)
        inputs.append((name, tuple((k, leaf if not leaf.stats else
                                    _Leaf((2 * b,) + leaf.shape, leaf.init, stats=True))
                                   for k, leaf in leaves)))
      elif _KIND[name][0] == "identity" and self.reduction:
        inputs.append((name, _op_spec(name, c, 4 * b)))
    if inputs:
      spec.append(("inputs", tuple(inputs)))
    if self.reduction:
      spec += [("fac_0", _fr_spec(c, c)), ("fac_1", _fr_spec(c, c))]
    spec.append(("combine", (("conv", _kernel((1, 1, c, c), b + 2)),) + _bn_leaves(c)))
    return tuple(spec)

  @nn.compact
  def __call__(self, carry, layer_ratio, cell_tokens, keep_prob):
    s0, s1 = carry
    kinds = _calibration(s0.shape, s1.shape, self.channels)
    p, s_vars = _declare(self._spec(kinds, (s0.shape[-1], s1.shape[-1])))
    hw = s1.shape[1:3] if not self.reduction else tuple(-(-d // 2) for d in s1.shape[1:3])
    if self.is_initializing():  # variables only: no need to compile the cell for init
      return (s1, jnp.zeros((s1.shape[0],) + hw + (self.channels,), s1.dtype)), None
    s = _read(s_vars)
    states = [s0, s1]
    for j, kind in enumerate(kinds):
      if kind:
        states[j], s[f"calib_{j}"] = _calib_apply(kind, states[j], p[f"calib_{j}"],
                                                  s[f"calib_{j}"], self.train, self.kernels)
    inputs = jnp.stack(states)
    ids = jnp.clip(cell_tokens[0::2] - 1, 0, self.nodes)
    buf, s_inputs = self._nodes(inputs, ids, cell_tokens[1::2] - (self.nodes + 2),
                                _layer_keep(layer_ratio, keep_prob), p.get("inputs", {}),
                                s.get("inputs", {}), hw)
    if s_inputs:
      s["inputs"] = s_inputs
    out = self._combine(ids, inputs, buf, p, s)
    if self.train:
      _write(s_vars, s)
    return (s1, out), None

  def _nodes(self, inputs, ids, ops, keep, params, stats, hw):
    """Runs the node inputs in order; returns the node buffer and the updated statistics."""
    b = self.nodes
    base, _ = input_slots(b)
    stats = {k: jax.tree.map(lambda a: a.reshape(2 * b, 2, -1), v) if k == "identity" else v
             for k, v in stats.items()}
    key = self.make_rng("dropout") if self.drop_path else None
    shape = (b,) + inputs.shape[1:2] + hw + inputs.shape[4:]
    buf = jnp.zeros(shape, inputs.dtype)
    if not self.reduction:
      buf = jnp.concatenate([inputs, buf])
    steps = jnp.arange(2 * b, dtype=jnp.int32)
    xs = (ids, ops, jnp.asarray(base), steps, stats)

    def body(buf, xs):
      idx, op, slot, step, st = xs
      branches = functools.partial(_ws_branches, idx=idx, slot=slot + idx,
                                   fr_slot=2 * step + idx, ops=self.ops, params=params,
                                   stats=st, train=self.train, kernels=self.kernels)
      if self.reduction:  # ops on cell inputs stride 2, on inner nodes 1: one flat switch
        on_input = lambda: jax.lax.dynamic_index_in_dim(  # noqa: E731
            inputs, jnp.minimum(idx, 1), 0, False)
        on_node = lambda: jax.lax.dynamic_index_in_dim(  # noqa: E731
            buf, jnp.maximum(idx - 2, 0), 0, False)
        n = len(self.ops)
        y, new = jax.lax.switch(
            jnp.clip(op, 0, n - 1) + n * (idx >= 2).astype(jnp.int32),
            branches(on_input, stride=2) + branches(on_node, stride=1))
      else:
        y, new = jax.lax.switch(op, branches(
            lambda: jax.lax.dynamic_index_in_dim(buf, idx, 0, False), stride=1))
      if key is not None:
        y = _drop_path_key(jax.random.fold_in(key, step), y, keep)
      dst = step // 2 + (0 if self.reduction else 2)
      node = jax.lax.dynamic_index_in_dim(buf, dst, 0, False) + y
      return jax.lax.dynamic_update_index_in_dim(buf, node, dst, 0), new

    buf, new = jax.lax.scan(body, buf, xs, unroll=2 * b if self.unroll else 1)
    new = {k: jax.tree.map(lambda a: a.reshape(4 * b, -1), v) if k == "identity" else v
           for k, v in new.items()}
    return buf, new

  def _combine(self, ids, inputs, buf, p, s):
    """``final_combine_conv`` on the never-used states, as a masked sum over all states."""
    b, c = self.nodes, self.channels
    used = jnp.zeros((b + 2,), jnp.int32).at[ids].add(1)
    mask = (used == 0).astype(buf.dtype)
    if self.reduction:
      facs = []
      for j in (0, 1):
        name = f"fac_{j}"
        zero = (jnp.zeros(buf.shape[1:], buf.dtype), s[name])
        facs.append(jax.lax.cond(
            used[j] == 0,
            lambda j=j, name=name: _fr(inputs[j], p[name], s[name], self.train, self.kernels),
            lambda zero=zero: zero))
        s[name] = facs[-1][1]
      states = jnp.concatenate([jnp.stack([f[0] for f in facs]), buf])
    else:
      states = buf
    w = p["combine"]["conv"].reshape(b + 2, c, c) * mask.reshape(-1, 1, 1)
    h = jnp.einsum("nbhwc,ncd->bhwd", nn.relu(states), w)
    h, s["combine"] = _bn(h, p["combine"], s["combine"], self.train)
    return h


def check_supernet_ops(ops: Sequence[str]) -> None:
  """Raises unless the weight-sharing supernet implements ``ops``: distinct ops of the kinds in
  ``SUPERNET_KINDS`` (NAO-V1's 'v1' set builds stand-alone networks only)."""
  unsupported = sorted({op for op in ops if _KIND[op][0] not in SUPERNET_KINDS})
  repeated = sorted({op for op in ops if list(ops).count(op) > 1})
  problems = ([f"no weight-shared version of {unsupported}"] if unsupported else []) + (
      [f"{repeated} appear twice"] if repeated else [])
  if problems:
    raise ValueError(f"The NAO weight-sharing supernet cannot search the op set {tuple(ops)}: "
                     f"{'; '.join(problems)}. Search the 'small' or 'middle' set; NAO-V1's 'v1' "
                     "numbering (NAONet-A) is for stand-alone networks (NAOSpace.network, "
                     "--config.genotype).")


class NAOSupernet(nn.Module):
  """NAO-V2's weight-sharing supernet (``NASWSNetworkCIFAR``); see the module docstring.

  ``__call__(x, tokens, *, train, drop_path_keep_prob=1.0) -> logits``: ``tokens`` is a (traced)
  ``int32[4 * 2 * nodes]`` token sequence; invalid tokens are clipped, not rejected.
  ``drop_path_keep_prob`` (may be traced) is the step-ramped keep prob (``step_keep_prob``);
  drop-path draws from the ``'dropout'`` RNG and is skipped when ``train`` is False or the keep
  prob is the Python literal 1.0. The identical normal cells of a stage run under ``nn.scan``
  (``stage_{s}``, weights stacked on a leading axis); cell 0 and the reduction cells are separate
  (``cell_{k}``); the first scanned cell's s0 calibration is ``stage_{s}_calib_0``.
  ``remat=True`` wraps every cell in ``nn.remat`` (recompute its activations in the backward pass:
  less memory, about one more forward of compute; the same variables).
  """
  ops: tuple[str, ...] = NAO_SMALL_OPS
  channels: int = 20
  layers: int = 3
  num_classes: int = 10
  nodes: int = 5
  stem_multiplier: int = 3
  keep_prob: float = 1.0  # dropout before the classifier (keep probability)
  unroll: bool = False
  remat: bool = False  # nn.remat each cell: its activations are recomputed in the backward pass
  kernels: str = "xla"  # 'xla' | 'shifted' (module docstring)

  def __post_init__(self):
    check_supernet_ops(self.ops)  # at construction: before any tracing
    super().__post_init__()

  @nn.compact
  def __call__(self, x, tokens, *, train: bool, drop_path_keep_prob: Any = 1.0):
    b, n = self.nodes, self.layers
    if tokens.shape != (8 * b,):
      raise ValueError(f"NAOSupernet expects {8 * b} tokens, got shape {tokens.shape}.")
    tokens = jnp.asarray(tokens, jnp.int32)
    drop = train and not (isinstance(drop_path_keep_prob, (int, float))
                          and drop_path_keep_prob == 1.0)
    keep = jnp.asarray(drop_path_keep_prob, jnp.float32)
    total = 3 * n + 2
    ratio = lambda k: jnp.asarray((k + 1) / total, jnp.float32)  # noqa: E731
    cell_cls = nn.remat(SupernetCell) if self.remat else SupernetCell
    cell = lambda c, red, **kw: cell_cls(self.ops, c, b, red, train, drop,  # noqa: E731
                                         self.unroll, self.kernels, **kw)
    s0 = s1 = _stem(x, self.stem_multiplier * self.channels, train, self.kernels)
    c = self.channels
    (s0, s1), _ = cell(c, False, name="cell_0")((s0, s1), ratio(0), tokens[:4 * b], keep)
    s0, s1 = self._stage(0, s0, s1, 1, n - 1, c, tokens[:4 * b], keep, train, drop)
    for stage in (1, 2):
      c, k = 2 * c, stage * (n + 1) - 1
      (s0, s1), _ = cell(c, True, name=f"cell_{k}")((s0, s1), ratio(k), tokens[4 * b:], keep)
      s0, s1 = self._stage(stage, s0, s1, k + 1, n, c, tokens[:4 * b], keep, train, drop)
    return _classifier(self, s1, self.num_classes, self.keep_prob, train)

  def _stage(self, stage, s0, s1, first, count, c, cell_tokens, keep, train, drop):
    if count == 0:
      return s0, s1
    kinds = _calibration(s0.shape, s1.shape, c)
    assert kinds[1] is None, kinds
    if kinds[0]:
      name = f"stage_{stage}_calib_0"
      p, s_vars = _declare(((name, _calib_spec(kinds[0], s0.shape[-1], c)),))
      s0, new = _calib_apply(kinds[0], s0, p[name], _read(s_vars[name]), train, self.kernels)
      if train:
        _write(s_vars[name], new)
    # remat before scan; inside a scan CSE cannot merge the recomputation with the forward.
    cell = nn.remat(SupernetCell, prevent_cse=False) if self.remat else SupernetCell
    body = nn.scan(cell, variable_axes={"params": 0, "batch_stats": 0},
                   split_rngs={"params": True, "dropout": True},
                   in_axes=(0, nn.broadcast, nn.broadcast), length=count,
                   unroll=count if self.unroll else 1)
    total = 3 * self.layers + 2
    ratios = jnp.asarray([(first + j + 1) / total for j in range(count)], jnp.float32)
    (s0, s1), _ = body(self.ops, c, self.nodes, False, train, drop, self.unroll, self.kernels,
                       name=f"stage_{stage}")(
        (s0, s1), ratios, cell_tokens, keep)
    return s0, s1


# ----------------------------------------------------------------------------------------------
# Stand-alone networks.
# ----------------------------------------------------------------------------------------------

def _concat_ids(cell_arch: Sequence[int], nodes: int) -> tuple[int, ...]:
  used = {cell_arch[j] for j in range(0, 4 * nodes, 2)}
  return tuple(j for j in range(nodes + 2) if j not in used)


class NetworkCell(nn.Module):
  """One discrete cell (``model.Cell``; ``combine='conv'``: the supernet cell's sub-network)."""
  arch: tuple[int, ...]
  ops: tuple[str, ...]
  channels: int
  reduction: bool
  combine: str
  train: bool
  drop_path: bool
  kernels: str = "xla"

  def _spec(self, kinds, c_in, concat) -> tuple:
    c, spec = self.channels, []
    for j, kind in enumerate(kinds):
      if kind:
        spec.append((f"calib_{j}", _calib_spec(kind, c_in[j], c)))
    for i in range(len(self.arch) // 4):
      side = []
      for t, name in enumerate(("x", "y")):
        idx, op = self.arch[4 * i + 2 * t], self.ops[self.arch[4 * i + 2 * t + 1]]
        if _has_params(op, 2 if self.reduction and idx < 2 else 1):
          side.append((name, ((op, _op_spec(op, c)),)))
      if side:
        spec.append((f"node_{i}", tuple(side)))
    spec += [(f"fac_{j}", _fr_spec(c, c)) for j in concat if self.reduction and j < 2]
    if self.combine == "conv":
      spec.append(("combine", (("conv", _kernel((1, 1, c, c), len(concat))),) + _bn_leaves(c)))
    return tuple(spec)

  @nn.compact
  def __call__(self, s0, s1, layer_ratio, keep_prob):
    nodes = len(self.arch) // 4
    concat = _concat_ids(self.arch, nodes)
    kinds = _calibration(s0.shape, s1.shape, self.channels)
    p, s_vars = _declare(self._spec(kinds, (s0.shape[-1], s1.shape[-1]), concat))
    s = _read(s_vars)
    states = [s0, s1]
    for j, kind in enumerate(kinds):
      if kind:
        states[j], s[f"calib_{j}"] = _calib_apply(kind, states[j], p[f"calib_{j}"],
                                                  s[f"calib_{j}"], self.train, self.kernels)
    keep = _layer_keep(layer_ratio, keep_prob)
    for i in range(nodes):
      node = None
      for t, side in enumerate(("x", "y")):
        idx, op = self.arch[4 * i + 2 * t], self.ops[self.arch[4 * i + 2 * t + 1]]
        stride = 2 if self.reduction and idx < 2 else 1
        grp = p.get(f"node_{i}", {}).get(side, {})
        if op in grp:
          y, s[f"node_{i}"][side][op] = _apply_op(op, states[idx], grp[op],
                                                  s[f"node_{i}"][side][op], stride, self.train,
                                                  self.kernels)
        else:
          y = _apply_op(op, states[idx], None, None, stride, self.train, self.kernels)[0]
        y = _drop_path(self, y, keep) if self.drop_path else y
        node = y if node is None else node + y
      states.append(node)
    for j in concat:
      if self.reduction and j < 2:
        states[j], s[f"fac_{j}"] = _fr(states[j], p[f"fac_{j}"], s[f"fac_{j}"], self.train,
                                       self.kernels)
    out = jnp.concatenate([states[j] for j in concat], axis=-1)
    if self.combine == "conv":
      c = self.channels
      w = p["combine"]["conv"].reshape(len(concat) * c, c).reshape(1, 1, len(concat) * c, c)
      out, s["combine"] = _bn(_conv(nn.relu(out), w, kernels=self.kernels), p["combine"],
                              s["combine"], self.train)
    if self.train:
      _write(s_vars, s)
    return out


class AuxHead(nn.Module):
  """``AuxHeadCIFAR``: ReLU, AvgPool 5/3, conv1x1 128, BN, ReLU, conv2x2 768, BN, ReLU, linear."""
  num_classes: int
  train: bool
  kernels: str = "xla"

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    p, s_vars = _declare((("conv_1", (("conv", _kernel((1, 1, c, 128))),) + _bn_leaves(128)),
                          ("conv_2", (("conv", _kernel((2, 2, 128, 768))),) + _bn_leaves(768))))
    s = _read(s_vars)
    x = ops_lib.avg_pool_exclude_pad(nn.relu(x), 5, 3, 0, self.kernels)
    x, s["conv_1"] = _relu_conv_bn(x, p["conv_1"], s["conv_1"], self.train, kernels=self.kernels)
    x, s["conv_2"] = _relu_conv_bn(x, p["conv_2"], s["conv_2"], self.train, kernels=self.kernels)
    if self.train:
      _write(s_vars, s)
    return _classifier(self, nn.relu(x), self.num_classes, 1.0, False)


class NAONetwork(nn.Module):
  """The discrete network of one arch (``model.NASNetworkCIFAR``); see the module docstring.

  ``__call__(x, *, train, drop_path_keep_prob=1.0) -> (logits, aux_logits)``; ``aux_logits`` is
  None unless ``train`` and ``use_aux_head`` (head after cell 2N+1, created at init).
  """
  conv_arch: tuple[int, ...]
  reduc_arch: tuple[int, ...]
  ops: tuple[str, ...] = NAO_SMALL_OPS
  channels: int = 20
  layers: int = 3
  num_classes: int = 10
  stem_multiplier: int = 3
  combine: str = "concat"
  use_aux_head: bool = False
  keep_prob: float = 1.0
  kernels: str = "xla"  # 'xla' | 'shifted' (module docstring)

  @nn.compact
  def __call__(self, x, *, train: bool, drop_path_keep_prob: Any = 1.0):
    drop = train and not (isinstance(drop_path_keep_prob, (int, float))
                          and drop_path_keep_prob == 1.0)
    keep = jnp.asarray(drop_path_keep_prob, jnp.float32)
    n, c = self.layers, self.channels
    total, aux_logits = 3 * n + 2, None
    s0 = s1 = _stem(x, self.stem_multiplier * c, train, self.kernels)
    for k in range(total):
      reduction = k in (n, 2 * n + 1)
      c = 2 * c if reduction else c
      cell = NetworkCell(self.reduc_arch if reduction else self.conv_arch, self.ops, c,
                         reduction, self.combine, train, drop, self.kernels, name=f"cell_{k}")
      s0, s1 = s1, cell(s0, s1, jnp.asarray((k + 1) / total, jnp.float32), keep)
      if self.use_aux_head and k == 2 * n + 1 and (train or self.is_initializing()):
        out = AuxHead(self.num_classes, train, self.kernels, name=AUX_HEAD)(s1)
        aux_logits = out if train else None
    return _classifier(self, s1, self.num_classes, self.keep_prob, train), aux_logits


# ----------------------------------------------------------------------------------------------
# Supernet -> network weights, parameter counting.
# ----------------------------------------------------------------------------------------------

def _cell_sources(variables: Mapping[str, Any], layers: int):
  """``(cell_index, cell_tree, pre_calib_tree | None)`` of every cell of a supernet collection."""
  out = [(0, variables.get("cell_0", {}), None)]
  for stage in range(3):
    if stage:
      k = stage * (layers + 1) - 1
      out.append((k, variables.get(f"cell_{k}", {}), None))
    first = stage * (layers + 1) + (stage == 0)
    for j in range(layers - (stage == 0)):
      tree = jax.tree.map(lambda a, j=j: a[j], variables.get(f"stage_{stage}", {}))
      out.append((first + j, tree, variables.get(f"stage_{stage}_calib_0") if j == 0 else None))
  return out


def _slice_cell(tree, pre, arch, ops, reduction, stats: bool):
  nodes = len(arch) // 4
  concat = _concat_ids(arch, nodes)
  base, _ = input_slots(nodes)
  out = {k: v for k, v in tree.items() if k.startswith("calib_")}
  if pre is not None:
    out["calib_0"] = pre
  for i in range(nodes):
    node = {}
    for t, side in enumerate(("x", "y")):
      idx, op = arch[4 * i + 2 * t], ops[arch[4 * i + 2 * t + 1]]
      if not _has_params(op, 2 if reduction and idx < 2 else 1):
        continue
      step = 2 * i + t
      if _KIND[op][0] == "identity":
        row = 2 * step + idx
      else:  # WSBN statistics: one row per node input
        row = step if stats else int(base[step]) + idx
      node[side] = {op: jax.tree.map(lambda a, row=row: a[row], tree["inputs"][op])}
    if node:
      out[f"node_{i}"] = node
  for j in concat:
    if reduction and j < 2:
      out[f"fac_{j}"] = tree[f"fac_{j}"]
  comb = dict(tree["combine"])
  if not stats:
    comb["conv"] = comb["conv"][np.asarray(concat)]
  out["combine"] = comb
  return out


def supernet_to_network_variables(supernet_variables: Mapping[str, Any], tokens: Any, *,
                                  ops: Sequence[str] = NAO_SMALL_OPS) -> dict[str, Any]:
  """The variables of ``network(tokens, combine='conv')`` sliced out of the supernet's.

  Each chosen op takes its weight set for the chosen input id; shared WSBN running statistics
  are copied; the combine conv keeps the blocks of the concatenated states. The result applies
  to the stand-alone sub-network and gives the supernet's output for ``tokens``.

  Args:
    supernet_variables: ``{'params': ..., 'batch_stats': ...}`` of a ``NAOSupernet``.
    tokens: the architecture's token sequence (``int[8 * nodes]``, Python/NumPy ints).
    ops: the supernet's op set.
  """
  first = next(iter(supernet_variables.values()))
  layers = max(int(k.split("_")[1]) for k in first if k.startswith("cell_")) // 2
  nodes = len(tokens) // 8
  conv, reduc = _tokens_to_arch(np.asarray(tokens), nodes)
  result = {}
  for col, tree in supernet_variables.items():
    stats = col == "batch_stats"
    new = {k: v for k, v in tree.items() if k in ("stem", "classifier")}
    for k, cell, pre in _cell_sources(tree, layers):
      reduction = k in (layers, 2 * layers + 1)
      new[f"cell_{k}"] = _slice_cell(cell, pre, reduc if reduction else conv, tuple(ops),
                                     reduction, stats)
    result[col] = new
  return result


def _op_param_count(name: str, c: int, stride: int) -> int:
  kind, k = _KIND[name]
  if kind == "sep":
    return 2 * (k * k * c + c * c + 2 * c)
  if kind == "dil":
    return k * k * c + c * c + 2 * c
  if kind == "conv":
    return k * k * c * c + 2 * c
  if kind == "conv_fact":
    return 2 * (k * c * c + 2 * c)
  return c * c + 2 * c if kind == "identity" and stride == 2 else 0


def count_network_params(conv_arch: Sequence[int], reduc_arch: Sequence[int],
                         ops: Sequence[str], *, channels: int = 20, layers: int = 3,
                         num_classes: int = 10, stem_multiplier: int = 3) -> int:
  """Parameters of ``NASNetworkCIFAR`` (``combine='concat'``, no aux head), computed analytically
  by tracking the cells' output shapes as the reference does (``count_parameters_in_MB`` * 1e6)."""
  c_stem, c = stem_multiplier * channels, channels
  total = 27 * c_stem + 2 * c_stem
  prev = [(32, c_stem), (32, c_stem)]
  for k in range(3 * layers + 2):
    reduction = k in (layers, 2 * layers + 1)
    c = 2 * c if reduction else c
    arch = reduc_arch if reduction else conv_arch
    (h0, c0), (h1, c1) = prev
    if h0 != h1 or c0 != c:  # FactorizedReduce and ReLU-conv1x1-BN both have c0*c + 2c
      total += c0 * c + 2 * c
    total += c1 * c + 2 * c if c1 != c else 0
    for j in range(0, len(arch), 2):
      total += _op_param_count(ops[arch[j + 1]], c, 2 if reduction and arch[j] < 2 else 1)
    concat = _concat_ids(arch, len(arch) // 4)
    if reduction:
      total += sum(c * c + 2 * c for j in concat if j < 2)
    prev = [prev[1], (h1 // 2 if reduction else h1, c * len(concat))]
  return total + prev[1][1] * num_classes + num_classes


def _tokens_to_arch(tokens: np.ndarray, nodes: int):
  raw = np.asarray(tokens, np.int64).copy()
  raw[0::2] -= 1
  raw[1::2] -= nodes + 2
  return [int(v) for v in raw[:4 * nodes]], [int(v) for v in raw[4 * nodes:]]
