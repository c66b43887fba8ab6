"""DARTS-V1 (first order) on NAS-Bench-201, as AutoDL's baseline (methods.md §9.4).

  python -m jaxnas.train --config=configs/darts_nb201.py --workdir=runs/darts_nb201 \
      --config.data.data_dir=/path/with/cifar-10-binary.tar.gz \
      --config.benchmark.path=/path/to/nats_bench.csv

C=16, N=5, batch 64, 50 epochs; SGD nesterov, momentum 0.9, wd 5e-4, cosine 0.025 -> 0.001 per
epoch (epoch e, from 0, uses lr(e): AutoDL's ``w_scheduler.update(epoch, 0.0)`` at each epoch
start; ``CosineAnnealingLR.get_lr`` reads only ``current_epoch`` after warm-up, T_max = 50), clip 5;
391 steps per epoch (the last partial batch kept); alpha Adam 3e-4, betas (0.5, 0.999), wd 1e-3;
the weight step comes first; the NB201 split (CIFAR-10: a fixed 50/50 split of the training set).
Expect the collapse to skip connections that NB201 reports for DARTS (54.30% CIFAR-10 test).

Variants: ``:second_order`` (DARTS-V2 with the exact one-step unroll, the default second order) and
``:second_order_fd`` (AutoDL's DARTS-V2 finite differences); DARTS-V2 takes the alpha step first.
Both use AutoDL's virtual step w' = w − ξ(μ m + g + λ w) (no Nesterov, no clip); the exact unroll
through the Nesterov step itself is ``--config.hypergrad_options.virtual_step=optimizer``.
"""
from configs import default


def get_config(arg=None):
  config = default.get_config()
  config.space.name = "nb201"
  config.space.channels = 16
  config.space.cells_per_stage = 5
  config.data.name = "cifar10"
  config.data.split = "nb201"
  config.step_order = "weights_first"
  config.weights_optimizer.nesterov = True
  config.weights_optimizer.weight_decay = 5e-4
  config.data.partial_batch = "fill"  # len(search_loader) = ceil(25000 / 64) = 391
  config.weights_optimizer.epoch_offset = 0
  return default.maybe_smoke(config, arg, {"second_order": darts_v2, "second_order_fd":
                                           lambda c: darts_v2(c, "finite_difference")})


def darts_v2(config, estimator="unrolled"):
  r"""AutoDL's DARTS-V2: second-order hypergradient, alpha step before the weight step.

  AutoDL ``exps/NAS-Bench-201-algos/DARTS-V2.py:61-83`` (``backward_step_unrolled``): the virtual
  step is :math:`w' = w - \xi(\mu m + \nabla_w L_{train} + \lambda w)` with ξ the current lr, m the
  SGD momentum buffer, μ = 0.9, λ = 5e-4: plain momentum although the weight optimizer is Nesterov,
  and no gradient clip; then :math:`g = \nabla_\alpha L_{val}(w') - \xi \nabla^2_{\alpha w}
  L_{train}(w) \nabla_{w'} L_{val}(w')` (central differences, ε = 0.01/‖v‖, for
  ``finite_difference``). ``virtual_step='reference'`` makes the exact estimator differentiate that
  same step; ``'optimizer'`` differentiates the Nesterov weight step instead.
  """
  config = default.second_order(config, estimator)
  config.hypergrad_options.virtual_step = "reference"
  config.step_order = "arch_first"
  return config
