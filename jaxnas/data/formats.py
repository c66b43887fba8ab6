"""Readers for the original on-disk dataset formats: pure numpy, no TensorFlow, no tfds.

Every reader returns ``{split: (images, labels)}`` with ``images`` uint8 NHWC and ``labels`` int32,
in file order, and raises `DatasetFormatError` (naming the file) on malformed input.

* CIFAR binary archives (``cifar-10-binary.tar.gz`` / ``cifar-100-binary.tar.gz``): records of
  label byte(s) + 3072 pixel bytes (CHW, 32x32x3).
* CIFAR python archives (``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz``): pickled dicts.
* Fashion-MNIST / MNIST idx files, gzip-compressed.
* NB201's ImageNet16 pickles (``train_data_batch_1..10``, ``val_data``).
* The lossy JPEG copy of CIFAR-10 (``train/<class>/*.jpg``, ``test/<class>/*.jpg``), as a tarball
  or an extracted directory.

Pickles are read with a restricted unpickler that only accepts numpy arrays and plain Python
containers, so a tampered file cannot run code.
"""
from __future__ import annotations

import dataclasses
import gzip
import io
import os
import pickle
import tarfile
from typing import Iterator

import numpy as np

from jaxnas.data.errors import DatasetFormatError

Arrays = tuple[np.ndarray, np.ndarray]

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                   "truck")
_CIFAR_PIXELS = 3 * 32 * 32


@dataclasses.dataclass(frozen=True)
class CifarLayout:
  """Where the records of one CIFAR archive variant are and how to parse them."""
  num_classes: int
  binary_archive: str
  binary_files: dict[str, tuple[str, ...]]    # split -> member basenames, in order
  label_bytes: int                            # binary: label bytes before the pixels
  label_index: int                            # binary: which label byte is the class
  python_archive: str
  python_files: dict[str, tuple[str, ...]]
  python_label_key: bytes


CIFAR10_LAYOUT = CifarLayout(
    num_classes=10, binary_archive="cifar-10-binary.tar.gz",
    binary_files={"train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
                  "test": ("test_batch.bin",)},
    label_bytes=1, label_index=0, python_archive="cifar-10-python.tar.gz",
    python_files={"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
    python_label_key=b"labels")

CIFAR100_LAYOUT = CifarLayout(
    num_classes=100, binary_archive="cifar-100-binary.tar.gz",
    binary_files={"train": ("train.bin",), "test": ("test.bin",)},
    label_bytes=2, label_index=1,  # (coarse, fine): the fine label is the class
    python_archive="cifar-100-python.tar.gz",
    python_files={"train": ("train",), "test": ("test",)}, python_label_key=b"fine_labels")


class _SafeUnpickler(pickle.Unpickler):
  """Unpickler that only resolves the globals numpy arrays need."""
  _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
              ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
              ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
              ("numpy", "ndarray"), ("numpy", "dtype"),
              ("_codecs", "encode")}  # bytes in protocol-2 pickles written by Python 3

  def find_class(self, module, name):
    if (module, name) not in self._ALLOWED:
      raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a dataset pickle")
    return super().find_class(module, name)


def safe_pickle_loads(data: bytes, what: str) -> object:
  """Unpickles ``data`` (latin1 strings, numpy arrays only); ``what`` names the file in errors."""
  try:
    return _SafeUnpickler(io.BytesIO(data), encoding="latin1").load()
  except Exception as e:  # noqa: BLE001 -- any failure means a malformed file
    raise DatasetFormatError(f"{what} is not a readable dataset pickle: {e}") from e


def _tar_members(path: str | os.PathLike, wanted: set[str]) -> dict[str, bytes]:
  """Contents of the members of tarball ``path`` whose basename is in ``wanted``."""
  out = {}
  try:
    with tarfile.open(path, "r:*") as tar:
      for member in tar:
        base = os.path.basename(member.name)
        if member.isfile() and base in wanted and base not in out:
          out[base] = tar.extractfile(member).read()
  except (tarfile.TarError, OSError, EOFError) as e:
    raise DatasetFormatError(f"'{path}' is not a readable tar archive: {e}") from e
  missing = sorted(wanted - set(out))
  if missing:
    raise DatasetFormatError(f"archive '{path}' lacks the member(s) {missing}; is it the original "
                             "archive of this dataset?")
  return out


