"""NAO's cell space: encoding, supernet == stand-alone sub-network, parameter counts, gradients.

Sizes are tiny (C=4, layers=1, 8x8 images, batch 4); one compiled supernet serves every arch.
The supernet's training step is the file's main cost (its compile grows with the number of ops),
so the training-mode tests use three ops that cover every kind of code path (a parametric op with
per-id weights and WSBN, a parameter-free op, identity / per-id FactorizedReduce); the full
"small" supernet is checked in evaluation mode.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas import genotypes
from jaxnas.spaces import nao
from jaxnas.spaces import nao_network

C, LAYERS, BATCH = 4, 1, 4
TINY_OPS = ("sep_conv_3x3", "max_pool_3x3", "identity")


@pytest.fixture(scope="module")
def space():
  return nao.NAOSpace()


@pytest.fixture(scope="module")
def tiny():
  return nao.NAOSpace(TINY_OPS)


def _archs(space, n, seed=0):
  rng = np.random.default_rng(seed)
  return [space.random_arch(rng) for _ in range(n)]


# ----------------------------------------------------------------------------------------------
# Encoding
# ----------------------------------------------------------------------------------------------

def test_sizes_and_reference_encoding(space):
  assert (space.name, space.seq_len, space.vocab_size) == ("nao", 40, 12)
  assert nao.NAOSpace("middle").vocab_size == 17 and len(nao.NAO_MIDDLE_OPS) == 10
  # NAONet-V2's fixed_arc; tokens as the reference's parse_arch_to_seq computes them.
  arc = "1 1 0 1 2 4 0 0 0 0 2 1 0 0 0 2 0 3 0 0 0 2 0 2 2 2 1 0 0 0 0 1 0 0 0 3 0 0 0 1"
  raw = [int(v) for v in arc.split()]
  expected = [v + 1 if i % 2 == 0 else v + 7 for i, v in enumerate(raw)]
  tokens = space.from_string(arc)
  assert tokens.tolist() == expected and space.to_string(tokens) == arc
  assert space.tokens_to_arch(tokens) == (raw[:20], raw[20:])
  allowed = space.allowed_tokens()
  assert allowed.shape == (40, 12) and not allowed[:, 0].any()
  for pos in range(40):
    node = (pos % 20) // 4
    want = list(range(1, node + 3)) if pos % 2 == 0 else list(range(7, 12))
    assert np.flatnonzero(allowed[pos]).tolist() == want


def test_random_archs_round_trip(space):
  archs = _archs(space, 300)
  allowed = space.allowed_tokens()
  for tokens in archs:
    assert tokens.dtype == np.int32 and space.is_valid(tokens)
    assert allowed[np.arange(40), tokens].all()
    conv, reduc = space.tokens_to_arch(tokens)
    np.testing.assert_array_equal(space.arch_to_tokens((conv, reduc)), tokens)
    np.testing.assert_array_equal(space.from_string(space.to_string(tokens)), tokens)
  stacked = np.stack(archs)
  # generate_arch's distribution: every id of node 4 and every op occur.
  assert set(stacked[:, 16].tolist()) == set(range(1, 7))
  assert set(stacked[:, 1::2].ravel().tolist()) == set(range(7, 12))


@pytest.mark.parametrize("text, match", [
    ("0 1 x", "integers"),
    ("0 0 0 0", "40 integers"),
    (" ".join(["0 0 0 0", "3 0 0 0"] + ["0 0 0 0"] * 8), "conv cell node 1 reads input 3"),
    (" ".join(["0 0 2 0"] + ["0 0 0 0"] * 9), "node 0 reads input 2"),
    (" ".join(["0 0 0 0"] * 9 + ["0 5 0 0"]), "reduction cell node 4 uses op 5"),
])
def test_from_string_rejects_malformed(space, text, match):
  with pytest.raises(ValueError, match=match):
    space.from_string(text)


def test_is_valid_rejects(space):
  tokens = _archs(space, 1)[0]
  assert not space.is_valid(tokens[:-1])
  for pos, value in [(0, 0), (0, 3), (1, 6), (1, 12), (38, 7)]:
    bad = tokens.copy()
    bad[pos] = value
    assert not space.is_valid(bad), (pos, value)


def test_augment_is_a_symmetry_of_the_encoding(space):
  rng = np.random.default_rng(1)
  for tokens in _archs(space, 100):
    swapped = space.augment(tokens, rng)
    assert space.is_valid(swapped)
    for cell in (slice(0, 20), slice(20, 40)):
      a, b = tokens[cell].reshape(5, 2, 2), swapped[cell].reshape(5, 2, 2)
      assert sum(not np.array_equal(x, y) for x, y in zip(a, b)) <= 1
      for x, y in zip(a, b):  # same unordered (id, op) pair per node
        assert sorted(map(tuple, x)) == sorted(map(tuple, y))
    assert space.num_params(swapped) == space.num_params(tokens)


# ----------------------------------------------------------------------------------------------
# Parameter counts
# ----------------------------------------------------------------------------------------------

def _counted(shapes):
  return sum(int(np.prod(leaf.shape)) for key, tree in shapes["params"].items()
             if key != nao.AUX_HEAD for leaf in jax.tree.leaves(tree))


def _init_shapes(net, size=8):
  return jax.eval_shape(lambda: net.init(jax.random.key(0), jnp.zeros((2, size, size, 3)),
                                         train=False))


def test_num_params_equals_network_params(space):
  for tokens in _archs(space, 2, seed=2):
    net = space.network(tokens, channels=C, layers=LAYERS)
    assert space.num_params(tokens, channels=C, layers=LAYERS) == _counted(_init_shapes(net))
  middle = nao.NAOSpace("middle")
  tokens = _archs(middle, 1, seed=4)[0]
  net = middle.network(tokens, channels=C, layers=2)
  assert middle.num_params(tokens, channels=C, layers=2) == _counted(_init_shapes(net))
  # NAO-V2's search sizes (C=20, 3 cells per stage, 32x32); the aux head is not counted.
  tokens = _archs(space, 1, seed=3)[0]
  net = space.network(tokens, use_aux_head=True)
  shapes = _init_shapes(net, size=32)
  assert space.num_params(tokens) == _counted(shapes) and nao.AUX_HEAD in shapes["params"]
  (logits, aux), _ = jax.eval_shape(
      lambda v: net.apply(v, jnp.zeros((2, 32, 32, 3)), train=True, mutable=["batch_stats"],
                          drop_path_keep_prob=0.8, rngs={"dropout": jax.random.key(0)}), shapes)
  assert logits.shape == aux.shape == (2, 10)


def test_bigger_ops_have_more_params(space):
  ids = _archs(space, 1, seed=5)[0][0::2]

  def with_op(op):
    tokens = np.empty(40, np.int32)
    tokens[0::2], tokens[1::2] = ids, op + 7
    return space.num_params(tokens)

  counts = [with_op(op) for op in range(5)]  # sep3, sep5, avg, max, identity
  assert counts[1] > counts[0] > counts[4] > counts[2] == counts[3]


# ----------------------------------------------------------------------------------------------
# Supernet vs stand-alone sub-network
# ----------------------------------------------------------------------------------------------

def _random_variables(shapes, seed=0):
  """Random supernet variables (faster than compiling ``init``, and unlike it, per-id BatchNorm
  scales/biases and running statistics that differ, so picking a wrong weight set shows)."""
  rng = np.random.default_rng(seed)

  def leaf(path, s):
    name = path[-1].key
    if name.startswith(("scale", "var")):
      return jnp.asarray(rng.uniform(0.5, 1.5, s.shape), jnp.float32)
    scale = 0.1 if name.startswith(("bias", "mean")) else 0.5
    return jnp.asarray(rng.normal(0.0, scale, s.shape), jnp.float32)
  return jax.tree_util.tree_map_with_path(leaf, shapes)


def _supernet_and_variables(space, x):
  supernet = space.supernet(channels=C, layers=LAYERS)
  shapes = jax.eval_shape(lambda: supernet.init(jax.random.key(0), x,
                                                jnp.asarray(_archs(space, 1)[0]), train=False))
  return supernet, _random_variables(shapes)


@pytest.fixture(scope="module")
def setup(tiny):
  x = jax.random.normal(jax.random.key(1), (BATCH, 8, 8, 3))
  labels = jnp.arange(BATCH) % 10
  supernet, variables = _supernet_and_variables(tiny, x)

  @jax.jit
  def train_step(params, stats, tokens, keep, key):
    def loss_fn(params):
      logits, new = supernet.apply({"params": params, "batch_stats": stats}, x, tokens,
                                   train=True, drop_path_keep_prob=keep,
                                   mutable=["batch_stats"], rngs={"dropout": key})
      logp = jax.nn.log_softmax(logits)
      return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=1)), (logits, new)
    (_, (logits, new)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    return logits, new["batch_stats"], grads

  @jax.jit
  def evaluate(variables, tokens):
    return supernet.apply(variables, x, tokens, train=False)

  return dict(x=x, variables=variables, train_step=train_step, evaluate=evaluate)


def _network_outputs(net, variables, x):
  """Training-mode logits and statistics, then eval-mode logits with those statistics.

  Run eagerly: the networks differ per arch, and op-by-op dispatch reuses its compiled kernels
  across archs, which is cheaper here than compiling each network.
  """
  (logits, _), new = net.apply(variables, x, train=True, mutable=["batch_stats"])
  trained = {"params": variables["params"], "batch_stats": new["batch_stats"]}
  return logits, new["batch_stats"], net.apply(trained, x, train=False)[0]


def _index_tree(tree):
  """Every scalar of ``tree`` replaced by a unique integer id."""
  leaves, treedef = jax.tree.flatten(tree)
  out, offset = [], 0
  for leaf in leaves:
    out.append(np.arange(offset, offset + leaf.size).reshape(leaf.shape))
    offset += leaf.size
  return jax.tree.unflatten(treedef, out)


def _used_masks(space, variables, tokens):
  """Per collection: a bool tree marking the scalars the arch's sub-network uses."""
  ids = {col: _index_tree(tree) for col, tree in variables.items()}
  mapped = space.supernet_to_network_variables(ids, tokens)
  return {col: jax.tree.map(lambda a, used=np.concatenate(
      [leaf.ravel() for leaf in jax.tree.leaves(mapped[col])]): np.isin(a, used), ids[col])
          for col in ids}


