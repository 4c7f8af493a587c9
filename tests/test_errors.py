"""Bad input raises a clear ValueError/TypeError naming the argument, what it got and
what was expected, before the loop is traced (also under jit)."""

import numpy as np
import pytest

import jax
import jax.numpy as jnp
import rnnjax as rj

X = jnp.ones((2, 5, 3))


@pytest.fixture(scope="module")
def lstm():
  layer = rj.LSTM(4)
  return layer, layer.init(jax.random.key(0), X)


def raises(exc, *fragments):
  """pytest.raises whose message must contain every fragment."""

  class _Check:
    def __enter__(self):
      self.ctx = pytest.raises(exc)
      self.info = self.ctx.__enter__()
      return self.info

    def __exit__(self, *args):
      handled = self.ctx.__exit__(*args)
      message = str(self.info.value)
      for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
      return handled

  return _Check()


def test_wrong_input_rank(lstm):
  layer, params = lstm
  with raises(ValueError, "inputs", "(B, T, ...)", "(2, 3)", "rank 2"):
    layer.apply(params, jnp.ones((2, 3)))
  with raises(ValueError, "inputs", "(3,)", "(T, B, ...)"):
    rj.LSTM(4, time_major=True).init(jax.random.key(0), jnp.ones((3,)))


def test_builtin_layers_take_one_feature_axis(lstm):
  layer, params = lstm
  with raises(ValueError, "(B, T, F)", "(3, 1)"):
    layer.apply(params, jnp.ones((2, 5, 3, 1)))


def test_feature_size_differs_from_params(lstm):
  layer, params = lstm
  with raises(ValueError, "inputs have 7 features", "built for 3", "(3, 16)"):
    layer.apply(params, jnp.ones((2, 5, 7)))


def test_errors_are_raised_at_trace_time_under_jit(lstm):
  layer, params = lstm
  with raises(ValueError, "inputs have 7 features"):
    jax.jit(layer.apply)(params, jnp.ones((2, 5, 7)))


def test_params_of_the_wrong_kind(lstm):
  layer, _ = lstm
  with raises(TypeError, "params", "kernel", "list"):
    layer.apply([1, 2], X)
  with raises(TypeError, "params", "keys ['w']"):
    layer.apply({"w": 1}, X)


def test_mask_shape_and_dtype(lstm):
  layer, params = lstm
  with raises(ValueError, "mask", "(B, T) = (2, 5)", "(5, 2)"):
    layer.apply(params, X, mask=jnp.ones((5, 2), bool))
  with raises(TypeError, "mask", "bool", "float32"):
    layer.apply(params, X, mask=jnp.ones((2, 5), jnp.float32))
  with raises(ValueError, "mask", "(T, B) = (5, 2)"):
    rj.LSTM(4, time_major=True).apply(params, jnp.ones((5, 2, 3)), mask=jnp.ones((2, 5), bool))


def test_seq_lengths(lstm):
  layer, params = lstm
  with raises(ValueError, "seq_lengths", "(B,) = (2,)", "(2, 1)"):
    layer.apply(params, X, seq_lengths=jnp.ones((2, 1), jnp.int32))
  with raises(TypeError, "seq_lengths", "integer", "float32"):
    layer.apply(params, X, seq_lengths=jnp.ones((2,), jnp.float32))
  with raises(ValueError, "either mask or seq_lengths"):
    layer.apply(params, X, mask=jnp.ones((2, 5), bool), seq_lengths=jnp.ones((2,), jnp.int32))


def test_initial_state_count_and_shapes(lstm):
  layer, params = lstm
  h = jnp.zeros((2, 4))
  with raises(ValueError, "initial_state", "2 state array(s)", "(2, 4)"):
    layer.apply(params, X, initial_state=[h])
  with raises(ValueError, "initial_state", "shapes", "(2, 5)"):
    layer.apply(params, X, initial_state=[h, jnp.zeros((2, 5))])
  with raises(ValueError, "initial_state has batch size 3", "batch size 2"):
    layer.apply(params, X, initial_state=[jnp.zeros((3, 4)), jnp.zeros((3, 4))])
  gru = rj.GRU(4)
  with raises(ValueError, "initial_state", "1 state array(s)"):
    gru.apply(gru.init(jax.random.key(0), X), X, initial_state=[h, h])


