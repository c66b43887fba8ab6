"""Platform-specific settings in one place: ``config.backend`` resolved into a ``Backend``.

Every field of ``config.backend`` is ``'auto'`` by default, which takes the value in ``DEFAULTS``
for the platform (``config.backend.platform``, ``'auto'`` = JAX's default backend), or a value
that overrides it on every platform:

==============  =========================================  =======================================
field           CPU ('auto')                               GPU / TPU ('auto')
==============  =========================================  =======================================
kernels         'shifted' (``backends.cpu_kernels``)       'xla' (XLA's convolutions and pools)
cpu_devices     0: one XLA device per core (``backends.    1: no split (the mesh spans the
                cpu.split_cpu``)                           accelerators)
cpu_scheduler   'memory' (XLA:CPU's memory-optimized)      'default' (no compiler options)
unroll          by space (``SearchSpace.cpu_loops``):      True: unrolled loops
                DARTS and NAO rolled, NB201, width
                unrolled
remat           by space: DARTS True, others False         False
remat_scope     by space: DARTS 'edge', others 'cell'      'cell'
==============  =========================================  =======================================

The CPU values are what was measured fastest on a 2-core CPU (README.md, "Compile time and speed
on CPU"). The GPU/TPU values are expected to be right there (XLA's vendor kernels for
convolutions; XLA's own schedulers; loops unrolled, so that XLA fuses and schedules across cells;
remat off, since XLA's buffer assignment of the reference-size search steps needs at most about
8 GB of temporaries without it: README.md "Backends") but have not been timed on a GPU
(``experiments/gpu/`` does).

``resolve(config)`` runs once per run, before any module is built; the supernets and networks get
``kernels``, ``unroll``, ``remat`` and ``remat_scope`` as constructor arguments (static module
attributes), so nothing reads a setting while tracing. ``configure_cpu_devices(config)`` must run
before JAX starts (``python -m jaxnas.train`` does it first).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import ml_collections

from jaxnas.backends import cpu

PLATFORMS = ("cpu", "gpu", "tpu")
KERNELS = ("shifted", "xla")
REMAT_SCOPES = ("cell", "edge")

# Per-platform defaults of the 'auto' fields; on CPU, loops and remat are the space's own
# (``SearchSpace.cpu_loops``: DARTS and NAO rolled, DARTS with per-edge remat; NB201, width and a
# space that says nothing: ``CPU_LOOPS_OTHER``).
DEFAULTS: dict[str, dict[str, Any]] = {
    "cpu": {"kernels": "shifted", "cpu_devices": 0, "cpu_scheduler": "memory"},
    "gpu": {"kernels": "xla", "cpu_devices": 1, "cpu_scheduler": "default",
            "unroll": True, "remat": False, "remat_scope": "cell"},
    "tpu": {"kernels": "xla", "cpu_devices": 1, "cpu_scheduler": "default",
            "unroll": True, "remat": False, "remat_scope": "cell"},
}
CPU_LOOPS_OTHER = {"unroll": True, "remat": False, "remat_scope": "cell"}


def _space_class(config: ml_collections.ConfigDict) -> type | None:
  """The class of the space ``config.space.name`` names (None without one, or unregistered)."""
  from jaxnas import spaces  # local import: the spaces' ops import this package
  name = config.space.name if "space" in config else None
  return spaces.SPACES.get(name)


# Where the fields lived before ``config.backend``: setting an old name raises, naming the new one.
MOVED = {"space.unroll": "backend.unroll", "space.remat": "backend.remat",
         "space.remat_scope": "backend.remat_scope", "mesh.cpu_devices": "backend.cpu_devices",
         "xla_cpu_scheduler": "backend.cpu_scheduler"}


@dataclasses.dataclass(frozen=True)
class Backend:
  """The resolved settings of one run (see the module docstring for what each one does)."""
  platform: str = "cpu"         # whose defaults the 'auto' fields took
  kernels: str = "shifted"      # 'shifted' | 'xla'
  cpu_devices: int = 0          # 0: one XLA device per core; N: N devices (1 = no split)
  cpu_scheduler: str = "memory"  # 'memory' | 'default'
  unroll: bool = True           # unroll the supernets' cell / edge loops
  remat: bool = False           # recompute activations in the backward pass ...
  remat_scope: str = "cell"     # ... per cell / block ('cell') or per edge MixedOp ('edge')

  def compiler_options(self) -> dict[str, str] | None:
    """The XLA compiler options of the search and diagnostics steps (None: XLA's defaults)."""
    return cpu.compiler_options(self.cpu_scheduler)

  def supernet_options(self) -> dict[str, Any]:
    """The keyword arguments every ``space.supernet`` takes from the backend."""
    return {"kernels": self.kernels, "unroll": self.unroll, "remat": self.remat,
            "remat_scope": self.remat_scope}

  def describe(self) -> str:
    """One log line."""
    return (f"Backend: {self.platform} (kernels={self.kernels}, cpu_devices={self.cpu_devices}, "
            f"cpu_scheduler={self.cpu_scheduler}, unroll={self.unroll}, remat={self.remat}, "
            f"remat_scope={self.remat_scope}).")


def config_field(config: ml_collections.ConfigDict, dotted: str) -> Any:
  """The value of the dotted field ``'a.b.c'`` of ``config``, or None where it has no such field."""
  node = config
  for key in dotted.split("."):
    if not isinstance(node, ml_collections.ConfigDict) or key not in node:
      return None
    node = node[key]
  return node


def check_moved_fields(config: ml_collections.ConfigDict) -> None:
  """Raises if a run sets a field under its name from before ``config.backend``."""
  for old, new in MOVED.items():
    value = config_field(config, old)
    if value is not None:
      raise ValueError(f"config.{old} moved to config.{new}: set --config.{new}={value!r} "
                       f"instead of config.{old}.")


def _choice(field: str, value: Any, valid: tuple) -> Any:
  if not isinstance(value, str) or value not in valid:
    raise ValueError(f"config.backend.{field}={value!r} is not valid; choose one of: "
                     f"{', '.join(map(repr, ('auto',) + valid))}.")
  return value


def _flag(field: str, value: Any) -> bool:
  if isinstance(value, str) and value.lower() in ("true", "false"):
    return value.lower() == "true"
  if not isinstance(value, bool):
    raise ValueError(f"config.backend.{field}={value!r} is not valid; choose one of: 'auto', "
                     f"True, False.")
  return value


def _device_count(value: Any) -> int:
  try:
    count = int(value)
  except (TypeError, ValueError):
    count = -1
  if isinstance(value, bool) or count < 0 or str(count) != str(value).strip():
    raise ValueError(f"config.backend.cpu_devices={value!r} is not valid; choose 'auto', 0 (one "
                     "XLA device per CPU core) or a device count N >= 1 (1 = JAX's default).")
  return count


def detected_platform() -> str:
  """JAX's default backend as one of ``PLATFORMS`` (any other accelerator counts as 'gpu')."""
  platform = jax.default_backend()
  return platform if platform in PLATFORMS else "gpu"


def platform_of(config: ml_collections.ConfigDict, detected: str | None = None) -> str:
  """``config.backend.platform``, with 'auto' as ``detected`` (default: JAX's default backend)."""
  value = config.backend.platform
  if value == "auto":
    return detected or detected_platform()
  return _choice("platform", value, PLATFORMS)


def resolve(config: ml_collections.ConfigDict, platform: str | None = None) -> Backend:
  """The ``Backend`` of ``config``: every 'auto' field takes the default of the platform.

  Args:
    config: a run config with a ``backend`` block (``configs/default.py``).
    platform: what ``config.backend.platform='auto'`` means (default: JAX's default backend);
      tests pass 'gpu' or 'tpu' to see those platforms' defaults on a CPU.

  Raises:
    ValueError: an invalid field (naming the field, its valid values and the fix), or a field
      set under its old name (``MOVED``).
  """
  check_moved_fields(config)
  b = config.backend
  name = platform_of(config, platform)
  defaults = dict(DEFAULTS[name])
  space = _space_class(config)
  if name == "cpu":
    defaults.update(getattr(space, "cpu_loops", CPU_LOOPS_OTHER))
  pick = lambda field: defaults[field] if b[field] == "auto" else b[field]  # noqa: E731
  backend = Backend(
      platform=name,
      kernels=_choice("kernels", pick("kernels"), KERNELS),
      cpu_devices=_device_count(pick("cpu_devices")),
      cpu_scheduler=_choice("cpu_scheduler", pick("cpu_scheduler"), tuple(cpu.CPU_SCHEDULERS)),
      unroll=_flag("unroll", pick("unroll")),
      remat=_flag("remat", pick("remat")),
      remat_scope=_choice("remat_scope", pick("remat_scope"), REMAT_SCOPES))
  scopes = getattr(space, "remat_scopes", REMAT_SCOPES)
  if backend.remat and backend.remat_scope not in scopes:
    from jaxnas import spaces  # local import: the spaces' ops import this package
    edge = [n for n, c in spaces.SPACES.items() if "edge" in getattr(c, "remat_scopes", ())]
    raise ValueError(f"config.backend.remat_scope='edge' rematerializes the edges of the spaces "
                     f"whose cells scan their edges ({', '.join(edge)}); the {space.name!r} "
                     "space rematerializes whole cells or blocks: set "
                     "config.backend.remat_scope='cell'.")
  return backend


def configure_cpu_devices(config: ml_collections.ConfigDict) -> str:
  """Splits XLA's CPU backend as ``config.backend.cpu_devices`` says, before JAX starts.

  With ``platform='auto'`` the platform is not known until JAX starts, unless ``JAX_PLATFORMS``
  names it: then the split follows the CPU default, and on a GPU/TPU host it touches only XLA's
  CPU devices, which the mesh (over the accelerators) does not use. Returns a line for the log.
  """
  check_moved_fields(config)
  platform = config.backend.platform
  if platform == "auto":
    platform = (jax.config.jax_platforms or "cpu").split(",")[0].strip() or "cpu"
    platform = platform if platform in PLATFORMS else "gpu"
  else:
    platform = _choice("platform", platform, PLATFORMS)
  value = config.backend.cpu_devices
  requested = _device_count(DEFAULTS[platform]["cpu_devices"] if value == "auto" else value)
  if platform != "cpu" and value == "auto":
    return f"CPU devices: JAX's default (the {platform} backend does not split the CPU)."
  return cpu.split_cpu(config, requested)
