"""experiments/hypergrad_profile.py ``--count_only``: multiply-adds of each hypergradient estimator
on a tiny supernet, checked against the operation counts they must have."""
import repo_files

TINY = ["--space=nb201", "--channels=4", "--cells_per_stage=1", "--batch_size=8",
        "--image_size=8", "--unroll=false", "--remat=false"]


def count_table(capsys, variants: str) -> dict[str, float]:
  profile = repo_files.load_module("experiments/hypergrad_profile.py",
                                   "experiments_hypergrad_profile")
  profile.main(TINY + ["--count_only", f"--variants={variants}"])
  lines = capsys.readouterr().out.splitlines()
  rows = [line.split(" | ") for line in lines if " | - | - | " in line]
  return {row[0]: float(row[4].rstrip("x")) for row in rows}


def test_count_only_ratios_follow_the_estimators_passes(capsys):
  first, full, fd_exact, fd_central, exact = count_table(capsys, "0,1,2,3,4").values()
  assert first == 1.0
  # Weight gradients add a pass over every kernel; the exact mixed term (a jvp of a backward) costs
  # more than the reference's two α gradients; the exact unroll is DARTS' virtual step with that
  # exact mixed term, so both count the same multiply-adds.
  assert 1.0 < full < fd_central < fd_exact
  assert exact == fd_exact
