"""The step budget of every full-size search config against its reference code (issue #29).

For each config: the number of weight steps, of alpha steps and the learning rate of every weight
step that jaxnas would run must equal the reference loop's for the same dataset, batch size and
epochs. The reference side is written out below from each reference loop's structure (file and
line in the comments), not from jaxnas; the jaxnas side comes from what ``search_lib.build_search``
uses (``search_lib.step_budget``, ``search_lib.weights_schedule``, ``parts.EveryK.auto_phase``) on splits made
by ``data.make_search_splits`` from a CIFAR-10-sized stand-in dataset (1x1 images: no data, no
compilation).

A PyTorch ``DataLoader`` keeps the last partial batch (``drop_last=False`` is the default, and no
reference sets it), so ``len(loader) = ceil(n / batch)``.
"""
import dataclasses
import math
import os

import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas import data as data_lib
from jaxnas import search as search_lib
from jaxnas import parts
from jaxnas import spaces
from jaxnas.methods import compose
from test_loop import ROOT, load_config

CIFAR10_TRAIN, CIFAR10_TEST = 50_000, 10_000


@dataclasses.dataclass
class Budget:
  weight_steps: int
  alpha_steps: int | None      # None: not fixed in advance (DARTS-PRIME's dynamic schedule)
  lr: np.ndarray               # the weight learning rate of every weight step


def loader_len(n: int, batch: int) -> int:
  """``len(DataLoader(..., batch_size=batch))`` over n examples, drop_last=False."""
  return math.ceil(n / batch)


def torch_cosine(lr0: float, eta_min: float, t_max: int, t: int) -> float:
  """``CosineAnnealingLR`` (and GAEA's ``CosinePowerAnnealing`` with power 1, one cycle; AutoDL's
  ``CosineAnnealingLR.get_lr``) at scheduler epoch t."""
  return eta_min + (lr0 - eta_min) * (1 + math.cos(math.pi * t / t_max)) / 2


def per_epoch_lrs(epochs, steps_per_epoch, lr0, eta_min, t_max, offset):
  """Epoch e's learning rate (scheduler epoch e + offset) for each of its weight steps."""
  return np.repeat([torch_cosine(lr0, eta_min, t_max, e + offset) for e in range(epochs)],
                   steps_per_epoch)


# ------------------------------------------------------------------------- the reference loops
def quark0_darts(n_train=CIFAR10_TRAIN, batch=64, epochs=50, portion=0.5):
  """quark0/darts cnn/train_search.py: split = floor(0.5 n) (l. 91); train_queue over the first
  split (l. 93-96); per epoch ``scheduler.step()`` first (l. 108-110: epoch e uses T = e + 1),
  then ``for step, (input, target) in enumerate(train_queue)`` (l. 135), each step one
  ``architect.step`` on ``next(iter(valid_queue))`` (l. 143-147) and one weight step."""
  per_epoch = loader_len(math.floor(portion * n_train), batch)
  return Budget(epochs * per_epoch, epochs * per_epoch,
                per_epoch_lrs(epochs, per_epoch, 0.025, 0.001, epochs, offset=1))


def milenas(n_train=CIFAR10_TRAIN, batch=64, epochs=50, portion=0.5):
  """chaoyanghe/MiLeNAS search_algorithm/train_milenas.py: split = floor(0.5 n) (l. 155),
  train_queue (l. 157-160, batch 64 x 1 GPU; run_milenas.sh: --batch_size 64, epochs 50);
  ``lr = scheduler.get_lr()`` at the start of epoch e and ``scheduler.step()`` at its end
  (l. 179, 194: T = e); per step of ``enumerate(train_queue)`` (l. 258) one
  ``architect.step_milenas`` (l. 280) and one weight step."""
  per_epoch = loader_len(math.floor(portion * n_train), batch)
  return Budget(epochs * per_epoch, epochs * per_epoch,
                per_epoch_lrs(epochs, per_epoch, 0.025, 0.001, epochs, offset=0))


