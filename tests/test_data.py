"""Tests of jaxnas.data: registry, loaders (on tiny fake files), splits, sampling, augmentation."""
from __future__ import annotations

import functools
import gzip
import io
import os
import pickle
import struct
import sys
import tarfile

import jax
import jax.numpy as jnp
import json

import numpy as np
import pytest

from jaxnas import data
from jaxnas.data import datasets as datasets_lib
from jaxnas.data import formats

SHARED_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")


# ----------------------------------------------------------------------------- fake files
def _add(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
  info = tarfile.TarInfo(name)
  info.size = len(payload)
  tar.addfile(info, io.BytesIO(payload))


def _write_tar(path, members: dict[str, bytes]) -> None:
  with tarfile.open(path, "w:gz") as tar:
    for name, payload in members.items():
      _add(tar, name, payload)


def _cifar_records(rng, n, label_bytes, num_classes):
  """n records; returns (bytes, NHWC images, class labels, all label bytes)."""
  chw = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
  lab = rng.integers(0, num_classes, (n, label_bytes), dtype=np.uint8)
  rows = np.concatenate([lab, chw.reshape(n, -1)], axis=1)
  return rows.tobytes(), chw.transpose(0, 2, 3, 1), lab


def _fake_cifar10(directory, per_file=3, n_test=4, skip=None):
  rng = np.random.default_rng(0)
  members, train_x, train_y = {}, [], []
  for b in range(1, 6):
    payload, x, lab = _cifar_records(rng, per_file, 1, 10)
    train_x.append(x), train_y.append(lab[:, 0])
    members[f"cifar-10-batches-bin/data_batch_{b}.bin"] = payload
  payload, test_x, test_lab = _cifar_records(rng, n_test, 1, 10)
  members["cifar-10-batches-bin/test_batch.bin"] = payload
  members["cifar-10-batches-bin/batches.meta.txt"] = "\n".join(formats.CIFAR10_CLASSES).encode()
  members.pop(skip, None)
  _write_tar(os.path.join(directory, "cifar-10-binary.tar.gz"), members)
  return (np.concatenate(train_x), np.concatenate(train_y)), (test_x, test_lab[:, 0])


def _write_idx(path, array, magic):
  header = struct.pack(">i", magic) + b"".join(struct.pack(">i", d) for d in array.shape)
  with gzip.open(path, "wb") as f:
    f.write(header + array.astype(np.uint8).tobytes())


def _fake_fashion_mnist(directory, n_train=12, n_test=5):
  rng = np.random.default_rng(1)
  out = {}
  for prefix, n in (("train", n_train), ("t10k", n_test)):
    x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, (n,), dtype=np.uint8)
    _write_idx(os.path.join(directory, f"{prefix}-images-idx3-ubyte.gz"), x, 2051)
    _write_idx(os.path.join(directory, f"{prefix}-labels-idx1-ubyte.gz"), y, 2049)
    out[prefix] = (x, y)
  return out


def _cache(tmp_path):
  return str(tmp_path / "cache")


# ----------------------------------------------------------------------------- registry
def test_every_registered_dataset_is_documented():
  doc = datasets_lib.__doc__
  assert set(data.DATASETS) == {"cifar10", "cifar100", "cifar10_jpeg", "imagenet16_120",
                                "imagenet", "fashion_mnist", "digits", "synthetic"}
  for name, loader in data.DATASETS.items():
    assert f"``{name}``" in doc, name
    assert loader.__doc__ and loader.__doc__.strip(), name


def test_unknown_dataset_lists_valid_names():
  with pytest.raises(ValueError) as e:
    data.get_dataset("imagenet21k")
  for name in data.DATASETS:
    assert name in str(e.value)


def test_unknown_option_is_rejected():
  with pytest.raises(ValueError, match="num_train"):
    data.get_dataset("synthetic", num_trian=3)


