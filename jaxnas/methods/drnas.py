r"""DrNAS (Chen et al., "DrNAS: Dirichlet Neural Architecture Search", ICLR 2021) as a composition
of parts on the one step skeleton (``jaxnas.steps.search_step``).

Reference code: ``xiangning-chen/DrNAS`` @ f2caa4d (D: below; line numbers of that commit).

Update equations (first order, alpha step first, as the reference's default ``--unrolled False``):

.. math::
   \beta_e = \mathrm{ELU}(\alpha_e) + 1,\qquad \theta_e \sim \mathrm{Dir}(\beta_e)\ \text{(one draw
   per edge row and forward, shared by all cells of a type)}

   \alpha \leftarrow \mathrm{Adam}\big(\alpha,\ \nabla_\alpha L_{val}(w, \theta(\alpha)) [+ \lambda
   \textstyle\sum_e \mathrm{KL}(\mathrm{Dir}(\beta_e)\,\|\,\mathrm{Dir}(\mathbf 1))]\big)
   \qquad \text{(lr 3e-4 / 6e-4, betas (0.5, 0.999), L2 1e-3)}

   w \leftarrow \mathrm{SGD}(w,\ \nabla_w L_{train}(w, \theta'))\qquad \theta' \text{ a fresh draw}

The gradient through the sample is pathwise: ``jax.random.dirichlet`` normalises
``loggamma`` draws, and JAX differentiates its gamma sampler by implicit reparameterisation
(D: ``Dirichlet(...).rsample()``, D:DARTS-space/model_search.py L176-177,
D:201-space/search_model.py L122; D:utils.py L170-172 for ``elu(x) + 1``).

The parts (each registered with ``jaxnas.parametrize`` / ``jaxnas.methods.compose`` on import):

* parametrization ``'dirichlet'`` (``Dirichlet``): raw alpha ~ 1e-3 N(0, 1) (D: ``1e-3 *
  torch.randn``); ``concentration(arch) = elu(alpha) + 1``; the deterministic mixing
  ``activate(arch) = softmax(alpha)`` per edge: what the reference's genotype reads
  (``process_step_matrix(alpha, 'softmax', mask)``, D:DARTS-space/model_search.py L251-254;
  D:201-space/search_model.py L104-116), so derivation, the per-epoch supernet evaluation and the
  regularizers' ``ctx.activate`` see softmax(alpha), not the Dirichlet mean beta / sum(beta) (the
  argmax within an edge is the same, DARTS' edge ranking may differ);
* sampler ``'dirichlet'`` (``DirichletSampler``, ``config.arch_sampler.name``): a forward
  transform for both training forwards (weight step and alpha step, each its own draw);
* regularizer ``'dirichlet_kl'`` (``DirichletKL``, ``config.arch_regularizer.names``):
  ``kl_weight * sum_e KL(Dir(beta_e) || Dir(1))`` (D:DARTS-space/model_search.py L147-148,
  L200-209). The reference's default ``--reg_type l2`` is Adam's coupled L2 on alpha
  (``config.arch_optimizer.weight_decay = 1e-3``); the KL is the ``:kl`` variant of the configs
  (then the Adam weight decay is 0, D:architect.py L17-22);
* progressive op pruning (``config.method = 'drnas'``, ``config.drnas.*``; the DARTS space):
  the pruning part ``parts.TopKPrune`` (the skeleton's one op mask, as DARTS-PRIME's
  ``SignPrune``): after ``stage_epochs`` epochs each edge keeps its ``num_keep`` ops of largest raw
  alpha (D:utils.py L197-207: pruned alpha set to 0, a boolean mask kept; here they are held at 0
  after every alpha step, as every pruned alpha in jaxnas); afterwards the sample is
  ``theta = g m / sum(g m)`` with ``g`` the gamma draws (D:utils.py L176-183; a renormalised
  Dirichlet sub-vector is Dir(beta_kept)) and the deterministic mixing the softmax over the kept
  ops (the reference's masked ``process_step_matrix``), so the derived genotype never picks a
  pruned op. The alpha warm-up (``drnas.stage_warmup_epochs``, D: ``if epoch >= 10`` with the
  stage-local epoch) restarts in every stage (``StageWarmup``). The Adam state of alpha is kept
  across the boundary (the reference's ``architect.pruning`` call is commented out);
* progressive widening (``config.drnas.stage2_partial_channels``, the supernet stage part
  ``parts.SupernetStage``, ``read_stages``): at the same boundary PC-DARTS' K drops (6 -> 4 in
  the reference, D: ``model.wider(ks[i+1])``), every op of every edge grows from C/K_1 to C/K_2
  channels, and the weights, BN statistics and SGD momentum are mapped by Net2Wider
  (``jaxnas.spaces.net2wider``: new channels are copies of random old ones, no rescaling, the
  reference's index pairing; D:net2wider.py, ``configure_optimizer`` carries the momentum into
  the new SGD, ``configure_scheduler`` the cosine). Stage 2 is its own compiled step
  (``jaxnas.search.SearchProgram``); a checkpoint restores into the shapes of its stage, and the
  draws are a function of ``(seed, boundary step)``, so a resumed run widens as an uninterrupted
  one.

Where jaxnas differs from the reference:

* the widening draws its indices from JAX's PRNG (the reference: ``torch.randint``), per edge and
  module as the reference, so the copied channels are others than a PyTorch run's;
* the per-epoch supernet evaluation uses the deterministic softmax(alpha) (the reference's
  ``infer`` samples);
* JAX's gamma-based reparameterisation: a pruned op's concentration gets exactly zero gradient
  from the loss (PyTorch's ``Dirichlet.rsample`` differentiates the full sample, then masks);
* ``config.space.edge_normalization`` is refused with the Dirichlet sampler (the reference has
  none; its beta leaves are not op distributions).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from jax.scipy.special import digamma, gammaln

from jaxnas import parametrize
from jaxnas import parts
from jaxnas.methods import base
from jaxnas.methods import compose


# ============================================================================ parametrization
def concentration_leaf(alpha: jax.Array) -> jax.Array:
  """``beta = elu(alpha) + 1`` (> 0; alpha = 0 gives beta = 1), D:utils.py L170-172."""
  return jax.nn.elu(alpha) + 1.0


def masked_softmax(alpha: jax.Array, mask: jax.Array | None) -> jax.Array:
  """``softmax(alpha)`` over the kept ops of each row (pruned entries exactly 0): the reference's
  ``softmax`` then ``out[mask] / out[mask].sum()``."""
  if mask is None:
    return jax.nn.softmax(alpha, axis=-1)
  return jax.nn.softmax(jnp.where(mask > 0, alpha, -jnp.inf), axis=-1)


@dataclasses.dataclass(frozen=True)
class Dirichlet(parametrize.Parametrization):
  """DrNAS: ``alpha ~ init_scale N(0, 1)``; ``concentration = elu(alpha) + 1``; deterministic
  mixing (derivation, evaluation) ``softmax(alpha)`` over the kept ops.

  ``mask``: the progressive-pruning mask (a pytree like the arch, 1 = kept), or None (all kept);
  ``steps.with_mask`` folds the state's mask in every step (``with_mask``)."""
  name: str = "dirichlet"
  init_scale: float = 1e-3
  mask: Any = None

  def init_leaf(self, key, shape, dtype):
    return self.init_scale * jax.random.normal(key, shape, dtype)

  def activate_leaf(self, alpha):
    return jax.nn.softmax(alpha, axis=-1)

  def activate(self, arch: Any) -> Any:
    if self.mask is None:
      return jax.tree.map(self.activate_leaf, arch)
    return jax.tree.map(masked_softmax, arch, self.mask)

  def concentration_leaf(self, alpha: jax.Array) -> jax.Array:
    return concentration_leaf(alpha)

  def concentration(self, arch: Any) -> Any:
    """The Dirichlet concentration of every edge row, ``elu(alpha) + 1``."""
    return jax.tree.map(concentration_leaf, arch)

  def with_mask(self, mask: Any) -> "Dirichlet":
    """This parametrization over the kept ops of ``mask`` (``steps.with_mask`` folds the pruning
    mask in this way: softmax and samples renormalized over the kept ops)."""
    return dataclasses.replace(self, mask=mask)

