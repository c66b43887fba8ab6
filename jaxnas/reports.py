"""Reports on networks and searches: parameter counts, multiply-adds, and pictures.

* ``num_params(weights, auxiliary=False)``: scalars in a weights pytree, without the auxiliary
  head (as quark0/darts' ``count_parameters_in_MB``, which skips names containing "auxiliary").
  BatchNorm running statistics are not weights (they live in ``model_state``), BN scale and bias
  are, as in PyTorch's ``named_parameters``.
* ``count_macs(module, image_shape)``: multiply-accumulates of one inference forward pass of one
  image, counted analytically from every convolution and dense layer's shapes (pools, BN,
  activations and additions are not counted, the convention of the DARTS mobile-setting 600M
  limit). Uses ``jax.eval_shape``: nothing is compiled or run.
* ``plot_genotype(genotype, path)``: the cells of a DARTS or NB201 genotype as graphs (PNG).
* ``plot_mixing_history(workdir, path)``: a search's mixing weights (alpha after the
  parametrization) over time, one heatmap per edge (operations x logged steps), read back from the
  run's TensorBoard events.

The pictures need matplotlib (``requirements.txt``); it is imported only when drawing.
"""
from __future__ import annotations

import collections
import glob
import math
import os
import struct
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.backends import cpu_kernels
from jaxnas.spaces.darts_network import AUX_HEAD

MOBILE_MACS_LIMIT = 600_000_000  # the DARTS/NASNet mobile setting: < 600M multiply-adds at 224x224


def num_params(weights: Mapping[str, Any], auxiliary: bool = False) -> int:
  """Number of scalars in ``weights``; the auxiliary head only if ``auxiliary``."""
  if not auxiliary:
    weights = {k: v for k, v in weights.items() if k != AUX_HEAD}
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(weights))


def abstract_weights(module: nn.Module, image_shape: tuple[int, int, int]) -> Any:
  """The ``params`` of ``module`` as ShapeDtypeStructs (``jax.eval_shape``: no compilation)."""
  x = jnp.zeros((1,) + tuple(image_shape), jnp.float32)
  variables = jax.eval_shape(lambda: module.init(jax.random.key(0), x, train=False))
  return variables["params"]


def _layer_macs(module: nn.Module, inputs: Any, output: Any) -> int:
  if isinstance(module, nn.Conv):
    kernel = int(np.prod(module.kernel_size))
    per_output = kernel * inputs.shape[-1] // module.feature_group_count
    return int(np.prod(output.shape[1:])) * per_output
  if isinstance(module, nn.Dense):
    return int(inputs.shape[-1]) * int(output.shape[-1])
  return 0