# Cover every code path: per-id FactorizedReduce (identity on cell inputs of a reduction cell)
# next to stride-1 identity/pools/seps on inner nodes, reduction cells concatenating cell input
# 0 or 1 (fac_0 / fac_1), a normal cell concatenating a cell input. Ops: TINY_OPS.
DESIGNED = [
    "0 2 1 0 2 0 0 1 1 1 2 2 3 0 3 0 2 1 4 1 "  # conv: concat {5, 6}
    "1 2 1 0 2 2 1 1 3 0 2 1 1 0 4 1 5 2 3 0",  # reduce: FR for id 1, concat {0, 6} -> fac_0
    "0 0 0 0 2 1 0 2 3 1 2 0 4 0 0 1 5 2 3 2 "  # conv: concat {1, 6}
    "0 2 0 1 0 0 2 1 3 2 0 0 2 0 4 1 4 0 0 2",  # reduce: FR for id 0, concat {1, 5, 6} -> fac_1
]


def test_supernet_training_step(tiny, setup):
  """One compiled training step (the file's main cost; one test, so xdist compiles it once):
  supernet == sub-network in both BN modes, exact zero gradients and untouched statistics for
  unused weights, drop-path."""
  space, variables, x = tiny, setup["variables"], setup["x"]
  key = jax.random.key(2)
  archs = [space.from_string(t) for t in DESIGNED] + _archs(space, 1, seed=6)
  for k, tokens in enumerate(archs):
    logits, stats, grads = setup["train_step"](variables["params"], variables["batch_stats"],
                                               jnp.asarray(tokens), jnp.float32(1.0), key)
    trained = {"params": variables["params"], "batch_stats": stats}
    net = space.network(tokens, channels=C, layers=LAYERS, combine="conv")
    net_vars = space.supernet_to_network_variables(variables, tokens)
    expected = jax.eval_shape(lambda net=net: net.init(jax.random.key(0), x, train=False))
    assert jax.tree.map(np.shape, net_vars) == jax.tree.map(lambda a: a.shape, expected)
    net_logits, net_stats, net_eval = _network_outputs(net, net_vars, x)
    # Training mode (batch statistics) and the running statistics it leaves behind.
    np.testing.assert_allclose(logits, net_logits, rtol=1e-4, atol=1e-4)
    mapped_stats = space.supernet_to_network_variables(trained, tokens)["batch_stats"]
    jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-6),
                 mapped_stats, net_stats)
    # Evaluation mode (running statistics).
    np.testing.assert_allclose(setup["evaluate"](trained, jnp.asarray(tokens)), net_eval,
                               rtol=1e-4, atol=1e-4)
    masks = _used_masks(space, variables, tokens)
    # Unused weights: exactly zero gradient; unused BatchNorms: statistics untouched.
    for g, m in zip(jax.tree.leaves(grads), jax.tree.leaves(masks["params"])):
      assert np.all(np.asarray(g)[~m] == 0)
    for new, old, m in zip(jax.tree.leaves(stats), jax.tree.leaves(variables["batch_stats"]),
                           jax.tree.leaves(masks["batch_stats"])):
      np.testing.assert_array_equal(np.asarray(new)[~m], np.asarray(old)[~m])
    # Every weight the sub-network holds does get a gradient.
    used_grads = space.supernet_to_network_variables({"params": grads}, tokens)["params"]
    assert all(np.any(np.asarray(g) != 0) for g in jax.tree.leaves(used_grads))
  _check_drop_path(setup, jnp.asarray(archs[-1]))


