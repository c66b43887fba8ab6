"""What the registered spaces own: options read from the config, discretisation, the registry."""
import jax
import numpy as np
import pytest

import jaxnas
import repo_files
from jaxnas import evaluate
from jaxnas import search as search_lib
from jaxnas.spaces import darts



def default_config():
  return repo_files.load_module("configs/default.py").get_config()


def random_mixing(space, seed=0):
  return jax.tree.map(np.asarray, space.init_arch(jax.random.key(seed), "softmax"))


def darts_reference_one_hot(space, genotype):
  z = {cell: np.zeros((darts.num_edges(space.nodes), len(space.ops)), np.float32)
       for cell in ("normal", "reduce")}
  ranges = darts.node_edge_ranges(space.nodes)
  for cell in ("normal", "reduce"):
    for g, (op, j) in enumerate(getattr(genotype, cell)):
      z[cell][ranges[g // 2][j], space.ops.index(op)] = 1.0
  return z


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_discretize_is_the_one_hot_of_the_derived_cell(seed):
  dspace = jaxnas.spaces.get("darts", nodes=3)
  mixing = random_mixing(dspace, seed)
  got = jax.jit(dspace.discretize)(mixing)
  want = darts_reference_one_hot(dspace, dspace.derive(mixing))
  for cell in ("normal", "reduce"):
    np.testing.assert_array_equal(got[cell], want[cell])
  nspace = jaxnas.spaces.get("nb201")
  mixing = random_mixing(nspace, seed)
  edges = nspace.derive(mixing).edges
  want = np.eye(len(nspace.ops))[[nspace.ops.index(op) for op in edges]]
  np.testing.assert_array_equal(jax.jit(nspace.discretize)(mixing)["cell"], want)
  wspace = jaxnas.spaces.get("width", blocks_per_stage=2)
  mixing = random_mixing(wspace, seed)
  want = wspace.one_hot_mixing(wspace.derive(mixing))
  got = jax.jit(wspace.discretize)(mixing)
  for key in want:
    np.testing.assert_array_equal(got[key], want[key])


def test_darts_discretize_with_edge_weights_uses_alpha_times_beta():
  space = jaxnas.spaces.get("darts", nodes=2, edge_normalization=True)
  mixing = random_mixing(space, 3)
  got = space.discretize(mixing)
  want = darts_reference_one_hot(space, space.derive(mixing))
  np.testing.assert_array_equal(got["normal"], want["normal"])
  np.testing.assert_array_equal(got["reduce_edges"]["1"], np.ones(3))


def test_spaces_read_their_own_config_fields():
  config = default_config()
  config.space.nodes, config.space.partial_channels = 2, 4
  config.space.ops = "none,skip_connect,sep_conv_3x3"
  space = search_lib.build_space(config)
  assert (space.nodes, space.partial_channels, space.ops) == (2, 4, ("none", "skip_connect",
                                                                      "sep_conv_3x3"))
  config.space.channels = 15
  with pytest.raises(ValueError, match="config.space.channels must be even for the DARTS space"):
    space.supernet_sizes(config.space)
  config = default_config()
  config.space.name, config.space.ops, config.nao.op_set = "nao", "", "middle"
  assert jaxnas.spaces.from_config(config).ops == jaxnas.spaces.nao.OP_SETS["middle"]
  config.space.name = "width"
  config.space.blocks_per_stage = 2
  assert search_lib.build_space(config).arch_shapes() == {"stream": (3, 4), "inner": (6, 4)}


def test_registry_errors_name_the_valid_spaces():
  config = default_config()
  config.space.name = "resnet"
  with pytest.raises(ValueError, match="config.space.name='resnet' is not valid; choose one of: "
                                       "darts, nb201, width, nao"):
    jaxnas.spaces.from_config(config)
  with pytest.raises(NotImplementedError, match="has no stand-alone network"):
    evaluate.build_network(default_config(), "width", None, 10)
