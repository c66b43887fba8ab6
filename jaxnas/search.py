"""A gradient search built from a config (``build_search``) and run by the one driver
(``SearchProgram``, ``jaxnas.driver``).

Per step: batch indices are a pure function of (seed, step, stream), so a resumed run sees exactly
the data of an uninterrupted one; the host only gathers uint8 batches, the step (augmentation
included) runs on device. Per epoch: the supernet is evaluated on the held-out split, the genotype
is derived and appended to ``genotypes.jsonl`` (with the NAS-Bench-201 ground truth when
``config.benchmark.path`` is set), and TensorBoard receives losses, accuracies, learning rates and
every edge's mixing weights. Checkpoints hold the whole ``SearchState``.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxnas import backends
from jaxnas import benchmarks
from jaxnas import checkpoint as checkpoint_lib
from jaxnas import config_checks
from jaxnas import data as data_lib
from jaxnas import program
from jaxnas import metrics as metrics_lib
from jaxnas import optim
from jaxnas import parametrize
from jaxnas import sharding
from jaxnas import spaces
from jaxnas import steps
from jaxnas import supernet
from jaxnas import methods
from jaxnas.methods import compose
from jaxnas.methods import estimators
from jaxnas.methods import milenas
from jaxnas.spaces import darts as darts_space
from jaxnas.spaces import net2wider
from jaxnas.state import SearchState, create_search_state

WEIGHTS_STREAM, ARCH_STREAM = 0, 1


@dataclasses.dataclass
class Search:
  """Everything built from the config that the loop needs (host-side objects, not traced)."""
  config: ml_collections.ConfigDict
  space: spaces.SearchSpace
  splits: data_lib.SearchSplits
  components: steps.SearchComponents
  method: methods.SearchMethod
  steps_per_epoch: int
  total_steps: int
  arch_batch_size: int
  parallel: sharding.DataParallel
  backend: backends.Backend
  num_classes: int = 10


def build_space(config: ml_collections.ConfigDict) -> spaces.SearchSpace:
  """The search space ``config.space.name`` names in ``spaces.SPACES``, with the options it reads
  from ``config`` (``space.from_config``)."""
  space = spaces.from_config(config)
  if not isinstance(space, spaces.SearchSpace):
    raise ValueError(f"config.space.name={config.space.name!r} is a token space, searched only "
                     f"by config.method='nao_v2'; choose one of: "
                     f"{', '.join(spaces.gradient_spaces())}.")
  return space


def build_supernet(config: ml_collections.ConfigDict, space: spaces.SearchSpace,
                   num_classes: int, backend: backends.Backend | None = None):
  """The space's supernet with the sizes it reads from ``config.space`` and the kernels, loops and
  remat of ``backend`` (default: ``backends.resolve(config)``)."""
  return space.supernet_from(config, backend or backends.resolve(config), num_classes)


def load_splits(config: ml_collections.ConfigDict) -> tuple[data_lib.ImageDataset,
                                                             data_lib.SearchSplits]:
  """Loads the dataset and makes the search splits (fails fast on missing data)."""
  options: dict[str, Any] = {}
  if config.data.name == "synthetic":
    options = dict(num_train=config.data.synthetic_num_train,
                   image_size=config.data.synthetic_image_size,
                   num_classes=config.data.synthetic_num_classes,
                   seed=config.data.split_seed)  # a fixed dataset: the same for every run seed
  elif config.data.name == "imagenet":
    options = data_lib.imagenet.config_options(config.data, config.seed)
  dataset = data_lib.get_dataset(config.data.name, data_dir=config.data.data_dir or None,
                                 **options)
  splits = data_lib.make_search_splits(dataset, config.data.split,
                                       train_portion=config.data.train_portion,
                                       seed=config.data.split_seed,
                                       max_examples=config.data.max_examples or None,
                                       split_file=config.data.nb201_split_file or None)
  if (config.data.split == "nb201" and not config.data.nb201_split_file
      and jax.process_index() == 0):
    print(f"WARNING: {splits.note} (set --config.data.nb201_split_file to AutoDL's file).",
          flush=True)
  return dataset, splits


def benchmark_label(config: ml_collections.ConfigDict,
                    splits: data_lib.SearchSplits) -> str | None:
  """Which NAS-Bench-201 figures ``benchmark/*`` are, and whether the search held them out."""
  if not config.benchmark.path:
    return None
  dataset = benchmarks.canonical_dataset(config.benchmark.dataset)
  test = ("ori-test (the 'cifar10' run, trained on all 50k training images)"
          if dataset == "cifar10" else "x-test (half of the original test set)")
  label = (f"NAS-Bench-201 {dataset}, 200 epochs, mean over seeds: benchmark/test_accuracy is "
           f"{test}, benchmark/valid_accuracy x-valid")
  if splits.arch_role == "test" and config.data.name == dataset:
    label += ("; NOT held out: alpha trained on a random half of the test set that overlaps "
              "about half of x-test (set data.nb201_split_file)")
  return label


def build_search(config: ml_collections.ConfigDict) -> Search:
  """Validates the config and builds data, space, module and optimizers (no compilation)."""
  config_checks.validate(config)
  backend = backends.resolve(config)
  dataset, splits = load_splits(config)
  space = build_space(config)
  module = build_supernet(config, space, dataset.num_classes, backend)
  arch_batch = config.arch_batch_size or config.batch_size
  config_checks.check_batch_sizes(config, len(splits.weights), len(splits.arch), arch_batch)
  if config.milenas.size_buckets and not splits.eval_is_validation:
    raise ValueError(f"config.milenas.size_buckets keeps genotypes by eval accuracy, but the eval "
                     f"split of data.split={config.data.split!r} is test data ({splits.note}); "
                     "use data.split='darts' or turn size_buckets off.")
  parallel = sharding.from_config(config)
  parallel.check_batch_sizes(sharding.batch_sizes(config))
  per_epoch, total = step_budget(config, len(splits.weights), len(splits.arch))
  lr = weights_schedule(config, per_epoch)
  wopt = config.weights_optimizer
  weights_tx = optim.sgd_pytorch(lr, momentum=wopt.momentum, weight_decay=wopt.weight_decay,
                                 clip_norm=wopt.clip_norm, nesterov=wopt.nesterov)
  arch_gradient = estimators.build_arch_gradient(config, lr_schedule=lr,
                                                 weights_clipped=bool(wopt.clip_norm))
  arch_tx = build_arch_optimizer(config.arch_optimizer)
  method = methods.build_method(config)
  components = steps.SearchComponents(
      module=module, parametrization=parametrize.get(config.parametrization),
      weights_tx=weights_tx, arch_tx=arch_tx, weights_lr=lr, mean=tuple(dataset.mean),
      std=tuple(dataset.std), crop_padding=config.data.crop_padding, flip=config.data.flip,
      cutout=config.data.cutout, step_order=config.step_order, arch_gradient=arch_gradient,
      **compose.read_parts(config, space, per_epoch),
      steps_per_epoch=per_epoch, compute_dtype=config.compute_dtype)
  return Search(config, space, splits, components, method, per_epoch, total, arch_batch,
                parallel, backend, dataset.num_classes)


class Stage(NamedTuple):
  """A supernet stage of a search: its first step, its ``Search``, what changed (for the console)."""
  start: int
  search: Search
  label: str


def stage_searches(search: Search) -> list[Stage]:
  """Each supernet stage of ``search`` (``compose.read_stages``; one stage for most methods): a
  later stage is ``search`` with the space and supernet that ``config.space`` builds with the
  stage's fields replaced (``parts.SupernetStage``); data, optimizers and parts are shared."""
  stages = [Stage(0, search, "")]
  for stage in compose.read_stages(search.config, search.steps_per_epoch):
    config = search.config.copy_and_resolve_references()
    config.space.update(dict(stage.space))
    space = build_space(config)
    module = build_supernet(config, space, search.num_classes, search.backend)
    stages.append(Stage(stage.start, dataclasses.replace(
        search, space=space, components=dataclasses.replace(search.components, module=module)),
        stage.describe()))
  return stages


def stage_of_step(stages: list[Stage], position: int) -> int:
  """The stage that runs step ``position`` (0-based)."""
  return max(i for i, stage in enumerate(stages) if stage.start <= position)


def stage_of_state(stages: list[Stage], position: int) -> int:
  """The stage whose shapes a state has after ``position`` steps: a checkpoint at a stage's first
  step still holds the previous stage's state (the mapping runs with that step)."""
  return max(i for i, stage in enumerate(stages) if stage.start < position or i == 0)


def stage_key(seed: int | jax.Array, start: int) -> jax.Array:
  """The key of the Net2Wider draws entering the stage that starts at step ``start``."""
  return jax.random.fold_in(jax.random.key(seed), start)


def widen_state(state: SearchState, search: Search, key: jax.Array) -> SearchState:
  """``state`` mapped onto the supernet of ``search`` (a later stage's) by Net2Wider
  (``jaxnas.spaces.net2wider.widen``: grown channel axes copy random channels drawn from ``key``;
  alpha, the optimizer states' other leaves and the method state are kept)."""
  target = jax.eval_shape(lambda: init_state(search))
  return net2wider.widen(state, target, key)


def step_budget(config: ml_collections.ConfigDict, weights_size: int,
                arch_size: int) -> tuple[int, int]:
  """``(steps_per_epoch, total_steps)`` of a search over splits of these sizes.

  A step is one weight step (and, every ``arch_every``-th step, one alpha step). What an epoch
  counts is ``config.epoch_unit``:

  * ``'weights'``: one pass over the weight split, ``B_w`` batches of ``batch_size``;
    quark0/darts, MiLeNAS, GAEA, DARTS-PRIME, AutoDL: ``for step, batch in enumerate(train_queue)``.
  * ``'arch'``: one pass over the alpha split, ``B_a`` batches of ``arch_batch_size``, with
    ``arch_every`` steps (``T`` weight steps, one alpha step) per batch: ``T * B_a`` steps. iDARTS:
    ``for step, batch in enumerate(valid_queue): architect.step(...)`` with ``T`` weight steps on
    fresh training batches inside (NAS-Bench-1Shot1 ``optimizers/idarts_v2/train_search.py``
    l. 199-207, ``architect_approx.py`` l. 34-50).

  ``B = steps_per_epoch(size, batch, config.data.partial_batch)``: ``ceil`` with ``'fill'`` (the
  references' ``len(DataLoader)``), ``floor`` with ``'drop'``. ``total_steps = epochs *
  steps_per_epoch`` unless ``config.max_steps`` is set. The loop (``build_search``), the vmapped
  seeds (``jaxnas.seeds``, which reuse ``build_search``) and DARTS-PRIME's prox ramp
  (``components.steps_per_epoch``) all take their epoch length from here.
  """
  partial = config.data.partial_batch
  if config.epoch_unit == "arch":
    arch_batch = config.arch_batch_size or config.batch_size
    per_epoch = config.arch_every * data_lib.steps_per_epoch(arch_size, arch_batch, partial)
  else:
    per_epoch = data_lib.steps_per_epoch(weights_size, config.batch_size, partial)
  return per_epoch, config.max_steps or config.epochs * per_epoch


def weights_schedule(config: ml_collections.ConfigDict, steps_per_epoch: int) -> optax.Schedule:
  """The weight learning rate per step: cosine per epoch over ``schedule_epochs or epochs`` from
  ``learning_rate`` to ``min_learning_rate``, epoch e using lr(e + ``epoch_offset``)
  (``optim.cosine_schedule``)."""
  wopt = config.weights_optimizer
  return optim.cosine_schedule(wopt.learning_rate, wopt.min_learning_rate,
                               wopt.schedule_epochs or config.epochs, steps_per_epoch,
                               epoch_offset=wopt.epoch_offset)


def build_arch_optimizer(aopt: ml_collections.ConfigDict):
  """The alpha optimizer: PyTorch-style Adam + L2, or mirror descent on the simplex (GAEA).

  Mirror descent floors the op weights alpha at ``aopt.floor`` and PC-DARTS' edge weights beta at
  ``aopt.edge_floor`` (default 0: GAEA's reference renormalises beta per node with no floor).
  """
  if aopt.name == "adam":
    tx = optim.adam_l2(aopt.learning_rate, b1=aopt.b1, b2=aopt.b2, weight_decay=aopt.weight_decay)
  else:
    mirror_map = "entropic" if aopt.name == "exponentiated_gradient" else "euclidean"
    alpha_floor, edge_floor = float(aopt.floor), float(aopt.edge_floor)

    def floor(path):
      return edge_floor if darts_space.is_edge_weights(path) else alpha_floor

    tx = optim.mirror_descent.mirror_descent(aopt.learning_rate, mirror_map, floor=floor)
  if aopt.clip_norm:
    tx = optax.chain(optax.clip_by_global_norm(aopt.clip_norm), tx)
  return tx


def init_state(search: Search) -> SearchState:
  """A fresh search state from ``config.seed`` (weights, BN state, alpha, optimizer states).

  Its arrays are not yet placed on the mesh: step it from ``start_state`` (or pass it through
  ``restore_or_start``), which commits it replicated as the jitted step's outputs are, so the
  step compiles once.
  """
  key = jax.random.key(search.config.seed)
  key_arch, key_weights, key_state = jax.random.split(key, 3)
  comp = search.components
  arch = search.space.init_arch(key_arch, comp.parametrization)
  sample = jnp.zeros((1,) + search.splits.weights.images.shape[1:], jnp.float32)
  init_fn = jax.jit(supernet.init, static_argnums=0)
  # Initialise with the loops rolled: the same weights (layout and values, tested), a fraction of
  # the unrolled program's compile time.
  rolled = comp.module.clone(unroll=False) if hasattr(comp.module, "unroll") else comp.module
  weights, model_state = init_fn(rolled, key_weights, sample, comp.parametrization.activate(arch))
  state = create_search_state(weights=weights, model_state=model_state, arch=arch,
                              weights_tx=comp.weights_tx, arch_tx=comp.arch_tx, key=key_state)
  return state.replace(method_state=search.method.init_method_state(comp, state))


# ``config.space`` fields that change how a step computes, not the state: not in the fingerprint
# (a run resumes with any of them). They moved to ``config.backend``; the names stay in
# ``config.space`` only to say so when set (``backends.MOVED``).
_NOT_FINGERPRINTED = ("unroll", "remat", "remat_scope")
# Checkpoints written before ``config.backend`` recorded ``space_sizes.unroll``; they resume.
RETIRED_FINGERPRINT_KEYS = ("space_sizes.unroll",)


def space_sizes(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """``config.space`` as a checkpoint fingerprint records it: its sizes and options that shape the
  state (not ``_NOT_FINGERPRINTED``)."""
  return {k: v for k, v in config.space.to_dict().items() if k not in _NOT_FINGERPRINTED}


def fingerprint(search: Search) -> dict[str, Any]:
  """What a checkpoint must agree with to be resumed: space, op set, sizes, method, data, and the
  method's own options block (``config.<method>`` where the config has one: ``darts_prime``,
  ``rarts``). The workdir's record (``jaxnas.workdir``) compares every field before this."""
  config = search.config
  method_block = config.method if config.method in config else None
  return {"space": config.space.name, "ops": list(search.space.ops),
          "arch_shapes": {k: list(v) for k, v in search.space.flat_arch_shapes().items()},
          "space_sizes": space_sizes(config), "method": config.method,
          "hypergrad": config.hypergrad, "parametrization": config.parametrization,
          "arch_every": config.arch_every,
          "dataset": config.data.name, "split": config.data.split,
          "split_seed": config.data.split_seed,
          "batch_size": config.batch_size, "seed": config.seed,
          **({method_block: config[method_block].to_dict()} if method_block else {})}


def step_batches(search: Search, step: int) -> dict[str, tuple[jax.Array, jax.Array]]:
  """The training and validation batches of ``step``: a pure function of (seed, step)."""
  config, splits = search.config, search.splits
  partial = config.data.partial_batch
  train_idx = data_lib.batch_indices(config.seed, step, len(splits.weights), config.batch_size,
                                     stream=WEIGHTS_STREAM, with_replacement=False,
                                     partial_batch=partial)
  # The alpha stream advances once per alpha step (every arch_every-th step), so that without
  # replacement its passes cover the alpha split alpha step by alpha step (iDARTS' epoch).
  val_idx = data_lib.batch_indices(config.seed, step // config.arch_every, len(splits.arch),
                                   search.arch_batch_size, stream=ARCH_STREAM,
                                   with_replacement=config.data.arch_with_replacement,
                                   partial_batch=partial)
  return {"train": search.parallel.put_examples(splits.weights, train_idx),
          "val": search.parallel.put_examples(splits.arch, val_idx)}


def evaluate(search: Search, eval_fn, state: SearchState) -> dict[str, Any]:
  """Loss and accuracy of the supernet (running BN statistics) on the eval split: floats, or
  arrays of one value per seed for a vmapped ``eval_fn`` (``jaxnas.seeds``)."""
  split, batch = search.splits.eval, search.config.eval_batch_size
  num_batches = max(1, len(split) // batch) if len(split) >= batch else 1
  if search.config.eval_max_batches:
    num_batches = min(num_batches, search.config.eval_max_batches)
  loss_sum = correct = count = 0.0
  for b in range(num_batches):
    idx = np.arange(b * batch, min((b + 1) * batch, len(split)))
    images, labels = search.parallel.put_examples(split, idx)
    out = jax.device_get(eval_fn(state, images, labels))
    loss_sum += np.asarray(out["loss_sum"], np.float64)
    correct += np.asarray(out["correct"], np.float64)
    count += len(idx)
  return {"eval/loss": (loss_sum / count).tolist(), "eval/accuracy": (correct / count).tolist()}


def load_benchmark(config: ml_collections.ConfigDict):
  """The NB201 ground-truth table, or None when ``config.benchmark.path`` is empty."""
  if not config.benchmark.path:
    return None
  if config.space.name != "nb201":
    raise ValueError(f"config.benchmark.path is set, but the {config.space.name!r} space has no "
                     "ground-truth benchmark; only 'nb201' does. Unset --config.benchmark.path.")
  return benchmarks.NB201Benchmark.load(config.benchmark.path)


def benchmark_metrics(table, genotype, dataset: str) -> dict[str, float]:
  """The table's metrics of ``genotype`` (empty if the cell is not in the table)."""
  if table is None:
    return {}
  try:
    result = table.query(str(genotype), dataset)
  except KeyError:
    return {}
  return {f"benchmark/{k}": float(v) for k, v in result.items()}


def jit_search_step(search: Search):
  """The method's search step, jitted once: ``(state, batches) -> (state, metrics)``.

  The state's buffers are donated (updated in place), and the new state and the metrics are
  pinned replicated on the mesh (batches arrive split over it), so the step's output placement
  equals its input placement and the program never recompiles. It is compiled with the backend's
  compiler options (on CPU: ``config.backend.cpu_scheduler``).
  """
  return jax.jit(functools.partial(search.method.search_step, components=search.components),
                 donate_argnums=0, out_shardings=search.parallel.replicated,
                 compiler_options=search.backend.compiler_options())


def jit_diagnostics_step(search: Search):
  """The hypergradient diagnostics (``steps.diagnostics_step``), jitted once."""
  config = search.config
  return jax.jit(functools.partial(
      steps.diagnostics_step, components=search.components,
      cg_maxiter=config.diagnostics.cg_maxiter,
      eigen_iterations=config.diagnostics.eigen_iterations),
      out_shardings=search.parallel.replicated,
      compiler_options=search.backend.compiler_options())


def jit_eval_step(search: Search):
  """The method's supernet evaluation step, jitted once (sums replicated on the mesh)."""
  return jax.jit(functools.partial(search.method.eval_step, components=search.components),
                 out_shardings=search.parallel.replicated)


def start_state(search: Search) -> SearchState:
  """A fresh state, committed replicated on the mesh (what the first step expects)."""
  return search.parallel.replicate(init_state(search))


def timed_first_call(fn, info, what: str):
  """``fn`` whose first call (the one that compiles it) waits for its result and prints how long
  it took (``info``), as the driver does for a run's first step; later calls go straight through."""
  first = True

  def call(*args):
    nonlocal first
    if not first:
      return fn(*args)
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    first = False
    info(f"compiled and ran {what} in {time.perf_counter() - start:.1f} s")
    return out
  return call


def resumed_note(cut_lines: int) -> str:
  """What resuming removed from the logs (written after the restored checkpoint)."""
  return (f" Removed {cut_lines} log line(s) written after that checkpoint; TensorBoard hides "
          "its later events." if cut_lines else "")


class SearchProgram(program.Program):
  """A gradient search as the driver runs it (``jaxnas.driver``): one unit = one search step.

  Per step: the batches of ``(seed, step)`` (``step_batches``), the hypergradient diagnostics every
  ``config.diagnostics.every_steps``, the jitted step. At the cadence (``metrics.Cadence``): the
  train metrics; at epoch ends the supernet evaluated on the eval split, the genotype derived and
  logged (``genotypes.jsonl``, with the NAS-Bench-201 ground truth when ``config.benchmark.path``
  is set) and MiLeNAS' size buckets and early stopping; checkpoints of the whole state.

  A run in supernet stages (``stage_searches``: DrNAS' widening) switches ``self.search`` and its
  compiled step at each stage's first step, after mapping the state onto the stage's supernet
  (``widen``); a checkpoint holds the shapes of the stage it was saved in (``abstract_state``).
  """

  def __init__(self, search: Search):
    self.search, self.config, self.parallel = search, search.config, search.parallel
    self.stages, self.stage = stage_searches(search), 0
    self.total = search.total_steps
    self.retired_keys = RETIRED_FINGERPRINT_KEYS
    self.cadence = metrics_lib.Cadence.of(search.config, search.steps_per_epoch,
                                          search.total_steps)
    self.table = load_benchmark(search.config)

  @classmethod
  def validate(cls, config: ml_collections.ConfigDict) -> None:
    config_checks.validate(config)

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> "SearchProgram":
    return cls(build_search(config))

  def open(self, workdir: str, position: int) -> None:
    self.enter_stage(stage_of_state(self.stages, position))
    self.workdir = workdir
    self.logger = metrics_lib.Logger(workdir, self.search.space, resume_at=position)
    self.book = milenas.SizeBucketBook(
        workdir, buckets=self.config.milenas.size_buckets,
        early_stopping=self.config.milenas.early_stopping, records=self.logger.records(),
        parse=self.search.space.parse_genotype, is_writer=self.logger.is_writer)

  def fingerprint(self) -> dict[str, Any]:
    return fingerprint(self.search)

  def fresh_state(self) -> SearchState:
    return init_state(self.search)

  def abstract_state(self, position: int = 0) -> Any:
    """The fresh state's structure, mapped through the stages the run had entered by
    ``position`` (shapes only: no widening computed)."""
    state = self.fresh_state()
    for stage in range(1, stage_of_state(self.stages, position) + 1):
      state = jax.eval_shape(functools.partial(self.widen, stage=stage), state)
    return state

  def widen(self, state: SearchState, stage: int) -> SearchState:
    """``state`` mapped onto the supernet of ``stage`` (``widen_state``)."""
    start, search, _ = self.stages[stage]
    return widen_state(state, search, stage_key(self.config.seed, start))

  def enter_stage(self, stage: int) -> None:
    """Makes ``stage``'s search the current one (``compile`` builds its jitted functions)."""
    self.stage, self.search = stage, self.stages[stage].search

  def param_count(self, state: SearchState) -> int:
    """The supernet's parameters in ``state`` (of one seed)."""
    return supernet.num_params(state.weights)

  def next_stage(self, state: SearchState, position: int) -> SearchState:
    """At the first step of the next stage: the state widened onto its supernet (jitted, placed
    replicated as the step expects) and that stage entered, with a console line."""
    stage = self.stage + 1
    state = jax.jit(functools.partial(self.widen, stage=stage),
                    out_shardings=self.parallel.replicated)(state)
    self.info(f"step {position}: supernet stage {stage + 1} of {len(self.stages)} "
              f"({self.stages[stage].label}): state widened by Net2Wider to params="
              f"{self.param_count(state):,}; compiling the stage's step ...")
    self.enter_stage(stage)
    self.compile()
    self.step_fn = timed_first_call(self.step_fn, self.info, f"stage {stage + 1}'s first step")
    return state

  def position(self, state: SearchState) -> int:
    return int(state.step)

  def healthy(self, metrics) -> jax.Array:
    """The weight step's loss and gradient norm are finite (the alpha step's validation metrics
    are NaN by design on steps the schedule skips; a non-finite alpha shows in the next loss)."""
    return jnp.all(jnp.isfinite(metrics["train/loss"])
                   & jnp.isfinite(metrics["train/grad_norm"]))

  def announce(self, state: SearchState, position: int, resumed: bool) -> None:
    search = self.search
    if resumed:
      self.info(f"Resumed from step {position} in {self.workdir}."
                + resumed_note(self.logger.cut_lines))
    self.info(f"splits ({search.splits.eval_role} eval): {search.splits.note}")
    self.info(f"space={self.config.space.name} ops={search.space.ops} params="
              f"{self.param_count(state):,} steps/epoch={search.steps_per_epoch} "
              f"total_steps={search.total_steps} devices={search.parallel.size} "
              f"processes={jax.process_count()}")

  def compile(self) -> None:
    self.step_fn = jit_search_step(self.search)
    self.eval_fn = jit_eval_step(self.search)
    self.diag_fn = jit_diagnostics_step(self.search)

  def step(self, state: SearchState, position: int):
    if stage_of_step(self.stages, position) != self.stage:
      state = self.next_stage(state, position)
    batches = step_batches(self.search, position)
    every = self.config.diagnostics.every_steps
    if every and position % every == 0:
      self.logger.diagnostics(position, jax.device_get(self.diag_fn(state, batches)))
    return self.step_fn(state, batches)

  def due(self, done: int) -> program.Due:
    return program.Due(log=self.cadence.log(done), evaluate=self.cadence.evaluate(done),
                      checkpoint=self.cadence.checkpoint(done))

  def log(self, done: int, metrics, perf: dict[str, float]) -> None:
    self.logger.train(done, self.search.steps_per_epoch, jax.device_get(metrics), perf)

  def evaluate(self, done: int, state: SearchState) -> bool:
    search = self.search
    mixing = jax.device_get(search.method.mixing(search.components, state))
    genotype = search.space.derive(mixing)
    eval_metrics = evaluate(search, self.eval_fn, state)
    eval_metrics.update(benchmark_metrics(self.table, genotype, self.config.benchmark.dataset))
    self.logger.epoch(done, self.cadence.epoch(done), genotype, mixing, eval_metrics)
    stop = self.book.after_evaluation(genotype, eval_metrics["eval/accuracy"], done)
    if stop:
      self.logger.info(stop)
    return stop is not None

  def finish(self, state: SearchState) -> dict[str, Any]:
    return self.logger.finish(state_step=int(state.step), splits=self.search.splits.describe(),
                              benchmark=benchmark_label(self.config, self.search.splits))
