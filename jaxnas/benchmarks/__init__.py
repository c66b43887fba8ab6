"""Ground-truth benchmark tables for evaluating discovered architectures without training them.

* `NB201Benchmark`: NAS-Bench-201 / NATS-Bench topology, 200-epoch accuracies on CIFAR-10,
  CIFAR-100 and ImageNet16-120 (see `jaxnas.benchmarks.nb201` for sources and semantics).
"""
from jaxnas.benchmarks.nb201 import NB201_DATASETS as NB201_DATASETS
from jaxnas.benchmarks.nb201 import NB201_OPS as NB201_OPS
from jaxnas.benchmarks.nb201 import NB201Benchmark as NB201Benchmark
from jaxnas.benchmarks.nb201 import arch_string_to_code as arch_string_to_code
from jaxnas.benchmarks.nb201 import canonical_dataset as canonical_dataset
from jaxnas.benchmarks.nb201 import code_to_arch_string as code_to_arch_string

__all__ = ['NB201_DATASETS', 'NB201_OPS', 'NB201Benchmark', 'arch_string_to_code',
           'canonical_dataset', 'code_to_arch_string']
