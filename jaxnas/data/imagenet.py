"""ImageNet (ILSVRC-2012), decoded and augmented on the host per batch.

ImageNet does not fit in host memory as uint8 arrays (1.28M images), so its splits hold
``LazyImages``: an array-like of shape ``(N, S, S, 3)`` (``S = image_size``, 224) whose
integer-array indexing reads those encoded images, decodes them (a thread pool) and applies the
split's transform; slicing returns a lazy view. Everything downstream (``data.Split``,
``DataParallel.put_examples``, the evaluation loop, which prefetches batches on a background
thread) indexes it like an array.

Where the encoded images come from (``--config.data.data_dir``; ``datasets._load_imagenet``):

* ``ImageFiles``: the class folders quark0/darts ``cnn/train_imagenet.py`` reads with
  ``torchvision.datasets.ImageFolder``::

      <data_dir>/train/<wnid>/*.JPEG      # 1000 class folders (n01440764, ...)
      <data_dir>/val/<wnid>/*.JPEG        # the 50,000 validation images sorted into class folders

  Labels are the indices of the sorted class-folder names of ``train/``.
* ``TfdsImages``: the ``train`` / ``validation`` splits of a prepared tfds ``imagenet2012`` (or
  ``jaxnas_imagenet2012``, built TF-free from the official tars by
  ``jaxnas.data.tfds_builders``) in the array_record format, read with ``as_data_source`` and the
  image decoding skipped: no TensorFlow. Labels are tfds' (the sorted wnids: the same order as the
  class folders'); they are scanned once and cached.

Transforms (the reference's):

* train: ``RandomResizedCrop(S)`` (scale 0.08-1, aspect ratio 3/4-4/3, bilinear), horizontal flip
  (p = 0.5), ``ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.2)`` (the four in
  a random order, as torchvision); the randomness of example ``i`` of a batch is seeded by
  ``(seed, hash of the batch's index array, i)``, so a batch is reproducible (and a resumed run
  sees the same augmentation) while an image gets a new crop in every epoch. (On several hosts
  each process indexes only its rows, so the crops differ from a one-process run's; the batch
  composition does not.)
* test: resize the shorter side to ``resize_size`` (256), center crop ``S``.

Normalization (on the device): mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225). The
device-side CIFAR augmentation must be off (``data.crop_padding=0``, ``data.flip=False``,
``data.cutout=0``: ``configs/eval_imagenet.py`` sets them; ``jaxnas.evaluate`` checks).
"""
from __future__ import annotations

import concurrent.futures
import io
import math
import os
import zlib
from typing import Sequence

import numpy as np

from jaxnas.data.errors import DatasetFormatError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png")
WHERE = ("https://image-net.org/download-images.php (ILSVRC2012_img_train.tar and "
          "ILSVRC2012_img_val.tar), extracted into train/<wnid>/ and val/<wnid>/ class folders "
          "(the layout torchvision's ImageFolder reads)")

SCALE = (0.08, 1.0)
RATIO = (3.0 / 4.0, 4.0 / 3.0)
JITTER = {"brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.2}


def _pil():
  try:
    from PIL import Image, ImageEnhance
  except ImportError as e:  # Pillow is in requirements.txt
    raise ImportError("The ImageNet loader needs Pillow: pip install pillow") from e
  return Image, ImageEnhance


def scan_image_folder(root: str, classes: Sequence[str] | None = None
                      ) -> tuple[list[str], list[str], np.ndarray]:
  """``(classes, paths, labels)`` of ``root/<class>/<image>``, classes and files sorted.

  ``classes``: the class list to label against (the train split's for the test split); a folder
  not in it is an error.
  """
  found = sorted(e.name for e in os.scandir(root) if e.is_dir())
  if not found:
    raise DatasetFormatError(f"ImageNet split '{root}' has no class folders; expected "
                             f"{root}/<wnid>/*.JPEG.")
  classes = list(found if classes is None else classes)
  index = {c: i for i, c in enumerate(classes)}
  unknown = sorted(set(found) - set(index))
  if unknown:
    raise DatasetFormatError(f"ImageNet split '{root}' has class folders that the train split "
                             f"lacks: {unknown[:5]}{' ...' if len(unknown) > 5 else ''}.")
  paths, labels = [], []
  for name in found:
    files = sorted(e.path for e in os.scandir(os.path.join(root, name))
                   if e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS))
    paths.extend(files)
    labels.extend([index[name]] * len(files))
  if not paths:
    raise DatasetFormatError(f"ImageNet split '{root}' holds no images "
                             f"({', '.join(IMAGE_EXTENSIONS)}).")
  return classes, paths, np.asarray(labels, np.int32)


