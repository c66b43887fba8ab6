"""PC-DARTS options of the DARTS space: partial channels, channel shuffle, edge normalization."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnas
from jaxnas import supernet
from jaxnas.spaces import darts
from jaxnas.spaces import ops as ops_lib

SMALL_OPS = ("none", "max_pool_3x3", "skip_connect", "sep_conv_3x3", "dil_conv_3x3")


def abstract_num_params(space, shape=(2, 32, 32, 3), **sizes):
  module = space.supernet(**sizes)
  mixing = jax.tree.map(jnp.zeros, space.arch_shapes(), is_leaf=lambda s: isinstance(s, tuple))
  variables = jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros(shape), mixing,
                                                 train=False))
  return supernet.num_params(variables["params"])


def torch_channel_shuffle_nchw(x, groups):
  """PC-DARTS' ``channel_shuffle`` in numpy: view(b, g, c//g, h, w).transpose(1, 2).view(b, c, ...)."""
  b, c, h, w = x.shape
  return x.reshape(b, groups, c // groups, h, w).transpose(0, 2, 1, 3, 4).reshape(b, c, h, w)


def max_pool_2x2_nhwc(x):
  b, h, w, c = x.shape
  return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


@pytest.mark.parametrize("groups,channels", [(1, 6), (2, 6), (3, 6), (4, 16)])
def test_channel_shuffle_matches_pytorch_view_transpose(groups, channels):
  x = np.random.default_rng(0).normal(size=(2, 3, 5, channels)).astype(np.float32)
  expected = torch_channel_shuffle_nchw(x.transpose(0, 3, 1, 2), groups).transpose(0, 2, 3, 1)
  np.testing.assert_array_equal(ops_lib.channel_shuffle(jnp.asarray(x), groups), expected)
  if groups == 4:  # the permutation itself: output channel i*g + j <- input channel j*(c/g) + i
    ids = ops_lib.channel_shuffle(jnp.arange(16.0).reshape(1, 1, 1, 16), 4).ravel()
    np.testing.assert_array_equal(ids, [0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15])
  with pytest.raises(ValueError, match="not divisible"):
    ops_lib.channel_shuffle(jnp.zeros((1, 1, 1, 5)), 2)


@pytest.mark.parametrize("stride", [1, 2])
def test_partial_mixed_op_with_k1_is_the_plain_mixed_op(stride):
  x = jax.random.normal(jax.random.key(0), (2, 6, 6, 4))
  mixing = jax.nn.softmax(jax.random.normal(jax.random.key(1), (len(SMALL_OPS),)))
  plain = ops_lib.MixedOp(SMALL_OPS, 4, stride, pool_bn=True)
  partial = ops_lib.MixedOp(SMALL_OPS, 4, stride, pool_bn=True, partial_channels=1)
  variables = plain.init(jax.random.key(2), x, mixing, train=True)
  partial_variables = partial.init(jax.random.key(2), x, mixing, train=True)
  assert jax.tree.structure(variables) == jax.tree.structure(partial_variables)
  jax.tree.map(np.testing.assert_array_equal, variables, partial_variables)
  y_plain, _ = plain.apply(variables, x, mixing, train=True, mutable=["batch_stats"])
  y_partial, _ = partial.apply(variables, x, mixing, train=True, mutable=["batch_stats"])
  np.testing.assert_array_equal(y_plain, y_partial)


@pytest.mark.parametrize("stride", [1, 2])
def test_partial_mixed_op_k4_equals_reference_composition(stride):
  """K=4: ops (built with C/4 channels) on the first C/4 channels, pass-through, concat, shuffle."""
  k, c = 4, 8
  x = jax.random.normal(jax.random.key(0), (2, 6, 6, c))
  mixing = jax.nn.softmax(jax.random.normal(jax.random.key(1), (len(SMALL_OPS),)))
  partial = ops_lib.MixedOp(SMALL_OPS, c, stride, pool_bn=True, partial_channels=k)
  variables = partial.init(jax.random.key(2), x, mixing, train=True)
  y, _ = partial.apply(variables, x, mixing, train=True, mutable=["batch_stats"])
  assert y.shape == (2, 6 // stride, 6 // stride, c)
  # The same variables drive a plain MixedOp with C/4 channels: the ops really have C/4 channels.
  small = ops_lib.MixedOp(SMALL_OPS, c // k, stride, pool_bn=True)
  small_variables = small.init(jax.random.key(2), x[..., :c // k], mixing, train=True)
  assert jax.tree.map(np.shape, small_variables) == jax.tree.map(np.shape, variables)
  ops_out, _ = small.apply(variables, x[..., :c // k], mixing, train=True, mutable=["batch_stats"])
  rest = np.asarray(x[..., c // k:])
  if stride == 2:
    rest = max_pool_2x2_nhwc(rest)
  expected = np.concatenate([np.asarray(ops_out), rest], axis=-1)
  expected = torch_channel_shuffle_nchw(expected.transpose(0, 3, 1, 2), k).transpose(0, 2, 3, 1)
  np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-6)


def test_partial_mixed_op_odd_size_stride2_and_bad_k():
  x = jnp.ones((1, 7, 7, 8))
  op = ops_lib.MixedOp(SMALL_OPS, 8, 2, pool_bn=True, partial_channels=4)
  shape = jax.eval_shape(lambda: op.init_with_output(jax.random.key(0), x, jnp.ones(5),
                                                     train=False))[0].shape
  assert shape == (1, 4, 4, 8)  # ceil(7/2), as every stride-2 op
  bad = ops_lib.MixedOp(SMALL_OPS, 6, 1, partial_channels=4)
  with pytest.raises(ValueError, match="positive divisor"):
    bad.init(jax.random.key(0), jnp.ones((1, 4, 4, 6)), jnp.ones(5), train=False)


# PC-DARTS search supernet, CIFAR-10 (C=16, 8 layers, 10 classes, K=4), counted by hand from
# yuhuixu1993/PC-DARTS model_search.py (= GAEA's cnn/search_spaces/pc_darts/model_search.py):
# ops are built with c = C_cell/4 channels, BN in cells is affine=False (no parameters), betas are
# architecture parameters (not counted). Per MixedOp with c channels:
#   sep_conv_3x3 2(9c + c^2), sep_conv_5x5 2(25c + c^2), dil_conv_3x3 9c + c^2,
#   dil_conv_5x5 25c + c^2 -> 102c + 6c^2 at stride 1; + c^2 at stride 2
#   (skip_connect = FactorizedReduce(c, c): 2 * c*c/2); pools (BN affine=False), none: 0.
#   c=4: 504 (stride 1);  c=8: 1200 / 1264;  c=16: 3168 / 3424.
# Cells (preprocess0 + preprocess1 + 14 MixedOps; reduction cells have 8 stride-2 edges):
#   0 normal C=16: 48*16 + 48*16 + 14*504          =  8,592
#   1 normal C=16: 48*16 + 64*16 + 14*504          =  8,848
#   2 reduce C=32: 64*32 + 64*32 + 8*1264 + 6*1200 = 21,408
#   3 normal C=32: FR(64->32) 2*64*16 + 128*32 + 14*1200 = 22,944
#   4 normal C=32: 128*32 + 128*32 + 14*1200       = 24,992
#   5 reduce C=64: 128*64 + 128*64 + 8*3424 + 6*3168 = 62,784
#   6 normal C=64: FR(128->64) 2*128*32 + 256*64 + 14*3168 = 68,928
#   7 normal C=64: 256*64 + 256*64 + 14*3168       = 77,120     (cells: 295,616)
# stem conv 3*48*9 + BN(affine) 2*48 = 1,392; classifier 256*10 + 10 = 2,570.
# Total 295,616 + 1,392 + 2,570 = 299,578. (The same formula with c = C gives DARTS' 1,930,618.)
PC_DARTS_PARAMS = 299_578


def test_parameter_counts_equal_reference():
  sizes = dict(channels=16, layers=8, num_classes=10)
  pc = jaxnas.spaces.get("darts", partial_channels=4, edge_normalization=True)
  assert abstract_num_params(pc, **sizes) == PC_DARTS_PARAMS
  assert abstract_num_params(jaxnas.spaces.get("darts"), **sizes) == 1_930_618
  # Edge normalization adds only architecture parameters.
  assert abstract_num_params(jaxnas.spaces.get("darts", edge_normalization=True),
                             **sizes) == 1_930_618


@pytest.mark.parametrize("reduction", [False, True])
def test_edge_normalized_partial_cell_equals_hand_computation(reduction):
  """nodes=2, K=2: node0 = b0 M0(s0) + b1 M1(s1); node1 = b2 M2(s0) + b3 M3(s1) + b4 M4(node0)."""
  nodes, c, k = 2, 4, 2
  cell = darts.DartsSearchCell(SMALL_OPS, c, reduction=reduction, reduction_prev=False,
                               nodes=nodes, multiplier=nodes, partial_channels=k)
  s0 = jax.random.normal(jax.random.key(0), (2, 6, 6, 3))
  s1 = jax.random.normal(jax.random.key(1), (2, 6, 6, 5))
  mixing = jax.nn.softmax(jax.random.normal(jax.random.key(2), (5, len(SMALL_OPS))))
  betas = jnp.array([0.3, 0.7, 0.2, 0.5, 0.3])
  variables = cell.init(jax.random.key(3), s0, s1, mixing, betas, train=True)
  out, _ = cell.apply(variables, s0, s1, mixing, betas, train=True, mutable=["batch_stats"])

  def run(module, variables_, *args):
    return module.apply(variables_, *args, train=True, mutable=["batch_stats"])[0]

  def preprocess(name, s):
    return run(ops_lib.ReLUConvBN(c, 1, affine=False),
               {col: v[name] for col, v in variables.items() if name in v}, s)

  def edge(e, h, stride):
    op = ops_lib.MixedOp(SMALL_OPS, c, stride, pool_bn=True, partial_channels=k)
    return betas[e] * run(op, darts.edge_variables(variables, e, nodes), h, mixing[e])

  stride = 2 if reduction else 1
  h0, h1 = preprocess("preprocess0", s0), preprocess("preprocess1", s1)
  node0 = edge(0, h0, stride) + edge(1, h1, stride)
  node1 = edge(2, h0, stride) + edge(3, h1, stride) + edge(4, node0, 1)
  np.testing.assert_allclose(out, jnp.concatenate([node0, node1], axis=-1), rtol=1e-5, atol=1e-5)

  # Scaling one edge's beta scales exactly its contribution (node 0 is linear in beta_0, beta_1).
  out_b, _ = cell.apply(variables, s0, s1, mixing, betas.at[0].set(0.9), train=True,
                        mutable=["batch_stats"])
  np.testing.assert_allclose(out_b[..., :c] - out[..., :c], 0.6 * edge(0, h0, stride) / 0.3,
                             rtol=1e-4, atol=1e-5)


def test_pc_darts_supernet_gradients_reach_alpha_and_beta():
  space = jaxnas.spaces.get("darts", ops=("none", "skip_connect", "dil_conv_3x3"), nodes=2,
                            partial_channels=2, edge_normalization=True)
  module = space.supernet(channels=4, layers=3, num_classes=3, unroll=False)
  param = jaxnas.parametrize.get("softmax")
  arch = space.init_arch(jax.random.key(0), param)
  x = jax.random.normal(jax.random.key(1), (2, 8, 8, 3))
  weights, model_state = jax.jit(supernet.init, static_argnums=0)(
      module, jax.random.key(2), x, param.activate(arch))
  labels = jnp.array([0, 2])

  def loss(weights, arch):
    logits, _ = supernet.apply(module, weights, model_state, x, param.activate(arch), train=True)
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], axis=1))

  g_weights, g_arch = jax.jit(jax.grad(loss, argnums=(0, 1)))(weights, arch)
  assert jax.tree.structure(g_arch) == jax.tree.structure(arch)
  for path, leaf in jax.tree_util.tree_leaves_with_path(g_arch):
    assert jnp.all(leaf != 0), f"arch{jax.tree_util.keystr(path)} has entries without gradient"
  for path, leaf in jax.tree_util.tree_leaves_with_path(g_weights):
    assert jnp.any(leaf != 0), f"no gradient reaches weight {jax.tree_util.keystr(path)}"


def test_derivation_uses_alpha_times_beta():
  space = jaxnas.spaces.get("darts", nodes=2, edge_normalization=True)  # edges: {0,1}, {2,3,4}
  w = np.full((5, 8), 0.01)
  w[0, 4], w[1, 7] = 0.5, 0.4   # node 0: edge 0 stronger by alpha ...
  w[2, 5] = 0.9                 # node 1: edge 2 has the strongest op of the node ...
  w[3, 6], w[4, 3] = 0.5, 0.4
  betas = {"0": np.array([0.2, 0.8]), "1": np.array([0.05, 0.5, 0.45])}  # ... but a tiny beta
  mixing = {"normal": w, "reduce": w, "normal_edges": betas, "reduce_edges": betas}
  genotype = space.derive(mixing)
  # node 0: 0.5*0.2 = 0.10 < 0.4*0.8 = 0.32 -> edge 1 first;
  # node 1: 0.9*0.05 = 0.045 < 0.4*0.45 = 0.18 < 0.5*0.5 = 0.25 -> edge 2 is dropped.
  assert genotype.normal == [("dil_conv_5x5", 1), ("sep_conv_3x3", 0),
                             ("dil_conv_3x3", 1), ("skip_connect", 2)]
  assert genotype.reduce == genotype.normal
  plain = jaxnas.spaces.get("darts", nodes=2).derive({"normal": w, "reduce": w})
  assert plain.normal == [("sep_conv_3x3", 0), ("dil_conv_5x5", 1),
                          ("sep_conv_5x5", 0), ("dil_conv_3x3", 1)]
  assert space.parse_genotype(str(genotype)) == genotype


def test_init_arch_nested_leaves():
  space = jaxnas.spaces.get("darts", partial_channels=4, edge_normalization=True)
  expected = {"normal": (14, 8), "reduce": (14, 8),
              "normal_edges": {"0": (2,), "1": (3,), "2": (4,), "3": (5,)},
              "reduce_edges": {"0": (2,), "1": (3,), "2": (4,), "3": (5,)}}
  assert space.arch_shapes() == expected
  assert space.flat_arch_shapes()["reduce_edges/3"] == (5,)
  simplex = space.init_arch(jax.random.key(0), "simplex")
  assert jax.tree.map(np.shape, simplex) == expected
  for leaf in jax.tree.leaves(simplex):
    np.testing.assert_allclose(leaf, np.full(leaf.shape, 1.0 / leaf.shape[-1]))
  assert jaxnas.parametrize.get("simplex").activate(simplex)["normal_edges"]["2"] is (
      simplex["normal_edges"]["2"])
  softmax = space.init_arch(jax.random.key(0), "softmax")
  assert jax.tree.map(np.shape, softmax) == expected
  mixing = jaxnas.parametrize.get("softmax").activate(softmax)
  for leaf in jax.tree.leaves(mixing):
    np.testing.assert_allclose(jnp.sum(leaf, axis=-1), 1.0, rtol=1e-6)
  assert space.check_arch(softmax) is softmax
  # Without the options: the DARTS layout and the same alpha as before (same keys, same order).
  plain = jaxnas.spaces.get("darts")
  assert plain.arch_shapes() == {"normal": (14, 8), "reduce": (14, 8)}
  plain_arch = plain.init_arch(jax.random.key(0), "softmax")
  keys = jax.random.split(jax.random.key(0), 2)
  np.testing.assert_array_equal(plain_arch["normal"], 1e-3 * jax.random.normal(keys[0], (14, 8)))
  np.testing.assert_array_equal(plain_arch["reduce"], 1e-3 * jax.random.normal(keys[1], (14, 8)))


@pytest.mark.parametrize("change,message", [
    (lambda a: {k: v for k, v in a.items() if k != "normal_edges"}, "expects architecture keys"),
    (lambda a: {**a, "normal_edges": jnp.zeros(14)}, "under 'normal_edges' as a dict"),
    (lambda a: {**a, "reduce_edges": {"0": jnp.zeros(2)}}, "keys under 'reduce_edges'"),
    (lambda a: {**a, "normal_edges": {**a["normal_edges"], "1": jnp.zeros(4)}},
     "'normal_edges/1' of the 'darts' space has shape (4,); expected (3,)"),
    (lambda a: {**a, "normal": {"0": jnp.zeros(2)}}, "'normal' of the 'darts' space is a dict"),
])
def test_wrong_arch_structure_raises_clear_errors(change, message):
  space = jaxnas.spaces.get("darts", edge_normalization=True)
  arch = space.init_arch(jax.random.key(0), "simplex")
  with pytest.raises(ValueError) as info:
    space.check_arch(change(arch))
  assert message in str(info.value)
  with pytest.raises(ValueError):
    space.derive(change(arch))


def test_options_are_validated():
  space = jaxnas.spaces.get("darts", partial_channels=4, edge_normalization=True)
  assert (space.partial_channels, space.edge_normalization) == (4, True)
  assert "partial_channels=4, edge_normalization=True" in repr(space)
  assert repr(jaxnas.spaces.get("darts")) == f"DartsSpace(ops={darts.DARTS_OPS}, nodes=4)"
  with pytest.raises(ValueError, match="must divide the supernet's channels=6"):
    space.supernet(channels=6)
  for bad in (0, -2, 2.0, True):
    with pytest.raises(ValueError, match="partial_channels must be a positive integer"):
      jaxnas.spaces.get("darts", partial_channels=bad)
  with pytest.raises(ValueError, match="edge_normalization must be a bool"):
    jaxnas.spaces.get("darts", edge_normalization="yes")
  # A plain (flat) mixing dict is rejected by the edge-normalized supernet with a clear message.
  module = space.supernet(channels=4, layers=1, num_classes=2, unroll=False)
  with pytest.raises(ValueError, match="expects architecture keys"):
    module.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)),
                {"normal": jnp.zeros((14, 8)), "reduce": jnp.zeros((14, 8))}, train=False)