def gaea(n_weights, batch, epochs, lr0, eta_min, scheduler_epochs=50):
  """liamcli/gaea_release cnn/train_search.py: ``lr = scheduler.get_lr()`` at the start of epoch
  e (l. 131), ``scheduler.step()`` at its end (l. 184); CosinePowerAnnealing(power 1, 1 cycle,
  max_epoch = run.scheduler_epochs = 50) (cnn/train_utils.py l. 186-188, configs/cnn/config.yaml);
  per step of ``enumerate(train_queue)`` (l. 232) one ``architect.step`` on
  ``next(iter(valid_queue))`` (l. 241, 255) and one weight step."""
  per_epoch = loader_len(n_weights, batch)
  return Budget(epochs * per_epoch, epochs * per_epoch,
                per_epoch_lrs(epochs, per_epoch, lr0, eta_min, scheduler_epochs, offset=0))


def gaea_nb201():
  """Single level on NB201 (README: run.epochs=25): train_loader over the whole CIFAR-10 training
  set, batch 64 (train_utils.py l. 231-238; configs/cnn/mode/search_nasbench201.yaml)."""
  return gaea(CIFAR10_TRAIN, 64, 25, 0.025, 0.001)


def gaea_pcdarts():
  """PC-DARTS space (README: run.epochs=50): train_portion 0.5, batch 256, lr 0.1 -> 0
  (train_utils.py l. 296-311; search_pcdarts.yaml; method_eedarts_space_pcdarts.yaml)."""
  return gaea(math.floor(0.5 * CIFAR10_TRAIN), 256, 50, 0.1, 0.0)


def darts_prime(n_train=CIFAR10_TRAIN, batch=64, epochs=50, schedfreq=10):
  """k8lion/DARTS-PRIME src/train_scheduled_hard_statebn.py (the README recipe, --dyno_split
  --dyno_schedule): train_portion = 1 - 1/(1 + schedfreq) (l. 107-108), split = floor(portion n)
  (l. 186), train_queue (l. 191-194); ``scheduler.step()`` at the start of each epoch (l. 218:
  T = e + 1); one weight step per batch of ``enumerate(train_queue)`` (l. 274); alpha steps on
  the dynamic Fisher schedule (l. 282-283), not fixed in advance."""
  per_epoch = loader_len(math.floor((1 - 1 / (1 + schedfreq)) * n_train), batch)
  return Budget(epochs * per_epoch, None,
                per_epoch_lrs(epochs, per_epoch, 0.025, 0.001, epochs, offset=1))


def autodl_darts(n_train_split=25_000, batch=64, epochs=50):
  """D-X-Y/AutoDL-Projects exps/NAS-Bench-201-algos/DARTS-V1.py and DARTS-V2.py: the search
  loader over SearchDataset, whose length is len(train_split) = 25000 (xautodl/datasets/
  SearchDatasetWrap.py l. 28, 39-40; configs/nas-benchmark/cifar-split.txt), batch 64, 50 epochs,
  warmup 0 (configs/nas-benchmark/algos/DARTS.config); ``w_scheduler.update(epoch, 0.0)`` at the
  start of epoch e (DARTS-V1.py l. 254) and ``update(None, step / len)`` per step (l. 46), but
  ``CosineAnnealingLR.get_lr`` reads only ``current_epoch`` (xautodl/procedures/optimizers.py
  l. 81-95: T = e, T_max = epochs); one weight and one alpha step per batch (l. 43-75)."""
  per_epoch = loader_len(n_train_split, batch)
  return Budget(epochs * per_epoch, epochs * per_epoch,
                per_epoch_lrs(epochs, per_epoch, 0.025, 0.001, epochs, offset=0))


def autodl_gdas(batch=64, epochs=250, alpha_start_epoch=0):
  """AutoDL-Projects exps/NAS-Bench-201-algos/GDAS.py: DARTS-V1's loop (``w_scheduler.update(epoch,
  0.0)`` at epoch start, l. 232; per step of the search loader one weight step, then one alpha
  step, l. 40-69) over 250 epochs (configs/nas-benchmark/algos/GDAS.config: batch 64;
  configs/search-opts/GDAS-NASNet-CIFAR.config: batch 256). ``alpha_start_epoch``: GAEA's EGDAS
  warm-up (no alpha step in the first 50 epochs; methods.md §6(b)) on that loop [assumption: no
  NB201 EGDAS run is recorded]."""
  base = autodl_darts(batch=batch, epochs=epochs)
  per_epoch = loader_len(25_000, batch)
  return Budget(base.weight_steps, (epochs - alpha_start_epoch) * per_epoch, base.lr)


