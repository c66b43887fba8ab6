"""NAO-V2 (Balanced NAO) on CIFAR-10 with NAO's cell space: the reference defaults (methods.md §5).

  python -m jaxnas.train --config=configs/nao_v2_cifar10.py --workdir=runs/nao_v2 \
      --config.data.data_dir=/path/with/cifar-10-binary.tar.gz

NAO_pytorch ``NAO_V2/train_search.py``: 4 iterations; 1000 random seed architectures, 300 new per
iteration; supernet (11 cells: N=3 per stage, C=20, B=5 nodes, "small" ops) trained 50 epochs per
iteration on a 45k/5k split, batch 64, SGD 0.025 -> 0.001 cosine restarted per iteration, momentum
0.9, L2 3e-4, clip 5, drop-path keep 0.9, architectures sampled in proportion to their stand-alone
parameter count; each pool architecture scored on one random 500-image validation batch;
controller (emb 32, LSTM 64, linear predictor) 1000 epochs per iteration, Adam 1e-3, trade-off 0.8,
10x symmetric-swap augmentation; the top 5 re-ranked by 10 epochs of stand-alone training.

Variants: ``:uniform`` (NAO-V1's uniform architecture sampling, the paper's ablation) and
``:smoke`` (tiny sizes on synthetic data: the whole driver in seconds).
"""
from configs import default


def get_config(arg=None):
  config = default.get_config()
  config.method = "nao_v2"
  config.seed = 0
  config.space.name = "nao"
  config.space.ops = ""                  # NAO's 'small' op set (config.nao.op_set)
  config.space.nodes = 5
  config.space.channels = 20
  config.space.cells_per_stage = 3
  config.data.name = "cifar10"
  config.data.split = "darts"
  config.data.train_portion = 0.9        # 45k / 5k
  config.data.cutout = 0
  config.batch_size = 64
  config.eval_batch_size = 500
  config.weights_optimizer.epoch_offset = 1   # CosineAnnealingLR.step() at each epoch start
  config.log_every_steps = 100
  config.checkpoint_every_steps = 1000
  return default.maybe_smoke(config, arg, {"uniform": uniform, "smoke": smoke})


def uniform(config):
  """NAO-V1's uniform architecture sampling (the balanced-sampling ablation)."""
  config.nao.sampling = "uniform"
  return config


def smoke(config):
  """The whole driver at toy sizes: 2 iterations, 6 + 3 archs, 4 supernet steps each."""
  default.smoke(config)
  config.space.channels = 4
  config.space.cells_per_stage = 1
  config.space.nodes = 2                 # B = 2 nodes: a much shorter compile than NAO's B = 5
  config.data.synthetic_num_train = 64
  config.data.train_portion = 0.5        # 32 / 32: room for a score batch
  config.checkpoint_every_steps = 2
  config.nao.iterations = 2
  config.nao.seed_archs = 6
  config.nao.new_archs = 3
  config.nao.child_epochs = 1
  config.nao.score_batch_size = 8
  config.nao.rerank_top = 1
  config.space.ops = "avg_pool_3x3,max_pool_3x3,identity"  # no depthwise convs: a short compile
  config.nao.rerank_epochs = 1
  config.nao.controller.epochs = 2
  config.nao.controller.batch_size = 8
  config.nao.controller.expand = 2
  config.nao.controller.top_archs = 4
  config.nao.controller.max_step_size = 5
  config.eval_batch_size = 16
  config.max_steps = 0
  return config
