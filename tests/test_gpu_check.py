"""experiments/gpu/gpu_check.py on the CPU at tiny sizes: every part but PyTorch's, end to end.

The GPU run (issue #32) is one prepared call on a machine lent for minutes; this keeps its CPU
path from rotting, so that there only the GPU is new.
"""
import json

import pytest

import repo_files


def load_script():
  return repo_files.load_module("experiments/gpu/gpu_check.py", "experiments_gpu_check")


# Slow: 238 s (load 3-4) to 434 s (load 6-7) on the shared 2-core machine (27 tiny programs, and the
# correctness part's CPU subprocess).
@pytest.mark.slow
def test_tiny_check_runs_every_part_on_the_cpu(tmp_path):
  script = load_script()
  out = tmp_path / "gpu"
  report = script.main([f"--out={out}", "--tiny", "--allow_cpu", "--steps=2", "--warmup=1",
                        "--parts=correctness,core,bf16,loops,seeds,gaea", "--budget_s=100000"])
  saved = json.loads((out / "results.json").read_text())
  assert saved["status"] == "ok" and report["status"] == "ok"
  results = saved["results"]
  for space in ("nb201", "darts"):
    row = results["correctness"][space]
    assert row["ok"] and row["loss_rel_error"] < 1e-4 and row["weights_rel_error"] < 1e-4
    for key in ("weights", "arch_first", "arch_second", "search"):
      r = results["core"][f"{space}/{key}"]
      assert r["median_step_s"] > 0 and r["compile_s"] > 0 and len(r["step_times_s"]) == 2
    assert results["bf16"][f"{space}/search"]["compute_dtype"] == "bfloat16"
    assert len([k for k in results["loops"] if k.startswith(space)]) == 3
    assert results["seeds"][f"{space}/vmapped_x2"]["seed_steps_per_s"] > 0
    assert results["seeds"][f"{space}/one_seed_batch_x2"]["batch_size"] == 16
  assert results["core"]["nb201/arch_second"]["hypergrad"] == "unrolled"
  assert results["gaea"]["projected_search_s"] > results["gaea"]["compile_s"] > 0
  assert not saved["skipped"]


def test_a_spent_budget_skips_every_measurement_and_says_so(tmp_path):
  script = load_script()
  out = tmp_path / "gpu"
  report = script.main([f"--out={out}", "--tiny", "--allow_cpu", "--steps=1", "--warmup=0",
                        "--parts=core,bf16,seeds,gaea", "--budget_s=0"])
  assert report["status"] == "ok" and report["results"] == {}
  assert {"core nb201/weights", "core darts/search", "bf16 nb201/search", "gaea gaea",
          "seeds nb201/vmapped_x2", "seeds darts/vmapped_x1"} <= set(report["skipped"])
  assert json.loads((out / "results.json").read_text())["skipped"] == report["skipped"]
  assert "skipped (budget): core nb201/weights" in script.table(report)


def test_a_missing_package_stops_the_run_with_one_message(tmp_path, monkeypatch):
  script = load_script()
  monkeypatch.setattr(script, "REQUIRED", script.REQUIRED + (("no_such_pkg", "no-such-pkg",
                                                               None),))
  with pytest.raises(SystemExit, match=r"missing or too old: no-such-pkg .*\.whl/"):
    script.main([f"--out={tmp_path}", "--allow_cpu", "--parts=core"])
  saved = json.loads((tmp_path / "results.json").read_text())
  assert saved["status"].startswith("FAILED: gpu_check: missing")


def test_no_gpu_and_missing_reference_sources_are_named(tmp_path):
  script = load_script()
  with pytest.raises(SystemExit, match="sees no GPU"):
    script.main([f"--out={tmp_path}", "--parts=core"])
  with pytest.raises(SystemExit, match="get_references.sh"):
    script.main([f"--out={tmp_path}", "--allow_cpu", "--parts=torch",
                 f"--darts_repo={tmp_path}/none", f"--autodl_repo={tmp_path}/none"])


def test_parts_are_checked():
  script = load_script()
  assert script.parse_args(["--out=x"]).parts == list(script.PARTS)
  with pytest.raises(SystemExit):
    script.parse_args(["--out=x", "--parts=core,everything"])


def test_table_puts_torch_beside_jax_and_lists_failed_measurements():
  script = load_script()
  jax_row = {"median_step_s": 0.010, "lower_s": 1.0, "compile_s": 2.0, "xla_temp_mb": 5.0,
             "device_peak_bytes_in_use_mb": 900.0}
  report = {"machine": {"device_kind": "NVIDIA H100", "versions": {"jax": "0.11.2"}},
            "elapsed_s": 300, "status": "ok", "skipped": ["seeds darts/vmapped_x8"],
            "errors": ["loops darts/search/rolled"],
            "results": {"core": {"darts/weights": jax_row, "darts/search": jax_row},
                        "torch": {"darts/weights": {"median_s": 0.025}},
                        "loops": {"darts/search/rolled": {"error": "XlaRuntimeError: OOM"}}}}
  text = script.table(report)
  assert "darts | weights | 10.0 | 25.0 | 2.50 | 3.0 | 5.0 | 900.0" in text
  assert "darts | search | 10.0 | - | - |" in text
  assert "errors (results.json has each): loops darts/search/rolled" in text
  assert "skipped (budget): seeds darts/vmapped_x8" in text
