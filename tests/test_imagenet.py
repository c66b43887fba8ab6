"""The ImageNet loader (``jaxnas.data.imagenet``) on a tiny class-folder tree of JPEGs."""
import io
import json
import math
import os
import shutil
import tarfile

import numpy as np
import pytest
from PIL import Image

from jaxnas import driver
from jaxnas import data as data_lib
from jaxnas import evaluate
from jaxnas.data import imagenet

import repo_files

SIZES = [(48, 40), (40, 64), (56, 56), (36, 50)]   # (width, height) per image of a class


def _write_tree(root, classes=("n01", "n02", "n03"), per_class=4, val_classes=None):
  rng = np.random.default_rng(0)
  for part, names in (("train", classes), ("val", val_classes or classes)):
    for c in names:
      os.makedirs(root / part / c, exist_ok=True)
      for i in range(per_class if part == "train" else 2):
        w, h = SIZES[i % len(SIZES)]
        pixels = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / part / c / f"img_{i}.JPEG", quality=95)
  return root


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
  return _write_tree(tmp_path_factory.mktemp("imagenet"))


def test_dataset_layout_labels_and_shapes(tree):
  ds = data_lib.get_dataset("imagenet", data_dir=str(tree), image_size=32, resize_size=36)
  assert ds.num_classes == 3 and ds.image_shape == (32, 32, 3)
  assert ds.train_images.shape == (12, 32, 32, 3) and ds.test_images.shape == (6, 32, 32, 3)
  np.testing.assert_array_equal(ds.train_labels, np.repeat([0, 1, 2], 4))
  np.testing.assert_array_equal(ds.test_labels, np.repeat([0, 1, 2], 2))
  assert ds.mean == imagenet.IMAGENET_MEAN and ds.std == imagenet.IMAGENET_STD
  batch = ds.train_images[np.array([5, 0, 11])]
  assert batch.dtype == np.uint8 and batch.shape == (3, 32, 32, 3)
  # A slice and Split.take stay lazy (nothing decoded); indexing the view decodes its images.
  split = data_lib.Split(ds.train_images, ds.train_labels).take(slice(4, 8))
  assert isinstance(split.images, imagenet.LazyImages) and len(split) == 4
  assert split.images.records.paths == ds.train_images.records.paths[4:8]


def test_train_augmentation_is_seeded_per_batch(tree):
  ds = data_lib.get_dataset("imagenet", data_dir=str(tree), image_size=32, resize_size=36)
  idx = np.array([3, 7, 1, 9])
  first, again = ds.train_images[idx], ds.train_images[idx]
  np.testing.assert_array_equal(first, again)                 # reproducible (resume-safe)
  other = ds.train_images[np.array([3, 7, 1, 10])]            # another batch: new crops
  assert not np.array_equal(first[0], other[0])
  reseeded = data_lib.get_dataset("imagenet", data_dir=str(tree), image_size=32, resize_size=36,
                                  seed=1).train_images[idx]
  assert not np.array_equal(first, reseeded)


def test_test_transform_is_resize_shorter_side_then_center_crop(tree):
  ds = data_lib.get_dataset("imagenet", data_dir=str(tree), image_size=32, resize_size=36)
  got = ds.test_images[np.array([1])][0]                      # img_1: 40 wide, 64 high
  with Image.open(ds.test_images.records.paths[1]) as f:
    image = f.convert("RGB")
  assert image.size == (40, 64)
  resized = image.resize((36, int(36 * 64 / 40)), Image.BILINEAR)   # (36, 57)
  top = int(round((57 - 32) / 2.0))
  want = np.asarray(resized.crop((2, top, 34, top + 32)))
  np.testing.assert_array_equal(got, want)


def test_random_resized_crop_box_follows_torchvision():
  rng = np.random.default_rng(0)
  for _ in range(200):
    left, top, w, h = imagenet.random_resized_crop_box(rng, 64, 48)
    assert 0 <= left and left + w <= 64 and 0 <= top and top + h <= 48
    assert 0.08 * 64 * 48 * 0.8 <= w * h <= 64 * 48
    assert 3 / 4 * 0.8 <= w / h <= 4 / 3 * 1.25
  # A 1x100 strip admits no crop of ratio in [3/4, 4/3] with >= 8% area: the fallback is the
  # center crop with the ratio clamped (w = 1, h = round(1 / (3/4)) = 1).
  assert imagenet.random_resized_crop_box(rng, 1, 100) == (0, 49, 1, 1)
  assert imagenet.random_resized_crop_box(rng, 100, 1) == (49, 0, 1, 1)


