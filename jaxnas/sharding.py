"""Data parallelism over a device mesh: one code path from one CPU to a multi-host TPU pod slice.

The search state is replicated on every device of a 1-D mesh with a ``'data'`` axis; every batch is
split along its leading (example) axis over that axis; the steps are plain ``jax.jit`` programs of
global arrays (no ``pmap``, no per-device code). XLA's partitioner inserts the collectives: a mean
over the sharded batch axis (the loss, BatchNorm's batch statistics, the gradients) is the mean over
the *global* batch, so an N-device step computes the same numbers as the 1-device step up to
floating-point reduction order (tested on 8 virtual CPU devices). Because the architecture alpha is
replicated by construction, every device and every process derives the same genotype.

The mesh uses ``AxisType.Auto`` (GSPMD propagation): with the state committed replicated and the
batches committed sharded, nothing inside the step needs a sharding annotation, so every method's
step runs unchanged. (JAX 0.10's default ``Explicit`` axes would make some ops inside the supernets
ambiguous, e.g. contractions over a sharded axis, and ask for annotations in method code.)

Multi-host: call ``initialize_distributed`` first (``config.distributed.enabled``). Every process
computes the same *global* batch indices (a pure function of seed and step), gathers only the rows
its own devices hold (``process_rows``) and assembles the global array with
``jax.make_array_from_process_local_data``; a single process is the special case where its rows are
all rows.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import ml_collections
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def initialize_distributed(config: ml_collections.ConfigDict) -> None:
  """``jax.distributed.initialize`` from ``config.distributed`` (a no-op unless it is enabled).

  Must run before any other JAX call. On Cloud TPU, Slurm and Kubernetes the coordinator address,
  process count and process id are detected automatically (leave them empty / -1); on one machine
  (tests, several GPUs driven by one process each) pass them explicitly.
  """
  dist = config.distributed
  if not dist.enabled:
    return
  options: dict[str, Any] = {}
  if dist.coordinator_address:
    options["coordinator_address"] = dist.coordinator_address
  if dist.num_processes > 0:
    options["num_processes"] = dist.num_processes
  if dist.process_id >= 0:
    options["process_id"] = dist.process_id
  if dist.local_device_ids:
    options["local_device_ids"] = [int(i) for i in str(dist.local_device_ids).split(",")]
  try:
    jax.distributed.initialize(**options)
  except (RuntimeError, ValueError) as e:
    raise RuntimeError(
        f"config.distributed.enabled=True but jax.distributed.initialize({options}) failed: {e}. "
        "Outside Cloud TPU / Slurm / Kubernetes set --config.distributed.coordinator_address="
        "HOST:PORT, --config.distributed.num_processes and --config.distributed.process_id on "
        "every process; for a single-process run leave config.distributed.enabled=False.") from e


def batch_sizes(config: ml_collections.ConfigDict) -> dict[str, int]:
  """Every batch a run splits over the ``'data'`` mesh axis, as ``{config field: size}``: the
  search's weight, alpha and evaluation batches, an evaluation-mode run's training and evaluation
  batches, or NAO-V2's training and scoring batches (what ``train.py`` dispatches on)."""
  if config.get("method") == "nao_v2":
    return {"batch_size": config.batch_size, "nao.score_batch_size": config.nao.score_batch_size}
  if config.get("mode", "search") == "eval":
    return {"batch_size": config.batch_size, "eval_batch_size": config.eval_batch_size}
  return {"batch_size": config.batch_size,
          "arch_batch_size": config.get("arch_batch_size") or config.batch_size,
          "eval_batch_size": config.eval_batch_size}


def make_mesh(num_devices: int = 0) -> Mesh:
  """A 1-D mesh ``('data',)`` over the first ``num_devices`` devices (0 = all of them).

  In a multi-process run the mesh must span every process's devices (``num_devices`` 0 or
  ``jax.device_count()``): a process cannot take part in a program on devices it does not own.
  """
  available = jax.device_count()
  n = num_devices or available
  if n < 1 or n > available:
    raise ValueError(f"config.mesh.data={num_devices} devices requested, but {available} are "
                     f"available ({jax.devices()[0].platform}); use 0 (all) or a number in "
                     f"1..{available}.")
  if jax.process_count() > 1 and n != available:
    raise ValueError(f"config.mesh.data={num_devices}: a {jax.process_count()}-process run must "
                     f"use every device ({available}); set --config.mesh.data=0.")
  return jax.make_mesh((n,), (DATA_AXIS,), axis_types=(AxisType.Auto,),
                       devices=jax.devices()[:n])


