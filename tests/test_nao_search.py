"""NAO-V2's search driver: balanced sampling, ranking statistics, the SGD rule, the NB201 token
space, and the whole driver end to end with resume (``jaxnas.nao.search``)."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from jaxnas import driver
from jaxnas import checkpoint as checkpoint_lib
from jaxnas.nao import nb201 as nao_nb201
from jaxnas import sharding
from jaxnas.nao import search as nao_search
from jaxnas.spaces import nb201_network
import test_loop
from test_loop import ROOT


def load_config(name, arg="smoke", **overrides):
  return test_loop.load_config(os.path.join(ROOT, "configs", name), arg, **overrides)


# ------------------------------------------------------------------------------ balanced sampling


def test_size_proportional_sampling_matches_target_distribution():
  """Chi-square goodness of fit of 20k on-device draws against p_a = |theta_a| / sum |theta|."""
  counts = np.array([100, 300, 50, 550, 0], np.float64)  # the last row is padding
  probs = np.zeros(5, np.float32)
  probs[:4] = nao_search.sampling_probs(counts[:4], "size")
  np.testing.assert_allclose(probs[:4], counts[:4] / counts[:4].sum(), rtol=1e-6)
  tokens = jnp.arange(5, dtype=jnp.int32)[:, None] * jnp.ones((1, 3), jnp.int32)
  keys = jax.random.split(jax.random.key(0), 20_000)
  draws = np.asarray(jax.jit(jax.vmap(nao_search.sample_arch, (0, None, None)))(
      keys, tokens, jnp.asarray(probs)))[:, 0]
  observed = np.bincount(draws, minlength=5)
  assert observed[4] == 0, "padding rows must never be sampled"
  expected = probs[:4] * len(draws)
  _, p_value = scipy.stats.chisquare(observed[:4], expected)
  assert p_value > 1e-3, (observed, expected)
  # A wrong (uniform) sampler is rejected by the same test: it has power.
  _, p_uniform = scipy.stats.chisquare(observed[:4], np.full(4, len(draws) / 4))
  assert p_uniform < 1e-6


def test_uniform_sampling_and_bad_counts():
  np.testing.assert_allclose(nao_search.sampling_probs(np.array([1, 5, 9]), "uniform"), 1 / 3)
  with pytest.raises(ValueError, match="positive"):
    nao_search.sampling_probs(np.array([1, 0]), "size")
  with pytest.raises(ValueError, match="sampling"):
    nao_search.sampling_probs(np.array([1, 2]), "weighted")


def test_kendall_tau_matches_scipy_with_ties():
  rng = np.random.default_rng(0)
  x = rng.integers(0, 5, size=60).astype(float)  # many ties, as 500-image accuracies have
  y = x + rng.normal(size=60)
  np.testing.assert_allclose(nao_search.kendall_tau(x, y), scipy.stats.kendalltau(x, y)[0],
                             rtol=1e-12)
  assert nao_search.kendall_tau(np.arange(5.0), np.arange(5.0)) == pytest.approx(1.0)
  assert nao_search.kendall_tau(np.arange(5.0), -np.arange(5.0)) == pytest.approx(-1.0)


# ------------------------------------------------------------------------------ the SGD rule


def test_masked_sgd_is_pytorch_sgd_and_skips_unused_weights():
  w = {"a": jnp.array([1.0, -2.0, 3.0])}
  m = {"a": jnp.array([0.5, 0.5, 0.5])}
  g = {"a": jnp.array([0.1, 0.0, -0.3])}
  lr, mu, wd = 0.1, 0.9, 0.01
  new_w, new_m = nao_search.masked_sgd(w, m, g, lr, momentum_coef=mu, weight_decay=wd,
                                       update_unused=True)
  d = g["a"] + wd * w["a"]
  np.testing.assert_allclose(new_m["a"], mu * m["a"] + d, rtol=1e-6)
  np.testing.assert_allclose(new_w["a"], w["a"] - lr * (mu * m["a"] + d), rtol=1e-6)
  masked_w, masked_m = nao_search.masked_sgd(w, m, g, lr, momentum_coef=mu, weight_decay=wd,
                                             update_unused=False)
  np.testing.assert_array_equal(masked_w["a"][1], w["a"][1])  # zero gradient: untouched
  np.testing.assert_array_equal(masked_m["a"][1], m["a"][1])
  np.testing.assert_allclose(np.asarray(masked_w["a"])[[0, 2]], np.asarray(new_w["a"])[[0, 2]])


# ------------------------------------------------------------------------------ NB201 tokens


def test_nb201_token_space_round_trip_and_param_counts():
  space = nao_nb201.NB201TokenSpace(channels=4, cells_per_stage=1, num_classes=10)
  assert (space.seq_len, space.vocab_size) == (6, 6)
  allowed = space.allowed_tokens()
  assert not allowed[:, 0].any() and allowed[:, 1:].all()
  rng = np.random.default_rng(0)
  for _ in range(20):
    tokens = space.random_arch(rng)
    assert allowed[np.arange(6), tokens].all()
    np.testing.assert_array_equal(space.from_string(space.to_string(tokens)), tokens)
    np.testing.assert_array_equal(space.augment(tokens, rng), tokens)
  with pytest.raises(ValueError, match="6 tokens"):
    space.to_string(np.array([0, 1, 2, 3, 4, 5]))
  # Parameter counts are the stand-alone network's (only conv edges carry parameters).
  for text in ("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
               "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+"
               "|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"):
    net = nb201_network.network(text, channels=4, cells_per_stage=1, num_classes=10)
    variables = net.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)), train=False)
    expected = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(variables["params"]))
    assert space.num_params(space.from_string(text)) == expected
  convs = space.from_string("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+"
                            "|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")
  pools = space.from_string("|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+"
                            "|avg_pool_3x3~0|avg_pool_3x3~1|avg_pool_3x3~2|")
  assert space.num_params(convs) > space.num_params(pools)


def test_nb201_token_supernet_trains_only_the_sampled_ops():
  """One-hot mixing: the unused ops' weights get exactly zero gradient (so they are skipped)."""
  space = nao_nb201.NB201TokenSpace(channels=4, cells_per_stage=1)
  module = space.supernet()
  x = jax.random.normal(jax.random.key(1), (4, 8, 8, 3))
  tokens = space.from_string("|nor_conv_3x3~0|+|none~0|skip_connect~1|+"
                             "|avg_pool_3x3~0|none~1|nor_conv_3x3~2|")
  variables = jax.jit(lambda k: module.init(k, x, jnp.asarray(tokens), train=False))(
      jax.random.key(0))

  def loss(params):
    logits, _ = module.apply({**variables, "params": params}, x, jnp.asarray(tokens), train=True,
                             mutable=["batch_stats"])
    return jnp.sum(logits ** 2)

  grads = jax.jit(jax.grad(loss))(variables["params"])["supernet"]
  for stage in range(3):
    mixed = grads[f"stage_{stage}"]["edges"]["mixed"]
    np.testing.assert_array_equal(mixed["nor_conv_1x1"]["conv"]["kernel"], 0.0)  # not in the cell
    per_edge = jnp.abs(mixed["nor_conv_3x3"]["conv"]["kernel"]).sum(axis=(0, 2, 3, 4, 5))
    used = np.asarray(per_edge) > 0
    # Only edges 1<-0 and 3<-2 hold nor_conv_3x3.
    np.testing.assert_array_equal(used, [True, False, False, False, False, True])