def idarts_1shot1(n_train=CIFAR10_TRAIN, batch=96, epochs=50, portion=0.5, inner=5):
  """MiaoZhang0525/iDARTS NAS-Bench-1Shot1-codes/optimizers/idarts_v2/train_search.py: batch 96,
  50 epochs, 0.025 -> 0.001 (l. 42-49); split = floor(0.5 n) (l. 134), valid_queue over the second
  half (l. 141-144); per epoch ``scheduler.step()`` first (l. 151-153: T = e + 1), then
  ``for step, ... in enumerate(valid_queue): architect.step(train_queue, ...)`` (l. 199-207):
  one alpha step per validation batch, each after ``for step in range(5)`` weight steps on
  ``next(iter(train_queue))`` (architect_approx.py l. 34-50, a fresh shuffle per batch)."""
  alpha_per_epoch = loader_len(n_train - math.floor(portion * n_train), batch)
  return Budget(epochs * inner * alpha_per_epoch, epochs * alpha_per_epoch,
                per_epoch_lrs(epochs, inner * alpha_per_epoch, 0.025, 0.001, epochs, offset=1))


def idarts_nb201(n_valid_split=25_000, batch=64, epochs=30, inner=4, lr0=0.01, eta_min=0.001):
  """MiaoZhang0525/iDARTS NAS_Bench201_codes/exps/algos/iDARTS_V2.ipynb: ``search_func`` loops
  over the search loader (AutoDL's SearchDataset, len 25000, one alpha step per batch),
  ``backward_step_unrolled`` runs ``for step in range(4)`` weight steps on
  ``next(iter(xloader))`` first; ``w_scheduler.update(epoch, 0.0)`` per epoch (xautodl cosine by
  epoch, T = e); ``total_epoch = config.epochs + config.warmup``. Its config, as the notebook's
  log prints it (DARTS_wlr0p01.config): batch 64, 30 epochs, warmup 0, LR 0.01 -> 0.001."""
  alpha_per_epoch = loader_len(n_valid_split, batch)
  return Budget(epochs * inner * alpha_per_epoch, epochs * alpha_per_epoch,
                per_epoch_lrs(epochs, inner * alpha_per_epoch, lr0, eta_min, epochs, offset=0))


def fair_darts(n_train=CIFAR10_TRAIN, batch=128, epochs=50, portion=0.5):
  """xiaomi-automl/FairDARTS fairdarts/train_search.py @ 270cfc9: batch 128, lr 0.005, 50 epochs
  (l. 23-31); split = floor(0.5 n) (l. 104), train_queue over the first split (l. 106-109);
  CosineAnnealingLR(T_max = epochs, eta_min 0.001) (l. 132), ``scheduler.step()`` at the start
  of each epoch (l. 137-138: T = e + 1); per step of ``enumerate(train_queue)`` (l. 185) one
  ``architect.step`` on ``next(iter(valid_queue))`` (l. 194-200) and one weight step."""
  per_epoch = loader_len(math.floor(portion * n_train), batch)
  return Budget(epochs * per_epoch, epochs * per_epoch,
                per_epoch_lrs(epochs, per_epoch, 0.005, 0.001, epochs, offset=1))


def beta_darts_nb201(n_train=CIFAR10_TRAIN, batch=64, epochs=100):
  """Sunshine-Ye/Beta-DARTS nasbench201/train_search.py @ f307704: split_train = floor(0.5 n)
  (l. 138), train_queue over the first half (l. 145-148), batch 64, 100 epochs, 0.025 -> 0.001;
  ``scheduler.step()`` at the start of each epoch (l. 160-161: T = e + 1); per step of
  ``enumerate(train_queue)`` (l. 217) one ``architect.step`` (l. 229) and one weight step: the
  quark0/darts loop over 100 epochs."""
  return quark0_darts(n_train=n_train, batch=batch, epochs=epochs)


