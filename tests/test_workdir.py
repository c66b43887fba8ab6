"""The workdir is the user's record (issue #31), each test the failure a user hits: resuming with a
changed learning rate, a crash after a fallback to an older checkpoint, a diverging run, two runs on
one workdir, a checkpoint without its commit marker, a kill during pruning. Each asserts what the
user has afterwards: the config on disk, the logs' steps, the checkpoints, the message."""
import json
import os
import struct

import pytest

from jaxnas import checkpoint as checkpoint_lib
from jaxnas import driver
from jaxnas import workdir as workdir_lib
from jaxnas.program import RunError
from test_loop import quickstart_smoke

# Two ops and 2 steps per epoch (32 synthetic images, half for the weights, batch 8): a short
# compile, and a genotype line every 2 steps.
TINY = {"space.ops": "none,skip_connect", "data.synthetic_num_train": 32}


def tiny(**overrides):
  return quickstart_smoke(**{**TINY, **overrides})


def read(path):
  with open(path, "rb") as f:
    return f.read()


def logged_steps(path):
  with open(path) as f:
    return [json.loads(line)["step"] for line in f if line.strip()]


def checkpoints(workdir):
  return sorted(int(s) for s in os.listdir(os.path.join(workdir, "checkpoints")) if s.isdigit())


def event_purge_steps(workdir):
  """The purge steps (``file_version`` events) of the TensorBoard files, oldest file first."""
  from tensorboardX.proto import event_pb2
  folder = os.path.join(workdir, "tensorboard")
  steps = []
  for name in sorted(os.listdir(folder)):
    data = read(os.path.join(folder, name))
    offset = 0
    while offset < len(data):  # TFRecord: length, crc, payload, crc
      (length,) = struct.unpack("<Q", data[offset:offset + 8])
      event = event_pb2.Event.FromString(data[offset + 12:offset + 12 + length])
      if event.file_version:
        steps.append(event.step)
      offset += 16 + length
  return steps


def test_resume_with_a_changed_learning_rate_is_refused_then_allowed_and_recorded(tmp_path):
  workdir = str(tmp_path)
  driver.train_and_evaluate(tiny(max_steps=2), workdir)
  config_before = read(tmp_path / "config.json")
  listing = sorted(os.listdir(workdir))
  changed = tiny(max_steps=4, **{"weights_optimizer.learning_rate": 0.1, "seed": 3})
  with pytest.raises(RunError) as error:
    driver.train_and_evaluate(changed, workdir)
  message = str(error.value)
  assert "weights_optimizer.learning_rate: 0.025 -> 0.1" in message and "seed: 0 -> 3" in message
  assert "--config.resume.allow_changes=seed,weights_optimizer.learning_rate" in message
  assert "\n" not in message
  # Nothing changed on disk.
  assert read(tmp_path / "config.json") == config_before
  assert sorted(os.listdir(workdir)) == listing and checkpoints(workdir) == [1, 2]
  # Allowed: the run resumes at step 2; config.json stays the original; the history says what
  # changed, from which step, and why (max_steps is a reporting field: recorded, not asked for).
  changed.resume.allow_changes = "weights_optimizer.learning_rate"
  changed.seed = 0
  summary = driver.train_and_evaluate(changed, workdir)
  assert summary["step"] == 4
  assert read(tmp_path / "config.json") == config_before
  (entry,) = workdir_lib.read_history(workdir)
  assert entry["step"] == 2
  assert entry["changes"] == {
      "max_steps": {"old": 2, "new": 4, "by": "reporting field"},
      "weights_optimizer.learning_rate": {"old": 0.025, "new": 0.1,
                                          "by": "config.resume.allow_changes"}}
  # The same command again is no change: nothing more recorded.
  driver.train_and_evaluate(changed, workdir)
  assert len(workdir_lib.read_history(workdir)) == 1


# Slow (two searches, six steps): runs in .ci/run after the README's test command.
@pytest.mark.slow
def test_a_crash_after_a_fallback_leaves_one_uninterrupted_log(tmp_path):
  workdir = str(tmp_path)
  driver.train_and_evaluate(tiny(max_steps=6, keep_checkpoints=10), workdir)
  assert logged_steps(tmp_path / "genotypes.jsonl") == [2, 4, 6]
  # Fall back to step 3 (as after a crash that lost the newer checkpoints): later steps are moved
  # aside, never deleted, and the logs are cut back to step 3.
  summary = driver.train_and_evaluate(
      tiny(max_steps=6, keep_checkpoints=10, **{"resume.step": 3}), workdir)
  assert logged_steps(tmp_path / "genotypes.jsonl") == [2, 4, 6]  # 4 and 6 recomputed, once each
  assert sorted(os.listdir(tmp_path / driver.SET_ASIDE_DIR)) == ["4", "5", "6"]
  assert checkpoints(workdir) == [1, 2, 3, 4, 5, 6]
  assert event_purge_steps(workdir)[-1] == 4  # TensorBoard hides the old events after step 3
  result = json.load(open(tmp_path / "result.json"))
  assert result == summary and result["final_record"]["step"] == 6
  assert result["best_step"] in (2, 4, 6)