# ----------------------------------------------------------------------------- digits / synthetic
def test_digits_shapes_and_deterministic_split():
  ds = data.get_dataset("digits")
  assert ds.name == "digits" and ds.num_classes == 10 and ds.image_shape == (8, 8, 1)
  assert ds.train_images.shape == (1437, 8, 8, 1) and ds.test_images.shape == (360, 8, 8, 1)
  assert ds.train_images.dtype == np.uint8 and ds.train_labels.dtype == np.int32
  assert ds.train_images.max() == 255 and ds.train_images.min() == 0
  assert set(np.unique(ds.train_labels)) == set(range(10)) == set(np.unique(ds.test_labels))
  np.testing.assert_allclose(ds.mean, [ds.train_images.mean() / 255], rtol=1e-6)
  np.testing.assert_allclose(ds.std, [(ds.train_images / 255).std()], rtol=1e-6)
  again = data.get_dataset("digits", data_dir="/ignored")
  np.testing.assert_array_equal(ds.train_images, again.train_images)
  np.testing.assert_array_equal(ds.test_labels, again.test_labels)


def test_synthetic_is_deterministic_and_learnable():
  kw = dict(num_train=200, num_test=100, image_size=6, channels=2, num_classes=5)
  a, b = data.get_dataset("synthetic", seed=3, **kw), data.get_dataset("synthetic", seed=3, **kw)
  c = data.get_dataset("synthetic", seed=4, **kw)
  np.testing.assert_array_equal(a.train_images, b.train_images)
  np.testing.assert_array_equal(a.test_labels, b.test_labels)
  assert not np.array_equal(a.train_images, c.train_images)
  assert a.train_images.shape == (200, 6, 6, 2) and a.test_images.shape == (100, 6, 6, 2)
  assert a.num_classes == 5 and len(a.mean) == 2
  # a nearest-centroid classifier fits it: there is class signal, not only noise
  x_tr, x_te = (x.reshape(len(x), -1).astype(np.float64) for x in (a.train_images, a.test_images))
  centroids = np.stack([x_tr[a.train_labels == k].mean(0) for k in range(5)])
  pred = np.argmin(((x_te[:, None] - centroids[None]) ** 2).sum(-1), axis=1)
  assert (pred == a.test_labels).mean() > 0.9


@pytest.mark.parametrize("option", [{"num_classes": 1}, {"num_train": 0}, {"image_size": 2.5}])
def test_synthetic_rejects_bad_options(option):
  with pytest.raises(ValueError):
    data.get_dataset("synthetic", **option)


def test_image_dataset_validates_arrays():
  x, y = np.zeros((4, 2, 2, 1), np.uint8), np.zeros(4, np.int32)
  with pytest.raises(ValueError, match="uint8"):
    data.ImageDataset("x", x.astype(np.float32), y, x, y, 2, (0.5,), (0.5,))
  with pytest.raises(ValueError, match="int32"):
    data.ImageDataset("x", x, y.astype(np.int64), x, y, 2, (0.5,), (0.5,))
  with pytest.raises(ValueError, match="mean/std"):
    data.ImageDataset("x", x, y, x, y, 2, (0.5, 0.5), (0.5, 0.5))


# ----------------------------------------------------------------------------- splits
def _indexed(name, n_train, n_test):
  """A dataset whose image i stores i in two pixels (train) or 30000 + i (test)."""
  def make(n, offset):
    x = np.zeros((n, 4, 4, 1), np.uint8)
    ids = np.arange(n) + offset
    x[:, 0, 0, 0], x[:, 0, 1, 0] = ids // 256, ids % 256
    return x, (ids % 3).astype(np.int32)
  (xtr, ytr), (xte, yte) = make(n_train, 0), make(n_test, 30000)
  return data.ImageDataset(name, xtr, ytr, xte, yte, 3, (0.5,), (0.5,))


def _ids(split):
  return split.images[:, 0, 0, 0].astype(np.int64) * 256 + split.images[:, 0, 1, 0]


def test_darts_split_first_portion_in_index_order():
  ds = _indexed("cifar10", 100, 20)
  s = data.make_search_splits(ds, "darts")
  np.testing.assert_array_equal(_ids(s.weights), np.arange(50))
  np.testing.assert_array_equal(_ids(s.arch), np.arange(50, 100))
  assert s.eval is s.arch and len(s.weights) == 50
  s = data.make_search_splits(ds, "darts", train_portion=0.8)
  assert (len(s.weights), len(s.arch)) == (80, 20)
  assert not set(_ids(s.weights)) & set(_ids(s.arch))


