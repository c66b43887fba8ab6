"""The search loop: smoke runs of every config, exact resume, the DARTS step vs a hand-written one."""
import functools
import glob
import importlib.util
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas import checkpoint as checkpoint_lib
from jaxnas import data as data_lib
from jaxnas import driver
from jaxnas import search as search_lib
from jaxnas import metrics as metrics_lib
from jaxnas import steps
from jaxnas import supernet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Every gradient-search config (evaluation configs, eval_*.py, have their own smoke test in
# test_evaluation; NAO-V2's, nao_v2_*.py, in test_nao_search).
CONFIG_FILES = sorted(p for p in glob.glob(os.path.join(ROOT, "configs", "*.py"))
                      if not p.endswith("__init__.py")
                      and not os.path.basename(p).startswith(("eval_", "nao_v2_")))


# Issue #33's robust-DARTS baselines (and MiLeNAS' NB201 preset): their golden smoke runs (about 8-12 s of compile each) run
# with the slow tests (.ci/run runs them after the README's test command) to keep that command
# within its budget; their parts' properties are tested by default in their own test files.
SLOW_GOLDEN = {f"{name}_{space}.py" for name in ("snas", "drnas", "fairdarts", "sdarts",
                                                 "betadarts", "dartsminus")
               for space in ("nb201", "cifar10")} | {"milenas_nb201.py"}
GOLDEN_CASES = [pytest.param(p, marks=pytest.mark.slow) if os.path.basename(p) in SLOW_GOLDEN
                else p for p in CONFIG_FILES]


def load_config(path, arg="smoke", **overrides):
  """``get_config(arg)`` of a config file, then dotted overrides (``{'space.channels': 6}``)."""
  spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(arg)
  for dotted, value in overrides.items():
    target = config
    *parents, leaf = dotted.split(".")
    for p in parents:
      target = target[p]
    target[leaf] = value
  return config


def quickstart_smoke(**overrides):
  """The quickstart supernet with DARTS first order (the reference the hand-written step checks)."""
  return load_config(os.path.join(ROOT, "configs", "quickstart.py"), "darts,smoke", **overrides)


def restore_final_state(workdir, config, step=None):
  """The checkpoint ``step`` (default: the latest) of a search in ``workdir``, restored into the
  program's abstract state at that step (a later supernet stage's shapes where it has stages)."""
  program = search_lib.SearchProgram(search_lib.build_search(config))
  with checkpoint_lib.CheckpointManager(os.path.join(workdir, "checkpoints"),
                                        fingerprint=program.fingerprint()) as manager:
    step = manager.latest_step() if step is None else step
    return manager.restore(jax.eval_shape(lambda: program.abstract_state(step)), step=step)


GOLDEN_DIR = os.path.join(ROOT, "tests", "golden")
GOLDEN_STEPS = 3


def alpha_trajectory(config, steps):
  """The NB201 alpha (``arch["cell"]``) after each of ``steps`` compiled search steps, and the step metrics."""
  search = search_lib.build_search(config)
  step_fn = search_lib.jit_search_step(search)
  state, arches, metrics = search_lib.start_state(search), [], []
  for step in range(steps):
    state, m = step_fn(state, search_lib.step_batches(search, step))
    arches.append(np.asarray(state.arch["cell"]))
    metrics.append(m)
  return search, arches, metrics


def golden_record(config, workdir, train_losses):
  """What a smoke run's golden file holds: the training loss of each step, the final supernet
  evaluation loss, and every leaf of the final alpha (flattened)."""
  state = restore_final_state(workdir, config)
  records = [json.loads(line) for line in open(os.path.join(workdir, "genotypes.jsonl"))]
  arch = {jax.tree_util.keystr(path): np.asarray(leaf, np.float64).ravel().tolist()
          for path, leaf in jax.tree_util.tree_leaves_with_path(state.arch)}
  return {"train/loss": train_losses, "eval/loss": records[-1]["eval/loss"], "arch": arch}


def check_golden(name, got, record):
  """Compares ``got`` with ``tests/golden/<name>.json`` (float32 rounding), or writes it with
  ``pytest --record-golden``."""
  path = os.path.join(GOLDEN_DIR, name.replace(".py", "").replace(":", "_") + ".json")
  if record:
    os.makedirs(GOLDEN_DIR, exist_ok=True)
    with open(path, "w") as f:
      json.dump(got, f, indent=1, sort_keys=True)
    return
  assert os.path.exists(path), f"{path} is missing: record it with pytest --record-golden"
  want = json.load(open(path))
  assert sorted(got["arch"]) == sorted(want["arch"])
  for key in ("train/loss", "eval/loss"):
    np.testing.assert_allclose(got[key], want[key], rtol=2e-4, atol=1e-6, err_msg=key)
  for leaf, values in want["arch"].items():
    np.testing.assert_allclose(got["arch"][leaf], values, rtol=2e-4, atol=1e-6, err_msg=leaf)


@pytest.mark.parametrize("config_path", GOLDEN_CASES, ids=os.path.basename)
def test_every_config_smoke_runs_and_writes_outputs(config_path, tmp_path, monkeypatch, request):
  """Every search config's smoke run (3 steps, fixed seed) writes its outputs and reproduces its
  golden values (tests/golden/: losses and alpha after 3 steps), which pin every method's
  behaviour across refactors."""
  config = load_config(config_path, max_steps=GOLDEN_STEPS)
  train_losses = []
  log_train = metrics_lib.Logger.train

  def spy(self, step, steps_per_epoch, metrics, *args, **kwargs):
    train_losses.append(float(np.mean(metrics["train/loss"])))
    return log_train(self, step, steps_per_epoch, metrics, *args, **kwargs)
  monkeypatch.setattr(metrics_lib.Logger, "train", spy)
  summary = driver.train_and_evaluate(config, str(tmp_path))
  assert summary["step"] == GOLDEN_STEPS
  assert os.listdir(tmp_path / "checkpoints")
  records = [json.loads(line) for line in open(tmp_path / "genotypes.jsonl")]
  assert records and records[-1]["step"] == GOLDEN_STEPS and "genotype" in records[-1]
  assert glob.glob(str(tmp_path / "tensorboard" / "events.out.tfevents.*"))
  assert json.load(open(tmp_path / "config.json"))["space"]["name"] == config.space.name
  assert summary["final_genotype"] == records[-1]["genotype"]
  assert len(train_losses) == GOLDEN_STEPS
  check_golden(os.path.basename(config_path), golden_record(config, str(tmp_path), train_losses),
               request.config.getoption("--record-golden"))


# The 2-device case is slow (three searches on a 2-device mesh, about 40 s); the 1-device case runs
# by default, and test_sharding checks each method's 2-device step against the 1-device one.
@pytest.mark.parametrize("devices", [1, pytest.param(2, marks=pytest.mark.slow)],
                         ids=["1_device", "2_devices"])
def test_interrupted_run_resumes_bit_for_bit(tmp_path, devices):
  """Also on a 2-device mesh: what ``python -m jaxnas.train`` runs on a 2-core CPU host."""
  straight, interrupted = str(tmp_path / "straight"), str(tmp_path / "interrupted")
  mesh = {"mesh.data": devices}
  driver.train_and_evaluate(quickstart_smoke(max_steps=4, **mesh), straight)
  driver.train_and_evaluate(quickstart_smoke(max_steps=2, **mesh), interrupted)
  summary = driver.train_and_evaluate(quickstart_smoke(max_steps=4, **mesh), interrupted)  # at 2
  assert summary["step"] == 4
  a = restore_final_state(straight, quickstart_smoke(max_steps=4, **mesh))
  b = restore_final_state(interrupted, quickstart_smoke(max_steps=4, **mesh))
  assert int(a.step) == int(b.step) == 4
  jax.tree.map(np.testing.assert_array_equal, a, b)


def test_resume_refuses_checkpoint_of_another_config(tmp_path):
  driver.train_and_evaluate(quickstart_smoke(), str(tmp_path))
  before = sorted(os.listdir(tmp_path / "checkpoints"))
  config_before = open(tmp_path / "config.json").read()
  # Allowed by the workdir's record, a change of the state's shapes is still refused by the
  # checkpoint's fingerprint, and nothing is recorded.
  changed = quickstart_smoke(**{"space.channels": 6, "resume.allow_changes": "space.channels"})
  with pytest.raises(checkpoint_lib.CheckpointMismatchError, match="workdir"):
    driver.train_and_evaluate(changed, str(tmp_path))
  assert sorted(os.listdir(tmp_path / "checkpoints")) == before
  assert open(tmp_path / "config.json").read() == config_before
  assert not os.path.exists(tmp_path / "config_history.jsonl")


def tiny_search(**overrides):
  overrides = {"data.crop_padding": 0, "data.flip": False, **overrides}
  config = quickstart_smoke(**overrides)
  return search_lib.build_search(config)


@functools.cache
def tiny_search_steps(num_steps=3):
  """The tiny quickstart search's jitted step (its traces counted) run ``num_steps`` steps from the
  start: (search, states 0..num_steps, metrics of each step, traces). One compile, shared by the
  hand-written-step and golden tests (built inside a test, under conftest's patches)."""
  search = tiny_search()
  traces = []

  def counted(state, batches):
    traces.append(1)
    return steps.search_step(state, batches, components=search.components)

  step_fn = jax.jit(counted)
  states, metrics = [search_lib.start_state(search)], []
  for step in range(num_steps):
    state, step_metrics = step_fn(states[-1], search_lib.step_batches(search, step))
    states.append(state)
    metrics.append(step_metrics)
  return search, states, metrics, traces


def test_search_step_traces_once_and_matches_hand_written_darts_step():
  search, states, step_metrics, traces = tiny_search_steps()
  comp = search.components
  state0, state1, metrics = states[0], states[1], step_metrics[0]
  batches = search_lib.step_batches(search, 0)
  # --- the hand-written reference: alpha step (Adam + L2) then weight step (clip, L2, momentum).
  x_val = data_lib.normalize(batches["val"][0], comp.mean, comp.std)
  x_train = data_lib.normalize(batches["train"][0], comp.mean, comp.std)

  def loss(weights, arch, model_state, x, y):
    mixing = {"cell": jax.nn.softmax(arch["cell"], axis=-1)}
    logits, new_state = supernet.apply(comp.module, weights, model_state, x, mixing, train=True)
    return steps.cross_entropy(logits, y), new_state

  # Jitted: op by op (hundreds of per-primitive dispatches) this test took 15 s longer on 2 cores.
  (val_loss, bn_after_val), g_arch = jax.jit(jax.value_and_grad(loss, argnums=1, has_aux=True))(
      state0.weights, state0.arch, state0.model_state, x_val, batches["val"][1])
  cfg = search.config.arch_optimizer
  g = g_arch["cell"] + cfg.weight_decay * state0.arch["cell"]
  m, v = (1 - cfg.b1) * g, (1 - cfg.b2) * g * g
  arch1 = state0.arch["cell"] - cfg.learning_rate * (m / (1 - cfg.b1)) / (
      jnp.sqrt(v / (1 - cfg.b2)) + 1e-8)
  np.testing.assert_allclose(state1.arch["cell"], arch1, rtol=1e-5, atol=1e-7)

  (train_loss, bn_after_train), g_w = jax.jit(jax.value_and_grad(loss, has_aux=True))(
      state0.weights, {"cell": arch1}, bn_after_val, x_train, batches["train"][1])
  wcfg = search.config.weights_optimizer
  norm = jnp.sqrt(sum(jnp.sum(x * x) for x in jax.tree.leaves(g_w)))
  scale = jnp.minimum(1.0, wcfg.clip_norm / norm)
  lr = comp.weights_lr(jnp.asarray(0))
  weights1 = jax.tree.map(lambda w, g: w - lr * (scale * g + wcfg.weight_decay * w),
                          state0.weights, g_w)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               state1.weights, weights1)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               state1.model_state, bn_after_train)
  np.testing.assert_allclose(metrics["val/loss"], val_loss, rtol=1e-6)
  np.testing.assert_allclose(metrics["train/loss"], train_loss, rtol=1e-6)
  # --- no recompilation across steps (3 steps ran).
  assert len(states) == 4 and len(traces) == 1