def test_stateful_state_with_another_batch_size():
  layer = rj.LSTM(4, stateful=True)
  params = layer.init(jax.random.key(0), X)
  _, state = layer.apply(params, X)
  with raises(ValueError, "state has batch size 2", "batch size 6"):
    layer.apply(params, jnp.ones((6, 5, 3)), state=state)


def test_state_on_a_non_stateful_layer(lstm):
  layer, params = lstm
  with raises(ValueError, "state=", "stateful=True", "initial_state="):
    layer.apply(params, X, state=(jnp.zeros((2, 4)), jnp.zeros((2, 4))))


def test_training_with_dropout_needs_rng():
  layer = rj.LSTM(4, dropout=0.2)
  params = layer.init(jax.random.key(0), X)
  with raises(ValueError, "training=True", "rng=", "dropout=0.2", "got rng=None"):
    layer.apply(params, X, training=True)
  with raises(TypeError, "rng", "jax.random key", "float32"):
    layer.apply(params, X, training=True, rng=jnp.ones(2))
  with raises(TypeError, "training", "Python bool"):
    layer.apply(params, X, training=jnp.asarray(True))
  layer.apply(params, X, training=False)  # no rng needed without training


def test_unknown_activation_and_initializer_names():
  with raises(ValueError, "activation='tanhh'", "not a known activation", "tanh"):
    rj.LSTM(4, activation="tanhh")
  with raises(ValueError, "recurrent_activation='sigmod'"):
    rj.GRUCell(4, recurrent_activation="sigmod")
  with raises(ValueError, "kernel_initializer='glorot'", "glorot_uniform"):
    rj.SimpleRNN(4, kernel_initializer="glorot")
  with raises(TypeError, "recurrent_initializer", "int"):
    rj.LSTM(4, recurrent_initializer=3)


def test_invalid_constructor_values():
  with raises(ValueError, "units", "positive", "0"):
    rj.LSTM(0)
  with raises(TypeError, "units", "'4'"):
    rj.GRU("4")
  with raises(ValueError, "dropout", "[0, 1)", "1.5"):
    rj.LSTM(4, dropout=1.5)
  with raises(ValueError, "recurrent_dropout", "-0.1"):
    rj.GRU(4, recurrent_dropout=-0.1)
  with raises(ValueError, "unroll", "0"):
    rj.LSTM(4, unroll=0)
  with raises(TypeError, "return_sequences", "bool"):
    rj.LSTM(4, return_sequences="yes")
  with raises(ValueError, "implementation", "3"):
    rj.LSTM(4, implementation=3)
  with raises(ValueError, "use_fused", "'maybe'"):
    rj.LSTM(4, use_fused="maybe")
  with raises(TypeError, "dtype", "'float33'"):
    rj.LSTM(4, dtype="float33")


def test_rnn_needs_cells():
  with raises(TypeError, "cell", "rj.Cell"):
    rj.RNN(lambda x: x)
  with raises(TypeError, "cells[1]", "rnnjax Cell"):
    rj.RNN([rj.LSTMCell(2), "gru"])
  with raises(ValueError, "at least one cell"):
    rj.StackedRNNCells([])


def test_init_key(lstm):
  layer, _ = lstm
  with raises(TypeError, "key", "jax.random key", "int"):
    layer.init(0, X)


def test_keras_weights_with_wrong_count_or_shapes():
  layer = rj.LSTM(4)
  w = [np.zeros((3, 16)), np.zeros((4, 16)), np.zeros((16,))]
  with raises(ValueError, "needs 3 Keras weight arrays", "got 2", "recurrent_kernel (4, 16)"):
    rj.interop.from_keras(layer, w[:2])
  with raises(ValueError, "'recurrent_kernel'", "(4, 16)", "got (4, 12)"):
    rj.interop.from_keras(layer, [w[0], np.zeros((4, 12)), w[2]])
  with raises(ValueError, "4 arrays", "uses 3", "1 left over"):
    rj.interop.from_keras(layer, w + [np.zeros(1)])
  with raises(TypeError, "weights", "list"):
    rj.interop.from_keras(layer, np.zeros(3))
