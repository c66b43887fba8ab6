"""TF-free tensorflow-datasets builders for datasets whose original files sit in a manual directory.

The stock tfds builders for CIFAR and Fashion-MNIST need TensorFlow to extract and encode
(``../shared/spec/data.md`` §4.3). These builders read the original files with plain Python
(`jaxnas.data.formats`), store each example as a uint8 ``tfds.features.Tensor`` plus a
``ClassLabel``, write ``array_record`` and are read back with ``as_data_source`` -- TensorFlow is
never imported.

=======================  =====================================================================
builder (tfds name)      files expected in the manual directory
=======================  =====================================================================
``jaxnas_cifar10``       ``cifar-10-binary.tar.gz`` (or ``cifar-10-python.tar.gz``)
``jaxnas_cifar100``      ``cifar-100-binary.tar.gz`` (or ``cifar-100-python.tar.gz``)
``jaxnas_fashion_mnist`` ``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
                         ``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz``
``jaxnas_imagenet2012``  ``ILSVRC2012_img_train.tar``, ``ILSVRC2012_img_val.tar`` (the stock
                         ``imagenet2012`` features, JPEG bytes as they are; read lazily by
                         ``jaxnas.data.imagenet``, not pulled into numpy)
=======================  =====================================================================

Shuffling is disabled, so records keep the file order (CIFAR: ``data_batch_1..5``), which is the
index order DARTS' first-half/second-half search split relies on. Importing this module registers
the builders with tfds, so ``tfds.data_source('jaxnas_cifar10', data_dir=...)`` also works (and
``tfds.testing.mock_data`` can mock them).
"""
from __future__ import annotations

import io
import os
import tarfile
from typing import Iterator

import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from jaxnas.data import formats

Arrays = formats.Arrays

FASHION_MNIST_CLASSES = ("t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
                         "sneaker", "bag", "ankle boot")
FASHION_MNIST_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                       "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


