"""Train a found DARTS-space cell from scratch on CIFAR-10: the DARTS evaluation protocol.

  python -m jaxnas.train --config=configs/eval_cifar10.py --workdir=runs/eval_v2 \
      --config.genotype=DARTS_V2 --config.data.data_dir=/path/with/cifar-10-binary.tar.gz

``--config.genotype``: a registered name (``jaxnas.genotypes.names()``: DARTS_V1, DARTS_V2,
PC_DARTS_CIFAR, NAONET_V2, ...), a genotype string (``"Genotype(normal=[...], ...)"``, an NB201
``"|op~0|+..."`` string, or a NAO arch ``"nao:1 1 0 1 ..."``), or the path of a search's workdir /
``genotypes.jsonl`` (its last genotype). quark0/darts ``cnn/train.py`` (methods.md §1.3): 20 cells,
C=36, auxiliary head (weight 0.4), drop-path 0.2 (linear ramp), 600 epochs, batch 96, SGD 0.025
cosine to 0 (momentum 0.9, epoch-start scheduler step), wd 3e-4, clip 5, crop + flip + cutout 16,
seed 0; test accuracy every epoch. GAEA's evaluation uses drop-path 0.3:
``--config.drop_path_prob=0.3``.

Variants: ``:smoke`` (a 3-cell C=4 network, 32x32 synthetic data, 2 steps; 32x32 because the
auxiliary head's 5x5 pooling needs at least 5x5 features after the two reductions), ``:nb201``
(an NB201 cell's network, C=16, N=5; NB201 has no auxiliary head or drop-path; the training
hyperparameters stay DARTS' unless overridden), ``:naonet`` (NAO-V2's recipe for NAONet-V2, see
``naonet``) and ``:naonet_a`` (NAO-V1's for NAONet-A). Put ``smoke`` last: ``:nb201,smoke``,
``:naonet,smoke``.
"""
import ml_collections

from configs import default


def get_config(arg=None):
  config = ml_collections.ConfigDict()
  config.mode = "eval"                 # train.py: train a discrete network, not a search
  config.seed = 0                      # PRNG seed: init, data order, augmentation, drop-path
  config.genotype = "DARTS_V2"         # registry name | genotype string | path of a genotypes.jsonl

  config.network = ml_collections.ConfigDict()
  config.network.channels = 36         # initial channels C (NB201: 16)
  config.network.layers = 20           # DARTS: number of cells
  config.network.cells_per_stage = 5   # NB201, NAO: cells per stage N (NAO: 3N+2 cells)
  config.network.auxiliary = True      # DARTS: auxiliary head after the second reduction cell
  config.network.stem = "cifar"        # DARTS: 'cifar' | 'imagenet' (mobile setting)

  config.data = ml_collections.ConfigDict()
  config.data.name = "cifar10"         # dataset: cifar10 | cifar100 | imagenet | ... (jaxnas.data)
  config.data.data_dir = ""            # directory of the dataset's files (README 'Data')
  config.data.max_examples = 0         # cap on train and test sizes (0 = all)
  config.data.prefetch = 2             # batches gathered/decoded ahead on a thread (0 = off)
  config.data.crop_padding = 4         # random-crop zero padding (0 = off)
  config.data.flip = True              # random horizontal flips
  config.data.cutout = 16              # cutout size (0 = off)
  config.data.synthetic_image_size = 32 # 'synthetic' only: image side
  config.data.synthetic_num_train = 512 # 'synthetic' only: training examples
  config.data.synthetic_num_test = 128 # 'synthetic' only: test examples
  config.data.synthetic_num_classes = 10 # 'synthetic' only: classes

  config.batch_size = 96               # training batch
  config.eval_batch_size = 500         # 10,000 test images = 20 batches
  config.epochs = 600                  # training epochs
  config.max_steps = 0                 # stop after this many steps (0 = epochs * steps/epoch)

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.schedule = "cosine"     # 'cosine' | 'exponential' (lr * decay_rate**epoch)
  config.optimizer.learning_rate = 0.025 # initial learning rate (> 0)
  config.optimizer.min_learning_rate = 0.0 # cosine only: final learning rate (>= 0)
  config.optimizer.decay_rate = 0.97       # exponential only
  config.optimizer.epoch_offset = 1        # the reference's scheduler.step() at epoch start
  config.optimizer.momentum = 0.9      # SGD momentum
  config.optimizer.nesterov = False    # Nesterov momentum
  config.optimizer.weight_decay = 3e-4 # L2 added to the gradient (PyTorch SGD)
  config.optimizer.clip_norm = 5.0     # global-norm gradient clip (0 = off)

  config.auxiliary_weight = 0.4        # weight of the auxiliary head's loss
  config.label_smoothing = 0.0         # uniform label smoothing (0 = off)
  config.drop_path_prob = 0.2          # drop-path probability, ramped (drop_path_ramp)
  config.drop_path_ramp = "epoch"      # 'epoch': p * epoch / epochs (DARTS) | 'step': NAO's
  config.dropout_prob = 0.0            # NAO only: dropout before the classifier (1 - keep_prob)

  config.log_every_steps = 100         # console + TensorBoard training metrics
  config.eval_every_epochs = 1         # test-set evaluation every this many epochs
  config.eval_max_batches = 0          # cap on evaluation batches (0 = all)
  config.checkpoint_every_steps = 2000     # also at every epoch end
  config.keep_checkpoints = 3          # checkpoints kept on disk
  default.add_scale_fields(config)  # config.mesh, config.distributed (as in search)
  config.plots = True                      # write genotype.png at the end (needs matplotlib)
  return apply_variants(config, arg, {"smoke": smoke, "nb201": nb201, "naonet": naonet,
                                      "naonet_a": naonet_a})