# ------------------------------------------------------------------------------- transforms


def random_resized_crop_box(rng: np.random.Generator, width: int, height: int,
                            scale: tuple[float, float] = SCALE,
                            ratio: tuple[float, float] = RATIO) -> tuple[int, int, int, int]:
  """``(left, top, w, h)`` of torchvision's ``RandomResizedCrop.get_params``: 10 tries at a random
  area fraction in ``scale`` and log-uniform aspect ratio in ``ratio``, else a center crop with the
  ratio clamped to ``ratio``."""
  area = width * height
  log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
  for _ in range(10):
    target = area * rng.uniform(*scale)
    aspect = math.exp(rng.uniform(*log_ratio))
    w = int(round(math.sqrt(target * aspect)))
    h = int(round(math.sqrt(target / aspect)))
    if 0 < w <= width and 0 < h <= height:
      return int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1)), w, h
  in_ratio = width / height
  if in_ratio < ratio[0]:
    w, h = width, int(round(width / ratio[0]))
  elif in_ratio > ratio[1]:
    w, h = int(round(height * ratio[1])), height
  else:
    w, h = width, height
  return (width - w) // 2, (height - h) // 2, w, h


def _adjust_hue(image, shift: float):
  """Rotates the hue by ``shift`` of a turn (torchvision's PIL ``adjust_hue``)."""
  Image, _ = _pil()
  h, s, v = image.convert("HSV").split()
  h = Image.fromarray((np.asarray(h, np.uint8) + np.uint8(round(shift * 255) % 256)), "L")
  return Image.merge("HSV", (h, s, v)).convert("RGB")


def color_jitter(rng: np.random.Generator, image, jitter: dict[str, float] = JITTER):
  """torchvision's ``ColorJitter``: brightness, contrast, saturation factors uniform in
  ``[1 - x, 1 + x]`` and a hue shift uniform in ``[-hue, hue]``, applied in a random order."""
  _, ImageEnhance = _pil()
  enhancers = {"brightness": ImageEnhance.Brightness, "contrast": ImageEnhance.Contrast,
               "saturation": ImageEnhance.Color}
  for name in rng.permutation(["brightness", "contrast", "saturation", "hue"]):
    x = jitter[name]
    if not x:  # torchvision leaves a zero-strength jitter out (no HSV round trip)
      continue
    if name == "hue":
      image = _adjust_hue(image, rng.uniform(-x, x))
    else:
      image = enhancers[name](image).enhance(rng.uniform(max(0.0, 1 - x), 1 + x))
  return image


def train_transform(image, rng: np.random.Generator, size: int) -> np.ndarray:
  """RandomResizedCrop + horizontal flip + ColorJitter -> ``(size, size, 3)`` uint8."""
  Image, _ = _pil()
  left, top, w, h = random_resized_crop_box(rng, *image.size)
  image = image.resize((size, size), Image.BILINEAR, box=(left, top, left + w, top + h))
  if rng.uniform() < 0.5:
    image = image.transpose(Image.FLIP_LEFT_RIGHT)
  return np.asarray(color_jitter(rng, image), np.uint8)


def test_transform(image, size: int, resize_size: int) -> np.ndarray:
  """Resize the shorter side to ``resize_size`` (torchvision ``Resize(int)``), center crop
  ``size`` -> ``(size, size, 3)`` uint8."""
  Image, _ = _pil()
  width, height = image.size
  if width <= height:
    new = (resize_size, int(resize_size * height / width))
  else:
    new = (int(resize_size * width / height), resize_size)
  image = image.resize(new, Image.BILINEAR)
  left = int(round((new[0] - size) / 2.0))
  top = int(round((new[1] - size) / 2.0))
  return np.asarray(image.crop((left, top, left + size, top + size)), np.uint8)


# ------------------------------------------------------------------------------- records


class ImageFiles:
  """Encoded images that are files on disk (the class-folder layout), one path per example."""

  def __init__(self, paths: Sequence[str]):
    self.paths = list(paths)

  def __len__(self) -> int:
    return len(self.paths)

  def subset(self, index) -> ImageFiles:
    """The examples ``index`` (a slice or an index array)."""
    if isinstance(index, slice):
      return ImageFiles(self.paths[index])
    return ImageFiles([self.paths[i] for i in np.asarray(index).reshape(-1).tolist()])

  def read(self, rows: np.ndarray) -> list[tuple[str, object]]:
    """``(name for errors, what PIL opens)`` of the examples ``rows``: here both the path."""
    return [(self.paths[i], self.paths[i]) for i in rows.tolist()]


