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


def fake_autodl(script, root):
  """AutoDL's model files (any text) and a DARTS-V2.py holding the lines the patches expect inside
  the functions the script takes, plus a top-level import that must not be taken."""
  for name in script.AUTODL_MODULES:
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(f"# {name}\n")
  body = "\n".join(f"    {old}" for old, _ in script.AUTODL_PATCHES)
  functions = "\n\n".join(f"def {name}():\n{body}\n" for name in script.AUTODL_FUNCTIONS)
  (root / script.AUTODL_SECOND_ORDER).parent.mkdir(parents=True, exist_ok=True)
  (root / script.AUTODL_SECOND_ORDER).write_text(
    "from xautodl.datasets import get_datasets\n\n" + functions + "\n\ndef main():\n  pass\n")


def test_autodl_files_are_copied_and_the_second_order_functions_patched(tmp_path):
  script = load_script()
  fake_autodl(script, tmp_path / "repo")
  (tmp_path / "out").mkdir()
  source = script.patched_autodl(tmp_path / "repo", tmp_path / "out")
  for name in script.AUTODL_MODULES:
    assert (tmp_path / "out" / name).read_text() == f"# {name}\n"
  for package in ("xautodl", "xautodl/models", "xautodl/models/cell_searchs"):
    assert (tmp_path / "out" / package / "__init__.py").read_text() == ""
  for old, new in script.AUTODL_PATCHES:
    assert new in source and old not in source.replace(new, "")
  assert "get_datasets" not in source and "def main" not in source
  compile(source, "DARTS-V2.py", "exec")
  assert [line for line in source.splitlines() if line.startswith("def ")] == [
    f"def {name}():" for name in script.AUTODL_FUNCTIONS]


def test_an_autodl_patch_that_does_not_apply_names_the_commit(tmp_path):
  script = load_script()
  fake_autodl(script, tmp_path / "repo")
  (tmp_path / "repo" / script.AUTODL_SECOND_ORDER).write_text("def _concat():\n  pass\n")
  (tmp_path / "out").mkdir()
  with pytest.raises(SystemExit, match=r"DARTS-V2\.py: expected .*checkout f46486e"):
    script.patched_autodl(tmp_path / "repo", tmp_path / "out")
  with pytest.raises(SystemExit, match="git clone https://github.com/D-X-Y/AutoDL-Projects"):
    script.patched_autodl(tmp_path / "nothing", tmp_path / "out")


def test_programs_and_spaces_parse():
  script = load_script()
  args = script.parse_args(["--space=nb201", "--autodl_repo=x", "--what=weights, arch_second",
                            "--device=cuda"])
  assert args.what == ["weights", "arch_second"] and args.device == "cuda"
  with pytest.raises(SystemExit):
    script.parse_args(["--space=nb201", "--darts_repo=x", "--what=weights"])  # no --autodl_repo
  with pytest.raises(SystemExit):
    script.parse_args(["--darts_repo=x", "--what=weights,backward"])