parametrize.register(Dirichlet())


# ============================================================================ sampler
def masked_dirichlet(key: jax.Array, beta: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  r"""One draw per row of ``Dir(beta)`` restricted to the kept ops: ``theta = g m / \sum g m``,
  ``g_k ~ Gamma(beta_k)``, computed in log space as ``jax.random.dirichlet`` (whose draws it
  equals, key for key, when ``mask`` is None or all ones)."""
  if mask is None:
    return jax.random.dirichlet(key, beta, dtype=beta.dtype)
  log_g = jax.random.loggamma(key, beta, beta.shape, beta.dtype)
  return jax.nn.softmax(jnp.where(mask > 0, log_g, -jnp.inf), axis=-1)


@dataclasses.dataclass(frozen=True)
class DirichletSampler:
  """DrNAS' sampler (a forward transform): every training forward (the weight step's and the
  alpha step's, each its own key) mixes with ``theta_e ~ Dir(beta_e)`` (kept ops only), one draw
  per edge row of each arch leaf (all cells of a type share it), ``beta`` from the
  parametrization's ``concentration``. Stateless."""
  name: str = "dirichlet"
  forwards: tuple[str, ...] = ("weights", "arch")

  def sample(self, parametrization: Any, arch: Any, key: jax.Array) -> Any:
    """Draws of every leaf (its own key per leaf, in leaf order)."""
    if not hasattr(parametrization, "concentration"):
      raise ValueError(
          f"config.arch_sampler.name='dirichlet' needs a parametrization with a concentration "
          f"(not {getattr(parametrization, 'name', parametrization)!r}); set "
          "config.parametrization='dirichlet'.")
    beta = parametrization.concentration(arch)
    mask = getattr(parametrization, "mask", None)
    leaves, treedef = jax.tree.flatten(beta)
    masks = treedef.flatten_up_to(mask) if mask is not None else [None] * len(leaves)
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(treedef, [masked_dirichlet(k, b, m)
                                        for k, b, m in zip(keys, leaves, masks)])

  def wrap(self, mix, ctx: parts.ForwardContext):
    """The draw replaces the deterministic mixing."""
    del mix
    return lambda arch: self.sample(ctx.parametrization, arch, ctx.key)

  def metrics(self, step: jax.Array) -> dict[str, jax.Array]:
    del step
    return {}


def read_sampler(config: ml_collections.ConfigDict, steps_per_epoch: int) -> DirichletSampler:
  """``config.arch_sampler.name='dirichlet'``; refuses a parametrization without a
  concentration and PC-DARTS' edge weights."""
  del steps_per_epoch
  param = parametrize.get(config.parametrization)
  if not hasattr(param, "concentration"):
    raise ValueError(f"config.arch_sampler.name='dirichlet' samples Dir(concentration(alpha)), "
                     f"which parametrization={config.parametrization!r} does not define; set "
                     "config.parametrization='dirichlet'.")
  if config.space.get("edge_normalization", False):
    raise ValueError("config.space.edge_normalization=True adds PC-DARTS' edge weights, which "
                     "the Dirichlet sampler would sample as op distributions (DrNAS has none); "
                     "set config.space.edge_normalization=False.")
  return DirichletSampler()


compose.register_sampler("dirichlet", read_sampler)


# ============================================================================ KL regularizer
def dirichlet_kl_to_uniform(beta: jax.Array) -> jax.Array:
  r"""``KL(Dir(beta) || Dir(1, ..., 1))`` per row (last axis)::

      KL = lnG(b0) - sum_k lnG(b_k) - lnG(K) + sum_k (b_k - 1) (psi(b_k) - psi(b0)),  b0 = sum b

  (the general ``KL(Dir(a) || Dir(b))`` with ``b = 1``: ``lnG(1) = 0``)."""
  b0 = jnp.sum(beta, axis=-1)
  k = beta.shape[-1]
  return (gammaln(b0) - jnp.sum(gammaln(beta), axis=-1) - gammaln(jnp.asarray(k, beta.dtype))
          + jnp.sum((beta - 1.0) * (digamma(beta) - digamma(b0)[..., None]), axis=-1))


@dataclasses.dataclass(frozen=True)
class DirichletKL:
  """DrNAS' KL anchor: ``weight * sum over every edge row of every leaf of KL(Dir(elu(alpha) + 1)
  || Dir(1))`` (a sum, not a mean; pruned entries count, their alpha was reset to 0, as the
  reference). Metric ``reg/dirichlet_kl``."""
  weight: float = 1e-3
  name: str = "dirichlet_kl"

  def __post_init__(self):
    if not self.weight >= 0:
      raise ValueError(f"config.arch_regularizer.kl_weight={self.weight!r} is not valid: use a "
                       "weight >= 0.")

  def init(self, arch: Any, ctx: parts.Context) -> parts.NoState:
    del arch, ctx
    return parts.NoState()

  def penalty(self, arch: Any, state: parts.NoState, ctx: parts.Context) -> jax.Array:
    del state, ctx
    total = sum(jnp.sum(dirichlet_kl_to_uniform(concentration_leaf(a)))
                for a in jax.tree.leaves(arch))
    return self.weight * total

  def advance(self, state: parts.NoState, arch: Any, due: jax.Array, ctx: parts.Context):
    del arch, due, ctx
    return state, {}


def read_kl(config: ml_collections.ConfigDict, space: Any, steps_per_epoch: int) -> DirichletKL:
  del space, steps_per_epoch
  if config.parametrization != "dirichlet":
    raise ValueError(f"config.arch_regularizer.names has 'dirichlet_kl', the KL of "
                     f"Dir(elu(alpha) + 1), which is DrNAS' parametrization; set "
                     f"config.parametrization='dirichlet' (not {config.parametrization!r}).")
  return DirichletKL(weight=float(config.arch_regularizer.kl_weight))


compose.register_regularizer("dirichlet_kl", read_kl)


# ============================================================================ progressive pruning
prune_top_k = parts.prune_top_k  # D:utils.py ``prune`` (the pruning part ``parts.TopKPrune``)


@dataclasses.dataclass(frozen=True)
class StageWarmup:
  """An alpha step unless the step lies in the first ``warmup`` steps of its stage (stages of
  ``stage`` steps, the last one open-ended; ``stage = 0``: one stage). D:DARTS-space/
  train_search.py ``if epoch >= 10`` with the stage-local epoch ``e``."""
  warmup: int = 0
  stage: int = 0
  num_stages: int = 2
  name: str = "stage_warmup"

  def __post_init__(self):
    if self.warmup < 0 or self.stage < 0:
      raise ValueError(f"config.drnas.stage_warmup_epochs / stage_epochs (in steps: "
                       f"{self.warmup}, {self.stage}) are not valid: use values >= 0.")

  @property
  def always(self) -> bool:
    """No warm-up: every step takes an alpha step (no ``lax.cond``)."""
    return self.warmup == 0

  def init(self) -> parts.NoState:
    return parts.NoState()

  def due(self, step: jax.Array, state: parts.NoState) -> jax.Array:
    del state
    step = jnp.asarray(step)
    if not self.stage:
      return step >= self.warmup
    index = jnp.minimum(step // self.stage, self.num_stages - 1)
    return step - index * self.stage >= self.warmup

  def advance(self, state: parts.NoState, due: jax.Array, fisher: jax.Array) -> parts.NoState:
    del due, fisher
    return state

  def metrics(self, state: parts.NoState) -> dict[str, jax.Array]:
    del state
    return {}


def check_options(config: ml_collections.ConfigDict) -> None:
  """``config.drnas`` and what method='drnas' needs; one-line errors naming the fix."""
  block = config.drnas
  for field in ("stage_epochs", "stage_warmup_epochs"):
    value = block[field]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
      raise ValueError(f"config.drnas.{field}={value!r} is not valid: use an integer >= 0.")
  check_widening(config)
  keep = block.num_keep
  if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
    raise ValueError(f"config.drnas.num_keep={block.num_keep!r} is not valid: use an integer >= 1 "
                     "(ops kept per edge after stage 1).")
  if config.parametrization != "dirichlet" or config.arch_sampler.name != "dirichlet":
    raise ValueError("config.method='drnas' prunes the Dirichlet over each edge's ops; set "
                     "config.parametrization='dirichlet' and config.arch_sampler.name='dirichlet'.")
  if (config.arch_schedule.name != "every_k" or config.arch_every != 1
      or config.arch_schedule.start_epoch):
    raise ValueError("config.method='drnas' takes its alpha warm-up from "
                     "config.drnas.stage_warmup_epochs; leave config.arch_schedule at 'every_k', "
                     "arch_every=1, start_epoch=0.")


def check_widening(config: ml_collections.ConfigDict) -> None:
  """``config.drnas.stage2_partial_channels``: 0, or a K_2 < ``space.partial_channels`` (wider ops)
  that divides the channels, with a stage boundary to widen at."""
  k2, block = config.drnas.stage2_partial_channels, config.drnas
  if isinstance(k2, bool) or not isinstance(k2, int) or k2 < 0:
    raise ValueError(f"config.drnas.stage2_partial_channels={k2!r} is not valid: use 0 (no "
                     "widening) or PC-DARTS' K of stage 2 (an integer >= 1; the reference: 4).")
  if not k2:
    return
  k1 = config.space.get("partial_channels", 1)
  if not block.stage_epochs:
    raise ValueError(f"config.drnas.stage2_partial_channels={k2} widens the supernet after stage "
                     "1, but config.drnas.stage_epochs=0 (one stage); set stage_epochs > 0 or "
                     "stage2_partial_channels=0.")
  if "partial_channels" not in config.space or k2 >= k1:
    raise ValueError(f"config.drnas.stage2_partial_channels={k2} must be below "
                     f"config.space.partial_channels={k1} (stage 2 runs C/K_2 > C/K_1 channels "
                     "through the ops; the reference: 6 -> 4); lower it or set it to 0.")
  if config.space.channels % k2:
    raise ValueError(f"config.drnas.stage2_partial_channels={k2} must divide "
                     f"config.space.channels={config.space.channels}; choose a divisor.")


def read_stages(config: ml_collections.ConfigDict, steps_per_epoch: int
                ) -> tuple[parts.SupernetStage, ...]:
  """Stage 2's supernet with ``partial_channels = config.drnas.stage2_partial_channels`` from the
  pruning step on (none when it is 0): D:DARTS-space/train_search.py ``model.wider(ks[i+1])``."""
  check_widening(config)
  k2 = config.drnas.stage2_partial_channels
  if not k2:
    return ()
  return (parts.SupernetStage(start=config.drnas.stage_epochs * steps_per_epoch,
                              space=(("partial_channels", k2),)),)


def read_parts(config: ml_collections.ConfigDict, space: Any, steps_per_epoch: int
               ) -> dict[str, Any]:
  """The generic parts, with the stage-local warm-up as the schedule."""
  check_options(config)
  found = compose.read_generic(config, space, steps_per_epoch)
  block = config.drnas
  if block.stage_epochs and block.num_keep > len(space.ops):
    raise ValueError(f"config.drnas.num_keep={block.num_keep} exceeds the {len(space.ops)} ops of "
                     f"the space; use at most {len(space.ops)}.")
  found["schedule"] = StageWarmup(warmup=block.stage_warmup_epochs * steps_per_epoch,
                                  stage=block.stage_epochs * steps_per_epoch)
  if block.stage_epochs:
    found["pruning"] = parts.TopKPrune(at_step=block.stage_epochs * steps_per_epoch,
                                       num_keep=block.num_keep)
  return found


def build(config: ml_collections.ConfigDict) -> base.SearchMethod:
  """The skeleton's method named 'drnas' (its parts, the pruning included, come with the
  components, ``read_parts``); checks ``config.drnas`` first."""
  check_options(config)
  return base.SearchMethod(name="drnas")


base.register("drnas", build)
compose.register_reader("drnas", read_parts)
compose.register_stages("drnas", read_stages)
