"""The optimizer chains equal PyTorch's update equations, computed by hand."""
import jax.numpy as jnp
import numpy as np
import optax

from jaxnas import optim


def run(tx, params, grads_seq):
  state = tx.init(params)
  for g in grads_seq:
    updates, state = tx.update(g, state, params)
    params = optax.apply_updates(params, updates)
  return params


GRADS = [np.array([3.0, -4.0, 0.5], np.float32), np.array([0.1, 0.2, -0.3], np.float32),
         np.array([10.0, 0.0, -2.0], np.float32)]
W0 = np.array([1.0, -2.0, 0.5], np.float32)


def test_sgd_matches_pytorch_sgd_with_momentum_l2_and_clipping():
  lr, mu, wd, clip = 0.1, 0.9, 0.01, 2.0
  w, buf = W0.astype(np.float64), None
  for g in GRADS:  # torch.nn.utils.clip_grad_norm_ then torch.optim.SGD.step
    g = g.astype(np.float64)
    g = g * min(1.0, clip / (np.linalg.norm(g) + 1e-6))
    d = g + wd * w
    buf = d if buf is None else mu * buf + d
    w = w - lr * buf
  got = run(optim.sgd_pytorch(lr, momentum=mu, weight_decay=wd, clip_norm=clip), jnp.asarray(W0),
            [jnp.asarray(g) for g in GRADS])
  np.testing.assert_allclose(got, w, rtol=1e-5)


def test_sgd_nesterov_matches_pytorch():
  lr, mu, wd = 0.05, 0.9, 5e-4
  w, buf = W0.astype(np.float64), None
  for g in GRADS:
    d = g + wd * w
    buf = d if buf is None else mu * buf + d
    w = w - lr * (d + mu * buf)
  got = run(optim.sgd_pytorch(lr, momentum=mu, weight_decay=wd, clip_norm=None, nesterov=True),
            jnp.asarray(W0), [jnp.asarray(g) for g in GRADS])
  np.testing.assert_allclose(got, w, rtol=1e-5)


def test_adam_matches_pytorch_adam_with_l2():
  lr, b1, b2, eps, wd = 3e-2, 0.5, 0.999, 1e-8, 1e-3
  a, m, v = W0.astype(np.float64), 0.0, 0.0
  for t, g in enumerate(GRADS, start=1):  # torch.optim.Adam(weight_decay=wd), amsgrad off
    g = g + wd * a
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    denom = np.sqrt(v) / np.sqrt(1 - b2**t) + eps
    a = a - lr / (1 - b1**t) * m / denom
  got = run(optim.adam_l2(lr, b1=b1, b2=b2, eps=eps, weight_decay=wd), jnp.asarray(W0),
            [jnp.asarray(g) for g in GRADS])
  np.testing.assert_allclose(got, a, rtol=1e-5)


def test_cosine_schedule_matches_cosine_annealing_lr():
  base, low, epochs, per_epoch = 0.025, 0.001, 50, 10
  torch_lr = lambda e: low + (base - low) * (1 + np.cos(np.pi * e / epochs)) / 2
  darts = optim.cosine_schedule(base, low, epochs, per_epoch, epoch_offset=1)
  plain = optim.cosine_schedule(base, low, epochs, per_epoch)
  per_step = optim.cosine_schedule(base, low, epochs, per_epoch, per_step=True)
  for step in [0, 5, 9, 10, 251, 499]:
    epoch = step // per_epoch
    np.testing.assert_allclose(plain(jnp.asarray(step)), torch_lr(epoch), rtol=1e-5)
    np.testing.assert_allclose(darts(jnp.asarray(step)), torch_lr(epoch + 1), rtol=1e-5)
    np.testing.assert_allclose(per_step(jnp.asarray(step)), torch_lr(step / per_epoch), rtol=1e-5)
  np.testing.assert_allclose(darts(jnp.asarray(10_000)), low, rtol=1e-5)