# ------------------------------------------------------------------------------ the driver


def _final_state(config, workdir):
  search = nao_search.build(config)
  abstract = jax.eval_shape(lambda: nao_search.init_state(search))
  with checkpoint_lib.CheckpointManager(os.path.join(workdir, "checkpoints"),
                                        fingerprint=nao_search.fingerprint(search)) as manager:
    return manager.restore(abstract)


def _check_outputs(config, workdir, summary):
  """What every finished search leaves: result, per-iteration log, final pool, a DONE state."""
  pool_size = summary["pool_size"]
  assert config.nao.seed_archs < pool_size <= config.nao.seed_archs + config.nao.new_archs
  assert len(summary["top"]) == config.nao.rerank_top
  if config.nao.rerank_epochs:
    assert summary["chosen_by"] == "rerank"
    assert all(0.0 <= e["rerank_accuracy"] <= 1.0 for e in summary["top"])
    best = max(summary["top"], key=lambda e: e["rerank_accuracy"])
    assert summary["best_arch"] == best["arch"]
  else:
    assert summary["chosen_by"] == "supernet_score"
    assert summary["best_arch"] == summary["top"][0]["arch"]
  # the fields jaxnas.compare reads from any search's result (the chosen cell, the steps done)
  assert summary["final_genotype"] == summary["final_record"]["genotype"] == summary["best_arch"]
  records = [json.loads(line) for line in open(os.path.join(workdir, "nao_iterations.jsonl"))]
  assert [r["iteration"] for r in records] == list(range(config.nao.iterations))
  assert os.path.exists(os.path.join(workdir, "arch_pool.final"))
  state = _final_state(config, workdir)
  assert int(state.phase) == nao_search.DONE
  assert summary["step"] == int(state.progress)
  tokens, scores = nao_search.pool(state)
  assert len({tuple(t) for t in tokens}) == len(tokens) == pool_size, "distinct architectures"
  allowed = nao_search.build(config).space.allowed_tokens()
  assert allowed[np.arange(tokens.shape[1])[None, :], tokens].all(), "only valid tokens"
  assert ((0 <= scores) & (scores <= 1)).all()