class _ManualImageBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Base: uint8 image Tensor + ClassLabel, train/test splits, read by ``read_arrays``."""
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial jaxnas release (TF-free, uint8 Tensor features)."}
  IMAGE_SHAPE: tuple[int, int, int] = (32, 32, 3)
  CLASS_NAMES: tuple[str, ...] = ()
  HOMEPAGE = ""

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=(self.__doc__ or "").strip(),
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=self.IMAGE_SHAPE, dtype=np.uint8),
            "label": tfds.features.ClassLabel(names=list(self.CLASS_NAMES)),
        }),
        supervised_keys=("image", "label"),
        homepage=self.HOMEPAGE,
        disable_shuffling=True,
    )

  def _split_generators(self, dl_manager):
    arrays = self.read_arrays(os.fspath(dl_manager.manual_dir))
    return {split: self._generate_examples(images, labels)
            for split, (images, labels) in arrays.items()}

  def _generate_examples(self, images: np.ndarray, labels: np.ndarray) -> Iterator:
    for i in range(len(labels)):
      yield i, {"image": images[i], "label": int(labels[i])}

  @classmethod
  def read_arrays(cls, manual_dir: str) -> dict[str, Arrays]:
    """Reads the original files in ``manual_dir`` into ``{split: (images, labels)}``."""
    raise NotImplementedError


class _CifarBuilder(_ManualImageBuilder, skip_registration=True):
  LAYOUT: formats.CifarLayout = formats.CIFAR10_LAYOUT
  HOMEPAGE = "https://www.cs.toronto.edu/~kriz/cifar.html"

  @classmethod
  def read_arrays(cls, manual_dir: str) -> dict[str, Arrays]:
    """Reads the binary (preferred) or python CIFAR archive found in ``manual_dir``."""
    path = formats.find_cifar_archive(manual_dir, cls.LAYOUT)
    if path is None:
      raise FileNotFoundError(f"neither {cls.LAYOUT.binary_archive} nor "
                              f"{cls.LAYOUT.python_archive} in '{manual_dir}'")
    return formats.read_cifar_archive(path, cls.LAYOUT)


class JaxnasCifar10(_CifarBuilder):
  """CIFAR-10 (50k train / 10k test, 32x32x3, 10 classes) from the original archive, TF-free."""
  name = "jaxnas_cifar10"
  LAYOUT = formats.CIFAR10_LAYOUT
  CLASS_NAMES = formats.CIFAR10_CLASSES
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Place cifar-10-binary.tar.gz (https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz) or "
      "cifar-10-python.tar.gz in the manual directory.")


class JaxnasCifar100(_CifarBuilder):
  """CIFAR-100 (50k train / 10k test, 32x32x3, 100 fine classes) from the original archive."""
  name = "jaxnas_cifar100"
  LAYOUT = formats.CIFAR100_LAYOUT
  CLASS_NAMES = tuple(f"class_{i:03d}" for i in range(100))  # fine labels; names not needed
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Place cifar-100-binary.tar.gz (https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz) "
      "or cifar-100-python.tar.gz in the manual directory.")


class JaxnasFashionMnist(_ManualImageBuilder):
  """Fashion-MNIST (60k train / 10k test, 28x28x1, 10 classes) from the 4 original gz files."""
  name = "jaxnas_fashion_mnist"
  IMAGE_SHAPE = (28, 28, 1)
  CLASS_NAMES = FASHION_MNIST_CLASSES
  HOMEPAGE = "https://github.com/zalandoresearch/fashion-mnist"
  MANUAL_DOWNLOAD_INSTRUCTIONS = "Place the 4 Fashion-MNIST *-ubyte.gz files in the manual dir."

  @classmethod
  def read_arrays(cls, manual_dir: str) -> dict[str, Arrays]:
    """Reads the 4 idx gz files in ``manual_dir``."""
    return {split: formats.read_idx_gz(os.path.join(manual_dir, imgs),
                                       os.path.join(manual_dir, labs))
            for split, (imgs, labs) in FASHION_MNIST_FILES.items()}


IMAGENET_TARS = {"train": "ILSVRC2012_img_train.tar", "validation": "ILSVRC2012_img_val.tar"}
_IMAGENET_RESOURCES = "datasets/imagenet2012"   # tfds' bundled wnid lists (no download)


def imagenet_wnids() -> list[str]:
  """The 1,000 ILSVRC-2012 class ids (wnids), sorted: tfds' ``imagenet2012`` label order, which is
  also the order of torchvision's ImageFolder over the class folders."""
  return _resource_lines("labels.txt")


def imagenet_validation_wnids() -> list[str]:
  """The wnid of each validation image, in the order of their file names
  (``ILSVRC2012_val_00000001.JPEG`` first), from tfds' bundled ``validation_labels.txt``."""
  return _resource_lines("validation_labels.txt")


def _resource_lines(name: str) -> list[str]:
  path = tfds.core.tfds_path(f"{_IMAGENET_RESOURCES}/{name}")
  return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _tar_members(tar) -> Iterator:
  """``(base name, file object)`` of the regular files of a streamed tar."""
  for member in tar:
    if member.isfile():
      yield os.path.basename(member.name), tar.extractfile(member)


