r"""Net2Wider (Chen, Goodfellow & Shlens, "Net2Net", ICLR 2016) as DrNAS widens its partial-channel
supernet between stages (Chen et al., ICLR 2021; ``xiangning-chen/DrNAS`` @ f2caa4d, ``net2wider.py``
and the ops' ``wider`` methods in ``DARTS-space/operations.py``).

When PC-DARTS' channel proportion drops from ``K_1`` to ``K_2`` every candidate op of every edge
grows from ``C / K_1`` to ``C / K_2`` channels. Each grown channel axis of size ``n`` becomes
``n' > n``: the first ``n`` entries are kept and entry ``n + j`` is a copy of entry ``idx[j]``,

.. math::
   W'_{\ldots, n + j} = W_{\ldots, \mathrm{idx}_j},\qquad \mathrm{idx}_j \sim U\{0, \ldots, n - 1\},

**without** Net2Net's ``1 / count`` rescaling of the next layer's input weights (as the reference;
the widened op is not function-preserving, and neither is the changed channel split). Which axes
share one ``idx`` is the reference's, per module of ``jaxnas.spaces.ops`` (module names as there):

* ``DilConv`` (``depthwise``, ``pointwise``, ``bn``): the depthwise kernel's output channels draw
  ``d``; the pointwise kernel's input channels reuse ``d``, its outputs draw ``p``; the BN uses
  ``p`` (D:operations.py ``DilConv.wider``). ``SepConv`` is two such blocks, each its own draws.
* ``ReLUConvBN`` (``conv``, ``bn``): input channels draw their own index, outputs draw ``c``, the
  BN uses ``c``.
* ``FactorizedReduce`` (``conv_1``, ``conv_2``, ``bn``): each conv draws its input and output
  indices ``o_1``, ``o_2``; the BN's new entries are ``concat(o_1, o_2)`` appended at its end (the
  reference's ``BNWider(bn, C, index=torch.cat([index1, index2]))``: its new BN channels do not
  line up with the convs' new outputs, which land in the middle of the concatenation; kept).
* a BN alone (the pools' ``BatchNorm(affine=False)``): its own draw.

BN scale, bias and running statistics, and every optimizer state that mirrors the parameters
(SGD's momentum, D: ``configure_optimizer``) are widened with their parameter's indices. Edges
stacked on leading axes (``nn.scan``) each draw their own indices, as the reference's separate
modules. The draw of one index is a pure function of the key and the module path, so a widening is
reproducible (a resumed run widens exactly as an uninterrupted one).
"""
from __future__ import annotations

import zlib
from typing import Any, Mapping

import jax
import jax.numpy as jnp

# Variable collections a leaf path may start with (stripped: the rules read module names only).
_COLLECTIONS = ("params", "batch_stats")
_BN_LEAVES = ("scale", "bias", "mean", "var")


def dict_names(path: tuple) -> tuple[str, ...]:
  """The dict keys of a pytree path (Flax variables are nested dicts; optimizer states wrap them
  in tuples and named fields, whose keys are skipped), without a leading collection name."""
  names = tuple(str(k.key) for k in path if isinstance(k, jax.tree_util.DictKey))
  return names[1:] if names and names[0] in _COLLECTIONS else names


def module_children(tree: Any) -> dict[tuple[str, ...], frozenset[str]]:
  """``{module path: names of its child modules}`` of a variables tree (nested dicts)."""
  children: dict[tuple[str, ...], set[str]] = {}
  for path, _ in jax.tree_util.tree_leaves_with_path(tree):
    names = dict_names(path)[:-1]  # the module path of the leaf
    for depth in range(len(names)):
      children.setdefault(names[:depth], set()).add(names[depth])
  return {k: frozenset(v) for k, v in children.items()}


def channel_source(module_path: tuple[str, ...], leaf: str, axis: int,
                   siblings: frozenset[str]) -> tuple[Any, ...] | None:
  """Which draw the grown ``axis`` (-1: outputs, -2: a kernel's inputs) of ``leaf`` copies with
  (the reference's pairing, module docstring): ``('draw', parent, role)``, ``('concat', a, b)``
  for FactorizedReduce's BN, or None where no rule applies."""
  if not module_path:
    return None
  parent, module = module_path[:-1], module_path[-1]
  if leaf == "kernel":
    if module == "depthwise" and axis == -1:
      return ("draw", parent, "depthwise")
    if module == "pointwise":
      return ("draw", parent, "depthwise" if axis == -2 else "pointwise")
    if module in ("conv", "conv_1", "conv_2"):
      return ("draw", parent, module + (":in" if axis == -2 else ""))
    return None
  if leaf in _BN_LEAVES and module == "bn" and axis == -1:
    if "pointwise" in siblings:
      return ("draw", parent, "pointwise")
    if "conv" in siblings:
      return ("draw", parent, "conv")
    if {"conv_1", "conv_2"} <= siblings:
      return ("concat", ("draw", parent, "conv_1"), ("draw", parent, "conv_2"))
    return ("draw", parent, "bn")
  return None


