"""Tests for jaxnas.checkpoint: bit-exact round trips, pruning, atomicity, mismatch, NaN guards."""
import os
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxnas.checkpoint import CheckpointError, CheckpointManager, CheckpointMismatchError

FP = {'space': 'nb201', 'method': 'darts', 'arch_shapes': {'cell': [6, 5]}}


@flax.struct.dataclass
class _State:
  step: Any
  weights: Any
  arch: Any
  arch_opt_state: Any
  method_state: Any
  key: Any


def _make_state(seed: int = 0, width: int = 3) -> _State:
  """A small search-state-like pytree with float32, int32 and uint32 leaves."""
  key = jax.random.key(seed)
  k1, k2, k3 = jax.random.split(key, 3)
  arch = {'cell': 1e-3 * jax.random.normal(k1, (6, 5))}
  opt_state = optax.adam(3e-4).init(arch)
  opt_state = jax.tree.map(lambda x: x + 1 if x.dtype == jnp.int32 else x + 0.5, opt_state)
  return _State(
      step=jnp.int32(7 + seed),
      weights={'conv': {'kernel': jax.random.normal(k2, (3, 3, 2, width))},
               'bias': jnp.arange(width, dtype=jnp.float32)},
      arch=arch,
      arch_opt_state=opt_state,
      method_state={'counts': jnp.array([1, -2, 3], jnp.int32)},
      key=jax.random.key_data(k3))


def _assert_bit_equal(a, b) -> None:
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    x, y = np.asarray(x), np.asarray(y)
    assert x.dtype == y.dtype and x.shape == y.shape
    assert x.tobytes() == y.tobytes()


def _snapshot(directory) -> dict:
  """Every file under `directory` with its size and mtime, to prove nothing changed."""
  out = {}
  for root, _, files in os.walk(directory):
    for name in files:
      path = os.path.join(root, name)
      st = os.stat(path)
      out[path] = (st.st_size, st.st_mtime_ns)
  return out


def test_round_trip_is_bit_exact(tmp_path):
  state = _make_state()
  dtypes = {str(x.dtype) for x in jax.tree.leaves(state)}
  assert {'float32', 'int32', 'uint32'} <= dtypes
  with CheckpointManager(tmp_path / 'ckpt', fingerprint=FP) as ckpt:
    assert ckpt.latest_step() is None and ckpt.all_steps() == []
    ckpt.save(10, state)
    assert ckpt.latest_step() == 10
    restored = ckpt.restore(jax.eval_shape(_make_state))
  assert isinstance(restored, _State)
  _assert_bit_equal(restored, state)


def test_restore_in_a_new_manager(tmp_path):
  state = _make_state(1)
  with CheckpointManager(tmp_path, fingerprint=FP) as ckpt:
    ckpt.save(3, state)
  with CheckpointManager(tmp_path, fingerprint=FP) as ckpt:
    assert ckpt.all_steps() == [3]
    _assert_bit_equal(ckpt.restore(jax.eval_shape(_make_state)), state)


def test_keeps_last_k_and_restores_specific_step(tmp_path):
  with CheckpointManager(tmp_path, keep=2, fingerprint=FP) as ckpt:
    for step in (1, 2, 3, 4):
      ckpt.save(step, _make_state(step))
    assert ckpt.all_steps() == [3, 4]
    assert ckpt.latest_step() == 4
    assert sorted(n for n in os.listdir(tmp_path) if n.isdigit()) == ['3', '4']
    abstract = jax.eval_shape(_make_state)
    _assert_bit_equal(ckpt.restore(abstract, step=3), _make_state(3))
    _assert_bit_equal(ckpt.restore(abstract), _make_state(4))
    with pytest.raises(CheckpointError, match=r'step 1 .*available steps: \[3, 4\]'):
      ckpt.restore(abstract, step=1)


def test_duplicate_step_is_skipped_and_older_step_refused(tmp_path):
  with CheckpointManager(tmp_path, fingerprint=FP) as ckpt:
    ckpt.save(5, _make_state(0))
    before = _snapshot(tmp_path)
    ckpt.save(5, _make_state(1))  # skipped: the first checkpoint of step 5 is kept
    assert _snapshot(tmp_path) == before
    _assert_bit_equal(ckpt.restore(jax.eval_shape(_make_state)), _make_state(0))
    with pytest.raises(CheckpointError, match='steps in one directory must increase'):
      ckpt.save(4, _make_state(0))
    for bad in (-1, 2.0, True):
      with pytest.raises(CheckpointError, match='non-negative integer'):
        ckpt.save(bad, _make_state(0))
    ckpt.save(np.int64(6), _make_state(2))
    assert ckpt.all_steps() == [5, 6]