def apply_variants(config, arg, variants):
  """Applies comma-separated variants in order, e.g. ``:nb201,smoke``."""
  for name in [v.strip() for v in (arg or "").split(",") if v.strip()]:
    if name not in variants:
      raise ValueError(f"Unknown config variant {name!r}; valid variants: {', '.join(variants)}.")
    variants[name](config)
  return config


def smoke(config):
  """2 steps of a 3-cell C=4 network on 32x32 synthetic data (drop-path and aux head on)."""
  config.network.channels = 4
  config.network.layers = 3
  config.network.cells_per_stage = 1
  config.data.name = "synthetic"
  config.data.data_dir = ""
  config.data.synthetic_num_train = 16
  config.data.synthetic_num_test = 16
  config.batch_size = 8
  config.eval_batch_size = 16
  config.epochs = 2
  config.max_steps = 2
  config.log_every_steps = 1
  config.checkpoint_every_steps = 1
  return config


def nb201(config):
  """An NB201 cell (default: the best CIFAR-10 cell of the benchmark) in the NB201 network."""
  config.genotype = "NB201_BEST_CIFAR10"
  config.network.channels = 16
  config.network.cells_per_stage = 5
  config.network.auxiliary = False
  config.drop_path_prob = 0.0
  return config


def naonet(config):
  """NAONet-V2 trained as ``renqianluo/NAO_pytorch`` ``NAO_V2/train_NAONet_V2_36_cifar10.sh``
  (@418ff71) with ``NAO_V2/train_cifar.py``'s defaults; NAO_V2/README.md reports 2.57 % error.

  Matched: the arch (``NAONET_V2``, small op set), C=36, N=6 (20 cells), auxiliary head (weight
  0.4), 600 epochs, batch 128, SGD momentum 0.9, lr 0.025 cosine to 0 with the scheduler stepped
  at each epoch start, L2 5e-4 on every weight (``--l2_reg``), gradient-norm clip 5
  (``--grad_bound``), dropout keep 0.6 before the classifier (``--keep_prob``), drop-path keep 0.8
  (``--drop_path_keep_prob``) ramped per step and per cell, crop (pad 4) + flip + cutout 16, test
  batch 500, seed 0. Differs: the last partial batch of an epoch is dropped (390 steps per epoch,
  the reference 391), so the drop-path ramp spans 600 x 390 steps instead of 600 x 391; data
  order and augmentation draws are jaxnas' (``jaxnas.evaluate``'s module docstring).
  """
  config.genotype = "NAONET_V2"
  config.network.channels = 36
  config.network.cells_per_stage = 6
  config.network.layers = 20           # not used by NAO networks (3N+2 = 20 cells)
  config.network.auxiliary = True
  config.network.stem = "cifar"
  config.batch_size = 128
  config.eval_batch_size = 500
  config.epochs = 600
  config.optimizer.schedule = "cosine"
  config.optimizer.learning_rate = 0.025
  config.optimizer.min_learning_rate = 0.0
  config.optimizer.epoch_offset = 1
  config.optimizer.momentum = 0.9
  config.optimizer.nesterov = False
  config.optimizer.weight_decay = 5e-4
  config.optimizer.clip_norm = 5.0
  config.auxiliary_weight = 0.4
  config.drop_path_prob = 0.2
  config.drop_path_ramp = "step"
  config.dropout_prob = 0.4
  config.data.crop_padding = 4
  config.data.flip = True
  config.data.cutout = 16
  return config


def naonet_a(config):
  """NAONet-A trained as ``renqianluo/NAO_pytorch`` ``NAO_V1/train_NAONet_A_36_cifar10.sh``
  (@418ff71) with ``NAO_V1/train_cifar.py``'s defaults; NAO_V1/README.md reports 2.48 % error.

  ``naonet``'s recipe (the two ``train_cifar.py`` differ only in these defaults) with the arch
  ``NAONET_A`` (NAO-V1's op numbering), L2 3e-4 (``--l2_reg``'s V1 default) and no auxiliary head
  (the script does not pass ``--use_aux_head``). NAONet-A-128 (1.93 %):
  ``--config.network.channels=128 --config.network.auxiliary=true
  --config.optimizer.weight_decay=5e-4 --config.drop_path_prob=0.3`` (its 4-GPU script's flags).
  """
  naonet(config)
  config.genotype = "NAONET_A"
  config.network.auxiliary = False
  config.optimizer.weight_decay = 3e-4
  return config