def test_weights_first_order_updates_weights_before_alpha():
  search = tiny_search(step_order="weights_first")
  state0 = search_lib.start_state(search)
  batches = search_lib.step_batches(search, 0)
  state1, _ = jax.jit(lambda s, b: steps.search_step(s, b, components=search.components))(
      state0, batches)
  # The alpha gradient must now be taken at the updated weights: recompute it both ways.
  comp = search.components
  x_val = data_lib.normalize(batches["val"][0], comp.mean, comp.std)

  def val_loss(arch, weights, model_state):
    return steps.supernet_loss(comp, weights, arch, model_state, x_val, batches["val"][1])[0]

  # One compiled gradient, taken at both weights (op by op, the two took ~15 s on 2 cores).
  grad_fn = jax.jit(jax.grad(val_loss))
  g_new = grad_fn(state0.arch, state1.weights, state0.model_state)
  g_old = grad_fn(state0.arch, state0.weights, state0.model_state)
  assert not np.allclose(g_new["cell"], g_old["cell"])


# Golden values: the first two steps of the quickstart smoke config (seed 0, synthetic data).
GOLDEN = {"train/loss": [2.263198, 2.280486], "val/loss": [2.490837, 2.208177]}


def test_golden_losses_from_fixed_seed():
  _, _, step_metrics, _ = tiny_search_steps()
  got = {k: [float(metrics[k]) for metrics in step_metrics[:2]] for k in GOLDEN}
  for k in GOLDEN:
    np.testing.assert_allclose(got[k], GOLDEN[k], rtol=2e-4, err_msg=k)


