r"""MiLeNAS-GDAS (He, Wang, Ma, Ding, CVPR 2020, "MiLeNAS: Efficient Neural Architecture Search via
Mixed-Level Reformulation", §4 "a framework beyond DARTS"; reference code ``train_gdas.py``,
``model_search_gumbel_softmax.py``, ``run_milenas_and_gdas.sh``, methods.md §3(b)) on CIFAR-10,
DARTS space: MiLeNAS' mixed-level gradient on GDAS' sampled architecture. A composition of parts:
``hypergrad='mixed_level'`` (MiLeNAS) + ``arch_sampler='gumbel_hard'`` (GDAS), no new part.

  python -m jaxnas.train --config=configs/milenas_gdas_cifar10.py --workdir=runs/milenas_gdas \
      --config.data.data_dir=/path/with/cifar-10-binary.tar.gz

Every training forward uses GDAS' straight-through hard sample h(alpha) =
onehot(argmax(log_softmax(alpha) + g)) - sg(pi) + pi, pi = softmax((log_softmax(alpha) + g)/tau)
(``parametrize.gumbel_hard``), and

.. math:: \alpha \leftarrow \mathrm{Adam}\big(\alpha, \nabla_\alpha L_{train}(w, h(\alpha))
   + \lambda \nabla_\alpha L_{val}(w, h(\alpha))\big),\quad \lambda = 1

(``step_milenas(..., 1, 1)``; both terms see the same sample, the alpha step's), then
w <- SGD(w, grad_w L_train(w, h'(alpha))) with a fresh sample h'. tau is linear per epoch from 10
to 1 as ``tau = tau_max - epoch/epochs (tau_max - tau_min)``; jaxnas' schedule divides by
``epochs - 1``, so ``tau_min`` here is 10 - 9 * 299/300 = 1.03, which gives the reference's values
at every epoch. Batch 128, 300 epochs; the rest as ``configs/milenas_cifar10.py`` (Adam 3e-4,
betas (0.5, 0.999), L2 1e-3; SGD 0.025 -> 0.001 cosine, momentum 0.9, wd 3e-4; 25k/25k split).

Where jaxnas differs: the reference draws a fresh sample per cell; jaxnas draws one per cell type
(normal, reduce) and forward, shared by the cells of that type (as GDAS' own
``search_model_gdas_nasnet.py``). Every op of an edge is computed with the straight-through
weights (the sampled-op forward, ``space.sampled_forward``, is built for NB201 only; on the DARTS
space this is the exact all-ops straight-through estimator, without GDAS' compute saving). The
model-size buckets of MiLeNAS are off here.
"""
from configs import default
from configs import milenas_cifar10


def get_config(arg=None):
  config = milenas_cifar10.get_config()
  config.milenas.size_buckets = False
  config.arch_sampler.name = "gumbel_hard"
  config.arch_sampler.tau_max = 10.0
  config.arch_sampler.tau_min = 10.0 - 9.0 * 299 / 300
  config.batch_size = 128
  config.epochs = 300
  config.data.partial_batch = "fill"  # len(train_queue) = ceil(25000 / 128) = 196
  return default.maybe_smoke(config, arg)