def test_full_split_uses_everything():
  ds = _indexed("digits", 60, 15)
  s = data.make_search_splits(ds, "full", train_portion=1.0)   # portion unused by 'full'
  np.testing.assert_array_equal(_ids(s.weights), np.arange(60))
  np.testing.assert_array_equal(_ids(s.arch), np.arange(60))
  np.testing.assert_array_equal(_ids(s.eval), 30000 + np.arange(15))


def test_nb201_split_cifar10_like_is_seeded_random_half():
  ds = _indexed("cifar10", 100, 20)
  s = data.make_search_splits(ds, "nb201")
  w, a = set(_ids(s.weights)), set(_ids(s.arch))
  assert len(w) == len(a) == 50 and not w & a and w | a == set(range(100))
  assert w != set(range(50))                                    # not the DARTS halves
  assert s.eval is s.arch
  again = data.make_search_splits(ds, "nb201")
  np.testing.assert_array_equal(_ids(again.weights), _ids(s.weights))
  other = data.make_search_splits(ds, "nb201", seed=1)
  assert set(_ids(other.weights)) != w


@pytest.mark.parametrize("name", ["cifar100", "imagenet16_120"])
def test_nb201_split_uses_test_half_for_arch(name):
  ds = _indexed(name, 40, 21)
  s = data.make_search_splits(ds, "nb201")
  np.testing.assert_array_equal(_ids(s.weights), np.arange(40))
  xvalid = set(_ids(s.arch))
  assert len(xvalid) == 10 and xvalid <= set(30000 + np.arange(21))
  np.testing.assert_array_equal(_ids(s.eval), _ids(s.arch))
  assert not xvalid & set(_ids(s.weights))


def _autodl_split_file(path, **lists):
  """A split file in AutoDL's format ({"key": ["int", ["1", ...]]}), as its load_config reads."""
  path.write_text(json.dumps({k: ["int", [str(i) for i in v]] for k, v in lists.items()}))
  return str(path)


def test_eval_role_decides_where_a_genotype_may_be_selected(tmp_path):
  roles = {scheme: data.make_search_splits(_indexed(name, 40, 20), scheme)
           for scheme, name in [("darts", "cifar10"), ("full", "cifar10"), ("nb201", "cifar100")]}
  assert roles["darts"].eval_is_validation
  assert roles["full"].eval_role == "test" and not roles["full"].eval_is_validation
  assert roles["nb201"].eval_role == roles["nb201"].arch_role == "test"   # random test half
  assert "RANDOM half" in roles["nb201"].note
  official = _autodl_split_file(tmp_path / "c100.txt", xvalid=range(1, 20, 2),
                                xtest=range(0, 20, 2))
  s = data.make_search_splits(_indexed("cifar100", 40, 20), "nb201", split_file=official,
                              max_examples=8)
  np.testing.assert_array_equal(_ids(s.arch), 30000 + np.arange(1, 17, 2))
  assert s.eval_is_validation and "official x-valid" in s.describe()["note"]
  cifar = _autodl_split_file(tmp_path / "c10.txt", train=range(0, 40, 2), valid=range(1, 40, 2))
  s = data.make_search_splits(_indexed("cifar10", 40, 20), "nb201", split_file=cifar)
  np.testing.assert_array_equal(_ids(s.weights), np.arange(0, 40, 2))


def test_bad_split_files_name_the_problem(tmp_path):
  ds = _indexed("cifar100", 40, 20)
  too_big = _autodl_split_file(tmp_path / "a.txt", xvalid=range(15), xtest=range(15, 30))
  with pytest.raises(ValueError, match="distinct indices into the 20 test images"):
    data.make_search_splits(ds, "nb201", split_file=too_big)
  with pytest.raises(ValueError, match="no index list 'xvalid'"):
    data.make_search_splits(ds, "nb201", split_file=_autodl_split_file(tmp_path / "b.txt",
                                                                         train=range(3)))
  with pytest.raises(ValueError, match="only by the 'nb201'"):
    data.make_search_splits(ds, "darts", split_file=too_big)