def _check_drop_path(setup, tokens):
  variables = setup["variables"]
  run = lambda keep, seed: setup["train_step"](  # noqa: E731
      variables["params"], variables["batch_stats"], tokens, jnp.float32(keep),
      jax.random.key(seed))[0]
  # A traced keep prob of 1 is exactly no drop-path (the checks above rely on it).
  plain = run(1.0, 0)
  np.testing.assert_array_equal(plain, run(1.0, 1))
  dropped = run(0.5, 0)
  assert not np.allclose(dropped, plain)
  np.testing.assert_array_equal(dropped, run(0.5, 0))  # deterministic in the 'dropout' key
  assert nao.step_keep_prob(0.9, 9, 10) == pytest.approx(0.9)


def test_small_supernet_equals_network_in_eval_mode(space):
  x = jax.random.normal(jax.random.key(4), (BATCH, 8, 8, 3))
  supernet, variables = _supernet_and_variables(space, x)
  tokens = _archs(space, 1, seed=9)[0]
  net = space.network(tokens, channels=C, layers=LAYERS, combine="conv")
  net_vars = space.supernet_to_network_variables(variables, tokens)
  np.testing.assert_allclose(
      jax.jit(lambda v, t: supernet.apply(v, x, t, train=False))(variables, jnp.asarray(tokens)),
      net.apply(net_vars, x, train=False)[0], rtol=1e-4, atol=1e-4)