def _check_labels(labels: np.ndarray, num_classes: int, what: str) -> np.ndarray:
  labels = np.asarray(labels).astype(np.int32)
  if labels.ndim != 1 or (labels.size and (labels.min() < 0 or labels.max() >= num_classes)):
    raise DatasetFormatError(f"{what}: labels must be integers in [0, {num_classes})")
  return labels


def _chw_to_nhwc(flat: np.ndarray, channels: int, size: int) -> np.ndarray:
  return np.ascontiguousarray(flat.reshape(-1, channels, size, size).transpose(0, 2, 3, 1))


def _parse_cifar_binary(data: bytes, layout: CifarLayout, what: str) -> Arrays:
  record = layout.label_bytes + _CIFAR_PIXELS
  if not data or len(data) % record:
    raise DatasetFormatError(f"{what} has {len(data)} bytes, not a positive multiple of the "
                             f"{record}-byte CIFAR record")
  rows = np.frombuffer(data, np.uint8).reshape(-1, record)
  labels = _check_labels(rows[:, layout.label_index], layout.num_classes, what)
  return _chw_to_nhwc(rows[:, layout.label_bytes:], 3, 32), labels


def _parse_cifar_python(data: bytes, layout: CifarLayout, what: str) -> Arrays:
  entry = safe_pickle_loads(data, what)
  if not isinstance(entry, dict):
    raise DatasetFormatError(f"{what}: expected a pickled dict")
  entry = {k.encode("latin1") if isinstance(k, str) else k: v for k, v in entry.items()}
  if b"data" not in entry or layout.python_label_key not in entry:
    raise DatasetFormatError(f"{what}: expected keys 'data' and {layout.python_label_key!r}")
  pixels = np.asarray(entry[b"data"], np.uint8)
  labels = _check_labels(entry[layout.python_label_key], layout.num_classes, what)
  if pixels.ndim != 2 or pixels.shape != (len(labels), _CIFAR_PIXELS):
    raise DatasetFormatError(f"{what}: 'data' has shape {pixels.shape}, expected "
                             f"({len(labels)}, {_CIFAR_PIXELS})")
  return _chw_to_nhwc(pixels, 3, 32), labels


def find_cifar_archive(manual_dir: str, layout: CifarLayout) -> str | None:
  """Path of the binary archive in ``manual_dir`` if present, else of the python one, else None."""
  for name in (layout.binary_archive, layout.python_archive):
    path = os.path.join(manual_dir, name)
    if os.path.isfile(path):
      return path
  return None


def read_cifar_archive(path: str | os.PathLike, layout: CifarLayout) -> dict[str, Arrays]:
  """Reads a CIFAR binary or python tarball (chosen by its file name) into train/test arrays.

  Batches are concatenated in their numbered order, which is the order torchvision and tfds use.
  """
  binary = os.path.basename(path) == layout.binary_archive
  files = layout.binary_files if binary else layout.python_files
  members = _tar_members(path, {f for names in files.values() for f in names})
  parse = _parse_cifar_binary if binary else _parse_cifar_python
  out = {}
  for split, names in files.items():
    parts = [parse(members[n], layout, f"'{n}' in '{path}'") for n in names]
    out[split] = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
  return out


def read_idx_gz(images_path: str | os.PathLike, labels_path: str | os.PathLike,
                num_classes: int = 10) -> Arrays:
  """Reads a gzip'ed idx image file (magic 2051) and idx label file (magic 2049), MNIST style."""
  def read(path, magic, header):
    try:
      with gzip.open(path, "rb") as f:
        data = f.read()
    except (OSError, EOFError) as e:
      raise DatasetFormatError(f"'{path}' is not a readable gzip file: {e}") from e
    dims = np.frombuffer(data[:4 * header], ">i4") if len(data) >= 4 * header else None
    if dims is None or dims[0] != magic:
      raise DatasetFormatError(f"'{path}' is not an idx file with magic number {magic}")
    body = np.frombuffer(data, np.uint8, offset=4 * header)
    if body.size != int(np.prod(dims[1:])):
      raise DatasetFormatError(f"'{path}': header says {tuple(dims[1:])}, data has {body.size} "
                               "bytes")
    return body.reshape(tuple(int(d) for d in dims[1:]))

  images = read(images_path, 2051, 4)
  labels = _check_labels(read(labels_path, 2049, 2), num_classes, f"'{labels_path}'")
  if len(images) != len(labels):
    raise DatasetFormatError(f"'{images_path}' has {len(images)} images but '{labels_path}' has "
                             f"{len(labels)} labels")
  return np.ascontiguousarray(images[..., None]), labels


