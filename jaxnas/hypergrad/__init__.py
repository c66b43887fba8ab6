"""Hypergradient estimators for bilevel problems (pure math, no NAS knowledge).

  problem = BilevelProblem(inner_loss, outer_loss)     # f(weights, arch, batch) -> scalar
  est = get('finite_difference', xi=0.025)              # or FirstOrder(), Unrolled(steps=3, ...)
  arch_grad = est(problem, weights, arch, inner_batch, outer_batch)

Estimators are frozen dataclasses registered as pytrees (float hyperparameters are leaves), so they
can be closed over by, or passed into, a jitted step.

``HYPERGRADS`` is the one registry (name -> class; ``config.hypergrad`` names a key). Each class
also builds itself from an options mapping (``from_options(options, context) -> PerStep``: it
checks its own options and declares what it reads each step: the inner learning rate, the
momentum buffer, the live inner optimizer state), so a caller such as
``jaxnas.methods.estimators`` needs no per-estimator code. Adding an estimator: the class (with
``__call__`` and ``from_options``) and ``register(name, cls)`` or a line in ``HYPERGRADS``.
"""
from jaxnas.hypergrad._estimators import HYPERGRADS as HYPERGRADS
from jaxnas.hypergrad._estimators import MILENAS_WEIGHTINGS as MILENAS_WEIGHTINGS
from jaxnas.hypergrad._estimators import MIXED_TERMS as MIXED_TERMS
from jaxnas.hypergrad._estimators import SECOND_ORDER_MODES as SECOND_ORDER_MODES
from jaxnas.hypergrad._estimators import VIRTUAL_STEPS as VIRTUAL_STEPS
from jaxnas.hypergrad._estimators import BilevelProblem as BilevelProblem
from jaxnas.hypergrad._estimators import BuildContext as BuildContext
from jaxnas.hypergrad._estimators import FiniteDifference as FiniteDifference
from jaxnas.hypergrad._estimators import FirstOrder as FirstOrder
from jaxnas.hypergrad._estimators import HypergradEstimator as HypergradEstimator
from jaxnas.hypergrad._estimators import ImplicitCG as ImplicitCG
from jaxnas.hypergrad._estimators import ImplicitNeumann as ImplicitNeumann
from jaxnas.hypergrad._estimators import MixedLevel as MixedLevel
from jaxnas.hypergrad._estimators import PerStep as PerStep
from jaxnas.hypergrad._estimators import Unrolled as Unrolled
from jaxnas.hypergrad._estimators import from_options as from_options
from jaxnas.hypergrad._estimators import get as get
from jaxnas.hypergrad._estimators import option_at_least as option_at_least
from jaxnas.hypergrad._estimators import option_choice as option_choice
from jaxnas.hypergrad._estimators import register as register