def _swap_node_inputs(variables, cell_keys, node, nodes=5):
  """Swaps the weights of a node's x and y inputs in the given cells (leading scan axis for
  ``stage_*``): the supernet counterpart of swapping the node's two (id, op) pairs."""
  base, counts = nao.input_slots(nodes)
  sx, sy = 2 * node, 2 * node + 1

  def rows(op, leaf_is_stats, s):
    if op == "identity":
      return np.arange(2 * s, 2 * s + 2)
    return np.array([s]) if leaf_is_stats else np.arange(base[s], base[s] + counts[s])

  out = jax.tree.map(np.array, variables)
  for col, tree in out.items():
    for key in cell_keys:
      axis = 1 if key.startswith("stage_") else 0
      for op, leaves in tree[key].get("inputs", {}).items():
        for name, leaf in leaves.items():
          rx, ry = rows(op, col == "batch_stats", sx), rows(op, col == "batch_stats", sy)
          a, b = np.take(leaf, rx, axis=axis), np.take(leaf, ry, axis=axis)
          index = [slice(None)] * leaf.ndim
          index[axis] = rx
          leaf[tuple(index)] = b
          index[axis] = ry
          leaf[tuple(index)] = a
  return out


def test_augmented_arch_with_swapped_weights_computes_the_same(tiny, setup):
  variables, evaluate = setup["variables"], setup["evaluate"]
  tokens = _archs(tiny, 1, seed=7)[0]
  swapped = tokens.copy()
  a, b = 1, 3  # conv-cell node a, reduction-cell node b
  for base in (4 * a, 20 + 4 * b):
    swapped[base:base + 4] = np.concatenate([tokens[base + 2:base + 4], tokens[base:base + 2]])
  normal = ["cell_0", "stage_1", "stage_2"]
  moved = _swap_node_inputs(_swap_node_inputs(variables, normal, a), ["cell_1", "cell_3"], b)
  reference = evaluate(variables, jnp.asarray(tokens))
  np.testing.assert_allclose(evaluate(moved, jnp.asarray(swapped)), reference,
                             rtol=1e-5, atol=1e-5)
  # The x and y inputs hold different weights: without moving them the output changes.
  assert not np.allclose(evaluate(variables, jnp.asarray(swapped)), reference, atol=1e-3)