@pytest.mark.parametrize("overrides,message", [
    ({"data.name": "imagenet21k"}, "config.data.name='imagenet21k' is not valid"),
    ({"space.name": "resnet"}, "config.space.name='resnet' is not valid"),
    ({"method": "enas"}, "config.method='enas' is not valid"),
    ({"batch_size": 10_000}, "larger than the weight split"),
    ({"data.train_portion": 1.5}, "train_portion"),
    ({"space.ops": "none,conv_9x9"}, "conv_9x9"),
    ({"backend.cpu_scheduler": "fast"}, "config.backend.cpu_scheduler='fast' is not valid"),
    ({"xla_cpu_scheduler": "memory"}, "config.xla_cpu_scheduler moved to "
                                      "config.backend.cpu_scheduler"),
])
def test_bad_configs_fail_fast_with_clear_errors(overrides, message, tmp_path):
  with pytest.raises(ValueError) as info:
    driver.train_and_evaluate(quickstart_smoke(**overrides), str(tmp_path))
  assert message in str(info.value)
  assert not os.path.exists(tmp_path / "checkpoints")


def test_missing_data_dir_fails_fast(tmp_path):
  config = quickstart_smoke(**{"data.name": "cifar10", "data.data_dir": str(tmp_path / "nope")})
  with pytest.raises(FileNotFoundError, match="data_dir") as info:  # the config check
    driver.train_and_evaluate(config, str(tmp_path / "work"))
  config.data.data_dir = str(tmp_path)  # exists, but holds no CIFAR-10: the dataset's own check
  with pytest.raises(data_lib.DatasetNotFoundError, match="data_dir") as info:
    driver.train_and_evaluate(config, str(tmp_path / "work"))
  assert not os.path.exists(tmp_path / "work")


