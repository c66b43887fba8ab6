"""iDARTS + DARTS-PRIME's dynamic schedule (a composition no paper has; config only): iDARTS'
implicit Neumann hypergradient (``configs/idarts_nb201.py``: K = 2, gamma = the weight LR, weight
step first) with alpha steps decided by the Fisher-trace threshold of Maile et al.
(arXiv 2106.11655) instead of every T-th step.

  python -m jaxnas.train --config=configs/compose_idarts_dynamic.py --workdir=runs/idarts_dyn \
      --config.data.data_dir=/path/with/cifar-10-binary.tar.gz

An alpha step iff 0 < FI_ewma < threshold (FI = ||grad_w L_train||^2, EWMA 0.2; threshold 1.0,
x 1.05^-k after an alpha step, x 1.05 otherwise, k = T = 4: about one alpha step per 4 weight
steps). An epoch is a pass over the weight split (``epoch_unit='weights'``: the schedule, not the
alpha split, sets the alpha steps), the alpha batch of step s is batch s of a shuffled pass over
the alpha split (``arch_every = 1``). ``:smoke`` starts with a huge threshold, so that every step
after the first (no Fisher trace yet) takes an alpha step.
"""
from configs import default
from configs import idarts_nb201


def get_config(arg=None):
  config = idarts_nb201.get_config()
  config.arch_every = 1
  config.epoch_unit = "weights"
  config.arch_schedule.name = "dynamic_fisher"
  config.arch_schedule.k = 4
  config.arch_schedule.fisher_ewma = 0.2
  config.arch_schedule.init_threshold = 1.0
  config.arch_schedule.threshold_multiplier = 1.05
  return default.maybe_smoke(config, arg, {"smoke": smoke})


def smoke(config):
  """The common smoke variant with a threshold no Fisher trace reaches."""
  config = default.smoke(config)
  config.arch_schedule.init_threshold = 1e9
  return config
