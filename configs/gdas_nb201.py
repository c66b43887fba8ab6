r"""GDAS (Dong & Yang, "Searching for a Robust Neural Architecture in Four GPU Hours", CVPR 2019) on
NAS-Bench-201, as AutoDL-Projects' NB201 baseline (``exps/NAS-Bench-201-algos/GDAS.py``,
``scripts-search/NAS-Bench-201-algos/GDAS.sh``, ``configs/nas-benchmark/algos/GDAS.config``).

  python -m jaxnas.train --config=configs/gdas_nb201.py --workdir=runs/gdas_nb201 \
      --config.data.data_dir=/path/with/cifar-10-binary.tar.gz \
      --config.benchmark.path=/path/to/nats_bench.csv

Every training forward (the weight step's and the alpha step's, each its own Gumbel draw, one
sample per edge shared by all cells, ``search_model_gdas.py:114-134``) uses

.. math:: h_e = \mathrm{onehot}(\arg\max_k (\log\mathrm{softmax}(\alpha_e)_k + g_k))
   - \mathrm{sg}(\pi_e) + \pi_e,\qquad \pi_e = \mathrm{softmax}((\log\mathrm{softmax}(\alpha_e)
   + g) / \tau),\quad g \sim \mathrm{Gumbel}(0, 1)

(``jaxnas.parametrize.gumbel_hard``; the sampler part ``jaxnas.parts.GumbelHard``), and each edge
runs only its sampled op ``j``: ``out_e = h_{e,j} op_j(x) + \sum_{k \ne j} h_{e,k}``
(``search_cells.py:72-86``; ``config.space.sampled_forward``, ``spaces.ops.SampledMixedOp``).
Bilevel, first order, weights first (``GDAS.py:49-69``):

  w <- SGD(w, grad_w L_train(w, h(alpha)))     (nesterov, momentum 0.9, wd 5e-4, clip 5)
  alpha <- Adam(alpha, grad_alpha L_val(w, h(alpha)))   (lr 3e-4, betas (0.5, 0.999), L2 1e-3)

tau(epoch) = 10 - (10 - 0.1) * epoch / (250 - 1), set at each epoch start (``GDAS.py:237-239``).
C=16, N=5, batch 64, 250 epochs, cosine 0.025 -> 0.001 per epoch; the NB201 split; the genotype is
the per-edge argmax of alpha (= of softmax(alpha), ``search_model_gdas.py:101-112``).

Where jaxnas differs: the per-epoch supernet evaluation uses the deterministic mixing softmax(alpha)
(the reference's ``valid_func`` samples); the reference's re-sampling on inf/NaN Gumbel draws is not
needed (``jax.random.gumbel`` is finite). ``--config.space.sampled_forward=False`` runs every op
with the straight-through weights (the exact straight-through estimator, no saving).
"""
from configs import default


def get_config(arg=None):
  config = default.get_config()
  config.space.name = "nb201"
  config.space.channels = 16
  config.space.cells_per_stage = 5
  config.space.sampled_forward = True
  config.arch_sampler.name = "gumbel_hard"
  config.arch_sampler.tau_max = 10.0
  config.arch_sampler.tau_min = 0.1
  config.parametrization = "softmax"
  config.data.name = "cifar10"
  config.data.split = "nb201"
  config.epochs = 250
  config.step_order = "weights_first"
  config.weights_optimizer.nesterov = True
  config.weights_optimizer.weight_decay = 5e-4
  config.data.partial_batch = "fill"  # len(search_loader) = ceil(25000 / 64) = 391
  config.weights_optimizer.epoch_offset = 0
  return default.maybe_smoke(config, arg)
