"""NAO-V2 on NAS-Bench-201: one-shot ranking quality against the ground truth.

  python -m jaxnas.train --config=configs/nao_v2_nb201.py --workdir=runs/nao_v2_nb201 \
      --config.data.data_dir=/path/with/cifar-10-binary.tar.gz \
      --config.benchmark.path=/path/to/nats_bench.csv

NB201's 6 edges are the tokens (``jaxnas.nao.nb201``); the supernet is NB201's (C=16, N=5) with
one-hot mixing. NAO-V2's loop and controller as in ``nao_v2_cifar10.py``, at NB201-sized budgets
(15,625 cells: 200 seed architectures, 100 new per iteration, 3 iterations). With
``config.benchmark.path`` every iteration logs Kendall's tau between the supernet's scores and
the 200-epoch test accuracy of every architecture in the pool (``nao_iterations.jsonl``) — the
quantity NAO-V2's balanced sampling is meant to raise.

Variants: ``:uniform`` (NAO-V1 sampling, the ablation), ``:cpu`` (C=8, N=2 on 5000 CIFAR-10
images for each split, 10 supernet epochs and 100 seed architectures: about 15 minutes per
iteration on a 2-core CPU) and ``:smoke``.
"""
from configs import default
from configs import nao_v2_cifar10


def get_config(arg=None):
  config = nao_v2_cifar10.get_config()
  config.space.name = "nb201"
  config.space.ops = ""                  # all five NB201 ops
  config.space.channels = 16
  config.space.cells_per_stage = 5
  config.nao.seed_archs = 200
  config.nao.new_archs = 100
  config.nao.iterations = 3
  config.nao.child_epochs = 25
  config.nao.rerank_epochs = 0           # the table is the re-rank
  config.nao.controller.top_archs = 50
  return default.maybe_smoke(config, arg, {"uniform": nao_v2_cifar10.uniform, "cpu": cpu,
                                           "smoke": smoke})


def cpu(config):
  """CPU scale: C=8, N=2, 5000 training and 5000 scoring images, 10 supernet epochs an iteration."""
  config.space.channels = 8
  config.space.cells_per_stage = 2
  config.data.train_portion = 0.5
  config.data.max_examples = 5000
  config.nao.child_epochs = 10
  config.nao.seed_archs = 100
  config.nao.new_archs = 50
  config.nao.controller.epochs = 200
  config.log_every_steps = 26
  config.checkpoint_every_steps = 100
  return config


def smoke(config):
  """The driver at toy sizes (``nao_v2_cifar10.smoke``), ranked by supernet score."""
  nao_v2_cifar10.smoke(config)
  config.space.ops = ""                  # all five NB201 ops
  config.nao.rerank_epochs = 0
  return config
