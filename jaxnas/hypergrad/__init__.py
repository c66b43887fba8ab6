"""Hypergradient estimators for bilevel problems (pure math, no NAS knowledge).

  problem = BilevelProblem(inner_loss, outer_loss)     # f(weights, arch, batch) -> scalar
  est = get('finite_difference', xi=0.025)              # or FirstOrder(), Unrolled(steps=3, ...)
  arch_grad = est(problem, weights, arch, inner_batch, outer_batch)

Estimators are frozen dataclasses registered as pytrees (float hyperparameters are leaves), so they
can be closed over by, or passed into, a jitted step.
"""
from jaxnas.hypergrad._estimators import HYPERGRADS as HYPERGRADS
from jaxnas.hypergrad._estimators import MIXED_TERMS as MIXED_TERMS
from jaxnas.hypergrad._estimators import SECOND_ORDER_MODES as SECOND_ORDER_MODES
from jaxnas.hypergrad._estimators import BilevelProblem as BilevelProblem
from jaxnas.hypergrad._estimators import FiniteDifference as FiniteDifference
from jaxnas.hypergrad._estimators import FirstOrder as FirstOrder
from jaxnas.hypergrad._estimators import HypergradEstimator as HypergradEstimator
from jaxnas.hypergrad._estimators import ImplicitCG as ImplicitCG
from jaxnas.hypergrad._estimators import ImplicitNeumann as ImplicitNeumann
from jaxnas.hypergrad._estimators import MixedLevel as MixedLevel
from jaxnas.hypergrad._estimators import Unrolled as Unrolled
from jaxnas.hypergrad._estimators import get as get
