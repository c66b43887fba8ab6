"""Search methods (``base.SearchMethod`` and its registry) and method-specific pieces that live
outside the search step (selection rules, bookkeeping). Importing a method's module registers it."""
from jaxnas.methods.base import SearchMethod as SearchMethod
from jaxnas.methods.base import build_method as build_method
from jaxnas.methods.base import method_names as method_names
from jaxnas.methods.base import register as register
from jaxnas.methods.milenas import SizeBuckets as SizeBuckets
from jaxnas.methods.milenas import conv_counts as conv_counts
from jaxnas.methods.milenas import should_stop_early as should_stop_early
from jaxnas.methods import rarts as rarts  # registers 'rarts'
from jaxnas.methods import darts_prime as darts_prime  # registers 'darts_prime'
from jaxnas.methods import darts_minus as darts_minus  # registers the auxiliary skip (DARTS-)
from jaxnas.methods import sdarts as sdarts  # registers the weight-step perturbation (SDARTS)
from jaxnas.methods import snas as snas  # registers the joint step and 'resource'
from jaxnas.methods import fair_darts as fair_darts  # registers the 'zero_one' regularizer
from jaxnas.methods import beta_darts as beta_darts  # registers the 'beta_decay' regularizer
from jaxnas.methods import drnas as drnas  # registers 'drnas', the 'dirichlet' parametrization, sampler, KL
