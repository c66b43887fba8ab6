"""Search spaces: parameter counts vs the PyTorch references, wiring, gradients, derivation rules."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnas
from jaxnas import supernet
from jaxnas.spaces import darts, nb201
from jaxnas.spaces import ops as ops_lib


def abstract_num_params(space, shape=(2, 32, 32, 3), **sizes):
  module = space.supernet(**sizes)
  mixing = {k: jnp.zeros(s) for k, s in space.arch_shapes().items()}
  variables = jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros(shape), mixing,
                                                 train=False))
  return supernet.num_params(variables["params"])


@pytest.mark.parametrize("space_name,sizes,expected", [
    ("darts", dict(channels=16, layers=8, num_classes=10), 1_930_618),
    # AutoDL's TinyNetworkDarts before b9a5d28 (2020-07-19) gave ReLUConvBN's conv bias=not affine;
    # AutoDL at HEAD: 1,692,826 (C=16), the extra biases cancelled by the affine-free BatchNorm.
    ("nb201", dict(channels=16, cells_per_stage=5, num_classes=10), 1_686_106),
    ("nb201", dict(channels=24, cells_per_stage=5, num_classes=10), 3_792_514),
])
def test_parameter_counts_equal_reference(space_name, sizes, expected):
  assert abstract_num_params(jaxnas.spaces.get(space_name), **sizes) == expected


TINY = {  # rolled loops: these tests compile many programs, and compile time dominates
    "nb201": (dict(channels=4, cells_per_stage=1, num_classes=3, unroll=False), (2, 8, 8, 3)),
    # 3 layers: a normal cell, then two reduction cells (one after a reduction).
    "darts": (dict(channels=4, layers=3, num_classes=3, unroll=False), (2, 8, 8, 3)),
}
# Every op of each space, but DARTS cells with 2 intermediate nodes (5 edges: both edge scans, the
# edges from s0/s1 and one between intermediate nodes) instead of 4: ~30% less to compile.
TINY_SPACE = {"nb201": {}, "darts": {"nodes": 2}}


def tiny_setup(space_name, parametrization="softmax"):
  space = jaxnas.spaces.get(space_name, **TINY_SPACE[space_name])
  sizes, shape = TINY[space_name]
  module = space.supernet(**sizes)
  arch = space.init_arch(jax.random.key(0), parametrization)
  param = jaxnas.parametrize.get(parametrization)
  x = jax.random.normal(jax.random.key(1), shape)
  weights, model_state = jax.jit(supernet.init, static_argnums=0)(
      module, jax.random.key(2), x, param.activate(arch))
  return space, module, param, arch, weights, model_state, x


@pytest.mark.parametrize("space_name", ["nb201", "darts"])
def test_gradients_reach_every_leaf(space_name):
  space, module, param, arch, weights, model_state, x = tiny_setup(space_name)
  labels = jnp.array([0, 2])

  def loss(weights, arch):
    logits, _ = supernet.apply(module, weights, model_state, x, param.activate(arch), train=True)
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], axis=1))

  g_weights, g_arch = jax.jit(jax.grad(loss, argnums=(0, 1)))(weights, arch)
  for path, leaf in jax.tree_util.tree_leaves_with_path(g_weights):
    assert jnp.any(leaf != 0), f"no gradient reaches weight {jax.tree_util.keystr(path)}"
  for key, leaf in g_arch.items():
    # Every alpha entry of every edge (none included, through the softmax) gets a gradient.
    assert jnp.all(leaf != 0), f"alpha[{key}] has entries without gradient:\n{leaf}"


@pytest.mark.parametrize("space_name", ["nb201", "darts"])
def test_supernet_is_pure_and_traced_once(space_name):
  space, module, param, arch, weights, model_state, x = tiny_setup(space_name)
  traces = []

  @jax.jit
  def forward(weights, model_state, x, arch):
    traces.append(1)
    return supernet.apply(module, weights, model_state, x, param.activate(arch), train=True)

  out1, state1 = forward(weights, model_state, x, arch)
  out2, state2 = forward(weights, model_state, x, arch)
  arch_b = jax.tree.map(lambda a: a + 0.1, arch)
  forward(weights, model_state, x, arch_b)
  assert len(traces) == 1
  np.testing.assert_array_equal(out1, out2)
  jax.tree.map(np.testing.assert_array_equal, state1, state2)
  # Running statistics move in train mode; eval mode leaves them untouched.
  assert not all(jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.all(a == b)),
                                              model_state, state1)))
  # (Checked on the traced program, not compiled nor run eagerly: the very state object comes back.)
  def eval_mode(weights, model_state, x, arch):
    _, state_eval = supernet.apply(module, weights, model_state, x, param.activate(arch),
                                   train=False)
    assert state_eval is model_state
  jax.eval_shape(eval_mode, weights, model_state, x, arch)


# Unrolling is about the edge loops, not the op set: 4 ops (none, a pool, skip, a conv; in DARTS'
# reduction cells skip_connect is a FactorizedReduce) keep every kind of MixedOp term and halve the
# compile. NB201 with one cell per stage still has its residual reduction blocks between stages.
# (DARTS with max_pool_3x3 + sep_conv_3x3 instead: outputs differ by 2.7e-5 relative, float
# rounding through the batch norms of a batch of 2; the full op set: 3.7e-6; this set: 9e-7.)
UNROLL_OPS = {"nb201": ("none", "skip_connect", "nor_conv_3x3", "avg_pool_3x3"),
              "darts": ("none", "avg_pool_3x3", "skip_connect", "sep_conv_3x3")}


@pytest.mark.parametrize("space_name,sizes", [
    ("nb201", dict(channels=4, cells_per_stage=1, num_classes=3)),
    ("darts", dict(channels=4, layers=2, num_classes=3))])
def test_unrolled_and_rolled_supernets_compute_the_same_function(space_name, sizes):
  space = jaxnas.spaces.get(space_name, ops=UNROLL_OPS[space_name],
                            **({"nodes": 2} if space_name == "darts" else {}))
  param = jaxnas.parametrize.get("softmax")
  mixing = param.activate(space.init_arch(jax.random.key(0), param))
  x = jax.random.normal(jax.random.key(1), (2, 8, 8, 3))
  rolled, unrolled = space.supernet(**sizes, unroll=False), space.supernet(**sizes, unroll=True)
  variables = rolled.init(jax.random.key(2), x, mixing, train=False)
  # Same layout AND values: the loop initialises weights with the (cheaper to compile) rolled module.
  jax.tree.map(np.testing.assert_array_equal, variables,
               unrolled.init(jax.random.key(2), x, mixing, train=False))
  run = lambda m: m.apply(variables, x, mixing, train=True, mutable=["batch_stats"])
  (out_r, st_r), (out_u, st_u) = jax.jit(lambda: run(rolled))(), jax.jit(lambda: run(unrolled))()
  np.testing.assert_allclose(out_r, out_u, rtol=1e-5, atol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), st_r, st_u)


def one_hot_rows(op_indices, num_ops):
  return jax.nn.one_hot(jnp.array(op_indices), num_ops)


def test_nb201_one_hot_cell_equals_discrete_cell():
  space = jaxnas.spaces.get("nb201")
  genotype = nb201.NB201Genotype.from_string(
      "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|")
  mixing = one_hot_rows(genotype.code, len(space.ops))
  cell = nb201.NB201SearchCell(space.ops, 4, train=True)
  x = jax.random.normal(jax.random.key(0), (2, 6, 6, 4))
  variables = cell.init(jax.random.key(1), x, mixing)
  (out, _), _ = cell.apply(variables, x, mixing, mutable=["batch_stats"])

  def edge_op(edge, op_name, h):
    if op_name == "none":
      return jnp.zeros_like(h)
    op = ops_lib.make_op(op_name, 4, 1, affine=False)
    sub = {k: v[op_name] for k, v in nb201.edge_variables(variables, edge).items() if op_name in v}
    y, _ = op.apply(sub, h, train=True, mutable=["batch_stats"])
    return y

  nodes = [x]
  for j in range(1, 4):
    nodes.append(sum(edge_op(nb201.EDGES.index((j, i)), genotype.nodes[j - 1][i][0], nodes[i])
                     for i in range(j)))
  np.testing.assert_allclose(out, nodes[-1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("reduction", [False, True])
def test_darts_one_hot_cell_equals_discrete_cell(reduction):
  space = jaxnas.spaces.get("darts")
  genotype = space.parse_genotype(
      "Genotype(normal=[('sep_conv_3x3', 0), ('dil_conv_5x5', 1), ('skip_connect', 0), "
      "('max_pool_3x3', 2), ('avg_pool_3x3', 1), ('sep_conv_5x5', 3), ('dil_conv_3x3', 4), "
      "('skip_connect', 2)], normal_concat=[2, 3, 4, 5], reduce=[('skip_connect', 0), "
      "('skip_connect', 1), ('skip_connect', 0), ('skip_connect', 1), ('skip_connect', 0), "
      "('skip_connect', 1), ('skip_connect', 0), ('skip_connect', 1)], reduce_concat=[2, 3, 4, 5])")
  ranges = darts.node_edge_ranges(4)
  ops = [0] * darts.num_edges(4)  # every unused edge: one-hot on `none`
  for g, (op_name, j) in enumerate(genotype.normal):
    ops[ranges[g // 2][j]] = space.ops.index(op_name)
  mixing = one_hot_rows(ops, len(space.ops))
  cell = darts.DartsSearchCell(space.ops, 8, reduction=reduction, reduction_prev=False)
  s0 = jax.random.normal(jax.random.key(0), (2, 8, 8, 6))
  s1 = jax.random.normal(jax.random.key(1), (2, 8, 8, 5))
  variables = cell.init(jax.random.key(2), s0, s1, mixing, train=True)
  out, _ = cell.apply(variables, s0, s1, mixing, train=True, mutable=["batch_stats"])

  def run(module, variables_, h):
    return module.apply(variables_, h, train=True, mutable=["batch_stats"])[0]

  def preprocess(name, s):
    sub = {k: v[name] for k, v in variables.items() if name in v}
    return run(ops_lib.ReLUConvBN(8, 1, affine=False), sub, s)

  states = [preprocess("preprocess0", s0), preprocess("preprocess1", s1)]
  for node in range(4):
    total = 0
    for op_name, j in genotype.normal[2 * node: 2 * node + 2]:
      stride = 2 if reduction and j < 2 else 1
      op = ops_lib.make_op(op_name, 8, stride, affine=False, pool_bn=True)
      edge_vars = darts.edge_variables(variables, ranges[node][j])
      total = total + run(op, {k: v[op_name] for k, v in edge_vars.items() if op_name in v},
                          states[j])
    states.append(total)
  np.testing.assert_allclose(out, jnp.concatenate(states[2:], axis=-1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size", [7, 9, 28])
def test_factorized_reduce_odd_sizes(size):
  x = jnp.ones((1, size, size, 4))
  fr = ops_lib.FactorizedReduce(6)
  variables = fr.init(jax.random.key(0), x, train=False)
  y = fr.apply(variables, x, train=False)
  assert y.shape == (1, (size + 1) // 2, (size + 1) // 2, 6)


def test_darts_supernet_on_odd_sized_images():
  space = jaxnas.spaces.get("darts")
  module = space.supernet(channels=2, layers=3, num_classes=4)
  mixing = jaxnas.parametrize.get("softmax").activate(space.init_arch(jax.random.key(0), "softmax"))
  x = jnp.ones((1, 28, 28, 1))  # 28 -> 14 -> 7 -> 4: FactorizedReduce meets an odd size
  out = jax.eval_shape(lambda: module.init_with_output(jax.random.key(0), x, mixing, train=False))
  assert out[0].shape == (1, 4)


def test_darts_derivation_excludes_none_and_breaks_ties_to_earlier_edge():
  space = jaxnas.spaces.get("darts", nodes=2)  # 5 edges: node 0 <- {0,1}, node 1 <- {2,3,4}
  w = np.full((5, 8), 0.01)
  w[0, 0] = 0.9                      # `none` dominates edge 0 but is never chosen ...
  w[0, 4] = 0.05                     # ... so edge 0 contributes sep_conv_3x3 at strength 0.05
  w[1, 7] = 0.06                     # edge 1: dil_conv_5x5, the stronger edge -> listed first
  w[2, 1] = w[3, 3] = w[4, 6] = 0.5  # node 1: a three-way tie -> the two earlier edges win
  w[3, 5] = 0.5                      # op tie on edge 3: the earlier op (skip_connect) wins
  genotype = space.derive({"normal": w, "reduce": w})
  assert genotype.normal == [("dil_conv_5x5", 1), ("sep_conv_3x3", 0),
                             ("max_pool_3x3", 0), ("skip_connect", 1)]
  assert genotype.normal_concat == [2, 3]


def test_nb201_derivation_is_per_edge_argmax_including_none():
  space = jaxnas.spaces.get("nb201")
  w = np.zeros((6, 5))
  for edge, op in enumerate([0, 1, 2, 3, 4, 3]):
    w[edge, op] = 1.0
  assert str(space.derive({"cell": w})) == (
      "|none~0|+|skip_connect~0|nor_conv_1x1~1|+|nor_conv_3x3~0|avg_pool_3x3~1|nor_conv_3x3~2|")
  nozero = jaxnas.spaces.get("nb201", ops=nb201.NB201_OPS[1:])
  assert str(nozero.derive({"cell": w[:, 1:]})).startswith("|skip_connect~0|")


def test_genotype_strings_round_trip():
  rng = np.random.default_rng(0)
  for space_name in ["darts", "nb201"]:
    space = jaxnas.spaces.get(space_name)
    for _ in range(20):
      mixing = {k: rng.random(s) for k, s in space.arch_shapes().items()}
      genotype = space.derive(mixing)
      assert space.parse_genotype(str(genotype)) == genotype
  # DARTS' own logs print the concat as range(2, 6).
  darts_log = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
               "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), "
               "('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=range(2, 6), "
               "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
               "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), "
               "('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=range(2, 6))")
  genotype = jaxnas.spaces.get("darts").parse_genotype(darts_log)
  assert genotype.normal_concat == [2, 3, 4, 5]
  assert genotype.reduce[2] == ("skip_connect", 2)


# A small table of NB201 architecture strings with their op-index codes (written by hand from the
# NB201 op order none=0, skip_connect=1, nor_conv_1x1=2, nor_conv_3x3=3, avg_pool_3x3=4).
NB201_TABLE = [
    ("|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|"
     "skip_connect~2|", "421211"),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
     "skip_connect~2|", "334131"),
    ("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "000000"),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
     "nor_conv_3x3~2|", "333133"),
    ("|skip_connect~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|none~0|nor_conv_3x3~1|"
     "nor_conv_1x1~2|", "124032"),
]


@pytest.mark.parametrize("arch_string,code", NB201_TABLE)
def test_nb201_strings_map_to_codes_and_back(arch_string, code):
  genotype = nb201.NB201Genotype.from_string(arch_string)
  assert genotype.code_string == code
  assert genotype.code == tuple(int(c) for c in code)
  assert str(nb201.NB201Genotype.from_code(code)) == arch_string


def test_all_nb201_codes_round_trip():
  for code in itertools.islice(itertools.product(range(5), repeat=6), 0, None, 97):
    genotype = nb201.NB201Genotype.from_code(code)
    assert nb201.NB201Genotype.from_string(str(genotype)).code == code


@pytest.mark.parametrize("call,message", [
    (lambda: jaxnas.spaces.get("resnet"), "valid spaces: darts, nb201"),
    (lambda: jaxnas.spaces.get("darts", ops=("sep_conv_3x3", "conv_9x9")), "conv_9x9"),
    (lambda: jaxnas.spaces.get("nb201", ops=("none",)), "at least one operation other than"),
    (lambda: jaxnas.spaces.get("darts", depth=3), "Invalid options"),
    (lambda: jaxnas.parametrize.get("sparsemax"), "valid parametrizations: softmax, simplex"),
    (lambda: jaxnas.spaces.get("nb201").derive({"cell": np.zeros((6, 4))}), "expected (6, 5)"),
    (lambda: jaxnas.spaces.get("darts").derive({"normal": np.zeros((14, 8))}), "expects architecture keys"),
    (lambda: jaxnas.spaces.get("nb201").supernet(layers=3), "Unknown size option"),
    (lambda: nb201.NB201Genotype.from_string("|nor_conv_3x3~0|+|skip_connect~0|"), "node groups"),
    (lambda: nb201.NB201Genotype.from_string("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|"),
     "Unknown NB201 operation"),
    (lambda: nb201.NB201Genotype.from_string("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|"),
     "inputs from nodes"),
    (lambda: nb201.NB201Genotype.from_code("33413"), "6 edges"),
    (lambda: jaxnas.spaces.get("darts").parse_genotype("Genotype(normal=[('sep_conv_3x3', 0)])"),
     "Malformed DARTS genotype"),
    (lambda: jaxnas.spaces.get("darts").parse_genotype("__import__('os')"),
     "Malformed DARTS genotype"),
    (lambda: jaxnas.spaces.get("darts", ops=darts.DARTS_OPS[1:]).parse_genotype(
        "Genotype(normal=[('none', 0)], normal_concat=[2], reduce=[], reduce_concat=[2])"),
     "not in this 'darts' space's op set"),
    (lambda: jaxnas.spaces.get("darts").parse_genotype(
        "Genotype(normal=[('skip_connect', 0)], normal_concat=[2], reduce=[], reduce_concat=[2])"),
     "has 1 genes"),
])
def test_bad_input_raises_clear_errors(call, message):
  with pytest.raises(ValueError, match=None) as info:
    call()
  assert message in str(info.value)


def test_supernet_rejects_wrong_mixing_shape():
  space = jaxnas.spaces.get("nb201")
  module = space.supernet(channels=4, cells_per_stage=1)
  with pytest.raises(ValueError, match=r"shape \(6, 4\); expected \(6, 5\)"):
    module.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)), {"cell": jnp.zeros((6, 4))},
                train=False)


def test_simplex_parametrization_is_uniform_and_identity():
  space = jaxnas.spaces.get("nb201", ops=nb201.NB201_OPS[1:])
  arch = space.init_arch(jax.random.key(0), "simplex")
  np.testing.assert_allclose(arch["cell"], np.full((6, 4), 0.25))
  assert jaxnas.parametrize.get("simplex").activate(arch)["cell"] is arch["cell"]
  softmax_arch = space.init_arch(jax.random.key(0), "softmax")
  assert float(jnp.std(softmax_arch["cell"])) < 1e-2
  np.testing.assert_allclose(jnp.sum(jaxnas.parametrize.get("softmax").activate(
      softmax_arch)["cell"], axis=-1), 1.0, rtol=1e-6)