@dataclasses.dataclass(frozen=True)
class DataParallel:
  """Where the state and the batches live on a ``('data',)`` mesh."""
  mesh: Mesh

  @property
  def size(self) -> int:
    """Number of devices the batch is split over."""
    return self.mesh.shape[DATA_AXIS]

  @property
  def replicated(self) -> NamedSharding:
    """The sharding of the state and of every metric: a full copy on every device."""
    return NamedSharding(self.mesh, P())

  @property
  def batch_sharding(self) -> NamedSharding:
    """The sharding of a batch: the leading (example) axis split over ``'data'``."""
    return NamedSharding(self.mesh, P(DATA_AXIS))

  def replicate(self, tree: Any) -> Any:
    """Commits every leaf of ``tree`` to the mesh, replicated (before the first step).

    Every process must pass the same values (a fresh state from the same seed, or the same
    host-built arrays); in a multi-process run each one places its own copies from host memory.
    """
    if jax.process_count() == 1:
      return jax.device_put(tree, self.replicated)
    return jax.tree.map(
        lambda x: jax.make_array_from_process_local_data(self.replicated, np.asarray(x)), tree)

  def abstract(self, tree: Any) -> Any:
    """The shapes and dtypes of ``tree`` (arrays or ``jax.ShapeDtypeStruct``s), placed
    replicated: the target a checkpoint restores into."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=self.replicated),
                        tree)

  def check_batch_sizes(self, sizes: dict[str, int]) -> None:
    """Raises unless every batch size (``{config field: size}``) splits evenly over the mesh."""
    for name, batch_size in sizes.items():
      if batch_size % self.size:
        raise ValueError(f"config.{name}={batch_size} does not split over the {self.size} "
                         f"devices of the 'data' mesh axis; use a multiple of {self.size}, or "
                         "fewer devices with --config.mesh.data.")

  def sharding_for(self, batch_size: int) -> NamedSharding:
    """The batch sharding, or replication for a batch that does not split evenly (the last,
    partial evaluation batch)."""
    return self.batch_sharding if batch_size % self.size == 0 else self.replicated

  def put_batch(self, gather: Callable[[np.ndarray], tuple[np.ndarray, ...]],
                indices: np.ndarray) -> tuple[jax.Array, ...]:
    """The global arrays ``gather(indices)``, each process gathering only the rows it holds.

    ``gather(idx) -> (images, labels, ...)`` reads host arrays for the example indices ``idx``;
    ``indices`` are the *global* batch's indices, the same on every process.
    """
    sharding = self.sharding_for(len(indices))
    rows = process_rows(sharding, len(indices))
    local = gather(indices[rows])
    return tuple(jax.make_array_from_process_local_data(sharding, np.asarray(x),
                                                        (len(indices),) + x.shape[1:])
                 for x in local)


  def put_examples(self, split: Any, indices: np.ndarray) -> tuple[jax.Array, jax.Array]:
    """uint8 images and int32 labels of the examples ``indices`` of a ``data.Split`` (anything with
    ``.images`` and ``.labels`` arrays), as one global batch split over the mesh."""
    return self.put_batch(lambda idx: (split.images[idx], split.labels[idx].astype(np.int32)),
                          indices)


def process_rows(sharding: NamedSharding, batch_size: int) -> slice:
  """The contiguous rows of a ``(batch_size, ...)`` global batch this process's devices hold."""
  index_map = sharding.addressable_devices_indices_map((batch_size,))
  starts, stops = [], []
  for index in index_map.values():
    rows = index[0]
    starts.append(rows.start or 0)
    stops.append(batch_size if rows.stop is None else rows.stop)
  lo, hi = min(starts), max(stops)
  covered = {r for s, e in zip(starts, stops) for r in range(s, e)}
  if len(covered) != hi - lo:
    raise ValueError(f"This process's devices hold rows {sorted(zip(starts, stops))} of the batch, "
                     "not one contiguous block; build the mesh with jax.make_mesh (process-major "
                     "device order).")
  return slice(lo, hi)


def from_config(config: ml_collections.ConfigDict) -> DataParallel:
  """The data-parallel placement of ``config.mesh`` (0 devices = all)."""
  return DataParallel(make_mesh(config.mesh.data))
