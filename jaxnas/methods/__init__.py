"""Method-specific pieces that live outside the search step (selection rules, bookkeeping)."""
from jaxnas.methods.milenas import SizeBuckets as SizeBuckets
from jaxnas.methods.milenas import conv_counts as conv_counts
from jaxnas.methods.milenas import should_stop_early as should_stop_early
