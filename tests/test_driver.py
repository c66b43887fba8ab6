"""The one driver (``jaxnas.driver``): its loop on a toy program, and that nothing in the library
imports it (search, vmapped seeds, NAO-V2 and training from scratch are programs it runs)."""
import ast
import json
import os
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxnas import driver
from jaxnas import program
from jaxnas import sharding

ROOT = pathlib.Path(__file__).resolve().parents[1]


class Counter(program.Program):
  """A toy program: the state is a float that each step adds ``position + 1`` to; logs every 2,
  evaluates every 3 (stops when asked), checkpoints every 4. Records the hooks it receives."""

  def __init__(self, total: int, stop_at: int = 0):
    self.config = ml_collections.ConfigDict({"keep_checkpoints": 10})
    self.parallel = sharding.DataParallel(sharding.make_mesh(1))
    self.total, self.stop_at, self.calls = total, stop_at, []

  def open(self, workdir, position):
    self.calls.append(("open", position))

  def fingerprint(self):
    return {"toy": "counter"}

  def fresh_state(self):
    return {"step": jnp.zeros((), jnp.int32), "value": jnp.zeros((), jnp.float32)}

  def position(self, state):
    return int(state["step"])

  def step(self, state, position):
    self.calls.append(("step", position))
    return ({"step": state["step"] + 1, "value": state["value"] + position + 1},
            {"value": state["value"]})

  def due(self, done):
    return program.Due(log=done % 2 == 0, evaluate=done % 3 == 0, checkpoint=done % 4 == 0)

  def log(self, done, metrics, perf):
    self.calls.append(("log", done))

  def evaluate(self, done, state):
    self.calls.append(("evaluate", done))
    return done == self.stop_at

  def finish(self, state):
    self.calls.append(("finish", int(state["step"])))
    return {"value": float(state["value"])}


def test_driver_runs_hooks_in_order_and_resumes_from_the_checkpoint(tmp_path):
  toy = Counter(total=6)
  assert driver.run(toy, str(tmp_path)) == {"value": 21.0}  # 1 + 2 + ... + 6
  assert toy.calls == [("open", 0), ("step", 0), ("step", 1), ("log", 2), ("step", 2),
                       ("evaluate", 3), ("step", 3), ("log", 4), ("step", 4), ("step", 5),
                       ("log", 6), ("evaluate", 6), ("finish", 6)]
  assert json.load(open(tmp_path / "config.json")) == {"keep_checkpoints": 10}
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["4"]
  # A longer run in the same workdir resumes at the checkpoint (step 4), not from 0.
  longer = Counter(total=8)
  assert driver.run(longer, str(tmp_path)) == {"value": 36.0}  # 1 + ... + 8
  assert longer.calls[:2] == [("open", 4), ("step", 4)]
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["4", "8"]


def test_an_evaluation_that_stops_the_run_checkpoints_it(tmp_path):
  toy = Counter(total=9, stop_at=3)
  assert driver.run(toy, str(tmp_path)) == {"value": 6.0}
  assert toy.calls[-1] == ("finish", 3)
  assert os.listdir(tmp_path / "checkpoints") == ["3"]


def test_the_first_step_is_announced_as_compiling_and_speeds_exclude_it(tmp_path, capsys):
  toy = Counter(total=4)
  perfs = []
  toy.log = lambda done, metrics, perf: perfs.append((done, perf))
  driver.run(toy, str(tmp_path))
  out = capsys.readouterr().out
  assert out.index("compiling the step") < out.index("compiled and ran the first step in")
  # The timer starts after the first (compiling) step: step 2 is timed over one step, step 4 two.
  assert [done for done, _ in perfs] == [2, 4]
  assert all(np.isfinite(p["perf/steps_per_second"]) for _, p in perfs)


def test_every_run_is_a_program_and_no_library_module_imports_the_driver():
  from jaxnas import evaluate, search, seeds
  from jaxnas.nao import search as nao_search
  for cls in (search.SearchProgram, seeds.SeedsProgram, nao_search.NAOProgram,
              evaluate.TrainingProgram):
    assert issubclass(cls, program.Program), cls
  importers = []
  for path in (ROOT / "jaxnas").rglob("*.py"):
    if (path.name in ("driver.py", "train.py", "compare.py", "__init__.py")
        and path.parent.name == "jaxnas"):
      continue  # the driver itself, the entry points (python -m) and the public API
    for node in ast.walk(ast.parse(path.read_text())):
      names = ([a.name for a in node.names] if isinstance(node, ast.ImportFrom) else
               [a.name for a in node.names] if isinstance(node, ast.Import) else [])
      module = node.module if isinstance(node, ast.ImportFrom) else ""
      if "driver" in names or "jaxnas.driver" in names or module == "jaxnas.driver":
        importers.append(str(path.relative_to(ROOT)))
  assert importers == []
