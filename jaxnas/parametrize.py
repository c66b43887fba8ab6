"""Architecture parametrizations: raw alpha <-> the mixing weights a supernet consumes.

Each parametrization is a small frozen object with ``init(key, shape)`` (the raw alpha of one
architecture leaf, rows = edges, last axis = operations) and ``activate(arch)`` (mixing weights for
a whole arch pytree). Adding one is a one-file change: a class here and a line in ``PARAMETRIZATIONS``.

* ``softmax`` (DARTS, MiLeNAS, iDARTS, RARTS): alpha ~ 1e-3 N(0, 1), mixing = softmax(alpha) per edge.
* ``simplex`` (GAEA): alpha lives on the product of simplices (uniform init 1/n per edge) and is
  used directly as mixing weights; exponentiated gradient keeps it there.
* ``sigmoid`` (Fair-DARTS): mixing = sigmoid(alpha) elementwise, no competition within an edge.
* ``clamp`` (Maile et al., "On Constrained Optimization in Differentiable NAS", arXiv 2106.11655,
  the "CRB" activation of k8lion/DARTS-PRIME ``model_admm_hard_statebn.py``): alpha ~ 1/n +
  1e-4 N(0, 1), mixing = clip(alpha, 0, 1) elementwise (no normalisation within an edge, so edges
  are comparable). Meant for an op set without ``none``; DARTS-PRIME's permanent pruning mask
  (alpha <= 0 after a weight step) lives in the method (``jaxnas.methods.darts_prime``).

GDAS' sampling (``gumbel_hard``) is not a parametrization of its own: it samples from the
distribution a normalised parametrization defines, whose log-probabilities ``log_activate(arch)``
give (``softmax``: ``log_softmax(alpha)``, GDAS; ``simplex``: ``log(alpha)``, GAEA-GDAS). The
sampler part with its temperature schedule is ``jaxnas.parts.Gumbel``; the deterministic
mixing (derivation, supernet evaluation, regularizers) stays ``activate(arch)``.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class Parametrization:
  """Base class. Subclasses implement ``init_leaf`` and ``activate_leaf``."""
  name: str = ""

  def init(self, key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
    """Initial raw alpha of one architecture leaf of ``shape`` (..., num_ops)."""
    return self.init_leaf(key, tuple(shape), dtype)

  def activate(self, arch: Any) -> Any:
    """Mixing weights for every leaf of the ``arch`` pytree (rows along the last axis)."""
    return jax.tree.map(self.activate_leaf, arch)

  def init_leaf(self, key: jax.Array, shape: tuple[int, ...], dtype: Any) -> jax.Array:
    raise NotImplementedError

  def activate_leaf(self, alpha: jax.Array) -> jax.Array:
    raise NotImplementedError

  def log_activate(self, arch: Any) -> Any:
    """The log of the mixing weights, for parametrizations whose rows are probability vectors
    (the sampling distribution of GDAS' Gumbel sampler); others raise."""
    return jax.tree.map(self.log_activate_leaf, arch)

  def log_activate_leaf(self, alpha: jax.Array) -> jax.Array:
    raise ValueError(f"parametrization {self.name!r} does not define a distribution over each "
                     "edge's ops to sample from; use 'softmax' or 'simplex'.")


@dataclasses.dataclass(frozen=True)
class Softmax(Parametrization):
  """DARTS: ``alpha ~ init_scale * N(0, 1)``; ``mixing = softmax(alpha)`` over each edge's ops."""
  name: str = "softmax"
  init_scale: float = 1e-3

  def init_leaf(self, key, shape, dtype):
    return self.init_scale * jax.random.normal(key, shape, dtype)

  def activate_leaf(self, alpha):
    return jax.nn.softmax(alpha, axis=-1)

  def log_activate_leaf(self, alpha):
    """``log_softmax(alpha)``: GDAS' ``arch_parameters.log_softmax(dim=1)``."""
    return jax.nn.log_softmax(alpha, axis=-1)


@dataclasses.dataclass(frozen=True)
class Simplex(Parametrization):
  """GAEA: alpha is a point of the simplex per edge (uniform init), used as mixing weights as is."""
  name: str = "simplex"

  def init_leaf(self, key, shape, dtype):
    del key
    return jnp.full(shape, 1.0 / shape[-1], dtype)

  def activate_leaf(self, alpha):
    return alpha

  def log_activate_leaf(self, alpha):
    """``log(alpha)``: GAEA-GDAS samples from the categorical with probabilities alpha (the
    mirror-descent floor keeps alpha > 0)."""
    return jnp.log(alpha)


@dataclasses.dataclass(frozen=True)
class Clamp(Parametrization):
  """Maile et al.: ``alpha ~ 1/n + init_scale * N(0, 1)``; ``mixing = clip(alpha, 0, 1)``.

  The clip has zero gradient outside [0, 1]: an alpha above 1 gets no loss gradient (only the
  optimizer's L2 decay pulls it back), as ``torch.clamp`` in the reference.
  """
  name: str = "clamp"
  init_scale: float = 1e-4

  def init_leaf(self, key, shape, dtype):
    return 1.0 / shape[-1] + self.init_scale * jax.random.normal(key, shape, dtype)

  def activate_leaf(self, alpha):
    return jnp.clip(alpha, 0.0, 1.0)


@dataclasses.dataclass(frozen=True)
class Sigmoid(Parametrization):
  """Fair-DARTS (Chu et al., ECCV 2020; xiaomi-automl/FairDARTS ``model_search.py``):
  ``mixing = sigmoid(alpha)`` elementwise, no normalisation within an edge (the ops of an edge do
  not compete: each weight moves on its own); alpha starts at ``init_scale * N(0, 1)`` (the
  reference: zeros, ``init_scale = 0``; the zero-one loss' gradient vanishes there)."""
  name: str = "sigmoid"
  init_scale: float = 0.0

  def init_leaf(self, key, shape, dtype):
    return self.init_scale * jax.random.normal(key, shape, dtype)

  def activate_leaf(self, alpha):
    return jax.nn.sigmoid(alpha)


def gumbel_hard(log_probs: jax.Array, key: jax.Array, tau: jax.Array | float) -> jax.Array:
  r"""GDAS' hard Gumbel-max sample with the straight-through gradient, per row (last axis).

  .. math:: y = (\log p + g) / \tau,\quad g \sim \mathrm{Gumbel}(0, 1),\quad
     \pi = \mathrm{softmax}(y),\quad h = \mathrm{onehot}(\arg\max_k y_k) - \mathrm{sg}(\pi) + \pi

  AutoDL-Projects ``xautodl/models/cell_searchs/search_model_gdas.py:116-121``: ``gumbels =
  -empty_like(alpha).exponential_().log()``; ``logits = (alpha.log_softmax(dim=1) + gumbels) /
  tau``; ``probs = softmax(logits)``; ``index = probs.max(-1)[1]``; ``hardwts = one_h -
  probs.detach() + probs``. The value of ``h`` is the one-hot of the sampled op (the sampled entry
  is ``1 - pi + pi``, the others exactly 0), its gradient that of the relaxed ``pi``. The
  reference re-samples while ``gumbels`` or ``probs`` hold an inf/NaN (l. 122-126);
  ``jax.random.gumbel`` draws are finite, so one draw suffices. ``argmax(h) == argmax(y)`` is the
  sampled op (the sampled-op forward, ``spaces.ops.MixedOp(sampled=True)``, reads it from ``h``).
  """
  g = jax.random.gumbel(key, log_probs.shape, log_probs.dtype)
  logits = (log_probs + g) / jnp.asarray(tau, log_probs.dtype)
  probs = jax.nn.softmax(logits, axis=-1)
  one_hot = jax.nn.one_hot(jnp.argmax(logits, axis=-1), log_probs.shape[-1],
                           dtype=log_probs.dtype)
  return one_hot - jax.lax.stop_gradient(probs) + probs


def gumbel_soft(log_probs: jax.Array, key: jax.Array, tau: jax.Array | float) -> jax.Array:
  r"""SNAS' relaxed Gumbel-softmax sample, per row (last axis).

  .. math:: z = \mathrm{softmax}((\log p + g) / \tau),\quad g \sim \mathrm{Gumbel}(0, 1)

  SNAS-Series ``Analysis/snas/model_search.py`` (``--snas``): ``softmax((log_alpha + G) / T)``
  with ``G = -log(-log U)``, no hard sample; its value and gradient are the relaxed sample's.
  """
  g = jax.random.gumbel(key, log_probs.shape, log_probs.dtype)
  return jax.nn.softmax((log_probs + g) / jnp.asarray(tau, log_probs.dtype), axis=-1)


PARAMETRIZATIONS: dict[str, Parametrization] = {
    "softmax": Softmax(),
    "simplex": Simplex(),
    "clamp": Clamp(),
    "sigmoid": Sigmoid(),
}


def register(parametrization: Parametrization) -> None:
  """Makes ``config.parametrization=parametrization.name`` valid (a method module registers its
  own: DrNAS' ``dirichlet``)."""
  PARAMETRIZATIONS[parametrization.name] = parametrization


def get(name: str) -> Parametrization:
  """The parametrization registered under ``name``; lists the valid names on error."""
  if name not in PARAMETRIZATIONS:
    raise ValueError(f"Unknown parametrization {name!r}; valid parametrizations: "
                     f"{', '.join(PARAMETRIZATIONS)}.")
  return PARAMETRIZATIONS[name]