def _trace_macs(module: nn.Module, image_shape: tuple[int, int, int]
                ) -> tuple[Any, dict[str, int]]:
  """Abstract ``params`` and per-layer MACs of the eval-mode forward, from one ``eval_shape``."""
  x = jnp.zeros((1,) + tuple(image_shape), jnp.float32)
  layers: dict[str, int] = collections.OrderedDict()

  def interceptor(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    if context.method_name == "__call__" and isinstance(context.module, (nn.Conv, nn.Dense)):
      path = "/".join(str(p) for p in context.module.scope.path)
      if AUX_HEAD not in path.split("/"):
        layers[path] = _layer_macs(context.module, args[0], out)
    return out

  def forward():
    variables = module.init(jax.random.key(0), x, train=False)
    with nn.intercept_methods(interceptor):  # count the apply pass only
      module.apply(variables, x, train=False)
    return variables["params"]

  params = jax.eval_shape(forward)
  return params, dict(layers)


def count_macs(module: nn.Module, image_shape: tuple[int, int, int],
               by_layer: bool = False) -> int | tuple[int, dict[str, int]]:
  """Multiply-accumulates of one inference forward pass on one ``image_shape`` (H, W, C) image.

  Counts every ``nn.Conv`` (``H_out W_out C_out k_h k_w C_in / groups``) and ``nn.Dense``
  (``in x out``) call of the eval-mode forward; the auxiliary head (training only) is excluded.
  With ``by_layer`` also returns ``{module path: MACs}``.
  """
  _, layers = _trace_macs(module, image_shape)
  total = sum(layers.values())
  return (total, layers) if by_layer else total


# ------------------------------------------------------------------------------------ pictures


def pyplot():
  """``matplotlib.pyplot`` on the Agg backend; ImportError with the install hint if missing."""
  try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
  except ImportError as e:
    raise ImportError("Plots need matplotlib: pip install matplotlib (see requirements.txt).") from e
  return plt


def _draw_graph(ax, positions: dict[str, tuple[float, float]],
                edges: list[tuple[str, str, str, float]], title: str) -> None:
  """Nodes as labelled circles; edges ``(src, dst, op, rad)`` as arrows (``rad``: the arc's bend,
  as matplotlib's ``arc3``) labelled with their operation at the middle of the arc."""
  extent = list(positions.values())
  for src, dst, label, rad in edges:
    (x0, y0), (x1, y1) = positions[src], positions[dst]
    ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                arrowprops=dict(arrowstyle="-|>", color="0.4", shrinkA=13, shrinkB=13,
                                connectionstyle=f"arc3,rad={rad}"))
    if label:  # the midpoint of arc3's quadratic Bezier curve
      t = 0.5 if rad else 0.72
      bx = (x0 + x1) / 2 + rad * (y1 - y0)
      by = (y0 + y1) / 2 - rad * (x1 - x0)
      mx = (1 - t) ** 2 * x0 + 2 * t * (1 - t) * bx + t ** 2 * x1
      my = (1 - t) ** 2 * y0 + 2 * t * (1 - t) * by + t ** 2 * y1
      extent.append((mx, my))
      ax.text(mx, my, label, fontsize=7, ha="center", va="center",
              bbox=dict(boxstyle="round,pad=0.15", fc="#fff2cc", ec="0.6", lw=0.5))
  for name, (x, y) in positions.items():
    ax.text(x, y, name, ha="center", va="center", fontsize=8,
            bbox=dict(boxstyle="circle,pad=0.3", fc="#cfe2f3", ec="0.2"))
  xs, ys = zip(*extent)
  ax.set_xlim(min(xs) - 0.8, max(xs) + 0.8)
  ax.set_ylim(min(ys) - 0.8, max(ys) + 0.8)
  ax.set_aspect("equal")
  ax.set_title(title)
  ax.axis("off")