def test_color_jitter_identity_and_hue_turn():
  rng = np.random.default_rng(0)
  pixels = np.random.default_rng(1).integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
  image = Image.fromarray(pixels)
  zero = {"brightness": 0.0, "contrast": 0.0, "saturation": 0.0, "hue": 0.0}
  np.testing.assert_array_equal(np.asarray(imagenet.color_jitter(rng, image, zero)), pixels)
  red = Image.fromarray(np.full((2, 2, 3), (200, 0, 0), np.uint8))
  # A third of a turn takes pure red to pure green (HSV hue 0 -> 85 of 255).
  green = np.asarray(imagenet._adjust_hue(red, 1 / 3))
  assert green[0, 0, 1] > 190 and green[0, 0, 0] < 10 and green[0, 0, 2] < 10
  jittered = np.asarray(imagenet.color_jitter(rng, image))
  assert jittered.shape == pixels.shape and not np.array_equal(jittered, pixels)


def test_bad_trees_fail_with_the_fix(tmp_path):
  with pytest.raises(data_lib.DatasetNotFoundError, match="train/<wnid>/.*data_dir"):
    data_lib.get_dataset("imagenet", data_dir=str(tmp_path))
  with pytest.raises(data_lib.DatasetNotFoundError, match="no data directory was given"):
    data_lib.get_dataset("imagenet")
  bad = _write_tree(tmp_path / "extra", val_classes=("n01", "n09"), per_class=1)
  with pytest.raises(data_lib.DatasetFormatError, match="train split lacks: \\['n09'\\]"):
    data_lib.get_dataset("imagenet", data_dir=str(bad))
  broken = _write_tree(tmp_path / "broken", classes=("n01",), per_class=1)
  (broken / "train" / "n01" / "img_0.JPEG").write_bytes(b"not a jpeg")
  ds = data_lib.get_dataset("imagenet", data_dir=str(broken), image_size=16, resize_size=16)
  with pytest.raises(data_lib.DatasetFormatError, match="img_0.JPEG"):
    ds.train_images[np.array([0])]
  with pytest.raises(ValueError, match="image_size <= resize_size"):
    data_lib.get_dataset("imagenet", data_dir=str(broken), image_size=32, resize_size=16)


def test_eval_imagenet_config_trains_on_the_tree(tree, tmp_path):
  module = repo_files.load_module("configs/eval_imagenet.py", "eval_imagenet")
  config = module.get_config("smoke")
  config.data.name, config.data.data_dir = "imagenet", str(tree)
  config.data.image_size, config.data.resize_size = 32, 36
  config.batch_size, config.eval_batch_size = 4, 6
  result = driver.train_and_evaluate(config, str(tmp_path))
  assert result["step"] == 2
  assert 0.0 <= result["final_record"]["test/accuracy"] <= 1.0
  assert math.isfinite(result["final_record"]["test/loss"])


# ----------------------------------------------------------------------------- tfds ImageNet
def _add(tar, name, data):
  info = tarfile.TarInfo(name)
  info.size = len(data)
  tar.addfile(info, io.BytesIO(data))


def _write_tars_and_tree(root):
  """The official tar layout (a <wnid>.tar per class in the train tar; ILSVRC2012_val_*.JPEG with
  tfds' bundled validation labels) and the same JPEG bytes as an ImageFolder tree, both in
  sorted order, so the two loaders see the same images at the same indices."""
  from jaxnas.data import tfds_builders
  val_wnids = tfds_builders.imagenet_validation_wnids()[:4]
  wnids = sorted(set(val_wnids))   # the train classes must include the validation ones
  rng = np.random.default_rng(0)

  def jpeg(i):
    w, h = SIZES[i % len(SIZES)]
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)).save(
        buffer, "JPEG", quality=95)
    return buffer.getvalue()

  (root / "tars").mkdir(parents=True)
  with tarfile.open(root / "tars" / "ILSVRC2012_img_train.tar", "w") as outer:
    for wnid in wnids:
      inner = io.BytesIO()
      with tarfile.open(fileobj=inner, mode="w") as t:
        for i in range(2):
          data = jpeg(i)
          _add(t, f"{wnid}_{i}.JPEG", data)
          os.makedirs(root / "tree" / "train" / wnid, exist_ok=True)
          (root / "tree" / "train" / wnid / f"{wnid}_{i}.JPEG").write_bytes(data)
      _add(outer, f"{wnid}.tar", inner.getvalue())
  with tarfile.open(root / "tars" / "ILSVRC2012_img_val.tar", "w") as t:
    for number in range(1, 5):
      data, name = jpeg(number), f"ILSVRC2012_val_{number:08d}.JPEG"
      _add(t, name, data)
      os.makedirs(root / "tree" / "val" / val_wnids[number - 1], exist_ok=True)
      (root / "tree" / "val" / val_wnids[number - 1] / name).write_bytes(data)
  return wnids, val_wnids


