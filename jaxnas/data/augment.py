"""On-device augmentation and normalization (pure jnp; jit-able with static options).

``augment`` reproduces the DARTS / NB201 training transform, per image and independently:
``RandomCrop(size, padding=crop_padding)`` (zero padding) -> ``RandomHorizontalFlip(0.5)`` ->
``ToTensor`` + ``Normalize(mean, std)`` -> ``Cutout(cutout)`` (DARTS' Cutout: a square of side
``cutout`` centred uniformly on the image, clipped at the borders, set to 0 after normalization).
Padding pixels are 0 in pixel space, i.e. ``-mean/std`` after normalization, as in torchvision.

Use with static options, e.g. ``jax.jit(functools.partial(augment, mean=ds.mean, std=ds.std,
cutout=16))`` or ``jax.jit(augment, static_argnames=('mean', 'std', 'crop_padding', 'flip',
'cutout'))``.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from jax import lax


def _per_channel(values: Sequence[float] | jax.Array, ndim: int) -> jax.Array:
  """``values`` (C,) as float32 shaped (1, ..., 1, C) for rank-``ndim`` NHWC arrays."""
  v = jnp.asarray(values, jnp.float32)
  return v.reshape((1,) * (ndim - 1) + (-1,))


def normalize(images_uint8: jax.Array, mean: Sequence[float], std: Sequence[float]) -> jax.Array:
  """``(images / 255 - mean) / std`` in float32; channels last, any leading shape."""
  x = jnp.asarray(images_uint8).astype(jnp.float32) / 255.0
  return (x - _per_channel(mean, x.ndim)) / _per_channel(std, x.ndim)


def random_crop(key: jax.Array, images: jax.Array, padding: int) -> jax.Array:
  """Pads (N, H, W, C) ``images`` by ``padding`` zeros and takes one random HxW crop per image."""
  if padding == 0:
    return images
  n, h, w, c = images.shape
  padded = jnp.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
  offsets = jax.random.randint(key, (n, 2), 0, 2 * padding + 1, dtype=jnp.int32)

  def crop(image, offset):
    return lax.dynamic_slice(image, (offset[0], offset[1], 0), (h, w, c))

  return jax.vmap(crop)(padded, offsets)


def random_flip(key: jax.Array, images: jax.Array) -> jax.Array:
  """Flips each (N, H, W, C) image left-right with probability 1/2."""
  flip = jax.random.bernoulli(key, 0.5, (images.shape[0], 1, 1, 1))
  return jnp.where(flip, images[:, :, ::-1, :], images)


def cutout_mask(key: jax.Array, shape: tuple[int, ...], size: int) -> jax.Array:
  """Boolean (N, H, W, 1) mask, True inside each image's Cutout square (DARTS' ``Cutout``).

  As in DARTS: centre ``(y, x)`` uniform over the pixels, rows ``clip(y - size//2, 0, H)`` to
  ``clip(y + size//2, 0, H)`` (exclusive), likewise for columns.
  """
  n, h, w = shape[0], shape[1], shape[2]
  ky, kx = jax.random.split(key)
  y = jax.random.randint(ky, (n, 1, 1, 1), 0, h, dtype=jnp.int32)
  x = jax.random.randint(kx, (n, 1, 1, 1), 0, w, dtype=jnp.int32)
  rows = lax.broadcasted_iota(jnp.int32, (1, h, 1, 1), 1)
  cols = lax.broadcasted_iota(jnp.int32, (1, 1, w, 1), 2)
  half = size // 2
  in_rows = (rows >= jnp.clip(y - half, 0, h)) & (rows < jnp.clip(y + half, 0, h))
  in_cols = (cols >= jnp.clip(x - half, 0, w)) & (cols < jnp.clip(x + half, 0, w))
  return in_rows & in_cols


def augment(key: jax.Array, images_uint8: jax.Array, *, mean: Sequence[float],
            std: Sequence[float], crop_padding: int = 4, flip: bool = True,
            cutout: int = 0) -> jax.Array:
  """Random crop, flip, normalization and Cutout of an (N, H, W, C) uint8 batch -> float32.

  Args:
    key: PRNG key; every image gets independent randomness.
    images_uint8: (N, H, W, C) uint8 images.
    mean, std: per-channel normalization constants in [0, 1] pixel units.
    crop_padding: zero padding of the random crop (0 disables cropping).
    flip: random horizontal flips (False disables).
    cutout: side of the Cutout square (0 disables).

  With ``crop_padding=0, flip=False, cutout=0`` the result equals ``normalize(images, mean, std)``.
  """
  images = jnp.asarray(images_uint8)
  if images.ndim != 4:
    raise ValueError(f"augment expects an (N, H, W, C) batch, got shape {images.shape}")
  if crop_padding < 0 or cutout < 0:
    raise ValueError(f"crop_padding and cutout must be >= 0, got {crop_padding}, {cutout}")
  k_crop, k_flip, k_cut = jax.random.split(key, 3)
  images = random_crop(k_crop, images, int(crop_padding))
  if flip:
    images = random_flip(k_flip, images)
  x = normalize(images, mean, std)
  if cutout:
    x = jnp.where(cutout_mask(k_cut, x.shape, int(cutout)), 0.0, x)
  return x