def draw_index(key: jax.Array, source: tuple[Any, ...], lead: tuple[int, ...], old: int,
               added: int) -> jax.Array:
  """The copied entries ``idx`` (shape ``lead + (added,)``, values in ``[0, old)``) of ``source``:
  a pure function of ``key`` and the source's module path and role."""
  if source[0] == "concat":
    half_old, half_added = old // 2, added // 2
    return jnp.concatenate([draw_index(key, source[1], lead, half_old, half_added),
                            draw_index(key, source[2], lead, half_old, half_added)], axis=-1)
  tag = zlib.crc32(repr(source[1:]).encode())
  return jax.random.randint(jax.random.fold_in(key, tag), lead + (added,), 0, old)


def widen_axis(x: jax.Array, axis: int, index: jax.Array) -> jax.Array:
  """``concat([x, x[..., index, ...]], axis)`` with ``index`` of shape ``lead + (added,)``: every
  position of the leading axes copies its own entries."""
  axis = axis % x.ndim
  lead = index.shape[:-1]
  shape = lead + tuple(index.shape[-1] if d == axis else 1 for d in range(len(lead), x.ndim))
  gather = jnp.broadcast_to(index.reshape(shape),
                            x.shape[:axis] + (index.shape[-1],) + x.shape[axis + 1:])
  return jnp.concatenate([x, jnp.take_along_axis(x, gather, axis=axis)], axis=axis)


def widen_leaf(x: jax.Array, target: Any, path: tuple, key: jax.Array,
               children: Mapping[tuple[str, ...], frozenset[str]]) -> jax.Array:
  """``x`` grown to ``target.shape`` along its changed channel axes (module docstring); an
  unchanged leaf is returned as is."""
  if tuple(x.shape) == tuple(target.shape):
    return x
  names = dict_names(path)
  where = "/".join(names) or jax.tree_util.keystr(path)
  if len(names) < 2 or x.ndim != len(target.shape):
    raise ValueError(f"Net2Wider cannot map {where}: {tuple(x.shape)} -> {tuple(target.shape)}.")
  module_path, leaf = names[:-1], names[-1]
  base = 4 if leaf == "kernel" else 1
  lead = tuple(x.shape[:x.ndim - base])
  siblings = children.get(module_path[:-1], frozenset())
  grown = [axis for axis in range(-x.ndim, 0) if x.shape[axis] != target.shape[axis]]
  for axis in grown:
    old, new = x.shape[axis], target.shape[axis]
    source = channel_source(module_path, leaf, axis, siblings)
    if new < old or source is None or x.ndim < base:
      raise ValueError(f"Net2Wider has no rule to grow axis {axis} of {where} from {old} to "
                       f"{new} channels (it widens the ops of jaxnas.spaces.ops: DilConv, "
                       "SepConv, ReLUConvBN, FactorizedReduce, pools with BN).")
    x = widen_axis(x, axis, draw_index(key, source, lead, old, new - old))
  return x.astype(target.dtype)


def widen(tree: Any, target: Any, key: jax.Array) -> Any:
  """``tree`` (any pytree of Flax variables and the optimizer states that mirror them, e.g. a whole
  ``SearchState``) mapped onto ``target``'s shapes (a tree of the same structure, arrays or
  ``jax.ShapeDtypeStruct``): every leaf whose shape changed is widened by its module's rule, the
  others are kept. Which module a leaf belongs to is read from the dict keys of its path (a
  leading ``params`` / ``batch_stats`` dropped; attribute and sequence keys -- a state's fields, an
  optimizer chain -- are not part of it), so the parameters, the BN statistics and SGD's momentum
  of one module share their indices."""
  children = module_children(tree)
  return jax.tree_util.tree_map_with_path(
      lambda path, x, t: widen_leaf(x, t, path, key, children), tree, target)

