"""XLA:CPU settings: the CPU device split and the CPU instruction scheduler.

Both are chosen by ``jaxnas.backends`` (``config.backend.cpu_devices``,
``config.backend.cpu_scheduler``) and touch only XLA's CPU backend. Their measured effect is in
README.md, "Compile time and speed on CPU" and "Scaling out".
"""
from __future__ import annotations

import math
import os

import jax
import ml_collections

from jaxnas import sharding

# The automatic split keeps at least this many examples of the smallest batch on every device:
# chosen on 2 cores only; the floor keeps a many-core host from splitting a batch into single
# examples, whose per-device kernels would be mostly overhead.
MIN_EXAMPLES_PER_CPU_DEVICE = 8

# XLA:CPU's instruction schedulers by ``cpu_scheduler`` value. XLA's default on CPU orders a
# program for concurrency; in a program with several gradient passes through rolled loops (a
# search step) it keeps each pass's loop buffers live at once. The memory-optimized scheduler lets
# later passes reuse earlier ones' memory, at some speed.
CPU_SCHEDULERS = {"memory": "CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED", "default": None}


def usable_cores() -> int:
  """The CPU cores this process may run on (its affinity mask where the OS has one)."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # macOS, Windows
    return os.cpu_count() or 1


def auto_cpu_devices(sizes: dict[str, int], cores: int) -> int:
  """The largest device count ``<= cores`` that divides every batch size and leaves every device
  at least ``MIN_EXAMPLES_PER_CPU_DEVICE`` examples of the smallest batch (at least 1)."""
  if not sizes:
    return 1
  common, smallest = math.gcd(*sizes.values()), min(sizes.values())
  return max(n for n in range(1, max(1, cores) + 1)
             if common % n == 0 and (n == 1 or smallest // n >= MIN_EXAMPLES_PER_CPU_DEVICE))


def split_cpu(config: ml_collections.ConfigDict, requested: int) -> str:
  """Splits XLA's CPU backend into ``requested`` devices (``jax_num_cpu_devices``).

  XLA runs one device's program with intra-op threads that leave cores idle between its many
  small kernels; with one device per core the batch is split over the mesh as over GPUs and the
  devices' programs overlap. The numbers are the one-device step's up to reduction order (the
  mesh's global means; ``tests/test_sharding.py``). ``requested``:

  * ``0`` (the CPU default): ``config.mesh.data`` devices where that asks for a number, else one
    device per usable core, lowered to the largest count that divides every batch size of the
    run (``sharding.batch_sizes``) and leaves each device at least
    ``MIN_EXAMPLES_PER_CPU_DEVICE`` examples; an explicit
    ``--xla_force_host_platform_device_count`` in ``XLA_FLAGS`` wins, and a multi-host run
    (``config.distributed.enabled``) keeps JAX's one device per process;
  * ``N >= 1``: exactly N devices (1 = JAX's default).

  Must run before the first JAX computation. Returns a line saying what it did, for the log.
  """
  wanted = requested
  if requested == 0:
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
      return "CPU devices: as XLA_FLAGS' --xla_force_host_platform_device_count says."
    if config.distributed.enabled:
      return "CPU devices: one per process (multi-host run; set config.backend.cpu_devices to split)."
    wanted = config.mesh.data or auto_cpu_devices(sharding.batch_sizes(config), usable_cores())
  try:
    jax.config.update("jax_num_cpu_devices", wanted)
    return (f"CPU devices: {wanted} (config.backend.cpu_devices={requested}; "
            "on a CPU host the batch is split over them).")
  except RuntimeError:  # the backend started already (JAX used before this call)
    have = len(jax.devices("cpu"))
  if have == wanted:
    return f"CPU devices: {have}."
  if requested == 0:
    return (f"CPU devices: {have} (JAX had started before jaxnas could split the CPU into "
            f"{wanted}).")
  raise RuntimeError(
      f"config.backend.cpu_devices={wanted}, but JAX's CPU backend already started with {have} "
      "device(s). Set it before any JAX computation: run through `python -m jaxnas.train`, or "
      f"call jax.config.update('jax_num_cpu_devices', {wanted}) right after `import jax`.")


def compiler_options(cpu_scheduler: str) -> dict[str, str] | None:
  """The XLA compiler options of a jitted step: when JAX's default backend is the CPU,
  ``'memory'`` selects XLA's memory-optimized scheduler; ``'default'`` keeps XLA's. None (no
  options) otherwise."""
  scheduler = CPU_SCHEDULERS[cpu_scheduler]
  if scheduler is None or jax.default_backend() != "cpu":
    return None
  return {"xla_cpu_scheduler_type": scheduler}