def test_leftover_tmp_and_uncommitted_dirs_are_ignored(tmp_path):
  with CheckpointManager(tmp_path, fingerprint=FP) as ckpt:
    ckpt.save(1, _make_state(1))
    # What a crash mid-save leaves behind: Orbax's temporary directory, never renamed.
    partial = tmp_path / '2.orbax-checkpoint-tmp-1700000000000000'
    (partial / 'state').mkdir(parents=True)
    (partial / 'state' / 'junk').write_text('half written')
    # A step-named directory without Orbax's commit marker (e.g. an interrupted copy).
    (tmp_path / '3' / 'state').mkdir(parents=True)
    assert ckpt.all_steps() == [1] and ckpt.latest_step() == 1
    _assert_bit_equal(ckpt.restore(jax.eval_shape(_make_state)), _make_state(1))
    with pytest.raises(CheckpointError, match='not a committed jaxnas checkpoint'):
      ckpt.save(3, _make_state(3))
    with pytest.raises(CheckpointError, match='No checkpoint for step 3'):
      ckpt.restore(jax.eval_shape(_make_state), step=3)
  with CheckpointManager(tmp_path, fingerprint=FP) as ckpt:
    assert ckpt.latest_step() == 1
    ckpt.save(4, _make_state(4))
    assert not partial.exists()  # Orbax cleans temporary directories (in the background) on open
    assert ckpt.all_steps() == [1, 4]
    _assert_bit_equal(ckpt.restore(jax.eval_shape(_make_state)), _make_state(4))


def test_crash_during_commit_keeps_previous_checkpoint(tmp_path, monkeypatch):
  from orbax.checkpoint._src.path import atomicity

  with CheckpointManager(tmp_path, fingerprint=FP) as ckpt:
    ckpt.save(1, _make_state(1))

    async def crash(self):
      raise OSError('simulated crash before the atomic rename')

    monkeypatch.setattr(atomicity.AtomicRenameTemporaryPath, 'finalize', crash)
    with pytest.raises(CheckpointError, match='Earlier checkpoints are untouched'):
      ckpt.save(2, _make_state(2))
    monkeypatch.undo()
    assert any('orbax-checkpoint-tmp' in n for n in os.listdir(tmp_path))
    assert ckpt.all_steps() == [1]
  with CheckpointManager(tmp_path, fingerprint=FP) as ckpt:
    assert ckpt.latest_step() == 1
    _assert_bit_equal(ckpt.restore(jax.eval_shape(_make_state)), _make_state(1))


def test_fingerprint_mismatch_raises_and_touches_nothing(tmp_path):
  with CheckpointManager(tmp_path, keep=1, fingerprint=FP) as ckpt:
    ckpt.save(1, _make_state())
  before = _snapshot(tmp_path)
  other = dict(FP, method='gaea', arch_shapes={'cell': [6, 4]})
  with CheckpointManager(tmp_path, keep=1, fingerprint=other) as ckpt:
    with pytest.raises(CheckpointMismatchError) as err:
      ckpt.restore(jax.eval_shape(_make_state))
    message = str(err.value)
    assert 'method' in message and 'arch_shapes.cell' in message
    assert str(tmp_path) in message and '--workdir' in message
    with pytest.raises(CheckpointMismatchError):  # would otherwise prune step 1 (keep=1)
      ckpt.save(2, _make_state())
  assert _snapshot(tmp_path) == before
  with CheckpointManager(tmp_path, fingerprint=None) as ckpt:  # None: no fingerprint check
    _assert_bit_equal(ckpt.restore(jax.eval_shape(_make_state)), _make_state())


def test_structure_and_shape_mismatch_raise(tmp_path):
  with CheckpointManager(tmp_path, fingerprint=FP) as ckpt:
    ckpt.save(1, _make_state())
  before = _snapshot(tmp_path)
  with CheckpointManager(tmp_path, fingerprint=FP) as ckpt:
    expected = r"\.weights\['bias'\]: checkpoint float32\[3\], abstract_state float32\[4\]"
    with pytest.raises(CheckpointMismatchError, match=expected):
      ckpt.restore(jax.eval_shape(lambda: _make_state(width=4)))
    abstract = jax.eval_shape(_make_state)
    extra = abstract.replace(method_state={**abstract.method_state,
                                           'extra': jax.ShapeDtypeStruct((2,), jnp.float32)})
    with pytest.raises(CheckpointMismatchError, match=r"method_state\['extra'\] is in abstract"):
      ckpt.restore(extra)
    wrong_dtype = abstract.replace(step=jax.ShapeDtypeStruct((), jnp.float32))
    with pytest.raises(CheckpointMismatchError, match=r'\.step: checkpoint int32'):
      ckpt.restore(wrong_dtype)
  assert _snapshot(tmp_path) == before


