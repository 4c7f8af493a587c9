"""Bidirectional beyond Keras parity (tests/parity/test_keras_bidirectional.py): the Keras
guide's parameter counts, gradients, time-major layout, packed segments, jit, bad input."""

import numpy as np

import jax
import jax.numpy as jnp
import rnnjax as rj

from tests import fast_jit, keras_reference
from tests.test_errors import raises

B, T, F, U = 8, 6, 3, 4


def _x(seed=0, shape=(B, T, F)):
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def _count(params):
  return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))


def test_keras_guide_parameter_counts_and_shapes():
  layer = rj.Bidirectional(rj.LSTM(64, return_sequences=True))
  x = jax.ShapeDtypeStruct((2, 5, 10), jnp.float32)
  params = jax.eval_shape(layer.init, jax.random.key(0), x)
  assert _count(params) == 38_400
  assert jax.eval_shape(layer.apply, params, x).shape == (2, 5, 128)
  layer = rj.Bidirectional(rj.LSTM(32))
  params = fast_jit.init(layer, jax.random.key(0), jax.ShapeDtypeStruct((2, 5, 128), jnp.float32))
  assert _count(params) == 41_216
  assert set(params) == {"forward", "backward"}
  # The two directions get different initial weights.
  assert not np.allclose(params["forward"]["kernel"], params["backward"]["kernel"])


def test_backward_layer_is_the_flipped_config_with_zero_output_forced():
  layer = rj.Bidirectional(rj.GRU(U, return_sequences=True, go_backwards=True))
  assert layer.backward_layer.go_backwards is False
  assert layer.forward_layer.zero_output_for_mask and layer.backward_layer.units == U
  assert not rj.Bidirectional(rj.GRU(U)).forward_layer.zero_output_for_mask
  assert hash(layer) == hash(rj.Bidirectional(rj.GRU(U, return_sequences=True, go_backwards=True)))


def test_check_grads_through_bidirectional():
  with jax.enable_x64(True):
    inner = rj.LSTM(3, return_sequences=True, param_dtype=jnp.float64)
    layer = rj.Bidirectional(inner, merge_mode="mul")
    x = jnp.asarray(np.random.default_rng(0).normal(size=(B, T, F)))
    params = fast_jit.init(layer, jax.random.key(0), x)
    mask = jnp.asarray(keras_reference.mixed_mask(B, T))

    def loss(params, x):
      return jnp.sum(jnp.sin(layer.apply(params, x, mask=mask)))

    fast_jit.check_scalar_grads(loss, (params, x))


def test_time_major_is_the_same_computation():
  x = _x(1)
  mask = keras_reference.mixed_mask(B, T)
  kw = dict(return_sequences=True, return_state=True)
  layer = rj.Bidirectional(rj.GRU(U, **kw))
  layer_tm = rj.Bidirectional(rj.GRU(U, time_major=True, **kw))
  params = fast_jit.init(layer, jax.random.key(1), x)
  want, got = fast_jit.run(lambda p, x: (layer.apply(p, x, mask=mask), layer_tm.apply(
      p, jnp.swapaxes(x, 0, 1), mask=mask.T)), params, x)
  np.testing.assert_allclose(jnp.swapaxes(got[0], 0, 1), want[0], atol=1e-6)
  for a, b in zip(got[1:], want[1:]):
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_packed_segments_are_processed_separately_in_both_directions():
  """reset marks segment starts; the backward direction restarts at segment ends, so a
  packed row equals each segment run on its own."""
  x = _x(2, (1, 9, F))
  starts = [0, 4, 6]  # segments [0, 4), [4, 6), [6, 9)
  bounds = list(zip(starts, starts[1:] + [9]))
  reset = np.zeros((1, 9), bool)
  reset[0, starts] = True
  layer = rj.Bidirectional(rj.LSTM(U, return_sequences=True))
  params = fast_jit.init(layer, jax.random.key(2), x)
  packed, alone = fast_jit.run(lambda p, x: (
      layer.apply(p, x, reset=reset), [layer.apply(p, x[:, a:b]) for a, b in bounds]), params, x)
  for (a, b), want in zip(bounds, alone):
    np.testing.assert_allclose(packed[:, a:b], want, atol=1e-6)


def test_seq_lengths_equal_a_right_padded_mask():
  x = _x(3)
  lengths = np.array([0, 1, T, 3, 2, 5, 4, T])
  layer = rj.Bidirectional(rj.SimpleRNN(U, return_sequences=True, return_state=True), merge_mode=None)
  params = fast_jit.init(layer, jax.random.key(3), x)
  a, b = fast_jit.run(lambda p, x: (layer.apply(p, x, seq_lengths=lengths), layer.apply(
      p, x, mask=np.arange(T)[None, :] < lengths[:, None])), params, x)
  for u, v in zip(a, b):
    np.testing.assert_array_equal(u, v)


def test_vmap_over_an_ensemble_under_jit():
  x = _x(4)
  layer = rj.Bidirectional(rj.LSTM(U), merge_mode="ave")

  def run(keys, x):
    ensemble = jax.vmap(lambda k: layer.init(k, x))(keys)
    one = jax.tree.map(lambda p: p[1], ensemble)
    return jax.vmap(layer.apply, in_axes=(0, None))(ensemble, x), layer.apply(one, x)

  out, single = fast_jit.run(run, jax.random.split(jax.random.key(5), 2), x)
  assert out.shape == (2, B, U)
  np.testing.assert_allclose(out[1], single, atol=1e-6)


