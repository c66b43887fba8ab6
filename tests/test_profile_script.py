"""experiments/profile_step.py: trace aggregation (self times, kinds, HLO op names) and the
interleaved A/B timing, on synthetic inputs."""
import repo_files


def load_profile_module():
  return repo_files.load_module("experiments/profile_step.py", "experiments_profile_step")


def event(name, ts, dur, tid=1, pid=7):
  return {"ph": "X", "name": name, "ts": ts, "dur": dur, "pid": pid, "tid": tid}


def test_self_times_subtract_nested_events_on_worker_threads_only():
  profile = load_profile_module()
  names = {(7, 1): "tf_XLAEigen/1", (7, 2): "tf_XLAEigen/2", (7, 3): "python"}
  events = [
      event("ThunkExecutor::Execute", 0, 100),        # holds a loop and a fusion
      event("while.3", 10, 50),                       # holds two fusions
      event("add_fusion.1", 15, 20),
      event("add_fusion.2", 40, 10),
      event("all-reduce.9", 70, 25),
      event("add_fusion.7", 0, 30, tid=2),            # another worker thread
      event("add_fusion.1", 0, 500, tid=3),           # not a worker thread: ignored
      {"ph": "M", "name": "thread_name", "pid": 7, "tid": 1, "args": {"name": "x"}},
  ]
  times = profile.self_times(events, names)
  assert times == {"ThunkExecutor::Execute": 100 - 50 - 25, "while.3": 50 - 20 - 10,
                   "add_fusion.1": 20, "add_fusion.2": 10, "all-reduce.9": 25, "add_fusion.7": 30}
  assert sum(times.values()) == 100 + 30   # exclusive times add up to the threads' busy time
  assert profile.by_kind(times) == {"ThunkExecutor::Execute": 25, "while": 20, "add_fusion": 60,
                                    "all-reduce": 25}


def test_hlo_op_names_and_kinds():
  profile = load_profile_module()
  hlo = ('  %add_fusion.12 = f32[4]{0} fusion(%p), kind=kLoop, calls=%c, '
         'metadata={op_name="jit(step)/cell_0/add" stack_frame_id=3}\n'
         '  ROOT %tuple.1 = (f32[4]{0}) tuple(%add_fusion.12)\n')
  assert profile.hlo_op_names(hlo) == {"add_fusion.12": "jit(step)/cell_0/add"}
  assert profile.kind("bitcast_reduce_fusion.40") == "bitcast_reduce_fusion"
  assert profile.kind("ThunkExecutor::Execute") == "ThunkExecutor::Execute"


def test_interleaved_times_alternate_the_order_and_skip_the_first_round():
  profile = load_profile_module()
  calls = []
  times_a, times_b = profile.interleaved_times(lambda: calls.append("a"),
                                                lambda: calls.append("b"), rounds=3)
  assert calls == ["a", "b", "b", "a", "a", "b", "b", "a"]
  assert len(times_a) == len(times_b) == 3
  assert all(t >= 0 for t in times_a + times_b)


TINY = ["--space=nb201", "--channels=4", "--cells_per_stage=1", "--batch_size=8",
        "--image_size=8", "--unroll=false"]


def test_profile_and_ab_modes_end_to_end(tmp_path, capsys):
  profile = load_profile_module()
  profile.main(TINY + ["--what=weights", "--steps=1", "--warmup=1", "--top=3",
                       f"--trace_dir={tmp_path}"])
  out = capsys.readouterr().out
  assert "1 step(s):" in out and "thread-s  kind" in out and "thread-s  kernel" in out
  events, names = profile.read_trace(str(tmp_path))
  assert sum(profile.self_times(events, names).values()) > 0
  # Variant B at optimisation level 0 is a different compilation of the same program.
  profile.main(TINY + ["--what=weights", "--steps=2",
                       "--ab_options=xla_backend_optimization_level=0"])
  out = capsys.readouterr().out
  assert "B +{'xla_backend_optimization_level': 0}" in out and "B / A per round" in out


def test_ab_options_values_may_hold_commas():
  profile = load_profile_module()
  rest, ab, top, trace_dir = profile._split_options(
      ["--what=weights", "--top=7", "--ab_options=a_b=X,Y,c=3,d.e=true", "--trace_dir=/t"])
  assert rest == ["--what=weights"] and top == 7 and trace_dir == "/t"
  assert ab == {"a_b": "X,Y", "c": 3, "d.e": True}