@pytest.mark.parametrize('bad_value', [jnp.nan, jnp.inf])
def test_non_finite_state_is_refused(tmp_path, bad_value):
  good = _make_state(1)
  with CheckpointManager(tmp_path, keep=1, fingerprint=FP) as ckpt:
    ckpt.save(1, good)
    before = _snapshot(tmp_path)
    bad = _make_state(2)
    bad = bad.replace(arch={'cell': bad.arch['cell'].at[0, 0].set(bad_value)})
    with pytest.raises(CheckpointError, match=r"(?s)non-finite.*\.arch\['cell'\].*last good"):
      ckpt.save(2, bad)
    assert _snapshot(tmp_path) == before
    assert ckpt.all_steps() == [1]
    _assert_bit_equal(ckpt.restore(jax.eval_shape(_make_state)), good)


def test_sharded_restore_keeps_requested_sharding(tmp_path):
  assert jax.device_count() == 8
  mesh = jax.make_mesh((8,), ('data',))
  replicated = NamedSharding(mesh, P())
  state = jax.device_put(_make_state(), replicated)
  with CheckpointManager(tmp_path, fingerprint=FP) as ckpt:
    ckpt.save(1, state)
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated),
                            jax.eval_shape(_make_state))
    restored = ckpt.restore(abstract)
    for leaf in jax.tree.leaves(restored):
      assert leaf.sharding == replicated
    _assert_bit_equal(restored, state)
    # Without shardings the arrays land on one local device.
    plain = ckpt.restore(jax.eval_shape(_make_state))
    assert all(len(leaf.devices()) == 1 for leaf in jax.tree.leaves(plain))


def test_data_sharded_leaf_round_trip(tmp_path):
  mesh = jax.make_mesh((8,), ('data',))
  sharding = NamedSharding(mesh, P('data'))
  tree = {'x': jax.device_put(jnp.arange(32, dtype=jnp.float32).reshape(8, 4), sharding)}
  with CheckpointManager(tmp_path) as ckpt:
    ckpt.save(0, tree)
    abstract = {'x': jax.ShapeDtypeStruct((8, 4), jnp.float32, sharding=sharding)}
    restored = ckpt.restore(abstract)
  assert restored['x'].sharding == sharding
  np.testing.assert_array_equal(restored['x'], tree['x'])


def test_unusable_directories_and_states(tmp_path):
  afile = tmp_path / 'file'
  afile.write_text('x')
  with pytest.raises(CheckpointError, match='is a file'):
    CheckpointManager(afile)
  with CheckpointManager(tmp_path / 'empty') as ckpt:
    with pytest.raises(CheckpointError, match='No checkpoint in'):
      ckpt.restore(jax.eval_shape(_make_state))
    with pytest.raises(CheckpointError, match='key_data'):
      ckpt.save(0, {'key': jax.random.key(0)})
    with pytest.raises(CheckpointError, match='must be an array'):
      ckpt.save(0, {'step': 3})
  with pytest.raises(TypeError, match='JSON'):
    CheckpointManager(tmp_path / 'x', fingerprint={'a': object()})


def test_corrupt_checkpoint_raises_checkpoint_error(tmp_path):
  with CheckpointManager(tmp_path, fingerprint=FP) as ckpt:
    ckpt.save(1, _make_state())
  (tmp_path / '1' / 'meta' / 'metadata').write_text('{not json')
  with CheckpointManager(tmp_path, fingerprint=FP) as ckpt:
    with pytest.raises(CheckpointError, match='step 1 .* not usable'):
      ckpt.restore(jax.eval_shape(_make_state))
  (tmp_path / '1' / 'meta' / 'metadata').write_text('{"format": "something else"}')
  with CheckpointManager(tmp_path, fingerprint=FP) as ckpt:
    with pytest.raises(CheckpointError, match='not a jaxnas checkpoint'):
      ckpt.restore(jax.eval_shape(_make_state))


def test_retired_fingerprint_keys_of_older_checkpoints_still_restore(tmp_path):
  old = {**FP, 'space_sizes': {'channels': 16, 'unroll': True}}  # written before config.backend
  new = {**FP, 'space_sizes': {'channels': 16}}
  with CheckpointManager(tmp_path, fingerprint=old) as ckpt:
    ckpt.save(1, _make_state())
  with CheckpointManager(tmp_path, fingerprint=new) as ckpt:
    with pytest.raises(CheckpointMismatchError, match='space_sizes.unroll'):
      ckpt.restore(_make_state())
  with CheckpointManager(tmp_path, fingerprint=new, retired_keys=('space_sizes.unroll',)) as ckpt:
    _assert_bit_equal(ckpt.restore(_make_state()), _make_state())