def write_fixture_nb201_table(path):
  """A CSV in the nats_bench.csv layout covering all 15,625 cells with made-up accuracies."""
  import itertools
  from jaxnas.spaces.nb201 import NB201Genotype
  with open(path, "w") as f:
    f.write("CIFAR10TestAccuracy200Epochs,CIFAR100TestAccuracy200Epochs,"
            "ImageNetTestAccuracy200Epochs,ArchitectureString,UniqueString\n")
    for code in itertools.product(range(5), repeat=6):
      acc = fake_accuracy(code)
      f.write(f"{acc},{acc / 2},{acc / 3},{NB201Genotype.from_code(code)},u{code}\n")


def fake_accuracy(code):
  return 10.0 + sum(c * 10**-i for i, c in enumerate(code))


def test_nb201_ground_truth_is_reported_each_epoch(tmp_path, capsys):
  from jaxnas.spaces.nb201 import NB201Genotype
  table = tmp_path / "table.csv"
  write_fixture_nb201_table(table)
  summary = driver.train_and_evaluate(quickstart_smoke(**{"benchmark.path": str(table)}),
                                    str(tmp_path / "work"))
  record = summary["final_record"]
  expected = fake_accuracy(NB201Genotype.from_string(record["genotype"]).code)
  np.testing.assert_allclose(record["benchmark/test_accuracy"], expected, rtol=1e-6)
  # The final line repeats the final cell's ground truth.
  final_line = [line for line in capsys.readouterr().out.splitlines()
                if line.startswith("Final genotype")][-1]
  assert "(benchmark: " in final_line and f"test_accuracy {expected:.2f}" in final_line
  # data.split='darts': eval is held-out validation, so a best genotype is selected on it
  assert summary["splits"]["eval_role"] == "validation" and summary["best_genotype"]
  assert "ori-test" in summary["benchmark"]