# Slow (about a minute): NAO's cell space end to end. The default run keeps NAO's NB201 token
# supernet step (test_nb201_token_supernet_trains_only_the_sampled_ops) and the config checks.
@pytest.mark.slow
def test_nao_space_smoke_search_with_rerank(tmp_path):
  """NAO's cell space end to end: drop-path, size-proportional sampling, controller, re-rank."""
  config = load_config("nao_v2_cifar10.py")
  summary = driver.train_and_evaluate(config, str(tmp_path))
  _check_outputs(config, str(tmp_path), summary)
  assert summary["selected_on"].startswith("the arch split") and "eval_role" in summary["splits"]


class _Interrupt(Exception):
  pass


# Slow (a whole NAO-V2 search, then three partial ones, about a minute).
@pytest.mark.slow
def test_resume_mid_iteration_equals_uninterrupted(tmp_path, monkeypatch):
  """Interrupted twice (iteration 0's supernet training, then iteration 1's), resumed each time:
  the final state is bit-identical to an uninterrupted search's, and so is the result."""
  config = load_config("nao_v2_nb201.py")
  full = driver.train_and_evaluate(config, str(tmp_path / "full"))
  real_gather = sharding.DataParallel.put_examples
  # Batch gathers of the smoke search: 4 per iteration's training, then 1 per scored architecture.
  # Call 3 is iteration 0's third step (after the step-2 checkpoint); after that resume, call 11
  # is iteration 1's third step (2 training + 6 scoring + 2 training gathers before it).
  for interrupt_at in (3, 11):
    calls = {"n": 0}

    def flaky_gather(parallel, split, idx, interrupt_at=interrupt_at):
      calls["n"] += 1
      if calls["n"] == interrupt_at:
        raise _Interrupt
      return real_gather(parallel, split, idx)

    monkeypatch.setattr(sharding.DataParallel, "put_examples", flaky_gather)
    with pytest.raises(_Interrupt):
      driver.train_and_evaluate(config, str(tmp_path / "resumed"))
  monkeypatch.setattr(sharding.DataParallel, "put_examples", real_gather)
  records = [json.loads(line) for line in open(tmp_path / "resumed" / "nao_iterations.jsonl")]
  assert [r["iteration"] for r in records] == [0], "the second interruption is in iteration 1"
  resumed = driver.train_and_evaluate(config, str(tmp_path / "resumed"))
  _check_outputs(config, str(tmp_path / "full"), full)
  assert resumed == full
  a = _final_state(config, str(tmp_path / "full"))
  b = _final_state(config, str(tmp_path / "resumed"))
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_bad_config_fails_fast_with_the_field_named(tmp_path):
  config = load_config("nao_v2_cifar10.py", **{"nao.sampling": "weighted"})
  with pytest.raises(ValueError, match="config.nao.sampling"):
    driver.train_and_evaluate(config, str(tmp_path))
  config = load_config("nao_v2_cifar10.py", **{"space.name": "darts"})
  with pytest.raises(ValueError, match="'nao'.*'nb201'"):
    driver.train_and_evaluate(config, str(tmp_path))


@pytest.mark.parametrize("field,value,match", [
    ("backend.remat", True, "backend.remat=True is not supported by NAO-V2"),
    ("compute_dtype", "bfloat16", "compute_dtype='bfloat16' is not supported by NAO-V2"),
    ("num_seeds", 2, "num_seeds=2 is not supported by NAO-V2"),
])
def test_gradient_method_only_options_fail_fast(field, value, match, tmp_path):
  config = load_config("nao_v2_nb201.py", **{field: value})
  with pytest.raises(ValueError, match=match):
    driver.train_and_evaluate(config, str(tmp_path))


# Slow (two NAO-V2 smoke searches).
@pytest.mark.slow
def test_a_crash_after_a_logged_stage_leaves_one_line_per_iteration(tmp_path, monkeypatch):
  """The pool's score line is written, then the process dies before that unit's checkpoint: the
  resumed search rescores iteration 0 and its log still has one line per iteration."""
  config = load_config("nao_v2_nb201.py")
  real_report = nao_search.report_pool

  def report_then_die(*args, **kwargs):
    real_report(*args, **kwargs)
    raise _Interrupt

  monkeypatch.setattr(nao_search, "report_pool", report_then_die)
  with pytest.raises(_Interrupt):
    driver.train_and_evaluate(config, str(tmp_path))
  monkeypatch.setattr(nao_search, "report_pool", real_report)
  records = [json.loads(line) for line in open(tmp_path / "nao_iterations.jsonl")]
  assert [r["iteration"] for r in records] == [0]  # written after the last checkpoint
  summary = driver.train_and_evaluate(config, str(tmp_path))
  _check_outputs(config, str(tmp_path), summary)  # iterations 0, 1, ... once each