def test_a_diverging_run_stops_at_once_and_logs_and_saves_nothing_non_finite(tmp_path):
  workdir = str(tmp_path)
  config = tiny(max_steps=6, log_every_steps=3, checkpoint_every_steps=3, eval_every_epochs=10,
                **{"weights_optimizer.learning_rate": 1e6, "weights_optimizer.clip_norm": 0.0})
  with pytest.raises(RunError, match=r"diverged: step \d+ produced a non-finite") as error:
    driver.train_and_evaluate(config, workdir)
  message = str(error.value)
  assert "last finite step" in message and "last good checkpoint" in message
  assert not os.path.exists(tmp_path / "genotypes.jsonl")  # no NaN genotype line
  saved = checkpoints(workdir)  # whatever was saved is finite (the manager refuses NaN)
  assert all(step < 3 for step in saved)


def test_a_second_run_on_the_same_workdir_is_refused_with_the_holder(tmp_path):
  workdir = str(tmp_path)
  holder = workdir_lib.Lock(workdir).acquire()  # the first run, still going
  try:
    with pytest.raises(RunError, match=rf"in use by another run \(pid {os.getpid()} on "):
      driver.run(driver.build_program(tiny()), workdir)
    assert not os.path.exists(tmp_path / "checkpoints")
  finally:
    holder.release()
  assert driver.train_and_evaluate(tiny(), workdir)["step"] == 2  # released: it runs


def test_a_checkpoint_without_its_commit_marker_is_moved_aside_and_the_run_goes_on(tmp_path,
                                                                                   capsys):
  workdir = str(tmp_path)
  driver.train_and_evaluate(tiny(max_steps=2), workdir)
  os.remove(tmp_path / "checkpoints" / "2" / "commit_success.txt")
  summary = driver.train_and_evaluate(tiny(max_steps=2), workdir)
  out = capsys.readouterr().out
  assert "moved the incomplete step" in out and "Resumed from step 1" in out
  assert os.listdir(tmp_path / driver.SET_ASIDE_DIR) == ["2"]  # kept, not deleted
  assert checkpoints(workdir) == [1, 2] and summary["step"] == 2


# Slow (two searches): runs in .ci/run after the README's test command.
@pytest.mark.slow
def test_a_kill_during_pruning_leaves_no_partial_step(tmp_path, monkeypatch):
  workdir = str(tmp_path)
  calls = []

  def killed(self):  # the process dies while removing the renamed step
    calls.append(str(self))
    raise KeyboardInterrupt

  monkeypatch.setattr(type(checkpoint_lib.epath.Path(workdir)), "rmtree", killed)
  with pytest.raises(KeyboardInterrupt):
    driver.train_and_evaluate(tiny(max_steps=3, keep_checkpoints=2), workdir)
  monkeypatch.undo()
  names = sorted(os.listdir(tmp_path / "checkpoints"))
  assert names == ["1.pruning", "2", "3"] and calls[0].endswith("1.pruning")
  # The next start removes what the prune had left and goes on from the newest step.
  assert driver.train_and_evaluate(tiny(max_steps=3, keep_checkpoints=2), workdir)["step"] == 3
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["2", "3"]


def test_a_field_added_by_a_newer_version_is_recorded_not_refused(tmp_path):
  """A workdir recorded before a field existed resumes; the new field joins the history."""
  workdir = str(tmp_path)
  config = tiny()
  recorded = config.to_dict()
  del recorded["arch_optimizer"]["edge_floor"]  # as written by a version without that field
  recorded["retired_field"] = 1                 # and one this version no longer has
  with open(tmp_path / "config.json", "w") as f:
    json.dump(recorded, f)
  assert workdir_lib.check_identity(config, workdir) == {
      "arch_optimizer.edge_floor": (workdir_lib._ABSENT, 0.0),
      "retired_field": (1, workdir_lib._ABSENT)}
  workdir_lib.record_start(config, workdir, workdir_lib.check_identity(config, workdir), 0)
  (entry,) = workdir_lib.read_history(workdir)
  assert entry["changes"]["arch_optimizer.edge_floor"] == {
      "old": None, "new": 0.0, "by": "a field added or retired by another jaxnas version"}
