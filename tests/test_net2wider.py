"""Net2Wider (jaxnas.spaces.net2wider): DrNAS' widening of the partial-channel ops between its
stages, checked against the reference's rules written out here (D:net2wider.py and the ops'
``wider`` in D:DARTS-space/operations.py, xiangning-chen/DrNAS @ f2caa4d): kept channels unchanged,
each new channel a copy of an old one, and which axes share their copied indices."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxnas import search as search_lib
from jaxnas.spaces import net2wider
from jaxnas.spaces import ops as ops_lib

OPS = ("sep_conv_3x3", "dil_conv_3x3", "max_pool_3x3", "skip_connect")


def mixed_op_variables(k, seed=0):
  """A stride-2 DARTS search edge (24 channels, PC-DARTS' K = k, affine BN so scale and bias are
  there too), its variables initialised, the BN statistics made random (identifiable copies)."""
  op = ops_lib.MixedOp(OPS, channels=24, stride=2, affine=True, pool_bn=True, partial_channels=k)
  x = jnp.zeros((1, 8, 8, 24))
  variables = op.init(jax.random.key(seed), x, jnp.ones(len(OPS)), train=True)
  stats = jax.tree.map(lambda s: jax.random.uniform(jax.random.key(seed + 1), s.shape) + 0.5,
                       variables["batch_stats"])
  return {"params": variables["params"], "batch_stats": stats}


def copied_from(old, new, axis):
  """For each entry appended along ``axis``, the old entry it equals (asserting that one does)."""
  old, new = np.moveaxis(np.asarray(old), axis, 0), np.moveaxis(np.asarray(new), axis, 0)
  np.testing.assert_array_equal(new[:len(old)], old)  # kept entries unchanged
  index = []
  for entry in new[len(old):]:
    matches = [i for i in range(len(old)) if np.array_equal(old[i], entry)]
    assert matches, "an appended channel is not a copy of an old one"
    index.append(matches[0])
  return np.array(index)


def check_dil_block(old_p, new_p, old_bn, new_bn):
  """D: DilConv.wider -- depthwise outputs draw d; the pointwise inputs reuse d, its outputs draw
  p; the BN (scale, bias, mean, var) copies p."""
  d = copied_from(old_p["depthwise"]["kernel"], new_p["depthwise"]["kernel"], -1)
  pw_old, pw_new = np.asarray(old_p["pointwise"]["kernel"]), np.asarray(new_p["pointwise"]["kernel"])
  n = pw_old.shape[-2]
  # the pointwise rows appended (inputs) are the old rows d, over the old output columns
  np.testing.assert_array_equal(pw_new[..., n:, :n], pw_old[..., d, :])
  p = copied_from(pw_new[..., :, :n], pw_new, -1)  # appended output columns copy old columns p
  for leaf in ("scale", "bias"):
    np.testing.assert_array_equal(new_p["bn"][leaf][n:], np.asarray(old_p["bn"][leaf])[p])
  for leaf in ("mean", "var"):
    np.testing.assert_array_equal(new_bn["bn"][leaf][n:], np.asarray(old_bn["bn"][leaf])[p])
  return d, p


@pytest.fixture(scope="module")
def widened():
  old, shapes = mixed_op_variables(6), mixed_op_variables(4, seed=5)
  new = jax.jit(net2wider.widen)(old, shapes, jax.random.key(7))
  return old, new


def test_widened_shapes_and_kept_channels(widened):
  old, new = widened
  target = mixed_op_variables(4, seed=5)
  jax.tree.map(lambda n, t: np.testing.assert_equal(n.shape, t.shape), new, target)
  # stride-2 edge of 24 channels: ops of 24 / 6 = 4 -> 24 / 4 = 6 channels
  assert old["params"]["dil_conv_3x3"]["pointwise"]["kernel"].shape == (1, 1, 4, 4)
  assert new["params"]["dil_conv_3x3"]["pointwise"]["kernel"].shape == (1, 1, 6, 6)


def test_dil_and_sep_conv_follow_the_reference_pairing(widened):
  old, new = widened
  check_dil_block(old["params"]["dil_conv_3x3"], new["params"]["dil_conv_3x3"],
                  old["batch_stats"]["dil_conv_3x3"], new["batch_stats"]["dil_conv_3x3"])
  for block in ("block_1", "block_2"):  # D: SepConv.wider, conv1..bn1 then conv3..bn2
    check_dil_block(old["params"]["sep_conv_3x3"][block], new["params"]["sep_conv_3x3"][block],
                    old["batch_stats"]["sep_conv_3x3"][block],
                    new["batch_stats"]["sep_conv_3x3"][block])


def test_factorized_reduce_bn_takes_the_concatenated_conv_indices(widened):
  """D: FactorizedReduce.wider: each conv widens its inputs and outputs (own draws o1, o2); the BN
  appends ``cat(o1, o2)`` at its end -- entry 4 + j copies old BN entry o1[j], entry 4 + 1 + j old
  entry o2[j] (indices into the first half: the reference's quirk, kept)."""
  old, new = widened
  op_old, op_new = old["params"]["skip_connect"], new["params"]["skip_connect"]
  outs = []
  for conv in ("conv_1", "conv_2"):
    k_old, k_new = np.asarray(op_old[conv]["kernel"]), np.asarray(op_new[conv]["kernel"])
    assert k_old.shape == (1, 1, 4, 2) and k_new.shape == (1, 1, 6, 3)
    copied_from(k_old, k_new[..., :2], -2)  # the input rows copy old rows
    outs.append(copied_from(k_new[..., :, :2], k_new, -1))
  expected = np.concatenate(outs)
  for leaf in ("scale", "bias"):
    np.testing.assert_array_equal(op_new["bn"][leaf][4:], np.asarray(op_old["bn"][leaf])[expected])
  for leaf in ("mean", "var"):
    np.testing.assert_array_equal(new["batch_stats"]["skip_connect"]["bn"][leaf][4:],
                                  np.asarray(old["batch_stats"]["skip_connect"]["bn"][leaf])[
                                      expected])


def test_pool_bn_copies_its_own_draw_for_mean_and_var(widened):
  old, new = widened
  bn_old, bn_new = old["batch_stats"]["max_pool_3x3"]["bn"], new["batch_stats"]["max_pool_3x3"]["bn"]
  index = copied_from(bn_old["mean"], bn_new["mean"], -1)
  np.testing.assert_array_equal(bn_new["var"][4:], np.asarray(bn_old["var"])[index])


def test_momentum_is_widened_with_its_parameters_indices_and_stacked_edges_draw_their_own():
  """D: configure_optimizer extends SGD's momentum buffers with the parameters' indices; two edges
  stacked on a leading axis (nn.scan) are widened independently."""
  old = [mixed_op_variables(6, seed=s)["params"] for s in (0, 10)]
  params = jax.tree.map(lambda a, b: jnp.stack([a, b]), *old)
  momentum = optax.sgd(0.1, momentum=0.9).init(params)
  momentum = jax.tree.map(lambda t: jax.random.normal(jax.random.key(3), t.shape), momentum)
  target_params = jax.tree.map(lambda a: jnp.stack([a, a]), mixed_op_variables(4)["params"])
  target = (target_params, optax.sgd(0.1, momentum=0.9).init(target_params))
  new_params, new_momentum = net2wider.widen((params, momentum), target, jax.random.key(1))
  draws = []
  for edge in (0, 1):
    kernel = lambda tree: np.asarray(tree["dil_conv_3x3"]["depthwise"]["kernel"])[edge]
    d = copied_from(kernel(params), kernel(new_params), -1)
    trace_old, trace_new = kernel(momentum[0].trace), kernel(new_momentum[0].trace)
    np.testing.assert_array_equal(trace_new[..., :4], trace_old)
    np.testing.assert_array_equal(trace_new[..., 4:], trace_old[..., d])
    draws.append(np.concatenate([
        copied_from(np.asarray(tree["skip_connect"][c]["kernel"])[edge],
                    np.asarray(new_params["skip_connect"][c]["kernel"])[edge][..., :2], -2)
        for tree in (params,) for c in ("conv_1", "conv_2")] + [d]))
  assert not np.array_equal(draws[0], draws[1])


def test_a_grown_axis_without_a_rule_is_refused():
  tree = {"params": {"head": {"kernel": jnp.zeros((3, 4))}}}
  target = {"params": {"head": {"kernel": jax.ShapeDtypeStruct((3, 6), jnp.float32)}}}
  with pytest.raises(ValueError, match="no rule to grow axis -1 of head/kernel"):
    net2wider.widen(tree, target, jax.random.key(0))


def test_stage_of_a_step_and_of_a_checkpoint():
  """A checkpoint at a stage's first step holds the previous stage's state (the widening runs with
  that step); that step and the later ones run the new stage."""
  stages = [search_lib.Stage(0, None, ""), search_lib.Stage(4, None, "space.partial_channels=4")]
  assert [search_lib.stage_of_step(stages, p) for p in range(7)] == [0, 0, 0, 0, 1, 1, 1]
  assert [search_lib.stage_of_state(stages, p) for p in range(7)] == [0, 0, 0, 0, 0, 1, 1]
