"""experiments/pytorch_reference.py: the patches applied to the reference code (no PyTorch needed).

The timing itself needs PyTorch and a checkout of quark0/darts, neither of which CI has; what can
go silently wrong without them is the patching, which is tested here on a fake checkout.
"""
import pytest

import repo_files


def load_script():
  return repo_files.load_module("experiments/pytorch_reference.py")


def fake_checkout(script, root):
  """A `cnn/` whose every module holds the lines the patches expect, plus an untouched line."""
  (root / "cnn").mkdir(parents=True)
  for name in script.MODULES:
    old_lines = [old for old, _ in script.PATCHES.get(name, ())]
    (root / "cnn" / name).write_text("\n".join(["keep = 1", *old_lines]) + "\n")


def test_every_patch_is_applied_and_nothing_else_changes(tmp_path):
  script = load_script()
  fake_checkout(script, tmp_path / "repo")
  (tmp_path / "out").mkdir()
  script.patched_reference(tmp_path / "repo", tmp_path / "out")
  for name in script.MODULES:
    text = (tmp_path / "out" / name).read_text()
    assert text.startswith("keep = 1\n")
    for old, new in script.PATCHES.get(name, ()):
      assert new in text
      assert old not in text.replace(new, "")
  patched = (tmp_path / "out" / "architect.py").read_text()
  assert ".cuda()" not in patched and "alpha=eta" in patched


def test_a_patch_that_does_not_apply_names_the_file_and_the_fix(tmp_path):
  script = load_script()
  fake_checkout(script, tmp_path / "repo")
  (tmp_path / "repo" / "cnn" / "architect.py").write_text("something else\n")
  (tmp_path / "out").mkdir()
  with pytest.raises(SystemExit, match=r"architect\.py: expected .*checkout f276dd3"):
    script.patched_reference(tmp_path / "repo", tmp_path / "out")


def test_a_path_that_is_not_a_checkout_says_how_to_get_one(tmp_path):
  script = load_script()
  with pytest.raises(SystemExit, match="git clone https://github.com/quark0/darts"):
    script.patched_reference(tmp_path, tmp_path)


def test_steps_must_leave_a_timed_step_after_the_warm_up():
  script = load_script()
  assert script.parse_args(["--darts_repo=x", "--what=weights"]).steps == 5
  with pytest.raises(SystemExit):
    script.parse_args(["--darts_repo=x", "--what=weights", "--steps=1"])