def test_supernet_rejects_wrong_token_count(tiny, setup):
  space = tiny
  with pytest.raises(ValueError, match="expects 40 tokens"):
    space.supernet(channels=C, layers=LAYERS).apply(
        setup["variables"], setup["x"], jnp.zeros((20,), jnp.int32), train=False)


# ----------------------------------------------------------------------------------------------
# NAO-V1's op numbering ('v1') and NAONet-A
# ----------------------------------------------------------------------------------------------

def _pool(name, x, stride):
  kind, kernel = nao_network._KIND[name]
  return np.asarray(nao_network._pool(kind, jnp.asarray(x, jnp.float32), kernel, stride, "xla"))


def test_v1_pools_pad_as_the_reference():
  """Closed forms of NAO-V1's padding rules (``NAO_V1/model.py``, ``operations.py``)."""
  ones = np.ones((1, 4, 4, 1), np.float32)
  # AvgPool2d(3, padding=1) counts the zero padding: 4/9 at corners, 6/9 on edges, 1 inside.
  want = np.array([[4, 6, 6, 4], [6, 9, 9, 6], [6, 9, 9, 6], [4, 6, 6, 4]]) / 9
  np.testing.assert_allclose(_pool("avg_pool_3x3_count_pad", ones, 1)[0, :, :, 0], want,
                             rtol=1e-6)
  # ... unlike the small set's avg_pool_3x3 (count_include_pad=False): all ones.
  np.testing.assert_allclose(_pool("avg_pool_3x3", ones, 1), ones, rtol=1e-6)
  # 2x2 pools: F.pad(x, [0, 1, 0, 1]) with zeros, then no padding. Stride 1 keeps the size and
  # the last row / column see the zeros; stride 2 halves it and never reaches them (even sizes).
  want = np.array([[1, 1, 1, .5], [1, 1, 1, .5], [1, 1, 1, .5], [.5, .5, .5, .25]])
  np.testing.assert_allclose(_pool("avg_pool_2x2", ones, 1)[0, :, :, 0], want, rtol=1e-6)
  np.testing.assert_allclose(_pool("avg_pool_2x2", ones, 2), np.ones((1, 2, 2, 1)), rtol=1e-6)
  got = _pool("max_pool_2x2", -ones, 1)[0, :, :, 0]
  assert np.all(got[:3, :3] == -1) and np.all(got[3, :] == 0) and np.all(got[:, 3] == 0)
  # MaxPool2d(5, padding=2) pads with -inf: on an increasing ramp each output is the largest
  # pixel within 2 rows and columns below-right, clipped at the border.
  ramp = np.arange(36, dtype=np.float32).reshape(1, 6, 6, 1)
  idx = np.minimum(np.arange(6) + 2, 5)
  np.testing.assert_array_equal(_pool("max_pool_5x5", ramp, 1)[0, :, :, 0],
                                ramp[0, idx][:, idx, 0])
  np.testing.assert_array_equal(_pool("max_pool_5x5", ramp, 2)[0, :, :, 0],
                                ramp[0, idx[::2]][:, idx[::2], 0])