def _darts_cell_graph(genes, concat):
  """Layout: inputs on the left (above/below), intermediate nodes on a line, output at the end;
  edges between intermediate nodes arc above the line, edges into the output arc below it."""
  steps = len(genes) // 2
  names = ["c_{k-2}", "c_{k-1}"] + [str(i) for i in range(steps)]
  positions = {"c_{k-2}": (0.0, -2.5), "c_{k-1}": (0.0, 2.5)}
  for i in range(steps):
    positions[str(i)] = (2.0 + 2.0 * i, 0.0)
  positions["c_{k}"] = (2.0 + 2.0 * steps, 0.0)
  edges = [(names[j], str(g // 2), op, 0.0 if j < 2 else -0.2 - 0.08 * (g // 2 + 2 - j))
           for g, (op, j) in enumerate(genes)]
  edges += [(names[i], "c_{k}", "", 0.0 if i == len(names) - 1 else 0.3) for i in concat]
  return positions, edges


def plot_genotype(genotype: Any, path: str) -> str:
  """Draws the genotype's cells (DARTS: normal and reduction; NB201: the cell) into ``path``."""
  plt = pyplot()
  if hasattr(genotype, "normal"):
    fig, axes = plt.subplots(2, 1, figsize=(10, 9))
    for ax, cell in zip(axes, ("normal", "reduce")):
      positions, edges = _darts_cell_graph(getattr(genotype, cell),
                                           getattr(genotype, cell + "_concat"))
      _draw_graph(ax, positions, edges, f"{cell} cell")
  else:
    fig, ax = plt.subplots(figsize=(9, 4))
    positions = {str(j): (2.0 * j, 0.0) for j in range(4)}
    edges = [(str(i), str(j), op, 0.0 if j == i + 1 else -0.2 - 0.05 * (j - i))
             for j, node in enumerate(genotype.nodes, start=1) for op, i in node]
    _draw_graph(ax, positions, edges, "NB201 cell (node 0: input, node 3: output)")
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def read_scalars(logdir: str, prefix: str = "") -> dict[str, dict[int, float]]:
  """Scalars of the TensorBoard event files in ``logdir``: ``{tag: {step: value}}``.

  Reads the TFRecord framing directly (tensorboardX's protobufs, no TensorFlow); a step logged
  twice (a resumed run) keeps the later value.
  """
  from tensorboardX.proto import event_pb2  # local import: only reports read events
  scalars: dict[str, dict[int, float]] = collections.defaultdict(dict)
  for file in sorted(glob.glob(os.path.join(logdir, "events.out.tfevents.*"))):
    with open(file, "rb") as f:
      while True:
        header = f.read(12)
        if len(header) < 12:
          break
        (length,) = struct.unpack("<Q", header[:8])
        data = f.read(length)
        f.read(4)  # data CRC
        if len(data) < length:
          break
        event = event_pb2.Event()
        event.ParseFromString(data)
        for value in event.summary.value:
          if value.tag.startswith(prefix) and value.HasField("simple_value"):
            scalars[value.tag][int(event.step)] = float(value.simple_value)
  return dict(scalars)


def mixing_history(workdir: str) -> dict[str, dict[str, tuple[list[int], list[str], np.ndarray]]]:
  """A search's logged mixing weights: ``{cell: {edge: (steps, ops, weights (ops, steps))}}``."""
  scalars = read_scalars(os.path.join(workdir, "tensorboard"), prefix="mixing/")
  grouped: dict[str, dict[str, dict[str, dict[int, float]]]] = collections.defaultdict(
      lambda: collections.defaultdict(dict))
  for tag, values in scalars.items():
    parts = tag.split("/")  # mixing/<cell>/edge_<e>/<op>
    if len(parts) == 4 and parts[2].startswith("edge_"):
      grouped[parts[1]][parts[2]][parts[3]] = values
  history: dict[str, dict[str, Any]] = {}
  for cell, edges in grouped.items():
    history[cell] = {}
    for edge in sorted(edges, key=lambda e: int(e.split("_")[1])):
      ops = list(edges[edge])
      steps = sorted(set().union(*(edges[edge][op] for op in ops)))
      table = np.array([[edges[edge][op].get(s, np.nan) for s in steps] for op in ops])
      history[cell][edge] = (steps, ops, table)
  return history


def plot_mixing_history(workdir: str, path: str) -> str:
  """Heatmaps of a search's mixing weights over the logged steps, one panel per edge."""
  plt = pyplot()
  history = mixing_history(workdir)
  if not history:
    raise ValueError(f"No mixing weights in {workdir}/tensorboard: is it a search's workdir?")
  rows = [(cell, edge) for cell in sorted(history) for edge in history[cell]]
  cols = min(4, len(rows))
  nrows = math.ceil(len(rows) / cols)
  fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 2.4 * nrows), squeeze=False)
  for ax, (cell, edge) in zip(axes.flat, rows):
    steps, ops, table = history[cell][edge]
    im = ax.imshow(table, aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0,
                   interpolation="nearest")
    ax.set_yticks(range(len(ops)), ops, fontsize=6)
    ticks = np.linspace(0, len(steps) - 1, min(len(steps), 5)).round().astype(int)
    ax.set_xticks(ticks, [str(steps[t]) for t in ticks], fontsize=6)
    ax.set_xlabel("step", fontsize=6)
    ax.set_title(f"{cell} {edge}", fontsize=8)
  for ax in list(axes.flat)[len(rows):]:
    ax.axis("off")
  fig.suptitle("mixing weights over steps")
  fig.tight_layout()
  fig.colorbar(im, ax=axes.ravel().tolist(), fraction=0.02, label="mixing weight")
  fig.savefig(path, dpi=100, bbox_inches="tight")
  plt.close(fig)
  return path


