"""Test harness: pins JAX behaviour before any JAX operation runs.

* 8 virtual CPU devices, so multi-device code is tested on any machine;
* strict rank and dtype promotion, so silent broadcasting/upcasting bugs fail loudly.
x64 is enabled only inside the tests that need it (hypergradient oracles), via `jax.enable_x64`.
"""
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)
jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")
