r"""SDARTS (Chen & Hsieh, "Stabilizing Differentiable Architecture Search via Perturbation-based
Regularization", ICML 2020): the weight step sees a perturbed architecture, which smooths the
validation loss landscape in alpha (a smaller dominant Hessian eigenvalue, no collapse to skips).

A forward transform of the weight step only (``config.arch_perturbation``; the alpha step, the
derivation and the evaluation see the clean mixing ``A = activate(alpha)``)::

    RS  (name='random'):       A' = clip(A + U(-eps, eps))
    ADV (name='adversarial'):  A' = PGD_eps(A): A_0 = clip(A + U(-eps, eps)); for t < T:
                                 A_{t+1} = clip(A + clamp(A_t + eta sign(dL/dA_t) - A, -eps, eps))
                               (T = attack_steps = 7, eta = 2 eps / T; L the training loss of the
                               weight step's batch at the current weights, BatchNorm in evaluation
                               mode); A' = A if L(A) > L(A_T) (the attack lowered the loss), else A_T
    w <- WeightOpt(w, grad_w L_train(w, A'))

with ``clip`` the reference's row rule (clamp to [0, 1]; a row summing to 0 gets a 1 at its argmax;
divide by the row sum) and eps constant within an epoch e (0-based)::

    eps(e) = eps_min + (eps_max - eps_min) * e / epochs        (0.03 -> 0.3, never reaching 0.3)

Reference: xiangning-chen/SmoothDARTS @ d3dbfed, ``sota/cnn/train_search.py:169-171`` (eps),
``:213-234`` (alpha step first on the clean alpha, then ``softmax_arch_parameters``, the
perturbation, the weight step on the perturbed weights, ``restore_arch_parameters``),
``sota/cnn/model_search.py:157-177`` (``clip``), ``attacker/perturb.py:11-44`` (``Linf_PGD_alpha``:
random start, 7 sign steps of ``2 eps / steps``, the eps-ball projection then ``clip``, eval-mode
BatchNorm, the revert) and ``:47-50`` (``Random_alpha``); the same code in ``nasbench201/``.

Where jaxnas differs: the perturbation is applied to the space's op-weight cells
(``space.cell_keys()``; PC-DARTS' edge weights are left clean); the perturbed value enters the weight
forward as ``A + stop_gradient(A' - A)`` (the same value; the weight step takes no alpha gradient,
so nothing else changes). The perturbation is a draw of its own per step (a key of the step's key).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections

from jaxnas import parts
from jaxnas import spaces
from jaxnas.methods import compose

PERTURBATIONS = ("none", "random", "adversarial")


def clip_rows(a: jax.Array) -> jax.Array:
  """SDARTS' ``clip``: clamp to [0, 1]; a row whose sum is 0 gets a 1 at its argmax; each row is
  divided by its sum (not a projection onto the simplex: it may leave the eps-ball)."""
  a = jnp.clip(a, 0.0, 1.0)
  total = jnp.sum(a, axis=-1, keepdims=True)
  first = jax.nn.one_hot(jnp.argmax(a, axis=-1), a.shape[-1], dtype=a.dtype)
  a = jnp.where(total > 0, a, first)
  return a / jnp.sum(a, axis=-1, keepdims=True)


def epsilon(step: jax.Array, eps_min: float, eps_max: float, epochs: int,
            steps_per_epoch: int) -> jax.Array:
  """``eps(e) = eps_min + (eps_max - eps_min) * e / epochs``, e = step // steps_per_epoch, held at
  ``eps_max`` past ``epochs``."""
  return eps_min + (eps_max - eps_min) * parts.epoch_progress(step, steps_per_epoch, epochs)


def random_perturbation(mixing: dict, keys: tuple[str, ...], key: jax.Array,
                        eps: jax.Array) -> dict:
  """SDARTS-RS: ``clip(A + U(-eps, eps))`` on the leaves ``keys`` (one key per leaf, in order)."""
  out = dict(mixing)
  for k, sub in zip(keys, jax.random.split(key, len(keys))):
    noise = jax.random.uniform(sub, mixing[k].shape, mixing[k].dtype, -1.0, 1.0) * eps
    out[k] = clip_rows(mixing[k] + noise)
  return out


def pgd_perturbation(mixing: dict, keys: tuple[str, ...], key: jax.Array, eps: jax.Array,
                     steps: int, loss: Callable[[dict], jax.Array]) -> dict:
  """SDARTS-ADV: L_inf PGD on the leaves ``keys`` of the mixing, maximizing ``loss(mixing)`` from
  a random start, ``steps`` sign steps of ``2 eps / steps``, each projected to the eps-ball around
  the clean ``A`` and clipped; the clean ``A`` if the attack ended at a lower loss. Returns the
  perturbed mixing (a constant: no gradient flows through the attack)."""
  clean = jax.tree.map(jax.lax.stop_gradient, mixing)
  eta = 2.0 * eps / steps
  attacked = random_perturbation(clean, keys, key, eps)

  def sign_step(_, current):
    grad = jax.grad(loss)(current)
    out = dict(current)
    for k in keys:
      moved = current[k] + eta * jnp.sign(grad[k])
      out[k] = clip_rows(clean[k] + jnp.clip(moved - clean[k], -eps, eps))
    return out
  attacked = jax.lax.fori_loop(0, steps, sign_step, attacked)
  keep_clean = loss(clean) > loss(attacked)
  return jax.tree.map(lambda c, a: jnp.where(keep_clean, c, a), clean, attacked)


@dataclasses.dataclass(frozen=True)
class Perturbation:
  """SDARTS' perturbation of the weight step's mixing (the module docstring has the equations):
  ``adversarial=False`` is SDARTS-RS, ``True`` SDARTS-ADV. Metric ``perturb/epsilon``."""
  cell_keys: tuple[str, ...]
  adversarial: bool = False
  eps_min: float = 0.03
  eps_max: float = 0.3
  epochs: int = 1
  steps_per_epoch: int = 1
  attack_steps: int = 7
  forwards: tuple[str, ...] = ("weights",)

  def __post_init__(self):
    if not 0 <= self.eps_min <= self.eps_max:
      parts._fail("arch_perturbation.epsilon_min", self.eps_min,
                  f"use 0 <= epsilon_min <= epsilon_max (epsilon_max = {self.eps_max}).")
    parts._int_at_least("arch_perturbation.attack_steps", self.attack_steps, 1)
    parts._int_at_least("epochs", self.epochs, 1)

  @property
  def name(self) -> str:
    return "adversarial" if self.adversarial else "random"

  def epsilon(self, step: jax.Array) -> jax.Array:
    return epsilon(step, self.eps_min, self.eps_max, self.epochs, self.steps_per_epoch)

  def wrap(self, mix: Callable[[Any], Any], ctx: parts.ForwardContext) -> Callable[[Any], Any]:
    eps = self.epsilon(ctx.step)

    def perturbed(arch):
      clean = mix(arch)
      if self.adversarial:
        target = pgd_perturbation(clean, self.cell_keys, ctx.key, eps, self.attack_steps,
                                  lambda m: ctx.loss(lambda _: m, train=False))
      else:
        target = random_perturbation(clean, self.cell_keys, ctx.key, eps)
      return {k: v + jax.lax.stop_gradient(target[k] - v) if k in self.cell_keys else v
              for k, v in clean.items()}
    return perturbed

  def metrics(self, step: jax.Array) -> dict[str, jax.Array]:
    return {"perturb/epsilon": self.epsilon(step)}


def read_perturbation(config: ml_collections.ConfigDict, space: spaces.SearchSpace,
                      steps_per_epoch: int) -> Perturbation | None:
  """``config.arch_perturbation`` -> the weight step's perturbation, or None for ``'none'``."""
  block = config.arch_perturbation
  if block.name not in PERTURBATIONS:
    raise ValueError(f"config.arch_perturbation.name={block.name!r} is not valid; choose one of: "
                     f"{', '.join(PERTURBATIONS)}.")
  if block.name == "none":
    return None
  if config.parametrization not in ("softmax", "simplex"):
    raise ValueError(f"config.arch_perturbation.name={block.name!r} perturbs each edge's op "
                     f"weights on the simplex (SDARTS: softmax(alpha)), which "
                     f"parametrization={config.parametrization!r} does not give; use 'softmax'.")
  compose.check_every_op_computed(config, "config.arch_perturbation", "moves every op's weight")
  return Perturbation(cell_keys=tuple(space.cell_keys()), adversarial=block.name == "adversarial",
                      eps_min=float(block.epsilon_min), eps_max=float(block.epsilon_max),
                      epochs=int(config.epochs), steps_per_epoch=max(int(steps_per_epoch), 1),
                      attack_steps=int(block.attack_steps))


compose.register_transform(read_perturbation)
