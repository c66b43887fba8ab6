"""Data: image datasets by name, search splits, stateless batch sampling, on-device augmentation.

  ds = jaxnas.data.get_dataset('digits')                       # or 'cifar10', data_dir=...
  jaxnas.data.register_dataset('mine', loader)  # loader(data_dir=None) -> ImageDataset: your own
  splits = jaxnas.data.make_search_splits(ds, 'darts')         # weights / arch / eval
  splits.eval_role, splits.note    # 'validation' | 'test': select genotypes only on validation
  # 'nb201' on cifar100 / imagenet16_120: split_file=AutoDL's *-test-split.txt for the official
  # x-valid half (else a seeded random half that overlaps NB201's x-test; see data/splits.py)
  idx = jaxnas.data.batch_indices(seed, step, len(splits.weights), 64, stream=0,
                                  with_replacement=False)
  x = jaxnas.data.augment(key, images[idx], mean=ds.mean, std=ds.std, cutout=0)   # in jit

The TF-free tfds builders live in `jaxnas.data.tfds_builders` (imported on demand, as it imports
tensorflow_datasets). Offline data and tfds without TensorFlow: ``../shared/spec/data.md``.
"""
from jaxnas.data import imagenet as imagenet
from jaxnas.data.augment import augment as augment
from jaxnas.data.augment import normalize as normalize
from jaxnas.data.datasets import DATASETS as DATASETS
from jaxnas.data.datasets import ImageDataset as ImageDataset
from jaxnas.data.datasets import cache_root as cache_root
from jaxnas.data.datasets import dataset_options as dataset_options
from jaxnas.data.datasets import get_dataset as get_dataset
from jaxnas.data.datasets import register_dataset as register_dataset
from jaxnas.data.errors import DatasetFormatError as DatasetFormatError
from jaxnas.data.errors import DatasetNotFoundError as DatasetNotFoundError
from jaxnas.data.sampling import batch_indices as batch_indices
from jaxnas.data.sampling import prefetch as prefetch
from jaxnas.data.sampling import steps_per_epoch as steps_per_epoch
from jaxnas.data.sampling import PARTIAL_BATCHES as PARTIAL_BATCHES
from jaxnas.data.splits import SPLIT_SCHEMES as SPLIT_SCHEMES
from jaxnas.data.splits import SearchSplits as SearchSplits
from jaxnas.data.splits import Split as Split
from jaxnas.data.splits import make_search_splits as make_search_splits

__all__ = ["DATASETS", "imagenet", "SPLIT_SCHEMES", "DatasetFormatError", "DatasetNotFoundError",
           "ImageDataset", "PARTIAL_BATCHES", "SearchSplits", "Split", "augment", "batch_indices", "cache_root",
           "dataset_options", "get_dataset", "make_search_splits", "register_dataset", "normalize", "steps_per_epoch"]