def test_max_examples_caps_every_split():
  s = data.make_search_splits(_indexed("cifar10", 100, 20), "full", max_examples=7)
  assert (len(s.weights), len(s.arch), len(s.eval)) == (7, 7, 7)
  s = data.make_search_splits(_indexed("cifar10", 100, 20), "darts", max_examples=7)
  np.testing.assert_array_equal(_ids(s.arch), np.arange(50, 57))


@pytest.mark.parametrize("kwargs", [dict(scheme="dart"), dict(scheme="darts", train_portion=0.0),
                                    dict(scheme="darts", train_portion=1.0),
                                    dict(scheme="nb201", train_portion=1.5),
                                    dict(scheme="darts", train_portion=0.001),
                                    dict(scheme="full", max_examples=0)])
def test_bad_split_arguments_raise(kwargs):
  with pytest.raises(ValueError):
    data.make_search_splits(_indexed("cifar10", 100, 20), **kwargs)


def test_unknown_scheme_lists_schemes():
  with pytest.raises(ValueError, match="darts, full, nb201"):
    data.make_search_splits(_indexed("cifar10", 10, 4), "random")


# ----------------------------------------------------------------------------- sampling
def test_batch_indices_deterministic_and_distinct_streams():
  kw = dict(split_size=1000, batch_size=32)
  for repl in (False, True):
    a = data.batch_indices(0, 5, stream=0, with_replacement=repl, **kw)
    np.testing.assert_array_equal(a, data.batch_indices(0, 5, stream=0, with_replacement=repl,
                                                        **kw))
    assert a.dtype == np.int32 and a.shape == (32,) and a.min() >= 0 and a.max() < 1000
    for other in (data.batch_indices(0, 6, stream=0, with_replacement=repl, **kw),
                  data.batch_indices(0, 5, stream=1, with_replacement=repl, **kw),
                  data.batch_indices(1, 5, stream=0, with_replacement=repl, **kw)):
      assert not np.array_equal(a, other)


def test_without_replacement_epoch_covers_distinct_indices():
  spe = data.steps_per_epoch(103, 10)
  assert spe == 10
  epoch0 = np.concatenate([data.batch_indices(7, s, 103, 10, stream=2, with_replacement=False)
                           for s in range(spe)])
  epoch1 = np.concatenate([data.batch_indices(7, s, 103, 10, stream=2, with_replacement=False)
                           for s in range(spe, 2 * spe)])
  assert len(np.unique(epoch0)) == 100 and len(np.unique(epoch1)) == 100
  assert not np.array_equal(epoch0, epoch1)


def test_with_replacement_batches_are_distinct_within_and_vary_across():
  batches = [data.batch_indices(3, s, 20, 20, stream=1, with_replacement=True) for s in range(5)]
  for b in batches:
    np.testing.assert_array_equal(np.sort(b), np.arange(20))
  assert len({tuple(b) for b in batches}) == 5
  small = data.batch_indices(3, 0, 10_000, 64, stream=1, with_replacement=True)
  assert len(np.unique(small)) == 64


def test_batch_larger_than_split_raises():
  with pytest.raises(ValueError, match=r"64.*10|10.*64"):
    data.batch_indices(0, 0, 10, 64, stream=0, with_replacement=True)
  with pytest.raises(ValueError, match=r"64.*10|10.*64"):
    data.steps_per_epoch(10, 64)
  with pytest.raises(ValueError):
    data.batch_indices(0, -1, 10, 2, stream=0, with_replacement=False)


# ----------------------------------------------------------------------------- augmentation
MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def _images(n=16, size=8, seed=0):
  return np.random.default_rng(seed).integers(1, 256, (n, size, size, 3), dtype=np.uint8)


def test_normalize_values_and_dtype():
  x = np.array([[[[0, 255, 51]]]], np.uint8)
  y = data.normalize(jnp.asarray(x), MEAN, STD)
  assert y.dtype == jnp.float32 and y.shape == (1, 1, 1, 3)
  np.testing.assert_allclose(np.asarray(y)[0, 0, 0], [-0.5 / 0.2, 0.6 / 0.25, -0.1 / 0.3],
                             rtol=1e-5, atol=1e-6)