def sdarts_nb201(n_train=CIFAR10_TRAIN, batch=64, epochs=100):
  """xiangning-chen/SmoothDARTS nasbench201/train_search.py: split = floor(0.5 n), train_queue
  over the first half (SubsetRandomSampler, drop_last False), batch 64, 100 epochs;
  ``scheduler.step()`` at the start of each epoch (T = e + 1); per step of
  ``enumerate(train_queue)`` one ``architect.step`` on ``next(iter(valid_queue))`` and one
  (perturbed) weight step: the quark0/darts loop over 100 epochs."""
  return quark0_darts(n_train=n_train, batch=batch, epochs=epochs)


def darts_minus(n_train=CIFAR10_TRAIN, batch=64, epochs=50, portion=0.5):
  """Meituan-AutoML/DARTS- src/search/train_search.py @ 66ec8a5: ``scheduler.step(epoch)`` at the
  start of epoch e (T = e), then per step of ``enumerate(train_queue)`` one ``architect.step`` on
  ``next(valid_gen)`` (a cycling pass over the valid queue) and one weight step; the loaders come
  from its ``helper.get_train_val_loaders`` (train_portion 0.5, batch 64; drop_last False assumed,
  not read)."""
  per_epoch = loader_len(math.floor(portion * n_train), batch)
  return Budget(epochs * per_epoch, epochs * per_epoch,
                per_epoch_lrs(epochs, per_epoch, 0.025, 0.001, epochs, offset=0))


def snas(n_train=CIFAR10_TRAIN, batch=96, epochs=150):
  """SNAS-Series/SNAS-Series Analysis/snas/train_search.py @ 9a43adb (``--snas``): one loader over
  the whole training set (single level), batch 96, 150 epochs, ``scheduler.step()`` at the start
  of each epoch (T = e + 1, 0.025 -> 0.001); per step one joint backward and both optimizers'
  steps (an alpha step with every weight step)."""
  per_epoch = loader_len(n_train, batch)
  return Budget(epochs * per_epoch, epochs * per_epoch,
                per_epoch_lrs(epochs, per_epoch, 0.025, 0.001, epochs, offset=1))


def drnas_nb201(n_train=CIFAR10_TRAIN, batch=64, epochs=100):
  """xiangning-chen/DrNAS 201-space/train_search.py: split = floor(0.5 n), train_queue over the
  first half, batch 64, 100 epochs; ``lr = scheduler.get_lr()`` at the start of epoch e and
  ``scheduler.step()`` at its end (T = e, T_max = 100, 0.025 -> 0.001); per step of
  ``enumerate(train_queue)`` one ``architect.step`` (its ``if epoch >= 15`` commented out), then
  one weight step."""
  per_epoch = loader_len(math.floor(0.5 * n_train), batch)
  return Budget(epochs * per_epoch, epochs * per_epoch,
                per_epoch_lrs(epochs, per_epoch, 0.025, 0.001, epochs, offset=0))


def drnas_darts(n_train=CIFAR10_TRAIN, batch=64, stages=(25, 25), warmup=10):
  """DrNAS DARTS-space/train_search.py: train_epochs [25, 25]; one CosineAnnealingLR(T_max = 50,
  0.1 -> 0) carried across the stages (configure_scheduler), stepped at epoch end (T = e); per
  step an ``architect.step`` only ``if epoch >= 10`` with the stage-local epoch ``e``."""
  per_epoch = loader_len(math.floor(0.5 * n_train), batch)
  epochs = sum(stages)
  return Budget(epochs * per_epoch, sum(n - warmup for n in stages) * per_epoch,
                per_epoch_lrs(epochs, per_epoch, 0.1, 0.0, epochs, offset=0))


