"""config.backend resolved into a Backend: per-platform defaults, overrides, validation."""
import os

import pytest

from jaxnas import backends
from jaxnas import search as search_lib
from test_loop import ROOT, load_config


def config_of(name="darts_cifar10.py", arg=None, **overrides):
  return load_config(os.path.join(ROOT, "configs", name), arg, **overrides)


@pytest.mark.shipped_backend_defaults
def test_cpu_defaults_are_the_tuned_ones_per_space():
  darts = backends.resolve(config_of(), platform="cpu")
  assert darts == backends.Backend("cpu", "shifted", 0, "memory", False, True, "edge")
  assert darts.compiler_options() == {
      "xla_cpu_scheduler_type": "CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED"}  # this host is a CPU
  nb201 = backends.resolve(config_of("quickstart.py"), platform="cpu")
  assert (nb201.kernels, nb201.unroll, nb201.remat, nb201.remat_scope) == (
      "shifted", True, False, "cell")
  nao = backends.resolve(config_of("nao_v2_cifar10.py"), platform="cpu")
  assert (nao.unroll, nao.remat) == (False, False)
  width = backends.resolve(config_of("rarts_width_cifar10.py"), platform="cpu")
  assert (width.unroll, width.remat) == (True, False)
  smoke = backends.resolve(config_of(arg="smoke"), platform="cpu")
  assert (smoke.unroll, smoke.remat) == (False, False)  # set by the smoke variant on any platform


@pytest.mark.parametrize("platform", ["gpu", "tpu"])
def test_accelerator_defaults(platform):
  for name in ("darts_cifar10.py", "quickstart.py", "nao_v2_cifar10.py"):
    backend = backends.resolve(config_of(name), platform=platform)
    assert backend == backends.Backend(platform, "xla", 1, "default", True, False, "cell")
  explicit = config_of(**{"backend.platform": platform})  # the platform field wins over 'auto'
  assert backends.resolve(explicit, platform="cpu").platform == platform


def test_fields_override_the_platform_defaults():
  config = config_of(**{"backend.kernels": "shifted", "backend.unroll": True,
                        "backend.remat": False, "backend.cpu_devices": 2,
                        "backend.cpu_scheduler": "default"})
  backend = backends.resolve(config, platform="gpu")
  assert backend == backends.Backend("gpu", "shifted", 2, "default", True, False, "cell")
  assert backend.compiler_options() is None
  config.backend.unroll = "false"  # a command-line string
  assert backends.resolve(config).unroll is False


@pytest.mark.parametrize("field,value,message", [
    ("platform", "metal", "config.backend.platform='metal' is not valid; choose one of: 'auto', "
                          "'cpu', 'gpu', 'tpu'"),
    ("kernels", "fast", "config.backend.kernels='fast' is not valid; choose one of: 'auto', "
                        "'shifted', 'xla'"),
    ("cpu_devices", -1, "config.backend.cpu_devices=-1 is not valid; choose 'auto', 0"),
    ("cpu_scheduler", "fast", "config.backend.cpu_scheduler='fast' is not valid"),
    ("unroll", "yes", "config.backend.unroll='yes' is not valid; choose one of: 'auto', True, "
                      "False"),
    ("remat", 1, "config.backend.remat=1 is not valid"),
    ("remat_scope", "block", "config.backend.remat_scope='block' is not valid; choose one of: "
                             "'auto', 'cell', 'edge'"),
])
def test_each_field_validates_itself(field, value, message):
  config = config_of(**{f"backend.{field}": value})
  with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
    backends.resolve(config)


@pytest.mark.parametrize("old,new,value", [
    ("space.unroll", "backend.unroll", False), ("space.remat", "backend.remat", True),
    ("space.remat_scope", "backend.remat_scope", "cell"),
    ("mesh.cpu_devices", "backend.cpu_devices", 2),
    ("xla_cpu_scheduler", "backend.cpu_scheduler", "default"),
])
def test_old_field_names_say_where_they_moved(old, new, value):
  config = config_of(**{old: value})
  with pytest.raises(ValueError, match=f"config.{old} moved to config.{new}: "
                                       f"set --config.{new}={value!r}"):
    backends.resolve(config)


def test_the_backend_reaches_the_supernet_and_not_the_fingerprint():
  config = config_of(arg="smoke", **{"backend.unroll": True, "backend.kernels": "shifted"})
  module = search_lib.build_supernet(config, search_lib.build_space(config), 10)
  assert (module.unroll, module.kernels) == (True, "shifted")
  sizes = search_lib.space_sizes(config)
  assert not {"unroll", "remat", "remat_scope"} & set(sizes)
  assert search_lib.RETIRED_FINGERPRINT_KEYS == ("space_sizes.unroll",)