def _jaxpr_eqn_macs(eqn) -> int:
  name = eqn.primitive.name
  if eqn.primitive in (cpu_kernels.weight_tangent_p, cpu_kernels.weight_gradient_p):
    # k² products per element of the output-sized tangent (T) or cotangent (G), as XLA's
    # depthwise convolution and its weight gradient are counted.
    tangent = eqn.primitive is cpu_kernels.weight_tangent_p
    image = (eqn.outvars if tangent else eqn.invars[1:])[0].aval
    kernel = eqn.invars[1].aval.shape[0] if tangent else eqn.params["kernel"]
    return int(np.prod(image.shape)) * kernel * kernel
  if name not in ("conv_general_dilated", "dot_general"):
    return 0
  out = eqn.outvars[0].aval
  if name == "conv_general_dilated":
    rhs = eqn.invars[1].aval
    out_features = rhs.shape[eqn.params["dimension_numbers"].rhs_spec[0]]
    return int(np.prod(out.shape)) * int(np.prod(rhs.shape)) // out_features
  if name == "dot_general":
    (contracting, _), _ = eqn.params["dimension_numbers"]
    lhs = eqn.invars[0].aval
    return int(np.prod(out.shape)) * int(np.prod([lhs.shape[d] for d in contracting]))
  return 0


def _is_shifted_depthwise(eqn) -> bool:
  return (eqn.primitive.name in ("jit", "pjit")
          and any(n in str(eqn.params.get("name", ""))
                  for n in cpu_kernels.DEPTHWISE_JAXPR_NAMES))


def _multiplications(jaxpr) -> int:
  """Elements produced by ``mul`` in ``jaxpr`` and its sub-jaxprs: the multiply-adds of the
  shifted depthwise kernels (one product per output element and tap)."""
  total = 0
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == "mul":
      total += int(np.prod(eqn.outvars[0].aval.shape))
    for sub in _sub_jaxprs(eqn):
      total += _multiplications(sub)
  return total


def _sub_jaxprs(eqn) -> list:
  subs = []
  for value in eqn.params.values():
    for v in value if isinstance(value, (list, tuple)) else [value]:
      v = getattr(v, "jaxpr", v)
      if hasattr(v, "eqns"):
        subs.append(v)
  return subs


def jaxpr_count(jaxpr) -> int:
  """MACs of a jaxpr, nested ones included (``scan``: times its length; branches: the largest):
  ``function_macs`` of an already traced ``jax.make_jaxpr(fn)(*args).jaxpr``.

  The shifted depthwise kernels (``backends.cpu_kernels``, jitted under
  ``DEPTHWISE_JAXPR_NAMES``) count their multiplications and its weight tangent / weight gradient
  primitives k² per element, so a convolution counts the same whichever kernels computed it.
  """
  total = 0
  for eqn in jaxpr.eqns:
    if _is_shifted_depthwise(eqn):
      total += _multiplications(eqn.params["jaxpr"].jaxpr)
      continue
    total += _jaxpr_eqn_macs(eqn)
    for value in eqn.params.values():
      subs = value if isinstance(value, (list, tuple)) else [value]
      subs = [getattr(v, "jaxpr", v) for v in subs]
      subs = [v for v in subs if hasattr(v, "eqns")]
      if subs:
        total += max(jaxpr_count(v) for v in subs) * int(eqn.params.get("length", 1))
  return total


def function_macs(fn, *args) -> int:
  """Multiply-accumulates of every convolution and matrix product in ``fn(*args)``'s jaxpr:
  whatever ``fn`` computes (a training step: forward, backward, hypergradient). Scans count
  ``length`` times, conditionals their largest branch, while loops (CG) one iteration."""
  return jaxpr_count(jax.make_jaxpr(fn)(*args).jaxpr)


def jaxpr_macs(module: nn.Module, image_shape: tuple[int, ...]) -> int:
  """Multiply-accumulates of one eval-mode forward of one image, read off its jaxpr: every
  convolution (``outputs x kernel volume / groups``) and matrix product; ``reports.count_macs``'
  convention, for networks built from ``lax`` calls rather than ``nn.Conv``/``nn.Dense``."""
  x = jnp.zeros((1,) + tuple(image_shape), jnp.float32)
  variables = jax.eval_shape(lambda: module.init(jax.random.key(0), x, train=False))
  return jaxpr_count(jax.make_jaxpr(lambda v: module.apply(v, x, train=False))(variables).jaxpr)


