"""rj.checkpoint: bit-exact round trips of params and carried state (structure, dtypes,
bf16 included), step checkpoints, resuming a stateful stream from a checkpoint in a
fresh setting (pure layer, linen, NNX), and clear errors."""

import threading

import flax.linen as nn
import numpy as np
import pytest
from flax import nnx

import jax
import jax.numpy as jnp
import rnnjax as rj

from tests.adapter_cases import B, F, assert_trees_equal, normal

X = normal(0, (B, 9, F))
CHUNK1, CHUNK2 = X[:, :5], X[:, 5:]


def _params_and_state():
  """Mixed params (bf16 and f32 layers, a tuple of per-cell dicts, an int counter) and a
  nested state tuple, with random values everywhere."""
  lstm = rj.LSTM(4, param_dtype=jnp.bfloat16).init(jax.random.key(1), X)
  stacked = rj.RNN([rj.LSTMCell(3), rj.GRUCell(2)]).init(jax.random.key(2), X)
  params = {"lstm": lstm, "stacked": stacked, "count": jnp.array(7, jnp.int32)}
  state = ((normal(3, (B, 3)), normal(4, (B, 3))), (normal(5, (B, 2)),))
  return params, state


def test_round_trip_is_bit_exact_with_like_arrays_shapes_or_nothing(tmp_path):
  params, state = _params_and_state()
  assert params["lstm"]["kernel"].dtype == jnp.bfloat16
  threads = set(threading.enumerate())
  rj.checkpoint.save(tmp_path / "ckpt", params, state=state)
  abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), (params, state))
  for like, state_like in [(params, state), abstract, (None, None)]:
    restored = rj.checkpoint.restore(tmp_path / "ckpt", like=like, state_like=state_like)
    assert restored.step is None
    assert_trees_equal(restored.params, params)
    assert_trees_equal(restored.state, state)
    assert isinstance(restored.params["stacked"], tuple) and isinstance(restored.state[0], tuple)
    assert all(isinstance(a, jax.Array) for a in jax.tree.leaves(restored))
  # No Orbax work is left running once save/restore return (idle executor threads
  # may take a moment to exit).
  for thread in set(threading.enumerate()) - threads:
    thread.join(timeout=10)
    assert not thread.is_alive(), thread.name


def test_params_only_and_step_checkpoints(tmp_path):
  params, state = _params_and_state()
  rj.checkpoint.save(tmp_path / "p", params)
  restored = rj.checkpoint.restore(tmp_path / "p", like=params)
  assert restored.state is None
  assert_trees_equal(restored.params, params)

  run = tmp_path / "run"
  assert rj.checkpoint.latest_step(run) is None
  later = jax.tree.map(lambda a: a + 1, params)
  rj.checkpoint.save(run, params, state=state, step=1)
  rj.checkpoint.save(run, later, state=state, step=3)
  assert rj.checkpoint.latest_step(run) == 3
  latest = rj.checkpoint.restore(run, like=params, state_like=state)
  assert latest.step == 3
  assert_trees_equal(latest.params, later)
  assert_trees_equal(rj.checkpoint.restore(run, like=params, step=1).params, params)
  with pytest.raises(FileExistsError, match="step 3 already exists"):
    rj.checkpoint.save(run, params, step=3)
  rj.checkpoint.save(run, params, step=3, overwrite=True)
  assert_trees_equal(rj.checkpoint.restore(run, like=params, step=3).params, params)
  with pytest.raises(FileNotFoundError, match=r"no step 2 in .*run; it holds steps \[1, 3\]"):
    rj.checkpoint.restore(run, like=params, step=2)


# Resuming a stateful stream -----------------------------------------------------------


def test_resume_a_pure_stateful_stream_from_a_checkpoint(tmp_path):
  layer = rj.GRU(4, stateful=True, return_sequences=True)
  params = layer.init(jax.random.key(0), X)
  _, state = layer.apply(params, CHUNK1)
  want, want_state = layer.apply(params, CHUNK2, state=state)
  rj.checkpoint.save(tmp_path / "ckpt", params, state=state)
  del params, state

  # A fresh setting: a new layer object, params of another init as the template.
  fresh = rj.GRU(4, stateful=True, return_sequences=True)
  restored = rj.checkpoint.restore(tmp_path / "ckpt", like=fresh.init(jax.random.key(9), X))
  got, got_state = fresh.apply(restored.params, CHUNK2, state=restored.state)
  np.testing.assert_array_equal(got, want)
  assert_trees_equal(got_state, want_state)


