r"""SNAS: Xie, Zheng, Liu, Lin, "SNAS: Stochastic Neural Architecture Search", ICLR 2019, as a
composition of parts (no forked step): the relaxed Gumbel sampler, a single-level joint weight
phase, and the resource-constraint regularizer.

One search step (``configs/snas_cifar10.py``, ``configs/snas_nb201.py``)::

  Z_c   = softmax((log softmax(alpha_c) + G_c) / tau(e)),   G_c ~ Gumbel(0, 1)   (each cell type c)
  L     = CE(f(x_train; w, Z), y_train)                      (ONE loss, the training batch)
  g_w, g_alpha = grad_{w, alpha} L                            (ONE backward, pathwise through Z)
  w     <- SGD(w, clip_5(g_w))                               (momentum 0.9, L2 3e-4, cosine lr)
  alpha <- Adam(alpha, clip_10(g_alpha + grad_alpha R(alpha)))  (lr 3e-4, betas (0.5, 0.999), L2 1e-3)
  tau(e) = tau_max - (tau_max - tau_min) e / (tau_epochs - 1),  1.0 -> 0.03 over 150 epochs

with ``R`` the optional resource term ``lambda * sum_c sum_e sum_k p_{c,e,k} cost_{c,e,k}``,
``p = softmax(alpha)``.

The parts:

* sampler: ``config.arch_sampler.name='gumbel_soft'`` (``parts.Gumbel(hard=False)``,
  ``parametrize.gumbel_soft``), one draw per cell type and forward, shared by every cell of the type
  (reference ``Analysis/snas/model_search.py:958-962`` ``_get_categ_mask``, :303-305, :695-700);
  temperature ``config.arch_sampler.tau_max/tau_min/tau_epochs``;
* weight phase: ``JointStep`` (``config.joint_step=True``, read in ``compose.read_generic``): one
  ``value_and_grad`` of the training loss with the weight forward's sample with respect to (w,
  alpha); w takes its optimizer step, the alpha gradient is the ``carry`` handed to
  ``arch_gradient`` (order ``'weights_first'``), which returns it; the skeleton adds the
  regularizers' gradients and applies the alpha optimizer (``steps.arch_update``). Reference
  ``Analysis/snas/train_search.py:489-588``: ``loss.backward()`` then ``clip_grad_norm_`` of w (5)
  and alpha (10., l. 578-579), ``optimizer.step()``, ``arch_optimizer.step()`` on the same batch;
* regularizer ``'resource'`` (``config.arch_regularizer.names``): ``Resource``.

Where jaxnas differs from the reference (``SNAS-Series/SNAS-Series`` @ 9a43adb, ``Analysis/snas``,
the only public SNAS search code, the AISTATS'21 analysis variant):

* resource term: the reference's default estimator is the score function (``--method
  policy_gradient``, ``sum_e log p_Concrete(Z_e) * sg(R_e)``, model_search.py:856-868); jaxnas
  uses the exact expectation ``E_{Z~p}[C(Z)] = sum_e sum_k p_{e,k} cost_{e,k}`` (the reference's
  ``--method discrete``, :834-851, :876-882), whose gradient is the expectation of the
  score-function estimate (same mean, no variance). Its cost is the op's parameter count only
  (``resource_cost='params'``); the reference's default ``--separation all`` is
  ``0.43 * (2 size + flops/4000 + mac/100)``. Per cell type the cost is the mean over that type's
  cells (the reference: ``normal/6 + ratio * reduce/2`` with ``ratio = 1``), summed over types;
* temperature: the reference's ``Temp_Scheduler`` already steps once in its constructor, so epoch
  e trains with ``1 - 0.97 (e + 1)/150``; jaxnas starts at ``tau_max`` (1.0 at epoch 0, 0.03 at
  epoch 149). ``--config.arch_sampler.tau_max=0.993533`` (= 1 - 0.97/150) with ``tau_epochs=150``
  reproduces the reference exactly. The reference's annealing is off unless ``--temp_annealing``;
* the reference's analysis code forces every cell to be a normal cell (model_search.py:250); the
  DARTS space here has its reductions at layers//3 and 2 layers//3, as the paper;
* genotype: the DARTS rule on softmax(alpha) (``none`` excluded); the reference does not exclude
  ``none`` (model_search.py:997) and logs all edges;
* alpha init: the softmax parametrization's ``1e-3 N(0, 1)``; the reference draws ``N(1, 0.01)``
  (model_search.py:172-177; the mean shift leaves softmax unchanged, but Adam's L2 term acts on it);
* the skeleton still draws and augments the step's alpha batch, which the joint step does not read;
* metrics: there is no validation forward; ``val/loss`` and ``val/accuracy`` are those of the loss
  the alpha gradient is of (the training batch), so the step's two losses coincide.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxnas import parts
from jaxnas import spaces
from jaxnas import steps
from jaxnas.methods import compose
from jaxnas.spaces import darts as darts_space
from jaxnas.spaces import nb201 as nb201_space
from jaxnas.state import SearchState


# ============================================================================ the joint step
@dataclasses.dataclass(frozen=True)
class JointStep:
  """SNAS' single-level weight phase (``steps.WeightPhase``): one loss on the training batch (at
  the weight forward's sample), one backward for w and alpha. ``update`` takes w's optimizer step
  and hands ``grad_alpha L`` on as ``carry``; ``arch_gradient`` returns it (the skeleton then adds
  the regularizers and applies the alpha optimizer). Needs an alpha step every step (the carry of
  a skipped one would be dropped) and the first-order estimator (there is no bilevel problem)."""
  name: str = "joint_step"
  order: str | None = "weights_first"
  arch_metrics: tuple[str, ...] = ()  # val/* come from the joint loss (update)

  def init(self, components, state) -> dict[str, Any]:
    del components, state
    return {}

  def update(self, components: steps.SearchComponents, state: SearchState, train_batch,
             val_batch):
    del val_batch
    loss_fn = lambda w, a: steps.supernet_loss(components, w, a, state.model_state, *train_batch)
    (loss, (model_state, acc)), (g_w, g_arch) = jax.value_and_grad(
        loss_fn, argnums=(0, 1), has_aux=True)(state.weights, state.arch)
    updates, opt_state = components.weights_tx.update(g_w, state.weights_opt_state,
                                                      state.weights)
    state = state.replace(weights=optax.apply_updates(state.weights, updates),
                          weights_opt_state=opt_state, model_state=model_state)
    metrics = {"train/loss": loss, "train/accuracy": acc,
               "train/grad_norm": optax.tree.norm(g_w),
               "train/arch_grad_norm": optax.tree.norm(g_arch),
               "val/loss": loss, "val/accuracy": acc}
    return state, metrics, g_arch

  def arch_gradient(self, components, state, train_batch, val_batch, lr, carry):
    del components, train_batch, val_batch, lr
    if carry is None:
      raise ValueError("JointStep's alpha gradient comes from its weight step: the step order "
                       "must be 'weights_first'.")
    return carry, state, {}

  def eval_state(self, state: SearchState) -> SearchState:
    return state


def read_joint_step(config: ml_collections.ConfigDict, schedule: Any,
                    method_order: str | None) -> JointStep | None:
  """``JointStep`` for ``config.joint_step=True`` (None otherwise); a one-line ValueError for what
  it cannot combine with (``method_order``: the order of a method's own weight phase, e.g.
  RARTS')."""
  if not config.get("joint_step", False):
    return None
  if method_order is not None:
    raise ValueError(f"config.joint_step=True replaces the weight phase, which "
                     f"config.method={config.method!r} sets itself; set joint_step=False.")
  if config.hypergrad != "first_order":
    raise ValueError(f"config.hypergrad={config.hypergrad!r} does not apply with "
                     "config.joint_step=True (one single-level loss, one backward for w and "
                     "alpha); set hypergrad='first_order' or joint_step=False.")
  if not schedule.always:
    raise ValueError(f"config.arch_every={config.arch_every!r} (or an arch_schedule that skips "
                     "steps) is not valid with config.joint_step=True, which takes the alpha step "
                     "with every weight step; set arch_every=1, arch_schedule.name='every_k', "
                     "arch_schedule.start_epoch=0.")
  return JointStep()


# ============================================================================ resource constraint
COSTS = ("params",)


def op_params(name: str, channels: int, stride: int = 1, affine: bool = False) -> int:
  """The parameter count of ``spaces.ops.make_op(name, channels, stride, affine=affine)``
  (bias-free convolutions; ``affine``: BatchNorm scale and bias, 2C per BatchNorm):

  * ``nor_conv_kxk``: C^2 k^2 (+ 2C);  ``dil_conv_kxk``: C k^2 + C^2 (+ 2C);
  * ``sep_conv_kxk``: 2 (C k^2 + C^2) (+ 4C)  (reference ``operations.py:262``: 2 C k^2 + 2 C^2);
  * ``skip_connect``: 0 at stride 1, FactorizedReduce at stride 2: 2 (C/2) C = C^2 (+ 2C);
  * pools (their BatchNorm has no affine in the search), ``none``: 0.
  """
  c = int(channels)
  bn = 2 * c if affine else 0
  if name in ("none", "max_pool_3x3", "avg_pool_3x3"):
    return 0
  if name == "skip_connect":
    return 0 if stride == 1 else c * c + bn
  kind, _, size = name.rpartition("_")
  k = int(size.split("x")[0])
  if kind == "nor_conv":
    return c * c * k * k + bn
  if kind == "dil_conv":
    return c * k * k + c * c + bn
  if kind == "sep_conv":
    return 2 * (c * k * k + c * c) + 2 * bn
  raise ValueError(f"No parameter count for operation {name!r}.")


def nb201_costs(ops, channels: int, cells_per_stage: int) -> dict[str, np.ndarray]:
  """``{'cell': (6, ops)}``: each op's parameter count, averaged over the 3N cells that share
  the one mixing matrix (stage s has width C 2^s; every edge is stride 1)."""
  del cells_per_stage  # every stage has N cells: the mean over cells is the mean over stages
  row = [np.mean([op_params(op, channels * 2**s, 1) for s in range(3)]) for op in ops]
  return {"cell": np.tile(np.asarray(row, np.float64), (nb201_space.NUM_EDGES, 1))}


def darts_costs(ops, channels: int, layers: int, nodes: int,
                partial_channels: int = 1) -> dict[str, np.ndarray]:
  """``{'normal', 'reduce'}: (edges, ops)``: each op's parameter count on each edge, averaged over
  the cells of that type (cell widths as ``DartsSupernet``: doubled at each reduction; ops on
  C/K channels with PC-DARTS' K). Normal cells: stride 1; reduction cells: the edges from the two
  cell inputs are stride 2 (``edge_groups``' ``front``), the others stride 1. A type without
  cells costs 0."""
  widths: dict[str, list[int]] = {"normal": [], "reduce": []}
  width = channels
  for layer in range(layers):
    reduction = layer in darts_space.reduction_layers(layers)
    width = width * 2 if reduction else width
    widths["reduce" if reduction else "normal"].append(width // partial_channels)
  edges = darts_space.num_edges(nodes)
  front = {e for e, _, _ in darts_space.edge_groups(nodes)["front"]}
  out = {}
  for kind, cells in widths.items():
    cost = np.zeros((edges, len(ops)))
    for e in range(edges):
      stride = 2 if kind == "reduce" and e in front else 1
      for k, op in enumerate(ops):
        cost[e, k] = np.mean([op_params(op, c, stride) for c in cells]) if cells else 0.0
    out[kind] = cost
  return out


def space_costs(config: ml_collections.ConfigDict, space: spaces.SearchSpace
                ) -> dict[str, np.ndarray]:
  """The per-edge op costs of the configured space (``config.space`` sizes)."""
  s = config.space
  if space.name == "nb201":
    return nb201_costs(space.ops, s.channels, s.cells_per_stage)
  if space.name == "darts":
    return darts_costs(space.ops, s.channels, s.layers, space.nodes,
                       getattr(space, "partial_channels", 1))
  raise ValueError(f"config.arch_regularizer.names contains 'resource', which has op costs for "
                   f"the 'nb201' and 'darts' spaces only, not {space.name!r}; drop it.")


def _freeze(costs: dict[str, np.ndarray]) -> tuple:
  return tuple((k, tuple(map(tuple, np.asarray(v, np.float64).tolist())))
               for k, v in sorted(costs.items()))


@dataclasses.dataclass(frozen=True)
class Resource:
  r"""SNAS' resource constraint as its exact expectation under the op distribution:

  .. math:: R(\alpha) = \lambda \sum_c \sum_e \sum_k p_{c,e,k}\, \mathrm{cost}_{c,e,k}
     = \lambda\, \mathbb{E}_{Z \sim p}[C(Z)],\qquad p = \mathrm{activate}(\alpha)

  (``ctx.activate``: the deterministic mixing, softmax for SNAS). The reference's default
  score-function estimator ``sum_e log p(Z_e) sg(C_e)`` has this gradient in expectation; the
  exact one has no variance (the reference's ``--method discrete``). ``costs``: the frozen
  ``{leaf: (edges, ops)}`` table (``space_costs``). Metrics ``reg/resource`` (the weighted
  term) and ``resource/expected_cost`` (``E[C]``, unweighted)."""
  weight: float = 1e-5
  costs: tuple = ()
  prefix: str = "arch_regularizer"
  name: str = "resource"

  def __post_init__(self):
    if not self.weight >= 0:
      parts._fail(f"{self.prefix}.resource_weight", self.weight, "use a weight >= 0.")

  def expected_cost(self, mixing: Any) -> jax.Array:
    total = jnp.zeros((), jnp.float32)
    for key, table in self.costs:
      p = mixing[key]
      total = total + jnp.sum(p * jnp.asarray(table, p.dtype))
    return total

  def init(self, arch: Any, ctx: parts.Context) -> parts.NoState:
    del arch, ctx
    return parts.NoState()

  def penalty(self, arch: Any, state: parts.NoState, ctx: parts.Context) -> jax.Array:
    del state
    return self.weight * self.expected_cost(ctx.activate(arch))

  def advance(self, state: parts.NoState, arch: Any, due: jax.Array, ctx: parts.Context):
    del due
    return state, {"resource/expected_cost": self.expected_cost(ctx.activate(arch))}


def read_resource(config: ml_collections.ConfigDict, space: spaces.SearchSpace,
                  steps_per_epoch: int) -> Resource:
  del steps_per_epoch
  block = config.arch_regularizer
  if block.resource_cost not in COSTS:
    raise ValueError(f"config.arch_regularizer.resource_cost={block.resource_cost!r} is not "
                     f"valid; choose one of: {', '.join(COSTS)}.")
  return Resource(weight=float(block.resource_weight), costs=_freeze(space_costs(config, space)))


compose.register_regularizer("resource", read_resource)
compose.register_weight_phase(read_joint_step)