def test_augment_shape_dtype_and_range():
  x = _images(32)
  y = data.augment(jax.random.key(0), jnp.asarray(x), mean=MEAN, std=STD, cutout=3)
  assert y.shape == x.shape and y.dtype == jnp.float32
  low = (0.0 - np.array(MEAN)) / np.array(STD)
  high = (1.0 - np.array(MEAN)) / np.array(STD)
  y = np.asarray(y)
  assert np.all(((y >= low - 1e-5) & (y <= high + 1e-5)) | (y == 0.0))


def test_augment_disabled_equals_normalize():
  x = jnp.asarray(_images())
  y = data.augment(jax.random.key(1), x, mean=MEAN, std=STD, crop_padding=0, flip=False, cutout=0)
  np.testing.assert_array_equal(np.asarray(y), np.asarray(data.normalize(x, MEAN, STD)))


def test_crop_is_a_per_image_window_of_the_zero_padded_image():
  x = np.repeat(_images(1), 24, axis=0)                    # identical images, independent crops
  y = np.asarray(data.augment(jax.random.key(2), jnp.asarray(x), mean=MEAN, std=STD,
                              crop_padding=2, flip=False))
  padded = np.asarray(data.normalize(jnp.asarray(np.pad(x[:1], ((0, 0), (2, 2), (2, 2), (0, 0)))),
                                     MEAN, STD))[0]
  offsets = []
  for img in y:
    found = [(i, j) for i in range(5) for j in range(5)
             if np.array_equal(img, padded[i:i + 8, j:j + 8])]
    assert found, "output is not a crop of the padded image"
    offsets.append(found[0])
  assert len(set(offsets)) > 3


def test_flip_happens_for_some_images_only():
  x = jnp.asarray(_images(64))
  y = np.asarray(data.augment(jax.random.key(3), x, mean=MEAN, std=STD, crop_padding=0, flip=True))
  base = np.asarray(data.normalize(x, MEAN, STD))
  same = [np.array_equal(a, b) for a, b in zip(y, base)]
  mirrored = [np.array_equal(a, b[:, ::-1]) for a, b in zip(y, base)]
  assert all(s or m for s, m in zip(same, mirrored))
  assert 10 < sum(mirrored) < 54


def test_cutout_zeroes_a_clipped_square():
  x = jnp.asarray(_images(64, size=10))
  y = np.asarray(data.augment(jax.random.key(4), x, mean=MEAN, std=STD, crop_padding=0,
                              flip=False, cutout=4))
  base = np.asarray(data.normalize(x, MEAN, STD))
  full_squares = 0
  for a, b in zip(y, base):
    zero = np.all(a == 0.0, axis=-1)
    np.testing.assert_array_equal(a[~zero], b[~zero])
    rows, cols = np.nonzero(zero)
    assert len(rows) > 0
    h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
    assert h <= 4 and w <= 4 and zero.sum() == h * w        # one axis-aligned rectangle
    full_squares += (h, w) == (4, 4)
  assert full_squares > 10


def test_augment_jits_with_static_options():
  x = jnp.asarray(_images(8))
  fn = functools.partial(data.augment, mean=MEAN, std=STD, crop_padding=4, cutout=2)
  key = jax.random.key(5)
  np.testing.assert_allclose(np.asarray(jax.jit(fn)(key, x)), np.asarray(fn(key, x)), atol=1e-6)
  other = jax.jit(fn)(jax.random.key(6), x)
  assert not np.array_equal(np.asarray(other), np.asarray(fn(key, x)))


