"""The Flax cell modules (`rj.linen.*Cell`, `rj.nnx.*Cell`): inside flax's own `nn.RNN` /
`nnx.RNN` and step by step they compute what the pure rnnjax layer computes with the same
params; per-step keys for cells with `needs_rng`; NNX Bidirectional from a pure layer."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import rnnjax as rj
from tests.cells import NoisyCell
from tests.test_errors import raises

B, T, F = 3, 5, 4


def normal(seed, shape):
  return jax.random.normal(jax.random.key(seed), shape)


def close(a, b):
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, atol=2e-6), a, b)


# module, the equivalent pure layer, per-step input shape
KINDS = {
    "simple_rnn": (lambda: rj.linen.SimpleRNNCell(6), rj.SimpleRNN(6, return_sequences=True,
                                                                  return_state=True), (F,)),
    "gru": (lambda: rj.linen.GRUCell(6), rj.GRU(6, return_sequences=True, return_state=True), (F,)),
    "lstm": (lambda: rj.linen.LSTMCell(6, initializers="flax"),
             rj.LSTM(6, initializers="flax", return_sequences=True, return_state=True), (F,)),
    "conv_lstm_1d": (lambda: rj.linen.ConvLSTM1DCell(3, 3, padding="same"),
                     rj.ConvLSTM1D(3, 3, padding="same", return_sequences=True,
                                   return_state=True), (7, 2)),
    "conv_lstm_2d": (lambda: rj.linen.ConvLSTM2DCell(3, 3, padding="same"),
                     rj.ConvLSTM2D(3, 3, padding="same", return_sequences=True,
                                   return_state=True), (5, 5, 2)),
}


@pytest.mark.parametrize("kind", KINDS)
def test_linen_cell_in_nn_rnn_equals_the_pure_layer(kind):
  make, layer, step = KINDS[kind]
  x = normal(0, (B, T, *step))
  model = nn.RNN(make(), return_carry=True)
  variables = model.init(jax.random.key(1), x)
  params = variables["params"]["cell"]
  # The cell's own Keras-layout params, what rj.<Kind>Cell.init gives.
  spec = jax.eval_shape(lambda: layer.cell.init(jax.random.key(0), step))
  assert jax.tree.map(jnp.shape, params) == jax.tree.map(lambda s: s.shape, spec)
  carry, y = model.apply(variables, x)
  out, *states = layer.apply(params, x)
  close(y, out)
  close(carry, states[0] if len(states) == 1 else tuple(states))
  # Step by step, as a decoder runs it, from initialize_carry.
  cell = make()
  carry = cell.initialize_carry(jax.random.key(2), x[:, 0].shape)
  for t in range(T):
    carry, y_t = cell.apply({"params": params}, carry, x[:, t])
    close(y_t, out[:, t])


def test_linen_seq_lengths_leading_batch_axes_and_initial_carry():
  layer = rj.LSTM(6, return_sequences=True, return_state=True)
  x = normal(0, (B, T, F))
  lengths = jnp.array([5, 2, 3])
  model = nn.RNN(rj.linen.LSTMCell(6), return_carry=True)
  variables = model.init(jax.random.key(1), x)
  params = variables["params"]["cell"]
  (h, c), _ = model.apply(variables, x, seq_lengths=lengths)
  _, h_ref, c_ref = layer.apply(params, x, seq_lengths=lengths)
  close((h, c), (h_ref, c_ref))
  start = (normal(3, (B, 6)), normal(4, (B, 6)))
  _, y = model.apply(variables, x, initial_carry=start)
  close(y, layer.apply(params, x, initial_state=list(start))[0])
  # Two batch axes (2, B): the same as B rows each.
  x2 = jnp.stack([x, 2 * x])
  y2 = nn.RNN(rj.linen.LSTMCell(6)).apply(variables, x2)
  close(y2[1], layer.apply(params, 2 * x)[0])


def test_linen_per_step_key():
  x = jnp.zeros((B, T, F))
  model = nn.RNN(rj.linen.RecurrentCell(NoisyCell(2)), split_rngs={"params": False, "step": True})
  variables = model.init({"params": jax.random.key(0), "step": jax.random.key(1)}, x)
  y = model.apply(variables, x, rngs={"step": jax.random.key(2)})
  assert len({float(y[0, t, 0]) for t in range(T)}) == T        # a new key at every step
  close(y, model.apply(variables, x, rngs={"step": jax.random.key(2)}))
  same = nn.RNN(rj.linen.RecurrentCell(NoisyCell(2), rng_stream="noise"),
                split_rngs={"params": False, "noise": False})
  y = same.apply(variables, x, rngs={"noise": jax.random.key(2)})
  close(y[:, 0], y[:, -1])                                       # split off: one key
  with pytest.raises(Exception, match="step"):
    model.apply(variables, x)


def test_pure_layers_take_per_step_keys_as_inputs():
  @dataclasses.dataclass(frozen=True)
  class KeyedNoise(rj.Cell):
    state_size = 2
    output_size = 2

    def init(self, key, input_shape):
      return {}

    def __call__(self, params, inputs, states, *, training=False, constants=None):
      x, key_data = inputs                          # (B, F), (B, 2) uint32
      keys = jax.random.wrap_key_data(key_data)
      h = x[:, :2] + jax.vmap(lambda k: jax.random.normal(k, (2,)))(keys)
      return h, (h,)

  x = jnp.zeros((B, T, F))
  keys = jax.random.split(jax.random.key(0), (B, T))
  layer = rj.RNN(KeyedNoise(), return_sequences=True)
  y = layer.apply({}, (x, jax.random.key_data(keys)))
  expected = jax.vmap(jax.vmap(lambda k: jax.random.normal(k, (2,))))(keys)
  close(y, expected)


def test_linen_dropout_fresh_or_variational_masks():
  # kernel I, no recurrence, linear: the output is the input-dropout mask itself.
  cell = rj.linen.SimpleRNNCell(F, dropout=0.5, activation="linear", use_bias=False,
                                training=True)
  params = {"cell": {"kernel": jnp.eye(F), "recurrent_kernel": jnp.zeros((F, F))}}
  x = jnp.ones((B, T, F))
  for split in (True, False):
    model = nn.RNN(cell, split_rngs={"params": False, "dropout": split})
    y = np.asarray(model.apply({"params": params}, x, rngs={"dropout": jax.random.key(0)}))
    assert set(np.unique(y)) == {0.0, 2.0}                   # inverted dropout at 0.5
    assert np.array_equal(y[:, 0], y[:, -1]) != split          # split off: Keras's masks
  evaluated = cell.copy(training=False)
  close(nn.RNN(evaluated).apply({"params": params}, x), x)


def test_nnx_cell_in_nnx_rnn_equals_the_pure_layer():
  x = normal(0, (B, T, F))
  cell = rj.nnx.LSTMCell(F, 6, initializers="torch", rngs=nnx.Rngs(0))
  assert sorted(cell.pure_params()) == ["bias", "kernel", "recurrent_kernel"]
  layer = rj.LSTM(6, return_sequences=True, return_state=True)
  (h, c), y = nnx.RNN(cell, return_carry=True)(x)
  out, h_ref, c_ref = layer.apply(cell.pure_params(), x)
  close((y, h, c), (out, h_ref, c_ref))
  conv = rj.nnx.ConvLSTM2DCell((5, 5, 2), 3, 3, padding="same", rngs=nnx.Rngs(0))
  xc = normal(1, (B, T, 5, 5, 2))
  carry, y = nnx.RNN(conv, return_carry=True)(xc)
  out, *states = rj.ConvLSTM2D(3, 3, padding="same", return_sequences=True,
                               return_state=True).apply(conv.pure_params(), xc)
  close((y, carry), (out, tuple(states)))
  gru = rj.nnx.GRUCell(F, 6, rngs=nnx.Rngs(0))
  h = gru.initialize_carry((B, F))
  assert h.shape == (B, 6)
  with raises(ValueError, "carry of GRUCell must have shapes (3, 6)"):
    gru((h, h), x[:, 0])


def test_nnx_per_step_key_and_dropout_modes():
  x = jnp.zeros((B, T, F))
  model = nnx.RNN(rj.nnx.RecurrentCell(NoisyCell(2), F, rngs=nnx.Rngs(0, step=1)))
  y = model(x)
  assert len({float(y[0, t, 0]) for t in range(T)}) == T
  assert not np.allclose(model(x), y)                          # the stream moved on
  cell = rj.nnx.SimpleRNNCell(F, F, dropout=0.5, use_bias=False, activation="linear",
                              rngs=nnx.Rngs(0))
  cell.kernel.set_value(jnp.eye(F))
  cell.recurrent_kernel.set_value(jnp.zeros((F, F)))
  ones = jnp.ones((B, F))
  _, y = cell(cell.initialize_carry((B, F)), ones)
  assert set(np.unique(np.asarray(y))) <= {0.0, 2.0} and (y == 0).any()
  cell.eval()
  close(cell(cell.initialize_carry((B, F)), ones)[1], ones)


def test_nnx_bidirectional_from_a_pure_layer_builds_params_once():
  calls = []

  @dataclasses.dataclass(frozen=True)
  class CountingCell(rj.LSTMCell):
    def init(self, key, input_shape):
      calls.append(1)
      return super().init(key, input_shape)

  rngs = nnx.Rngs(0)
  model = rj.nnx.Bidirectional(F, rj.RNN(CountingCell(4), return_sequences=True), rngs=rngs)
  assert len(calls) == 2                      # one init per direction, nothing thrown away
  x = normal(0, (B, T, F))
  close(model(x), model.pure_layer.apply(model.pure_params(), x))
  summed = rj.nnx.Bidirectional(F, rj.GRU(4), merge_mode="sum",
                                backward_layer=rj.GRU(4, go_backwards=True), rngs=rngs)
  assert summed(x).shape == (B, 4)
  wrapped = rj.nnx.wrap(rj.Bidirectional(rj.LSTM(4)), F, rngs=rngs)
  assert isinstance(wrapped, rj.nnx.Bidirectional) and wrapped(x).shape == (B, 8)
  with raises(TypeError, "in_features must be the per-step input size"):
    rj.nnx.Bidirectional(nnx.Linear(2, 2, rngs=rngs), rngs=rngs)


def test_cell_module_arguments():
  with raises(TypeError, "pure_cell must be an rnnjax cell", "LSTM"):
    rj.linen.RecurrentCell(rj.LSTM(3))
  with raises(TypeError, "cell must be an rnnjax cell"):
    rj.nnx.RecurrentCell(rj.LSTMCell, 3, rngs=nnx.Rngs(0))
  with raises(TypeError, "takes the cell's arguments or pure_cell=, not both"):
    rj.linen.LSTMCell(3, pure_cell=rj.LSTMCell(3))
  assert rj.linen.GRUCell(3, reset_after=False).pure_cell == rj.GRUCell(3, reset_after=False)
  assert list(__import__("inspect").signature(rj.nnx.LSTMCell).parameters)[:2] == [
      "in_features", "units"]
  cell = rj.linen.LSTMCell(3)
  assert cell.num_feature_axes == 1 and rj.linen.ConvLSTM3DCell(2, 3).num_feature_axes == 4
  carry = cell.initialize_carry(jax.random.key(0), (2, 7, 5))
  assert [c.shape for c in carry] == [(2, 7, 3), (2, 7, 3)]
  with raises(ValueError, "constants= was given but LSTMCell takes no constants"):
    variables = cell.init(jax.random.key(0), carry, jnp.ones((2, 7, 5)))
    cell.apply(variables, carry, jnp.ones((2, 7, 5)), constants=jnp.ones((2, 7, 1)))
  dropout = rj.linen.LSTMCell(3, dropout=0.2)
  variables = dropout.init(jax.random.key(0), carry, jnp.ones((2, 7, 5)))
  with raises(ValueError, "training=True but no 'dropout' rng"):
    dropout.apply(variables, carry, jnp.ones((2, 7, 5)), training=True)
