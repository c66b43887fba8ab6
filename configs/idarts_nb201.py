"""iDARTS (Zhang et al., ICML 2021) on NAS-Bench-201: implicit hypergradient with a Neumann series.

  python -m jaxnas.train --config=configs/idarts_nb201.py --workdir=runs/idarts_nb201 \
      --config.data.data_dir=/path/with/cifar-10-binary.tar.gz --config.benchmark.path=nats_bench.csv

T weight steps on fresh training batches, then one alpha step with
g = d_alpha L_val - gamma * d2_{alpha w} L_train * sum_{k=0..K} (I - gamma H)^k grad_w L_val,
K = 2, gamma = the current weight learning rate, exact Hessian-vector products and the reference's
finite-difference mixed term (eps = 0.01/||s||; --config.hypergrad_options.mixed_term=exact for the
exact JVP). T = 4 as the reference's NB201 notebook hard-codes it (``NAS_Bench201_codes/exps/algos/
iDARTS_V2.ipynb``, ``backward_step_unrolled``: ``for step in range(4)``; its run directory is
``T4_K2_...``); the NAS-Bench-1Shot1 code and ``idarts_cifar10.py`` use T = 5
(--config.arch_every=5).

How an epoch is counted (``config.epoch_unit='arch'``): as in the reference, one epoch is one pass
over the alpha (validation) split, one alpha step per alpha batch and T weight steps before each:
with the NB201 split (25k / 25k) and batch 64, ceil(25000 / 64) = 391 alpha steps and
4 x 391 = 1564 weight steps per epoch (the notebook's ``search_func`` loops over the search loader,
391 batches, each running ``backward_step_unrolled``); the cosine is per epoch of that length. The
alpha batches are a shuffled pass over the alpha split (``arch_with_replacement=False``), the
weight batches a separate shuffled stream of the training split (the reference draws each from a
fresh ``iter`` of the loader).

Schedule: the reference's NB201 run (its logged ``DARTS_wlr0p01.config``, the same values as
AutoDL's ``configs/nas-benchmark/algos/DARTS.config``): 30 epochs, cosine 0.01 -> 0.001 per epoch
(its log: LR 0.01, 0.0099753, ...); AutoDL NB201 supernet (C=16, N=5) and DARTS-V1 settings
otherwise (batch 64, SGD nesterov, wd 5e-4).

Not reproduced (reference bugs): the restore of the finite difference leaves the weights displaced;
the notebook's weight steps call ``step()`` on ``deepcopy(w_optimizer)``, whose parameters are
copies, so its supernet weights never train. Kept as the reference has it: alpha's gradient does
not accumulate the weight steps' training-loss alpha-gradients (see ``idarts()``).
"""
from configs import darts_nb201
from configs import default


def get_config(arg=None):
  config = darts_nb201.get_config()
  config.epochs = 30
  config.weights_optimizer.learning_rate = 0.01
  idarts(config)
  config.arch_every = 4
  return default.maybe_smoke(config, arg)


def idarts(config):
  """iDARTS' estimator, cadence and epoch on top of a DARTS config.

  Epoch: ``epoch_unit='arch'``, one pass over the alpha split with ``arch_every`` = T weight steps
  per alpha step, the alpha batches a shuffled pass (reference: ``for step, (input_search,
  target_search) in enumerate(valid_queue): architect.step(train_queue, ...)``,
  NAS-Bench-1Shot1 ``optimizers/idarts_v2/train_search.py`` l. 199-207), last partial batch kept.

  The alpha gradient: in the reference the weight steps' ``loss.backward()`` also writes
  training-loss gradients into alpha's ``.grad`` (the weight optimizer's ``zero_grad`` does not
  clear alpha), but the alpha step overwrites that ``.grad`` with the hypergradient
  (``v.grad.data.copy_(g.data)``, ``architect_approx.py`` l. 106-110; the notebook's
  ``arch_parameters.grad.data.copy_(dalpha.data)``) computed on a ``deepcopy`` of the model, whose
  alpha starts without a gradient in the PyTorch the code was written for (0.x: ``deepcopy`` copies
  ``.grad`` only since PyTorch 1.8) and is zeroed explicitly in the notebook
  (``unrolled_model.zero_grad()``). So the alpha step uses the hypergradient alone, as here.
  """
  config.hypergrad = "implicit_neumann"
  config.hypergrad_options.neumann_terms = 2
  config.hypergrad_options.neumann_step = 0.0
  config.hypergrad_options.mixed_term = "fd"
  config.hypergrad_options.fd_eps = 0.01
  config.arch_every = 5
  config.step_order = "weights_first"
  config.epoch_unit = "arch"
  config.data.arch_with_replacement = False
  config.data.partial_batch = "fill"
  return config
