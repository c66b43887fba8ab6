r"""GAEA-GDAS (EGDAS; Li, Khodak, Balcan, Talwalkar, "Geometry-Aware Gradient Algorithms for
Neural Architecture Search", ICLR 2021, §5 and the reference's EGDAS mode, methods.md §6(b)) on
NAS-Bench-201: GDAS' hard Gumbel sampling from a distribution that lives on the simplex, updated by
exponentiated gradient. A composition of parts, no new one: ``parametrization='simplex'`` +
``arch_optimizer='exponentiated_gradient'`` (GAEA) + ``arch_sampler='gumbel_hard'`` (GDAS).

  python -m jaxnas.train --config=configs/gaea_gdas_nb201.py --workdir=runs/gaea_gdas_nb201 \
      --config.data.data_dir=/path/with/cifar-10-binary.tar.gz --config.benchmark.path=nats_bench.csv

alpha_e is a point of the simplex (uniform init) and IS the sampling distribution: the training
forwards use the straight-through hard sample of the categorical with probabilities alpha_e,

.. math:: h_e = \mathrm{onehot}(\arg\max_k(\log\alpha_{e,k} + g_k)) - \mathrm{sg}(\pi_e) + \pi_e,
   \qquad \pi_e = \mathrm{softmax}((\log\alpha_e + g)/\tau)

(``Simplex.log_activate`` = log alpha; the mirror-descent floor keeps alpha > 0), and every alpha
step (bilevel, on the validation split, after the weight step) is

.. math:: \alpha \leftarrow \mathrm{normalize}(\max(\alpha \odot \exp(-\eta\,\nabla_\alpha
   [L_{val}(w, h(\alpha)) + \lambda \sum \alpha \log(\alpha n)]), 10^{-5}))

with eta = 0.01, lambda = 0.01 (GAEA's entropy term), tau = 10 -> 0.1 linear per epoch after a
50-epoch warm-up, tau(e) = 10 - 9.9 max(e - 50, 0) / (epochs - 1), and no alpha step in the first
50 epochs (``warmup_epochs: 50``; ``arch_schedule.start_epoch``). The genotype is the per-edge
argmax of alpha; the supernet evaluation mixes with alpha itself.

Where jaxnas differs or assumes: EGDAS normalizes then clamps (methods.md §6(g)); jaxnas' EG
clamps then renormalizes (rows stay exactly on the simplex). The weight side, epochs, batch and
split are AutoDL's GDAS NB201 ones (``configs/gdas_nb201.py``: 250 epochs, batch 64, nesterov
SGD 0.025 -> 0.001, wd 5e-4, clip 5, weights first, the NB201 split) [assumption: the spec records
no NB201 EGDAS run]. The forward runs only the sampled op (``space.sampled_forward``).
"""
from configs import default
from configs import gdas_nb201


def get_config(arg=None):
  config = gdas_nb201.get_config()
  config.parametrization = "simplex"
  config.arch_optimizer.name = "exponentiated_gradient"
  config.arch_optimizer.learning_rate = 0.01
  config.arch_optimizer.floor = 1e-5
  config.arch_optimizer.entropy_reg = 0.01
  config.arch_sampler.warmup_epochs = 50
  config.arch_schedule.start_epoch = 50
  return default.maybe_smoke(config, arg, {"smoke": smoke})


def smoke(config):
  """The smoke run, with the warm-up off (its 3 steps would otherwise take no alpha step)."""
  config = default.smoke(config)
  config.arch_sampler.warmup_epochs = 0
  config.arch_schedule.start_epoch = 0
  return config