class TfdsImages:
  """Encoded images of a tfds data source read with the image decoding skipped (JPEG bytes).

  ``source``: ``builder.as_data_source(split, decoders={"image": tfds.decode.SkipDecoding()})``
  of an ``imagenet2012``-shaped dataset (``image``, ``label``, ``file_name`` features); ``rows``:
  the source's record numbers this view covers (all when ``None``). A batch is one
  ``source.__getitems__`` call (array_record reads the records in parallel).
  """

  def __init__(self, source, rows: np.ndarray | None = None, name: str = "tfds"):
    self.source, self.name = source, name
    self.rows = np.arange(len(source), dtype=np.int64) if rows is None else np.asarray(rows)

  def __len__(self) -> int:
    return len(self.rows)

  def subset(self, index) -> TfdsImages:
    """The examples ``index`` (a slice or an index array)."""
    return TfdsImages(self.source, self.rows[index].reshape(-1), self.name)

  def read(self, rows: np.ndarray) -> list[tuple[str, object]]:
    """``(name for errors, JPEG bytes as a file object)`` of the examples ``rows``."""
    from jaxnas.data.tfds_builders import read_records  # tfds is loaded: self.source is one
    keys = self.rows[rows].tolist()
    records = read_records(self.source, keys)
    return [(f"{self.name} record {key} ({_text(record.get('file_name', ''))})",
             io.BytesIO(record["image"])) for key, record in zip(keys, records)]


def _text(value) -> str:
  return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


# ------------------------------------------------------------------------------- lazy images


class LazyImages:
  """An ``(N, size, size, 3)`` uint8 array-like over encoded images, decoded when indexed.

  ``records``: where the encoded images are (``ImageFiles`` or ``TfdsImages``).
  ``images[int_array]`` decodes and transforms those images (``train=True``: the random train
  transform, seeded per batch; else the deterministic test transform) on ``workers`` threads;
  ``images[slice]`` is a lazy view; ``images[i]`` one image.
  """
  dtype = np.dtype(np.uint8)
  ndim = 4

  def __init__(self, records: ImageFiles | TfdsImages, *, size: int, train: bool, seed: int = 0,
               resize_size: int = 256, workers: int = 0):
    self.records = records
    self.size, self.train, self.seed = int(size), bool(train), int(seed)
    self.resize_size, self.workers = int(resize_size), int(workers) or min(8, os.cpu_count() or 1)

  @property
  def shape(self) -> tuple[int, int, int, int]:
    return (len(self.records), self.size, self.size, 3)

  def __len__(self) -> int:
    return len(self.records)

  def subset(self, index) -> LazyImages:
    """A lazy view of the examples ``index`` (a slice or an index array); nothing is decoded."""
    return LazyImages(self.records.subset(index), size=self.size, train=self.train,
                      seed=self.seed, resize_size=self.resize_size, workers=self.workers)

  def __getitem__(self, index):
    if isinstance(index, slice):
      return self.subset(index)
    if np.ndim(index) == 0:
      return self[np.asarray([index])][0]
    index = np.asarray(index)
    if index.dtype == bool:
      index = np.flatnonzero(index)
    index = index.astype(np.int64)
    if not len(index):
      return np.zeros((0,) + self.shape[1:], np.uint8)
    batch_key = zlib.crc32(index.tobytes())
    jobs = list(enumerate(self.records.read(index)))
    with concurrent.futures.ThreadPoolExecutor(self.workers) as pool:
      images = list(pool.map(lambda job: self._load(batch_key, job[0], *job[1]), jobs))
    return np.stack(images)

  def _load(self, batch_key: int, position: int, name: str, encoded) -> np.ndarray:
    Image, _ = _pil()
    try:
      with Image.open(encoded) as f:
        image = f.convert("RGB")
    except (OSError, ValueError) as e:
      raise DatasetFormatError(f"Cannot decode ImageNet image '{name}': {e}. Replace or delete "
                               "the file (or rebuild the tfds dataset).") from None
    if not self.train:
      return test_transform(image, self.size, self.resize_size)
    rng = np.random.default_rng([self.seed, batch_key, position])
    return train_transform(image, rng, self.size)

  def __repr__(self) -> str:
    return (f"LazyImages({len(self)} images, size={self.size}, "
            f"{'train' if self.train else 'test'} transform)")


# ------------------------------------------------------------------------------- tfds


TFDS_NAMES = ("imagenet2012", "jaxnas_imagenet2012")   # stock builder, jaxnas' TF-free builder
TFDS_SPLITS = {"train": "train", "test": "validation"}


