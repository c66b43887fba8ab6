"""The optimizer chains equal PyTorch's update equations, computed by hand; each config's
learning-rate schedule equals its reference code's."""
import os

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxnas import search as search_lib
from jaxnas import optim
from test_loop import ROOT
from test_loop import load_config


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
  for step in [0, 5, 9, 10, 251, 499]:
    epoch = step // per_epoch
    np.testing.assert_allclose(plain(jnp.asarray(step)), torch_lr(epoch), rtol=1e-5)
    np.testing.assert_allclose(darts(jnp.asarray(step)), torch_lr(epoch + 1), rtol=1e-5)
  np.testing.assert_allclose(darts(jnp.asarray(10_000)), low, rtol=1e-5)


def autodl_cosine_lr(base_lr, eta_min, epochs, warmup, current_epoch, current_iter):
  """AutoDL ``xautodl/procedures/optimizers.py`` ``CosineAnnealingLR.get_lr`` (T_max = epochs)."""
  if warmup <= current_epoch < epochs:
    last_epoch = current_epoch - warmup
    return eta_min + (base_lr - eta_min) * (1 + np.cos(np.pi * last_epoch / epochs)) / 2
  if current_epoch >= epochs:
    return eta_min
  return (current_epoch / warmup + current_iter / warmup) * base_lr


def test_darts_nb201_schedule_is_autodl_per_epoch_cosine():
  # AutoDL DARTS-V1/V2: w_scheduler.update(epoch, 0.0) at the start of epoch 0, 1, ..., then
  # scheduler.update(None, step / len(loader)) before every step; DARTS.config: LR 0.025,
  # eta_min 0.001, epochs 50, warmup 0. Without warm-up only the epoch counts.
  config = load_config(os.path.join(ROOT, "configs", "darts_nb201.py"), "")
  per_epoch = 7
  lr = search_lib.weights_schedule(config, per_epoch)
  for step in [0, 3, 6, 7, 100, 343, 349]:
    epoch, it = divmod(step, per_epoch)
    want = autodl_cosine_lr(0.025, 0.001, 50, 0, epoch, it / per_epoch)
    np.testing.assert_allclose(lr(jnp.asarray(step)), want, rtol=1e-6)
  assert float(lr(jnp.asarray(0))) == float(lr(jnp.asarray(per_epoch - 1)))
  # The last epoch (49) still uses lr(49), not eta_min (float32 cosine near pi: atol).
  np.testing.assert_allclose(lr(jnp.asarray(50 * per_epoch - 1)), 0.00102368, atol=1e-7)


def test_idarts_nb201_schedule_matches_the_reference_run_log():
  # NAS_Bench201_codes/exps/algos/iDARTS_V2.ipynb (MiaoZhang0525/iDARTS): "[Search the 000-030-th
  # epoch] ... LR=0.010000000000000002", then 0.00997534852915723, 0.009901664203302126, ... and
  # 0.008145033635316129 at epoch 9 (AutoDL's scheduler, LR 0.01, eta_min 0.001, epochs 30).
  config = load_config(os.path.join(ROOT, "configs", "idarts_nb201.py"), "")
  assert config.epochs == 30
  lr = search_lib.weights_schedule(config, 5)
  for epoch, logged in [(0, 0.010000000000000002), (1, 0.00997534852915723),
                        (2, 0.009901664203302126), (9, 0.008145033635316129)]:
    np.testing.assert_allclose(lr(jnp.asarray(5 * epoch + 4)), logged, rtol=1e-6)


# Per config: (base lr, min lr, cosine length T, epochs run, offset): epoch e (from 0) uses
# lr(e + offset) = min + (base - min)(1 + cos(pi (e + offset) / T)) / 2, constant within the epoch.
REFERENCE_SCHEDULES = {
    # quark0/darts cnn/train_search.py:108-110: scheduler.step() at epoch start (PyTorch 0.3).
    "darts_cifar10.py": (0.025, 0.001, 50, 50, 1),
    # MiLeNAS search_algorithm/train_milenas.py:178-194: get_lr() at epoch start, step() at end.
    "milenas_cifar10.py": (0.025, 0.001, 50, 50, 0),
    # gaea_release cnn/train_search.py:130-184 + lr_schedulers.py CosinePowerAnnealing(power 1,
    # 1 cycle, max_epoch = run.scheduler_epochs = 50), stepped at epoch end; run.epochs 25 / 50.
    "gaea_nb201.py": (0.025, 0.001, 50, 25, 0),
    "gaea_pcdarts_cifar10.py": (0.1, 0.0, 50, 50, 0),
    # DARTS-PRIME src/train_scheduled.py:139-144: scheduler.step() at epoch start (PyTorch >= 1.4).
    "darts_prime_cifar10.py": (0.025, 0.001, 50, 50, 1),
    "darts_prime_nb201.py": (0.025, 0.001, 50, 50, 1),
    # AutoDL DARTS.config and w_scheduler.update(epoch, 0.0) at epoch start; RARTS (no public code)
    # reuses AutoDL's setup on NB201 and quark0's on CIFAR-10.
    "darts_nb201.py": (0.025, 0.001, 50, 50, 0),
    "rarts_nb201.py": (0.025, 0.001, 50, 50, 0),
    "rarts_cifar10.py": (0.025, 0.001, 50, 50, 1),
    # iDARTS: the NB201 run's DARTS_wlr0p01.config (above); NAS-Bench-1Shot1 train_search.py:151-153
    # scheduler.step() at epoch start.
    "idarts_nb201.py": (0.01, 0.001, 30, 30, 0),
    "idarts_cifar10.py": (0.025, 0.001, 50, 50, 1),
}


@pytest.mark.parametrize("config_file", sorted(REFERENCE_SCHEDULES))
def test_each_config_schedule_is_its_reference_schedule(config_file):
  base, low, length, epochs, offset = REFERENCE_SCHEDULES[config_file]
  config = load_config(os.path.join(ROOT, "configs", config_file), "")
  assert config.epochs == epochs
  per_epoch = 3
  lr = search_lib.weights_schedule(config, per_epoch)
  for epoch in [0, 1, epochs // 2, epochs - 1]:
    want = low + (base - low) * (1 + np.cos(np.pi * (epoch + offset) / length)) / 2
    for it in range(per_epoch):
      np.testing.assert_allclose(lr(jnp.asarray(epoch * per_epoch + it)), want, rtol=1e-6,
                                 atol=1e-9)