def test_dropout_rng_is_split_between_directions():
  x = _x(5)
  layer = rj.Bidirectional(rj.GRU(U, dropout=0.5), merge_mode=None)
  params = fast_jit.init(layer, jax.random.key(6), x)
  with raises(ValueError, "training=True", "rng="):
    layer.apply(params, x, training=True)
  a, b, c = fast_jit.run(lambda p, x: [
      layer.apply(p, x, training=True, rng=jax.random.key(k)) for k in (0, 0, 1)], params, x)
  np.testing.assert_array_equal(a[0], b[0])
  assert not np.allclose(a[0], c[0])
  # The two directions do not share one mask: a constant input sequence seen both ways
  # would otherwise give y == y_rev with shared weights.
  shared = {"forward": params["forward"], "backward": params["forward"]}
  y, y_rev = fast_jit.run(lambda p, x: layer.apply(p, x, training=True, rng=jax.random.key(0)),
                          shared, jnp.ones((B, T, F)))
  assert not np.allclose(y, y_rev)


# Bad input -------------------------------------------------------------------


def _shapes_only(layer, x):
  """Params as ShapeDtypeStructs: enough for checks that run before tracing."""
  return jax.eval_shape(layer.init, jax.random.key(0), x)


def test_wrong_number_of_initial_states():
  layer = rj.Bidirectional(rj.LSTM(U))
  x = _x()
  params = _shapes_only(layer, x)
  h = jnp.zeros((B, U))
  with raises(ValueError, "initial_state", "4 states", "2 for the forward layer", "got 3"):
    layer.apply(params, x, initial_state=[h, h, h])
  with raises(TypeError, "initial_state", "list of 4 states", "(8, 4)"):
    layer.apply(params, x, initial_state=h)
  gru = rj.Bidirectional(rj.RNN([rj.GRUCell(2), rj.LSTMCell(3)]))
  with raises(ValueError, "initial_state", "4 states", "got 2"):
    gru.apply(_shapes_only(gru, x), x, initial_state=[h, h])
  with raises(ValueError, "initial_state (backward half)", "shapes", "(8, 3)"):
    layer.apply(params, x, initial_state=[h, h, jnp.zeros((B, 3)), h])
  with raises(ValueError, "state (forward half) has batch size 3", "batch size 8"):
    rj.Bidirectional(rj.GRU(U, stateful=True)).apply(
        params, x, state=[jnp.zeros((3, U)), jnp.zeros((3, U))])


def test_unknown_merge_mode():
  with raises(ValueError, "merge_mode", '"concat", "sum", "mul", "ave" or None', "'max'"):
    rj.Bidirectional(rj.LSTM(U), merge_mode="max")
  with raises(ValueError, "merge_mode", "True"):
    rj.Bidirectional(rj.LSTM(U), merge_mode=True)


def test_backward_layer_must_go_the_other_way_and_match():
  with raises(ValueError, "different go_backwards", "layer.go_backwards=False",
              "backward_layer.go_backwards=False"):
    rj.Bidirectional(rj.LSTM(U), backward_layer=rj.LSTM(U))
  with raises(ValueError, "same return_sequences", "True for layer", "False for backward_layer"):
    rj.Bidirectional(rj.LSTM(U, return_sequences=True), backward_layer=rj.LSTM(U, go_backwards=True))
  with raises(ValueError, "same return_state"):
    rj.Bidirectional(rj.LSTM(U), backward_layer=rj.LSTM(U, go_backwards=True, return_state=True))
  with raises(ValueError, "same stateful"):
    rj.Bidirectional(rj.LSTM(U), backward_layer=rj.LSTM(U, go_backwards=True, stateful=True))
  with raises(ValueError, 'merge_mode="sum"', "output_size 4 for layer and 3"):
    rj.Bidirectional(rj.LSTM(U), merge_mode="sum", backward_layer=rj.LSTM(3, go_backwards=True))
  rj.Bidirectional(rj.LSTM(U), backward_layer=rj.GRU(3, go_backwards=True))  # concat: fine


def test_layer_kinds_and_other_arguments():
  with raises(TypeError, "layer", "rnnjax sequence layer", "LSTMCell"):
    rj.Bidirectional(rj.LSTMCell(U))
  with raises(TypeError, "backward_layer", "rnnjax sequence layer"):
    rj.Bidirectional(rj.LSTM(U), backward_layer="lstm")
  with raises(ValueError, "weights= must be None", "rj.interop.from_keras"):
    rj.Bidirectional(rj.LSTM(U), "concat", [np.zeros(3)])
  with raises(ValueError, "activity_regularizer", "Bidirectional(..., activity_regularizer=...)"):
    rj.Bidirectional(rj.LSTM(U, activity_regularizer="l2"))


def test_params_and_state_arguments():
  layer = rj.Bidirectional(rj.LSTM(U))
  x = _x()
  params = fast_jit.init(layer, jax.random.key(0), x)
  with raises(TypeError, "params", "'forward' and 'backward'", "['kernel']"):
    layer.apply({"kernel": 1}, x)
  with raises(ValueError, "state=", "stateful=False", "initial_state="):
    layer.apply(params, x, state=layer.get_initial_state(B))
  with raises(ValueError, "inputs have 5 features", "built for 3"):
    layer.apply(params, _x(0, (B, T, 5)))
  weights = rj.interop.to_keras(layer, params)
  with raises(ValueError, "needs 3 Keras weight arrays", "got 2"):
    rj.interop.from_keras(layer, weights[:5])
  with raises(ValueError, "7 arrays", "uses 6", "1 left over"):
    rj.interop.from_keras(layer, weights + [np.zeros(2)])