class _Stream(nn.Module):
  @nn.compact
  def __call__(self, x):
    x = rj.linen.LSTM(4, stateful=True, return_sequences=True)(x)
    return rj.linen.GRU(3, stateful=True, return_sequences=True)(x)


def test_resume_a_linen_stream_from_a_checkpoint(tmp_path):
  model = _Stream()
  variables = model.init(jax.random.key(0), CHUNK1)
  step = jax.jit(lambda v, x: model.apply(v, x, mutable=["carry"]))
  _, updates = step(variables, CHUNK1)
  variables = {**variables, **updates}
  want, _ = step(variables, CHUNK2)
  rj.checkpoint.save(tmp_path / "ckpt", variables["params"], state=variables["carry"])

  template = jax.eval_shape(_Stream().init, jax.random.key(5), CHUNK1)  # shapes only
  restored = rj.checkpoint.restore(tmp_path / "ckpt", like=template["params"],
                                   state_like=template["carry"])
  got, _ = step({"params": restored.params, "carry": restored.state}, CHUNK2)
  np.testing.assert_array_equal(got, want)


def test_resume_an_nnx_stream_with_its_rng_streams_from_a_checkpoint(tmp_path):
  def build(seed):
    return rj.nnx.LSTM(F, 4, stateful=True, return_sequences=True, dropout=0.3,
                       rngs=nnx.Rngs(seed))

  run = nnx.jit(lambda m, x: m(x))
  model = build(0)
  run(model, CHUNK1)
  rj.checkpoint.save(tmp_path / "ckpt", nnx.state(model))
  want = run(model, CHUNK2)  # dropout on (training by default): the stream matters too

  fresh = build(1)
  fresh.initialize_carry(B)  # the carry exists before the first call, to restore into
  restored = rj.checkpoint.restore(tmp_path / "ckpt", like=nnx.state(fresh))
  key = restored.params["rngs"]["key"][...]
  assert jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
  nnx.update(fresh, restored.params)
  np.testing.assert_array_equal(run(fresh, CHUNK2), want)


# Errors -------------------------------------------------------------------------------


def test_errors(tmp_path):
  params, state = _params_and_state()
  with pytest.raises(FileNotFoundError, match="no checkpoint at .*missing: the path does not"):
    rj.checkpoint.restore(tmp_path / "missing", like=params)
  (tmp_path / "empty").mkdir()
  with pytest.raises(FileNotFoundError, match="holds neither a checkpoint nor step checkpoints"):
    rj.checkpoint.restore(tmp_path / "empty", like=params)

  rj.checkpoint.save(tmp_path / "ckpt", params, state=state)
  with pytest.raises(FileExistsError, match="pass overwrite=True"):
    rj.checkpoint.save(tmp_path / "ckpt", params)
  other = {**params, "lstm": rj.LSTM(5).init(jax.random.key(1), X)}
  with pytest.raises(ValueError, match=r"like does not match .*lstm/kernel: \(5, 16\) bfloat16 "
                                       r"stored, \(5, 20\) float32 in like"):
    rj.checkpoint.restore(tmp_path / "ckpt", like=other)
  with pytest.raises(ValueError, match=r"stored but not in like: \['count'\]"):
    rj.checkpoint.restore(tmp_path / "ckpt", like={k: params[k] for k in ("lstm", "stacked")})
  with pytest.raises(ValueError, match=r"in state_like but not stored: \['2/0'\]"):
    rj.checkpoint.restore(tmp_path / "ckpt", like=params, state_like=state + ((X,),))
  rj.checkpoint.save(tmp_path / "params_only", params)
  with pytest.raises(ValueError, match="state_like was given but the checkpoint .* holds no state"):
    rj.checkpoint.restore(tmp_path / "params_only", like=params, state_like=state)
  with pytest.raises(TypeError, match="path must be a str or os.PathLike, got int"):
    rj.checkpoint.save(3, params)
  with pytest.raises(ValueError, match="step must be a non-negative int or None, got -1"):
    rj.checkpoint.save(tmp_path / "s", params, step=-1)
  with pytest.raises(TypeError, match="params must hold arrays, got a leaf of type str"):
    rj.checkpoint.save(tmp_path / "s", {"kernel": "abc"})
  with pytest.raises(ValueError, match="state must be a pytree holding at least one array"):
    rj.checkpoint.save(tmp_path / "s", params, state=())
