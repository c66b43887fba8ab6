r"""GDAS (Dong & Yang, CVPR 2019) on CIFAR-10, DARTS (NASNet) space, as AutoDL-Projects'
``scripts-search/NASNet-space-search-by-GDAS.sh`` (``exps/NAS-Bench-201-algos/GDAS.py`` with
``configs/search-opts/GDAS-NASNet-CIFAR.config`` and ``configs/search-archs/GDAS-NASNet-CIFAR.config``).

  python -m jaxnas.train --config=configs/gdas_cifar10.py --workdir=runs/gdas_c10 \
      --config.data.data_dir=/path/with/cifar-10-binary.tar.gz

One hard sample per cell type (normal, reduce) and forward, shared by the cells of that type
(``search_model_gdas_nasnet.py:163-190``), h = onehot(argmax(log_softmax(alpha) + g)) - sg(pi) +
pi, pi = softmax((log_softmax(alpha) + g) / tau) (``parametrize.gumbel_hard``); each edge runs only
its sampled op, ``out = h_j op_j(x)`` (``search_cells.py:180-181``, ``MixedOp.forward_gdas``:
unlike the NB201 cell, the ops not run get no gradient; ``spaces.ops.SampledMixedOp`` form
'nasnet'). Bilevel, first order, weights first:

  w <- SGD(w, grad_w L_train(w, h(alpha)))     (nesterov, momentum 0.9, wd 5e-4, clip 5)
  alpha <- Adam(alpha, grad_alpha L_val(w, h(alpha)))   (lr 3e-4, betas (0.5, 0.999), L2 1e-3)

tau(epoch) = 10 - 9.9 epoch / 249 (``GDAS.py:237-239``). C=16, N=2 (8 cells), 4 nodes, stem x3,
batch 256, 250 epochs, cosine 0.025 -> 0.001 per epoch; AutoDL's fixed CIFAR-10 half split
(``cifar-split.txt``, the same as NB201's: ``data.split='nb201'``). The genotype: the DARTS rule
on softmax(alpha) (``search_model_gdas_nasnet.py:128-161``: top-2 edges by their best non-none
op). Where jaxnas differs: the supernet evaluation mixes with softmax(alpha) (the reference
samples).
"""
from configs import default


def get_config(arg=None):
  config = default.get_config()
  default.darts_space(config)
  config.space.channels = 16
  config.space.layers = 8
  config.space.sampled_forward = True
  config.arch_sampler.name = "gumbel_hard"
  config.arch_sampler.tau_max = 10.0
  config.arch_sampler.tau_min = 0.1
  config.data.name = "cifar10"
  config.data.split = "nb201"
  config.batch_size = 256
  config.epochs = 250
  config.step_order = "weights_first"
  config.weights_optimizer.nesterov = True
  config.weights_optimizer.weight_decay = 5e-4
  config.data.partial_batch = "fill"  # len(search_loader) = ceil(25000 / 256) = 98
  config.weights_optimizer.epoch_offset = 0
  return default.maybe_smoke(config, arg)
