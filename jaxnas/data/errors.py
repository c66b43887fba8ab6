"""Errors of the dataset loaders: missing files and malformed files, each saying how to fix it."""
from __future__ import annotations

CONFIG_FIELD = "--config.data.data_dir"


class DatasetNotFoundError(FileNotFoundError):
  """A dataset's files are not where jaxnas was told to look (or no directory was given)."""


class DatasetFormatError(ValueError):
  """A dataset file exists but does not have the expected format or content."""


def not_found(dataset: str, expected: str, directory: object, where: str) -> DatasetNotFoundError:
  """Builds the standard 'file missing' error: what, where it was looked for, how to fix it.

  Args:
    dataset: registry name of the dataset, e.g. ``"cifar10"``.
    expected: the file(s) expected, e.g. ``"'cifar-10-binary.tar.gz'"``.
    directory: the directory searched (``None`` if no directory was given).
    where: where to obtain the file(s) (URL or short instructions).
  """
  if directory is None:
    located = "but no data directory was given"
  else:
    located = f"in directory '{directory}', but it is not there"
  return DatasetNotFoundError(
      f"Dataset '{dataset}' expects {expected} {located}. Get it from {where}, put it in a "
      f"directory and pass that directory with {CONFIG_FIELD}=/path/to/dir "
      f"(in Python: jaxnas.data.get_dataset({dataset!r}, data_dir='/path/to/dir')).")