# ----------------------------------------------------------------------------- tfds builders
def test_cifar10_binary_through_tf_free_builder(tmp_path, monkeypatch):
  (tr_x, tr_y), (te_x, te_y) = _fake_cifar10(tmp_path)
  ds = data.get_dataset("cifar10", data_dir=str(tmp_path), cache_dir=_cache(tmp_path))
  assert ds.train_images.shape == (15, 32, 32, 3) and ds.test_images.shape == (4, 32, 32, 3)
  np.testing.assert_array_equal(ds.train_images, tr_x)       # CHW -> HWC, data_batch order kept
  np.testing.assert_array_equal(ds.train_labels, tr_y.astype(np.int32))
  np.testing.assert_array_equal(ds.test_images, te_x)
  np.testing.assert_array_equal(ds.test_labels, te_y.astype(np.int32))
  assert ds.mean == datasets_lib.CIFAR10_MEAN and ds.num_classes == 10
  assert "tensorflow" not in sys.modules
  assert os.path.isdir(os.path.join(_cache(tmp_path), "tfds"))
  # prepared once: a second load does not read the archive again
  from jaxnas.data import tfds_builders
  monkeypatch.setattr(tfds_builders.JaxnasCifar10, "read_arrays",
                      classmethod(lambda cls, d: pytest.fail("rebuilt")))
  again = data.get_dataset("cifar10", data_dir=str(tmp_path / "cifar-10-binary.tar.gz"),
                           cache_dir=_cache(tmp_path))
  np.testing.assert_array_equal(again.train_images, tr_x)


def test_cifar100_binary_uses_fine_labels(tmp_path):
  rng = np.random.default_rng(5)
  tr, tr_x, tr_lab = _cifar_records(rng, 6, 2, 100)
  te, te_x, te_lab = _cifar_records(rng, 3, 2, 100)
  _write_tar(tmp_path / "cifar-100-binary.tar.gz", {"cifar-100-binary/train.bin": tr,
                                                    "cifar-100-binary/test.bin": te})
  ds = data.get_dataset("cifar100", data_dir=str(tmp_path), cache_dir=_cache(tmp_path))
  assert ds.num_classes == 100 and ds.train_images.shape == (6, 32, 32, 3)
  np.testing.assert_array_equal(ds.train_labels, tr_lab[:, 1].astype(np.int32))
  np.testing.assert_array_equal(ds.test_images, te_x)
  assert "tensorflow" not in sys.modules


def test_cifar10_python_archive(tmp_path):
  rng = np.random.default_rng(6)
  members, expect = {}, {}
  for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
    pixels = rng.integers(0, 256, (2, 3072), dtype=np.uint8)
    labels = rng.integers(0, 10, 2).tolist()
    members[f"cifar-10-batches-py/{name}"] = pickle.dumps(
        {b"batch_label": b"x", b"data": pixels, b"labels": labels}, protocol=2)
    expect[name] = (pixels.reshape(2, 3, 32, 32).transpose(0, 2, 3, 1), labels)
  _write_tar(tmp_path / "cifar-10-python.tar.gz", members)
  ds = data.get_dataset("cifar10", data_dir=str(tmp_path), cache_dir=_cache(tmp_path))
  assert ds.train_images.shape == (10, 32, 32, 3)
  np.testing.assert_array_equal(ds.train_images[2:4], expect["data_batch_2"][0])
  np.testing.assert_array_equal(ds.test_labels, expect["test_batch"][1])


def test_missing_cifar_archive_gives_clear_error(tmp_path):
  with pytest.raises(data.DatasetNotFoundError) as e:
    data.get_dataset("cifar10", data_dir=str(tmp_path), cache_dir=_cache(tmp_path))
  msg = str(e.value)
  for part in ("cifar-10-binary.tar.gz", str(tmp_path), "--config.data.data_dir",
               "https://www.cs.toronto.edu"):
    assert part in msg
  assert isinstance(e.value, FileNotFoundError)
  with pytest.raises(data.DatasetNotFoundError, match="no data directory"):
    data.get_dataset("cifar100")