def test_naonet_a_builds_counts_and_trains():
  """NAONet-A (``genotypes.NAONET_A``, ops 5-15 of NAO-V1's numbering): the reference's parameter
  counts at C=36 and 128; at C=4, N=1 the parameter tree matches the analytic count (1x3 / 3x1
  factorized kernels) and a jitted training step reaches every weight. (The new ops' outputs were
  also checked against the reference's PyTorch modules by hand: ``experiments/README.md``.)"""
  arch = genotypes.get("NAONET_A").genotype
  assert arch.ops == "v1" and str(arch).startswith("nao:v1:0 7 1 15 ")
  assert genotypes.parse(str(arch)) == ("nao", arch)
  space, tokens = arch.space, arch.tokens()
  assert space.ops == nao.NAO_V1_OPS and len(space.ops) == 16
  net = space.network(tokens, channels=C, layers=LAYERS)
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
  shapes = jax.eval_shape(lambda: net.init(jax.random.key(1), x, train=False))
  assert space.num_params(tokens, channels=C, layers=LAYERS) == _counted(shapes)
  # Values without compiling init (a forward pass): random weights, fresh BatchNorm statistics.
  rng = np.random.default_rng(1)  # NumPy: eager jax.random would compile once per shape
  variables = {"params": jax.tree.map(lambda a: rng.normal(0, 0.3, a.shape).astype(np.float32),
                                      shapes["params"]),
               "batch_stats": jax.tree_util.tree_map_with_path(
                   lambda path, a: np.full(a.shape, "var" in jax.tree_util.keystr(path),
                                           np.float32), shapes["batch_stats"])}
  # The conv cell's node 1 applies conv_1x3_3x1 (op 8) to state 2: two (1,3) / (3,1) kernels.
  node = shapes["params"]["cell_0"]["node_1"]["x"]["conv_1x3_3x1"]
  assert node["conv_1"].shape == (1, 3, C, C) and node["conv_2"].shape == (3, 1, C, C)
  # The first reduction cell (C doubles): node 2 applies conv_1x7_7x1 (op 9) to state 0.
  node = shapes["params"][f"cell_{LAYERS}"]["node_2"]["x"]["conv_1x7_7x1"]
  assert node["conv_1"].shape == (1, 7, 2 * C, 2 * C) and node["conv_2"].shape == (7, 1, 2 * C,
                                                                                  2 * C)
  # Golden: the reference NASNetworkCIFAR (NAO_V1/model.py @418ff71) built with NAONet-A, C=36,
  # N=6 (128: 144,576,394), counted with torch 2.14: 11,470,150 parameters without the aux head.
  # (The analytic count equals the module's tree, as checked above at C=4 and for other archs.)
  assert space.num_params(tokens, channels=36, layers=6) == 11_470_150
  assert space.num_params(tokens, channels=128, layers=6) == 144_576_394
  labels = jnp.arange(2) % 10

  @jax.jit
  def grads(params):
    def loss(params):
      (logits, _), _ = net.apply({**variables, "params": params}, x, train=True,
                                 mutable=["batch_stats"])
      return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], 1))
    return jax.grad(loss)(params)

  g = grads(variables["params"])
  for path, leaf in jax.tree_util.tree_leaves_with_path(g):
    assert np.all(np.isfinite(leaf)) and np.any(leaf != 0), jax.tree_util.keystr(path)


def test_v1_numbering_errors_name_the_fix():
  text = genotypes.get("NAONET_A").genotype.arch
  with pytest.raises(ValueError, match="nao:v1:"):
    genotypes.parse(" ".join(map(str, text)))  # bare ints mean the small set
  with pytest.raises(ValueError, match="cannot search the op set .* 'v1'"):
    nao.NAOSpace("v1").supernet(channels=C, layers=LAYERS)