def test_no_genotype_is_selected_on_test_data(tmp_path):
  """GAEA ERM (data.split='full') evaluates on the test set: result.json has no best genotype."""
  config = load_config(os.path.join(ROOT, "configs", "quickstart.py"), "smoke")
  summary = driver.train_and_evaluate(config, str(tmp_path))
  assert summary["splits"]["eval_role"] == "test"
  assert summary["best_genotype"] is None and "best_record" not in summary
  assert summary["selection"].startswith("final genotype only")
  assert json.load(open(tmp_path / "result.json"))["final_genotype"] == summary["final_genotype"]


def test_benchmark_on_a_space_without_one_is_refused(tmp_path):
  table = tmp_path / "table.csv"
  table.write_text("x\n")
  config = load_config(os.path.join(ROOT, "configs", "darts_cifar10.py"))
  config.benchmark.path = str(table)
  with pytest.raises(ValueError, match="only 'nb201'"):
    driver.train_and_evaluate(config, str(tmp_path / "work"))


def test_cadence_logs_evaluates_and_checkpoints_on_schedule():
  """3 steps per epoch, 7 steps (the last epoch is short): logs every 2 steps and at the end,
  evaluates every 2nd epoch and at the end, checkpoints every 5 steps and at every epoch's end."""
  cadence = metrics_lib.Cadence(steps_per_epoch=3, total_steps=7, log_every_steps=2,
                                eval_every_epochs=2, checkpoint_every_steps=5)
  steps = range(1, 8)
  assert [d for d in steps if cadence.log(d)] == [2, 4, 6, 7]
  assert [d for d in steps if cadence.epoch_end(d)] == [3, 6, 7]
  assert [d for d in steps if cadence.evaluate(d)] == [6, 7]
  assert [d for d in steps if cadence.checkpoint(d)] == [3, 5, 6, 7]
  assert [cadence.epoch(d) for d in steps] == [1, 1, 1, 2, 2, 2, 3]
