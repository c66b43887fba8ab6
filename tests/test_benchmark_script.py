"""experiments/benchmark.py: a tiny NB201 supernet end to end, in process (no subprocess)."""
import json

import pytest

import repo_files


def load_benchmark_module():
  return repo_files.load_module("experiments/benchmark.py", "experiments_benchmark")


def test_tiny_nb201_benchmark_writes_positive_figures(tmp_path):
  # Rolled loops and optimisation level 0 keep the compile of the measured step short; much of
  # the remaining time is search_lib.init_state's compilation of the supernet's init.
  benchmark = load_benchmark_module()
  out = tmp_path / "bench.json"
  report = benchmark.main(["--space=nb201", "--channels=4", "--cells_per_stage=1",
                           "--batch_size=8", "--image_size=8", "--unroll=false", "--steps=2",
                           "--warmup=1", "--what=search", f"--json={out}",
                           "--compiler_options=xla_backend_optimization_level=0"])
  saved = json.loads(out.read_text())
  assert saved == json.loads(json.dumps(report))
  assert set(saved["results"]) == {"search"}
  for name, result in saved["results"].items():
    for field in ("median_step_s", "min_step_s", "images_per_s", "lower_s", "compile_s",
                  "peak_rss_mb", "cpu_s_per_wall_s"):
      assert result[field] > 0, (name, field, result[field])
    assert len(result["step_times_s"]) == 2
    assert result["images_per_s"] == pytest.approx(8 / result["median_step_s"])
    assert result["conv_matmul_gflop"] > 0
    assert result["achieved_gflops"] == pytest.approx(result["conv_matmul_gflop"]
                                                      / result["median_step_s"])
    assert result["fraction_of_matmul_peak"] == pytest.approx(
        result["achieved_gflops"] / saved["machine"]["matmul_peak_gflops"])
  assert saved["setup"]["params"] > 0 and saved["setup"]["batch_size"] == 8
  assert saved["setup"]["devices"] == 1   # conftest: a test's mesh is one device unless asked
  assert saved["setup"]["unroll"] is False
  machine = saved["machine"]
  assert machine["backend"] == "cpu" and machine["cpu_count"] >= 1 and machine["jax_version"]


# Slow (about a minute, NAO-V2's supernet compiles); the NB201 benchmark above covers the script.
@pytest.mark.slow
def test_tiny_nao_v2_benchmark_times_the_supernet_step(tmp_path):
  benchmark = load_benchmark_module()
  out = tmp_path / "nao.json"
  report = benchmark.main(["--method=nao_v2", "--space=nb201", "--channels=4",
                           "--cells_per_stage=1", "--batch_size=8", "--image_size=8",
                           "--unroll=false", "--steps=2", "--warmup=1", f"--json={out}",
                           "--compiler_options=xla_backend_optimization_level=0"])
  saved = json.loads(out.read_text())
  assert saved == json.loads(json.dumps(report))
  assert saved["setup"]["method"] == "nao_v2" and saved["setup"]["params"] > 0
  result = saved["results"]["search"]
  assert len(result["step_times_s"]) == 2 and result["compile_s"] > 0
  assert result["images_per_s"] == pytest.approx(8 / result["median_step_s"])


def test_parses_programs_and_compiler_options():
  benchmark = load_benchmark_module()
  args = benchmark.parse_args(["--what=forward, search", "--compiler_options="
                               "xla_backend_optimization_level=0,xla_cpu_use_thunk_runtime=true"])
  assert args.what == ["forward", "search"]
  assert args.compiler_options == {"xla_backend_optimization_level": 0,
                                   "xla_cpu_use_thunk_runtime": True}
  with pytest.raises(SystemExit):
    benchmark.parse_args(["--what=search,backward"])
  # A list-valued option keeps its commas: items split only where a new ``key=`` starts.
  assert benchmark.parse_options("a_b=X,Y, c=3,d.e=false") == {"a_b": "X,Y", "c": 3, "d.e": False}


@pytest.mark.parametrize("method,field,value", [
    ("darts_2nd", "hypergrad", "unrolled"),
    ("milenas", "hypergrad", "mixed_level"),
    ("idarts", "hypergrad", "implicit_neumann"),
    ("gaea", "arch_optimizer.name", "exponentiated_gradient"),
    ("darts_prime", "method", "darts_prime"),
    ("rarts", "method", "rarts"),
])
def test_method_presets_select_the_method(method, field, value):
  benchmark = load_benchmark_module()
  config = benchmark.make_config(benchmark.parse_args([f"--method={method}", "--space=width",
                                                       "--cells_per_stage=2"]))
  target = config
  for part in field.split("."):
    target = target[part]
  assert target == value
  assert config.space.name == "width" and config.space.blocks_per_stage == 2
  from jaxnas import config_checks
  config_checks.validate(config)


def test_suite_rejects_unknown_spaces():
  benchmark = load_benchmark_module()
  with pytest.raises(SystemExit, match="unknown space"):
    benchmark.main(["--suite=nb201,resnet"])


def test_function_macs_counts_products_in_scans_and_gradients():
  import jax
  import jax.numpy as jnp
  from jaxnas import reports
  a, b = jnp.ones((4, 5)), jnp.ones((5, 3))
  assert reports.function_macs(jnp.dot, a, b) == 4 * 5 * 3
  scanned = lambda a, b: jax.lax.scan(lambda c, _: (c, jnp.dot(a, b)), 0.0, None, length=3)[1]
  assert reports.function_macs(scanned, a, b) == 3 * 60
  # The gradient of sum(a @ b) w.r.t. a is one more product of the same size.
  grad = jax.grad(lambda a, b: jnp.sum(jnp.dot(a, b)))
  assert reports.function_macs(grad, a, b) == 2 * 60
  x, w = jnp.ones((2, 8, 8, 3)), jnp.ones((3, 3, 3, 16))
  conv = lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                                   dimension_numbers=("NHWC", "HWIO", "NHWC"))
  assert reports.function_macs(conv, x, w) == 2 * 8 * 8 * 16 * 3 * 3 * 3
