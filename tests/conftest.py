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

# Many tests compile the same small programs (e.g. the quickstart smoke step): share them through
# JAX's persistent compilation cache, in a fresh directory per test session.
import atexit  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

_CACHE_DIR = tempfile.mkdtemp(prefix="jaxnas_test_xla_cache_")
atexit.register(shutil.rmtree, _CACHE_DIR, ignore_errors=True)
jax.config.update("jax_compilation_cache_dir", _CACHE_DIR)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