# Config file (full size) -> the reference budget. No reference code: quickstart.py (scikit-learn
# digits, jaxnas' own demo) and the RARTS configs (the paper's code is not public; rarts_cifar10
# uses quark0/darts' setup and is checked against it below, rarts_nb201 AutoDL's).
REFERENCES = {
    "darts_cifar10.py": quark0_darts,
    "milenas_cifar10.py": milenas,
    "milenas_nb201.py": autodl_darts,   # ours: MiLeNAS' update on AutoDL's DARTS-V1 NB201 setup
    "gaea_nb201.py": gaea_nb201,
    "gaea_pcdarts_cifar10.py": gaea_pcdarts,
    "darts_prime_cifar10.py": darts_prime,
    "darts_nb201.py": autodl_darts,
    "idarts_cifar10.py": idarts_1shot1,
    "idarts_nb201.py": idarts_nb201,
    "rarts_cifar10.py": quark0_darts,   # DARTS' search setup (no RARTS reference code)
    "rarts_nb201.py": autodl_darts,     # AutoDL's DARTS-V1 setup (no RARTS reference code)
    "gdas_nb201.py": autodl_gdas,
    "gdas_cifar10.py": lambda: autodl_gdas(batch=256),
    "gaea_gdas_nb201.py": lambda: autodl_gdas(alpha_start_epoch=50),
    # MiLeNAS' train_gdas.py loop taken as train_milenas.py's, at batch 128, 300 epochs
    # (run_milenas_and_gdas.sh, methods.md §3(b)).
    "milenas_gdas_cifar10.py": lambda: milenas(batch=128, epochs=300),
    "fairdarts_cifar10.py": fair_darts,
    "fairdarts_nb201.py": autodl_darts,  # ours: AutoDL's DARTS-V1 setup (no Fair-DARTS NB201 code)
    "betadarts_nb201.py": beta_darts_nb201,
    # The released DARTS-space script (sota/cnn/train_search.py) is quark0/darts' loop, 50 epochs.
    "betadarts_cifar10.py": quark0_darts,
    "sdarts_nb201.py": sdarts_nb201,
    "sdarts_cifar10.py": quark0_darts,  # SmoothDARTS sota/cnn/train_search.py: quark0/darts' loop
    "dartsminus_cifar10.py": darts_minus,
    "dartsminus_nb201.py": autodl_darts,  # ours: AutoDL's DARTS-V1 setup (no DARTS- NB201 code)
    "snas_nb201.py": snas,  # ours on NB201: SNAS' own loop (its code searches the DARTS space)
    "snas_cifar10.py": snas,
    "drnas_nb201.py": drnas_nb201,
    "drnas_cifar10.py": drnas_darts,
}
VARIANTS = {"darts_nb201.py:second_order": autodl_darts}  # DARTS-V2: same loop, alpha first


# ------------------------------------------------------------------------- jaxnas' side
def cifar10_standin() -> data_lib.ImageDataset:
  """CIFAR-10's sizes with 1x1 grey images: what make_search_splits needs, nothing more."""
  def part(n):
    return np.zeros((n, 1, 1, 1), np.uint8), (np.arange(n) % 10).astype(np.int32)
  (xtr, ytr), (xte, yte) = part(CIFAR10_TRAIN), part(CIFAR10_TEST)
  return data_lib.ImageDataset("cifar10", xtr, ytr, xte, yte, 10, (0.5,), (0.25,))


def jaxnas_budget(config) -> Budget:
  assert config.data.name == "cifar10" and not config.data.max_examples and not config.max_steps
  splits = data_lib.make_search_splits(cifar10_standin(), config.data.split,
                                       train_portion=config.data.train_portion,
                                       seed=config.data.split_seed)
  per_epoch, total = search_lib.step_budget(config, len(splits.weights), len(splits.arch))
  step = np.arange(total)
  alpha = (None if config.method == "darts_prime" and config.darts_prime.schedule == "dynamic"
           else int(np.sum(parts.EveryK(
               k=config.arch_every,
               phase=parts.EveryK.auto_phase(config.arch_every, config.step_order),
               start=config.arch_schedule.start_epoch * per_epoch).due(step, None))))
  if config.method == "drnas":  # its stage-local warm-up (jaxnas.methods.drnas.StageWarmup)
    schedule = compose.read_parts(config, spaces.from_config(config), per_epoch)["schedule"]
    alpha = int(np.sum(schedule.due(step, None)))
  lr = np.asarray(search_lib.weights_schedule(config, per_epoch)(jnp.arange(total)), np.float64)
  return Budget(total, alpha, lr)   # a jaxnas step = one weight step for these methods