def read_imagenet16(directory: str | os.PathLike, files: dict[str, tuple[str, ...]],
                    max_label: int) -> dict[str, Arrays]:
  """Reads NB201's ImageNet16 pickles; keeps labels <= ``max_label`` and makes them 0-based.

  Each file is a pickled dict with ``'data'`` (N, 3*16*16) uint8 in CHW order and ``'labels'``
  (1-based ints), as read by NB201's ``ImageNet16`` dataset class.
  """
  out = {}
  for split, names in files.items():
    images, labels = [], []
    for name in names:
      path = os.path.join(directory, name)
      with open(path, "rb") as f:
        entry = safe_pickle_loads(f.read(), f"'{path}'")
      if not isinstance(entry, dict) or "data" not in entry or "labels" not in entry:
        raise DatasetFormatError(f"'{path}': expected a pickled dict with 'data' and 'labels'")
      pixels = np.asarray(entry["data"], np.uint8)
      lab = np.asarray(entry["labels"]).astype(np.int64)
      if pixels.ndim != 2 or pixels.shape != (len(lab), 3 * 16 * 16) or lab.ndim != 1:
        raise DatasetFormatError(f"'{path}': 'data' has shape {pixels.shape}, expected "
                                 f"({len(lab)}, 768)")
      keep = lab <= max_label
      images.append(_chw_to_nhwc(pixels[keep], 3, 16))
      labels.append(_check_labels(lab[keep] - 1, max_label, f"'{path}'"))
    out[split] = (np.concatenate(images), np.concatenate(labels))
  return out


def _jpeg_entries(source: str | os.PathLike) -> Iterator[tuple[str, str, str, bytes]]:
  """Yields (split, class, file name, jpeg bytes) from a tarball or an extracted directory."""
  if os.path.isdir(source):
    for split in ("train", "test"):
      for cls in sorted(os.listdir(os.path.join(source, split))):
        folder = os.path.join(source, split, cls)
        for fname in sorted(os.listdir(folder)):
          if fname.endswith(".jpg"):
            with open(os.path.join(folder, fname), "rb") as f:
              yield split, cls, fname, f.read()
    return
  try:
    with tarfile.open(source, "r:*") as tar:
      for m in tar:
        parts = m.name.split("/")
        if m.isfile() and m.name.endswith(".jpg") and len(parts) >= 3:
          yield parts[-3], parts[-2], parts[-1], tar.extractfile(m).read()
  except (tarfile.TarError, OSError, EOFError) as e:
    raise DatasetFormatError(f"'{source}' is not a readable tar archive: {e}") from e


def read_cifar10_jpeg(source: str | os.PathLike, seed: int = 0) -> dict[str, Arrays]:
  """Decodes the JPEG copy of CIFAR-10 (``<split>/<class>/*.jpg``) into train/test arrays.

  The files are sorted by (class, name), then shuffled with ``default_rng([seed, split_id])``, so
  the order is fixed and not class-sorted (the original CIFAR order is lost in this copy).
  """
  from PIL import Image  # pillow is only needed for this dataset
  items = {"train": [], "test": []}
  for split, cls, fname, data in _jpeg_entries(source):
    if split not in items or cls not in CIFAR10_CLASSES:
      raise DatasetFormatError(f"'{source}': unexpected entry {split}/{cls}/{fname}; expected "
                               f"train|test/<one of {CIFAR10_CLASSES}>/*.jpg")
    try:
      img = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    except Exception as e:  # noqa: BLE001 -- PIL raises several types
      raise DatasetFormatError(f"'{source}': cannot decode {split}/{cls}/{fname}: {e}") from e
    if img.shape != (32, 32, 3):
      raise DatasetFormatError(f"'{source}': {split}/{cls}/{fname} is {img.shape}, not 32x32x3")
    items[split].append((cls, fname, img))
  out = {}
  for split_id, (split, entries) in enumerate(items.items()):
    if not entries:
      raise DatasetFormatError(f"'{source}' holds no {split}/<class>/*.jpg images")
    entries.sort(key=lambda e: (CIFAR10_CLASSES.index(e[0]), e[1]))
    order = np.random.default_rng([seed, split_id]).permutation(len(entries))
    images = np.stack([entries[i][2] for i in order])
    labels = np.array([CIFAR10_CLASSES.index(entries[i][0]) for i in order], np.int32)
    out[split] = (images, labels)
  return out
