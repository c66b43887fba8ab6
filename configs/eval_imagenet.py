"""Train a found DARTS-space cell from scratch in the ImageNet mobile setting (DARTS protocol).

  python -m jaxnas.train --config=configs/eval_imagenet.py --workdir=runs/eval_v2_imagenet \
      --config.genotype=DARTS_V2 --config.data.name=<an ImageNet dataset>

quark0/darts ``cnn/train_imagenet.py`` (methods.md §1.3): 14 cells, C=48, the mobile stem (three
stride-2 3x3 convolutions), auxiliary head (weight 0.4, no BN after its 768-channel conv),
drop-path 0, 250 epochs, batch 128, SGD lr 0.1 decayed x0.97 every epoch (epoch-start scheduler
step), momentum 0.9, wd 3e-5, clip 5, label smoothing 0.1. ``result.json`` reports the network's
multiply-adds at the data's image size (the mobile setting's limit is 600M at 224x224).

Data: ``--config.data.data_dir`` holds ``train/<wnid>/*.JPEG`` and ``val/<wnid>/*.JPEG`` (the
ImageFolder layout of the reference), a prepared tfds ``imagenet2012`` (array_record), or the
official ``ILSVRC2012_img_{train,val}.tar`` (``jaxnas.data.imagenet``), decoded and augmented on
the host (``data.prefetch`` batches ahead, on a background thread) as the reference does
(RandomResizedCrop 224 + flip + ColorJitter(0.4, 0.4, 0.4, 0.2); test: resize 256, center crop
224), so the device-side CIFAR crop/flip/Cutout are off. ``:smoke``: 2 steps of
a 3-cell C=8 network on 32x32 synthetic data (auxiliary head off: its 5x5 pooling needs >= 5x5 features, i.e. >= 160x160 inputs
after the mobile stem and two reductions).
"""
from configs import eval_cifar10


def get_config(arg=None):
  config = eval_cifar10.get_config()
  config.network.channels = 48
  config.network.layers = 14
  config.network.stem = "imagenet"
  config.network.auxiliary = True
  config.data.name = "imagenet"        # data_dir: class folders, a tfds imagenet2012, or the tars
  config.data.image_size = 224         # RandomResizedCrop / center-crop size
  config.data.resize_size = 256        # test: shorter side resized to this, then center crop
  config.data.crop_padding = 0         # augmentation happens on the host (jaxnas.data.imagenet)
  config.data.flip = False
  config.data.cutout = 0
  config.batch_size = 128
  config.eval_batch_size = 500
  config.epochs = 250
  config.optimizer.schedule = "exponential"
  config.optimizer.learning_rate = 0.1
  config.optimizer.decay_rate = 0.97
  config.optimizer.weight_decay = 3e-5
  config.auxiliary_weight = 0.4
  config.label_smoothing = 0.1
  config.drop_path_prob = 0.0
  return eval_cifar10.apply_variants(config, arg, {"smoke": smoke})


def smoke(config):
  eval_cifar10.smoke(config)
  config.network.channels = 8
  config.network.auxiliary = False
  config.data.cutout = 0
  return config