def test_malformed_cifar_archives_give_clear_errors(tmp_path):
  (tmp_path / "a").mkdir()
  _fake_cifar10(tmp_path / "a", skip="cifar-10-batches-bin/data_batch_3.bin")
  with pytest.raises(data.DatasetFormatError, match="data_batch_3.bin"):
    data.get_dataset("cifar10", data_dir=str(tmp_path / "a"), cache_dir=_cache(tmp_path))
  (tmp_path / "b").mkdir()
  (tmp_path / "b" / "cifar-10-binary.tar.gz").write_bytes(b"not a tarball")
  with pytest.raises(data.DatasetFormatError, match="tar"):
    data.get_dataset("cifar10", data_dir=str(tmp_path / "b"), cache_dir=_cache(tmp_path))
  (tmp_path / "c").mkdir()
  _write_tar(tmp_path / "c" / "cifar-100-binary.tar.gz",
             {"train.bin": b"\x00" * 3073, "test.bin": b"\x00" * 3074})   # 3074 = one record
  with pytest.raises(data.DatasetFormatError, match="3074-byte"):   # train: 3073 is not a record
    data.get_dataset("cifar100", data_dir=str(tmp_path / "c"), cache_dir=_cache(tmp_path))


def test_fashion_mnist_through_tf_free_builder(tmp_path):
  raw = _fake_fashion_mnist(tmp_path)
  ds = data.get_dataset("fashion_mnist", data_dir=str(tmp_path), cache_dir=_cache(tmp_path))
  assert ds.image_shape == (28, 28, 1) and ds.train_images.shape[0] == 12
  np.testing.assert_array_equal(ds.train_images[..., 0], raw["train"][0])
  np.testing.assert_array_equal(ds.test_labels, raw["t10k"][1].astype(np.int32))
  assert "tensorflow" not in sys.modules
  os.remove(tmp_path / "t10k-labels-idx1-ubyte.gz")
  with pytest.raises(data.DatasetNotFoundError, match="t10k-labels-idx1-ubyte.gz"):
    data.get_dataset("fashion_mnist", data_dir=str(tmp_path), cache_dir=_cache(tmp_path))


def test_idx_reader_rejects_bad_magic(tmp_path):
  _write_idx(tmp_path / "i.gz", np.zeros((2, 28, 28), np.uint8), 2049)
  _write_idx(tmp_path / "l.gz", np.zeros((2,), np.uint8), 2049)
  with pytest.raises(data.DatasetFormatError, match="2051"):
    formats.read_idx_gz(tmp_path / "i.gz", tmp_path / "l.gz")


def test_tfds_mock_data_through_builder_without_tensorflow(tmp_path):
  import tensorflow_datasets as tfds
  from jaxnas.data import tfds_builders
  with tfds.testing.mock_data(num_examples=6):
    arrays = tfds_builders.load_arrays(tfds_builders.JaxnasCifar10, str(tmp_path),
                                       str(tmp_path / "tfds"))
    src = tfds.data_source("jaxnas_fashion_mnist", split="train", data_dir=str(tmp_path))
    first = src[0]
  images, labels = arrays["train"]
  assert images.shape == (6, 32, 32, 3) and images.dtype == np.uint8
  assert labels.dtype == np.int32 and labels.min() >= 0 and labels.max() < 10
  assert len(src) == 6 and first["image"].shape == (28, 28, 1)
  assert "tensorflow" not in sys.modules


# ----------------------------------------------------------------------------- imagenet16 / jpeg
def test_imagenet16_120_keeps_first_120_classes(tmp_path):
  rng = np.random.default_rng(7)
  expect = {"train": [], "test": []}
  for name in list(datasets_lib.IMAGENET16_FILES["train"]) + ["val_data"]:
    labels = [1, 120, 121, 1000, 57]
    pixels = rng.integers(0, 256, (5, 768), dtype=np.uint8)
    with open(tmp_path / name, "wb") as f:
      pickle.dump({"data": pixels, "labels": labels, "mean": np.zeros(768)}, f)
    keep = np.array(labels) <= 120
    expect["test" if name == "val_data" else "train"].append(
        (pixels[keep].reshape(-1, 3, 16, 16).transpose(0, 2, 3, 1), np.array(labels)[keep] - 1))
  ds = data.get_dataset("imagenet16_120", data_dir=str(tmp_path))
  assert ds.num_classes == 120 and ds.image_shape == (16, 16, 3)
  assert ds.train_images.shape == (30, 16, 16, 3) and ds.test_images.shape == (3, 16, 16, 3)
  np.testing.assert_array_equal(ds.train_labels[:3], [0, 119, 56])
  np.testing.assert_array_equal(ds.test_images, expect["test"][0][0])
  np.testing.assert_array_equal(ds.train_images[3:6], expect["train"][1][0])
  os.remove(tmp_path / "val_data")
  with pytest.raises(data.DatasetNotFoundError, match="val_data"):
    data.get_dataset("imagenet16_120", data_dir=str(tmp_path))


