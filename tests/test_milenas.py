"""MiLeNAS bookkeeping: conv counts, best genotype per size bucket, early stopping."""
from jaxnas.methods import SizeBuckets, conv_counts, should_stop_early
from jaxnas.spaces.darts import Genotype


def genotype(normal_convs, reduce_convs):
  normal = [("sep_conv_3x3", 0)] * normal_convs + [("skip_connect", 1)] * (8 - normal_convs)
  reduce = [("dil_conv_5x5", 0)] * reduce_convs + [("max_pool_3x3", 1)] * (8 - reduce_convs)
  return Genotype(normal, [2, 3, 4, 5], reduce, [2, 3, 4, 5])


def test_conv_counts_and_early_stopping():
  assert conv_counts(genotype(6, 0)) == (6, 0)
  assert conv_counts(genotype(3, 8)) == (3, 8)
  assert should_stop_early(genotype(6, 0))
  assert not should_stop_early(genotype(6, 1))
  assert not should_stop_early(genotype(5, 0))


def test_buckets_keep_best_accuracy_per_size_on_a_scripted_search():
  scripted = [((8, 8), 0.50), ((7, 8), 0.60), ((8, 8), 0.55), ((8, 8), 0.52), ((7, 8), 0.58),
              ((6, 0), 0.70)]
  buckets = SizeBuckets()
  improved = [buckets.update(genotype(*size), acc, step) for step, (size, acc) in
              enumerate(scripted)]
  assert improved == [True, True, True, False, False, True]
  assert {k: v["accuracy"] for k, v in buckets.best.items()} == {(8, 8): 0.55, (7, 8): 0.60,
                                                                  (6, 0): 0.70}
  assert buckets.best[(8, 8)]["step"] == 2
  restored = SizeBuckets.from_json(buckets.to_json())
  assert restored.best == buckets.best
  first_stop = next(step for step, (size, _) in enumerate(scripted)
                    if should_stop_early(genotype(*size)))
  assert first_stop == 5