@pytest.fixture(scope="module")
def tars(tmp_path_factory):
  root = tmp_path_factory.mktemp("imagenet_tars")
  wnids, val_wnids = _write_tars_and_tree(root)
  return root, wnids, val_wnids


def test_tfds_imagenet_from_the_tars_equals_the_class_folders(tars, monkeypatch):
  from jaxnas.data import tfds_builders
  root, wnids, val_wnids = tars
  cache = root / "cache"
  opts = dict(image_size=32, resize_size=36, cache_dir=str(cache))
  built = data_lib.get_dataset("imagenet", data_dir=str(root / "tars"), **opts)
  all_wnids = tfds_builders.imagenet_wnids()
  assert built.num_classes == 1000 and len(all_wnids) == 1000
  assert isinstance(built.train_images.records, imagenet.TfdsImages)
  np.testing.assert_array_equal(built.train_labels,
                                np.repeat([all_wnids.index(w) for w in wnids], 2))
  # The bundled validation labels are ILSVRC-2012's (first image: n01751748).
  assert val_wnids[0] == "n01751748"
  np.testing.assert_array_equal(built.test_labels, [all_wnids.index(w) for w in val_wnids])
  # Same bytes, same transforms: identical batches to the ImageFolder loader's.
  folders = data_lib.get_dataset("imagenet", data_dir=str(root / "tree"), **opts)
  order = np.argsort([os.path.basename(p) for p in folders.test_images.records.paths])
  np.testing.assert_array_equal(built.test_images[np.arange(4)], folders.test_images[order])
  idx = np.array([7, 0, 4, 5])
  np.testing.assert_array_equal(built.train_images[idx], folders.train_images[idx])
  # A second load reuses the build and the cached labels (no scan), from the tars or from the
  # prepared tfds directory itself (its tfds data dir or its version directory).
  monkeypatch.setattr(imagenet, "scan_labels", lambda *a, **k: pytest.fail("labels rescanned"))
  version_dir = built.train_images.records.source.dataset_info.data_dir
  for data_dir in (root / "tars", os.path.dirname(os.path.dirname(version_dir)), version_dir):
    again = data_lib.get_dataset("imagenet", data_dir=str(data_dir), **opts)
    np.testing.assert_array_equal(again.train_labels, built.train_labels)
    np.testing.assert_array_equal(again.test_images[np.array([2])],
                                  built.test_images[np.array([2])])


def test_tfds_imagenet_bad_input_names_the_fix(tars, tmp_path):
  root, _, _ = tars
  opts = dict(image_size=32, resize_size=36, cache_dir=str(root / "cache"))
  built = data_lib.get_dataset("imagenet", data_dir=str(root / "tars"), **opts)
  version_dir = built.train_images.records.source.dataset_info.data_dir
  as_tfrecord = tmp_path / "imagenet2012" / "5.1.0"
  shutil.copytree(version_dir, as_tfrecord)
  info = json.loads((as_tfrecord / "dataset_info.json").read_text())
  info["fileFormat"] = "tfrecord"
  (as_tfrecord / "dataset_info.json").write_text(json.dumps(info))
  with pytest.raises(data_lib.DatasetFormatError, match="only TensorFlow reads.*array_record"):
    data_lib.get_dataset("imagenet", data_dir=str(tmp_path), **opts)
  (tmp_path / "only_train").mkdir()
  shutil.copy(root / "tars" / "ILSVRC2012_img_train.tar", tmp_path / "only_train")
  with pytest.raises(data_lib.DatasetNotFoundError, match="ILSVRC2012_img_val.tar"):
    data_lib.get_dataset("imagenet", data_dir=str(tmp_path / "only_train"), **opts)