def network_summary(genotype_spec: str, setting: str = "cifar10") -> dict[str, Any]:
  """Parameters (with and without the auxiliary head) and multiply-adds of a genotype's network.

  ``setting``: ``'cifar10'`` (DARTS: C=36, 20 cells, 32x32; NB201: C=16, N=5; NAO: C=36, N=6,
  32x32) or ``'imagenet'`` (the DARTS mobile setting: C=48, 14 cells, 1000 classes, 224x224;
  ``within_mobile_limit`` says whether it stays under 600M multiply-adds).
  """
  from jaxnas import genotypes as genotypes_lib  # local import: genotypes imports spaces only
  from jaxnas.spaces import darts_network, nb201_network
  space, genotype = genotypes_lib.resolve(genotype_spec)
  if setting not in ("cifar10", "imagenet"):
    raise ValueError(f"Unknown setting {setting!r}; valid: cifar10, imagenet.")
  if space in ("nb201", "nao") and setting != "cifar10":
    raise ValueError(f"{space} networks have only the CIFAR setting.")
  if space == "nao":  # NAONet's evaluation size (train_NAONet_V2_36_cifar10.sh): C=36, N=6, aux
    module = genotype.space.network(genotype.tokens(), channels=36, layers=6, use_aux_head=True)
    weights = abstract_weights(module, (32, 32, 3))
    return {"genotype": str(genotype), "setting": setting, "params": num_params(weights),
            "params_with_auxiliary": num_params(weights, auxiliary=True),
            "macs": jaxpr_macs(module, (32, 32, 3))}
  if space == "nb201":
    module, shape = nb201_network.network(genotype), (32, 32, 3)
  elif setting == "imagenet":
    module = darts_network.network(genotype, channels=48, layers=14, num_classes=1000,
                                   stem="imagenet")
    shape = (224, 224, 3)
  else:
    module, shape = darts_network.network(genotype), (32, 32, 3)
  weights, layers = _trace_macs(module, shape)
  macs = sum(layers.values())
  summary = {"genotype": str(genotype), "setting": setting, "params": num_params(weights),
             "params_with_auxiliary": num_params(weights, auxiliary=True), "macs": macs}
  if setting == "imagenet":
    summary["within_mobile_limit"] = macs < MOBILE_MACS_LIMIT
  return summary


def write_search_plots(workdir: str, out_dir: str | None = None) -> list[str]:
  """``genotype.png`` (the last genotype of ``genotypes.jsonl``) and ``mixing.png`` of a search."""
  from jaxnas import genotypes as genotypes_lib
  out_dir = out_dir or workdir
  _, genotype = genotypes_lib.resolve(workdir)
  return [plot_genotype(genotype, os.path.join(out_dir, "genotype.png")),
          plot_mixing_history(workdir, os.path.join(out_dir, "mixing.png"))]


def main(argv: list[str] | None = None) -> None:
  """``python -m jaxnas.reports search WORKDIR`` | ``python -m jaxnas.reports size GENOTYPE
  [--setting imagenet]``."""
  import argparse
  import json
  parser = argparse.ArgumentParser(prog="python -m jaxnas.reports", description=main.__doc__)
  sub = parser.add_subparsers(dest="command", required=True)
  search = sub.add_parser("search", help="draw a search's last genotype and its mixing weights")
  search.add_argument("workdir")
  search.add_argument("--out", default=None, help="output directory (default: the workdir)")
  size = sub.add_parser("size", help="parameters and multiply-adds of a genotype's network")
  size.add_argument("genotype", help="registered name, genotype string or genotypes.jsonl path")
  size.add_argument("--setting", default="cifar10", choices=("cifar10", "imagenet"))
  args = parser.parse_args(argv)
  if args.command == "search":
    for path in write_search_plots(args.workdir, args.out):
      print(path)
  else:
    print(json.dumps(network_summary(args.genotype, args.setting), indent=2))


if __name__ == "__main__":
  main()