class JaxnasImagenet2012(tfds.core.GeneratorBasedBuilder):
  """ILSVRC-2012 (1,281,167 train / 50,000 validation, 1,000 classes) from the official tars.

  TF-free.

  The stock ``imagenet2012`` features (``image`` JPEG, ``label`` over the sorted wnids,
  ``file_name``), so ``jaxnas.data.imagenet`` reads both the same way. The encoded files are stored
  as they are: the ~22 CMYK JPEGs and the one PNG named ``.JPEG`` that the stock builder re-encodes
  are converted to RGB by Pillow when decoded. Validation labels come from tfds' bundled
  ``validation_labels.txt``. Records keep the tars' order (no shuffling).
  """
  name = "jaxnas_imagenet2012"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial jaxnas release (TF-free, original encoded files)."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Place ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar "
      "(https://image-net.org/download-images.php) in the manual directory.")

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=(self.__doc__ or "").strip(),
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(encoding_format="jpeg"),
            "label": tfds.features.ClassLabel(names=imagenet_wnids()),
            "file_name": tfds.features.Text(),
        }),
        supervised_keys=("image", "label"),
        homepage="https://image-net.org/",
        disable_shuffling=True,
    )

  def _split_generators(self, dl_manager):
    manual_dir = os.fspath(dl_manager.manual_dir)
    paths = {split: os.path.join(manual_dir, name) for split, name in IMAGENET_TARS.items()}
    missing = [p for p in paths.values() if not os.path.isfile(p)]
    if missing:
      raise FileNotFoundError(f"{missing} not found; {self.MANUAL_DOWNLOAD_INSTRUCTIONS}")
    return {split: self._generate_examples(split, path) for split, path in paths.items()}

  def _generate_examples(self, split: str, path: str) -> Iterator:
    with tarfile.open(path, mode="r|") as outer:
      if split == "validation":
        wnids = imagenet_validation_wnids()
        for name, f in _tar_members(outer):
          number = os.path.splitext(name)[0].removeprefix("ILSVRC2012_val_")
          if not (number.isdigit() and 1 <= int(number) <= len(wnids)):
            raise ValueError(f"'{name}' in {path} is not a validation image "
                             "ILSVRC2012_val_00000001.JPEG ... ILSVRC2012_val_00050000.JPEG.")
          yield name, _imagenet_example(f, wnids[int(number) - 1], name)
        return
      for inner_name, inner_file in _tar_members(outer):  # one <wnid>.tar per class
        wnid = os.path.splitext(inner_name)[0]
        with tarfile.open(fileobj=inner_file, mode="r|") as inner:
          for name, f in _tar_members(inner):
            yield name, _imagenet_example(f, wnid, name)


def _imagenet_example(f, wnid: str, name: str) -> dict:
  return {"image": io.BytesIO(f.read()), "label": wnid, "file_name": name}


BUILDERS: dict[str, type[_ManualImageBuilder]] = {
    "cifar10": JaxnasCifar10,
    "cifar100": JaxnasCifar100,
    "fashion_mnist": JaxnasFashionMnist,
}


def prepare(builder_cls: type[tfds.core.GeneratorBasedBuilder], manual_dir: str,
            tfds_dir: str, note: str = "") -> tfds.core.DatasetBuilder:
  """Builds ``builder_cls`` from ``manual_dir`` into ``tfds_dir`` (array_record); no-op if done.

  Logs when it builds (``note`` is appended to that message). tfds writes to a temporary
  ``incomplete.*`` directory and renames it when done, so an interrupted or failed preparation
  leaves nothing that a later call would mistake for a result.
  """
  builder = builder_cls(data_dir=tfds_dir, file_format="array_record")
  if not os.path.isdir(builder.data_dir):
    logging.info("%s: building it from %s into %s (once%s).", builder_cls.name, manual_dir,
                 tfds_dir, note)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  return builder


def read_records(source, keys: list[int]) -> list:
  """``source[k] for k in keys`` in one batched read where the source has ``__getitems__``."""
  try:
    return source.__getitems__(keys)
  except (AttributeError, TypeError):  # plain sequences; tfds.testing.mock_data's mocked source
    return [source[k] for k in keys]


def read_source(source, chunk: int = 4096) -> Arrays:
  """Pulls a whole tfds data source (``image``/``label`` records) into numpy, in record order."""
  n = len(source)
  images, labels = [], []
  for start in range(0, n, chunk):
    records = read_records(source, list(range(start, min(start + chunk, n))))
    images.append(np.stack([np.asarray(r["image"], np.uint8) for r in records]))
    labels.append(np.array([int(r["label"]) for r in records], np.int32))
  if not images:
    raise ValueError("the data source is empty")
  return np.concatenate(images), np.concatenate(labels)


def load_arrays(builder_cls: type[_ManualImageBuilder], manual_dir: str,
                tfds_dir: str) -> dict[str, Arrays]:
  """Prepares (once) and reads back the train and test splits of ``builder_cls`` as numpy."""
  builder = prepare(builder_cls, manual_dir, tfds_dir)
  return {split: read_source(builder.as_data_source(split=split)) for split in ("train", "test")}