def find_tfds_dir(data_dir: str) -> str | None:
  """The prepared tfds ImageNet in ``data_dir``: ``data_dir`` itself when it holds
  ``dataset_info.json``, else the newest ``<data_dir>/<name>/<version>/`` of ``TFDS_NAMES``."""
  if os.path.isfile(os.path.join(data_dir, "dataset_info.json")):
    return data_dir
  import tensorflow_datasets as tfds
  found = {}
  for name in TFDS_NAMES:
    versions = []
    base = os.path.join(data_dir, name)
    for entry in (os.scandir(base) if os.path.isdir(base) else ()):
      if os.path.isfile(os.path.join(entry.path, "dataset_info.json")):
        try:
          versions.append((tfds.core.Version(entry.name), entry.path))
        except ValueError:   # not a version directory
          continue
    if versions:
      found[name] = max(versions)[1]
  if len(found) > 1:
    raise DatasetFormatError(f"'{data_dir}' holds several prepared ImageNets "
                             f"({sorted(found.values())}); pass the one to use as "
                             "--config.data.data_dir.")
  return next(iter(found.values()), None)


def open_tfds(dataset_dir: str) -> tuple[list[str], dict[str, TfdsImages]]:
  """``(class names, {"train" | "test": TfdsImages})`` of a prepared tfds ImageNet, TF-free.

  Reads the ``train`` and ``validation`` splits of ``imagenet2012`` (stock) or
  ``jaxnas_imagenet2012`` in the array_record format with ``as_data_source``, the image decoding
  skipped (Pillow decodes the bytes per batch).
  """
  import tensorflow_datasets as tfds
  try:
    builder = tfds.builder_from_directory(dataset_dir)
  except Exception as e:  # tfds raises several types for a bad dataset_info.json
    raise DatasetFormatError(f"'{dataset_dir}' is not a readable tfds dataset: {e}") from None
  if builder.info.file_format != tfds.core.FileFormat.ARRAY_RECORD:
    raise DatasetFormatError(
        f"The tfds ImageNet in '{dataset_dir}' is stored as {builder.info.file_format.value}, "
        "which only TensorFlow reads. Prepare it as array_record (`tfds build imagenet2012 "
        "--file_format=array_record` where TensorFlow is installed), or point "
        "--config.data.data_dir at the directory holding ILSVRC2012_img_train.tar and "
        "ILSVRC2012_img_val.tar: jaxnas then builds it without TensorFlow.")
  features = builder.info.features
  missing = [k for k in ("image", "label") if k not in features]
  absent = [s for s in TFDS_SPLITS.values() if s not in builder.info.splits]
  if missing or absent:
    raise DatasetFormatError(f"The tfds dataset in '{dataset_dir}' is not an ImageNet: it lacks "
                             f"the feature(s) {missing} / split(s) {absent}.")
  records = {}
  for part, split in TFDS_SPLITS.items():
    source = builder.as_data_source(split=split, decoders={"image": tfds.decode.SkipDecoding()})
    records[part] = TfdsImages(source, name=f"{builder.name}/{split}")
  return list(features["label"].names), records


def scan_labels(images: TfdsImages, chunk: int = 4096, log=None) -> np.ndarray:
  """The int32 label of every record of ``images`` (one pass over the records: array_record has no
  column access, so this reads the image bytes too; callers cache the result)."""
  from jaxnas.data.tfds_builders import read_records
  n = len(images)
  labels = np.empty(n, np.int32)
  report = max(1, n // 10)
  for start in range(0, n, chunk):
    keys = images.rows[start:start + chunk].tolist()
    labels[start:start + len(keys)] = [int(r["label"]) for r in read_records(images.source, keys)]
    if log is not None and (start // report != (start + len(keys)) // report or
                            start + len(keys) == n):
      log(f"{images.name}: labels of {start + len(keys):,} / {n:,} records read")
  return labels


def config_options(data_config, seed: int) -> dict[str, int]:
  """``get_dataset('imagenet', ...)`` options from ``config.data`` (``image_size``,
  ``resize_size`` where the config sets them) and the run's ``seed`` (train augmentation)."""
  sizes = {k: int(data_config[k]) for k in ("image_size", "resize_size") if k in data_config}
  return {**sizes, "seed": int(seed)}


def check_device_augmentation(data_config) -> None:
  """ImageNet is augmented on the host: the device-side CIFAR crop/flip/Cutout must be off."""
  extra = [f"data.{field}={data_config[field]!r}" for field in ("crop_padding", "flip", "cutout")
           if data_config.get(field)]
  if extra:
    raise ValueError(f"config.data.name='imagenet' is augmented on the host (RandomResizedCrop, "
                     f"flip, ColorJitter), so the device-side CIFAR augmentation must be off, but "
                     f"{', '.join(extra)}: set --config.data.crop_padding=0 "
                     "--config.data.flip=False --config.data.cutout=0 (configs/eval_imagenet.py "
                     "does).")
