"""Test harness: pins JAX behaviour before any JAX operation runs.

* 8 virtual CPU devices, so multi-device code is tested on any machine;
* strict rank and dtype promotion, so silent broadcasting/upcasting bugs fail loudly.
x64 is enabled only inside the tests that need it (hypergradient oracles), via `jax.enable_x64`.
"""
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Test programs are tiny and compile-bound: LLVM's optimisation level 0 roughly halves the suite's
# time on 2 cores (compiles ~10x faster, tiny steps run a little slower). Results are unchanged at
# the tolerances tested (the golden values included). Set XLA_FLAGS yourself to override.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                             + " --xla_backend_optimization_level=0").strip()

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)
jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")

# Many tests compile the same small programs (e.g. the quickstart smoke step): share them through
# JAX's persistent compilation cache, in a fresh directory per test session. Under pytest-xdist
# the controller creates it and the workers inherit it through the environment (the cache is safe
# for concurrent processes); only its creator deletes it.
import atexit  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

_CACHE_ENV = "JAXNAS_TEST_XLA_CACHE"
if not os.environ.get(_CACHE_ENV):
  os.environ[_CACHE_ENV] = tempfile.mkdtemp(prefix="jaxnas_test_xla_cache_")
  atexit.register(shutil.rmtree, os.environ[_CACHE_ENV], ignore_errors=True)
_CACHE_DIR = os.environ[_CACHE_ENV]
jax.config.update("jax_compilation_cache_dir", _CACHE_DIR)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
# Start the backend now, on the 8 devices above: code under test that splits the CPU
# (``sharding.configure_cpu_devices``: the CLI, the benchmark scripts) then finds it started and
# keeps it, whichever test a pytest-xdist worker runs first.
jax.devices()

# ``config.mesh.data = 0`` means "all devices". On the 8 virtual CPU devices above, that would
# partition every test program 8 ways: the same numbers (tested in test_sharding.py), but ~1.6x the
# compile time on 2 cores. So tests that leave it at 0 run on one device; tests of multi-device
# behaviour ask for their device count explicitly (``mesh.data = 8``).
import pytest  # noqa: E402

from jaxnas import backends as _backends  # noqa: E402
from jaxnas import sharding as _sharding  # noqa: E402


def pytest_addoption(parser):
  parser.addoption("--record-golden", action="store_true", default=False,
                   help="write tests/golden/*.json from this run instead of comparing with them "
                        "(run after an intended change of behaviour; say which and why)")


# The shifted CPU kernels (jaxnas/backends/cpu_kernels.py, the CPU default of config.backend.kernels)
# make DARTS supernets compile slower at optimisation level 0: configs resolved in the tests take
# XLA's kernels on CPU (modules built directly default to them), and tests/test_kernels.py checks the
# shifted ones against them (values, derivatives to second order, a whole search step). Tests of the
# shipped defaults opt out with @pytest.mark.shipped_backend_defaults.
@pytest.fixture(autouse=True)
def _xla_kernels_on_cpu(request, monkeypatch):
  if request.node.get_closest_marker("shipped_backend_defaults") is None:
    monkeypatch.setitem(_backends.DEFAULTS, "cpu", {**_backends.DEFAULTS["cpu"], "kernels": "xla"})


def pytest_configure(config):
  config.addinivalue_line("markers", "shipped_backend_defaults: resolve config.backend with the "
                          "shipped per-platform defaults (not the suite's XLA kernels on CPU)")


@pytest.fixture(autouse=True)
def _one_device_unless_asked(monkeypatch):
  monkeypatch.setattr(_sharding, "from_config", lambda config: _sharding.DataParallel(
      _sharding.make_mesh(config.mesh.data or 1)))