def test_dataset_pickles_cannot_run_code(tmp_path):
  class Evil:
    def __reduce__(self):
      return (os.system, ("echo pwned",))
  with pytest.raises(data.DatasetFormatError, match="not allowed"):
    formats.safe_pickle_loads(pickle.dumps({"data": Evil()}), "evil.pkl")


def test_cifar10_jpeg_decodes_and_caches(tmp_path, monkeypatch):
  from PIL import Image
  members = {}
  for split, n in (("train", 2), ("test", 1)):
    for k, cls in enumerate(formats.CIFAR10_CLASSES[:3]):
      for i in range(n):
        buf = io.BytesIO()
        Image.fromarray(np.full((32, 32, 3), 40 * k + 10 * i, np.uint8)).save(buf, "JPEG")
        members[f"{split}/{cls}/{i:04d}.jpg"] = buf.getvalue()
  tarball = tmp_path / "CIFAR-10-images_test.tar.gz"
  _write_tar(tarball, members)
  ds = data.get_dataset("cifar10_jpeg", data_dir=str(tmp_path), cache_dir=_cache(tmp_path))
  assert ds.train_images.shape == (6, 32, 32, 3) and ds.test_images.shape == (3, 32, 32, 3)
  np.testing.assert_array_equal(np.bincount(ds.train_labels), [2, 2, 2])
  values = ds.train_images[:, 16, 16, 0].astype(np.int64)       # lossy: within a few levels
  candidates = 40 * ds.train_labels[:, None].astype(np.int64) + np.array([[0, 10]])
  assert np.abs(values[:, None] - candidates).min(axis=1).max() <= 3
  monkeypatch.setattr(formats, "read_cifar10_jpeg", lambda *a, **k: pytest.fail("decoded again"))
  again = data.get_dataset("cifar10_jpeg", data_dir=str(tarball), cache_dir=_cache(tmp_path))
  np.testing.assert_array_equal(again.train_images, ds.train_images)
  with pytest.raises(data.DatasetNotFoundError, match="CIFAR-10-images"):
    data.get_dataset("cifar10_jpeg", data_dir=str(tmp_path / "cache"))


# ----------------------------------------------------------------------------- optional real data
def test_real_fashion_mnist_test_files_if_present():
  folder = os.path.join(SHARED_DATA, "fashion_mnist")
  if not os.path.isdir(folder):
    pytest.skip("shared Fashion-MNIST files not present")
  x, y = formats.read_idx_gz(os.path.join(folder, "t10k-images-idx3-ubyte.gz"),
                             os.path.join(folder, "t10k-labels-idx1-ubyte.gz"))
  assert x.shape == (10000, 28, 28, 1) and np.bincount(y).tolist() == [1000] * 10
  np.testing.assert_array_equal(y[:5], [9, 2, 1, 1, 6])


# ----------------------------------------------------------------------------- prefetch
def test_prefetch_keeps_order_raises_in_place_and_stops_early():
  import threading
  threads = set()

  def produce(k):
    threads.add(threading.current_thread().name)
    if k == 5:
      raise KeyError("bad batch 5")
    return k * k

  for depth in (0, 1, 3):
    assert list(data.prefetch(produce, range(5), depth)) == [k * k for k in range(5)]
  assert any(name.startswith("jaxnas-prefetch") for name in threads)
  got = []
  with pytest.raises(KeyError, match="bad batch 5"):
    for value in data.prefetch(produce, range(8), 2):
      got.append(value)
  assert got == [k * k for k in range(5)]        # every result before the failing one
  started = []
  stream = data.prefetch(lambda k: started.append(k) or k, range(100), 2)
  assert [next(stream), next(stream)] == [0, 1]
  stream.close()                                  # a break: nothing further is produced
  assert max(started) <= 3
  with pytest.raises(ValueError, match="depth must be >= 0"):
    list(data.prefetch(produce, range(2), -1))