def change_points(lr):
  return np.flatnonzero(np.diff(lr) != 0) + 1


@pytest.mark.parametrize("name", sorted(REFERENCES) + sorted(VARIANTS))
def test_step_budget_matches_reference(name):
  file, _, variant = name.partition(":")
  config = load_config(os.path.join(ROOT, "configs", file), arg=variant or None)
  expected = (VARIANTS.get(name) or REFERENCES[file])()
  got = jaxnas_budget(config)
  assert got.weight_steps == expected.weight_steps
  assert got.alpha_steps == expected.alpha_steps
  # The schedule: same length, the LR changes at the same steps, to the same values.
  assert len(got.lr) == len(expected.lr)
  np.testing.assert_array_equal(change_points(got.lr), change_points(expected.lr))
  assert len(np.unique(np.round(got.lr, 7))) == len(np.unique(np.round(expected.lr, 7)))
  np.testing.assert_allclose(got.lr, expected.lr, rtol=1e-5, atol=1e-8)


def test_every_search_config_is_covered():
  """A new search config must get a reference here (or be named as having none)."""
  no_reference = {"quickstart.py", "rarts_width_cifar10.py"}
  files = {f for f in os.listdir(os.path.join(ROOT, "configs"))
           if f.endswith(".py") and f not in ("__init__.py", "default.py")
           and not f.startswith(("eval_", "nao_v2_", "compose_"))}  # compose_: no paper, no reference
  assert files - no_reference - set(REFERENCES) == {"darts_prime_nb201.py"}
  # darts_prime_nb201.py: the reference has no NB201 runs (its CIFAR-10 recipe on NB201); its
  # loop is darts_prime_cifar10's, checked above.


def test_epoch_unit_arch_counts_alpha_batches_times_arch_every():
  """``epoch_unit='arch'``: T x ceil(n_arch / b_arch) steps per epoch, floor with 'drop'."""
  config = load_config(os.path.join(ROOT, "configs", "idarts_cifar10.py"), arg=None)
  assert search_lib.step_budget(config, 25_000, 25_000) == (5 * 261, 50 * 5 * 261)
  config.arch_batch_size = 100
  assert search_lib.step_budget(config, 25_000, 25_050)[0] == 5 * 251
  config.data.partial_batch = "drop"
  assert search_lib.step_budget(config, 25_000, 25_050)[0] == 5 * 250
  config.epoch_unit = "weights"
  assert search_lib.step_budget(config, 25_000, 25_050)[0] == 25_000 // 96


def test_fill_keeps_the_partial_batch_at_a_fixed_shape():
  """'fill': ceil(n/b) batches per pass, every example once, the last batch topped up from the
  pass's own start; the next pass is a new permutation."""
  n, b = 103, 10
  spe = data_lib.steps_per_epoch(n, b, "fill")
  assert spe == 11 and data_lib.steps_per_epoch(n, b, "drop") == 10
  batches = [data_lib.batch_indices(1, s, n, b, stream=0, with_replacement=False,
                                    partial_batch="fill") for s in range(2 * spe)]
  assert all(len(x) == b and len(set(x)) == b for x in batches)
  first = np.concatenate(batches[:spe])
  assert set(first) == set(range(n))
  np.testing.assert_array_equal(batches[spe - 1][3:], first[:7])
  with pytest.raises(ValueError, match="partial_batch"):
    data_lib.steps_per_epoch(n, b, "keep")


@pytest.mark.parametrize("field,value", [("epoch_unit", "alpha"), ("data.partial_batch", "keep")])
def test_bad_epoch_fields_are_rejected(field, value):
  from jaxnas import config_checks
  config = load_config(os.path.join(ROOT, "configs", "idarts_nb201.py"), arg=None)
  section, _, key = field.rpartition(".")
  (config[section] if section else config)[key] = value
  with pytest.raises(ValueError, match=f"config.{field}="):
    config_checks.validate(config)
