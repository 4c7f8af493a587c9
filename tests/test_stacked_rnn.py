"""rj.StackedRNN: PyTorch's multi-layer RNN as one layer. Against real PyTorch outputs
(tests/fixtures/torch_stacked.npz and torch_rnns.npz, made offline by the scripts beside
them) and against the same computation written out with rnnjax's single layers."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax as rj
from tests.test_errors import raises

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
STACKED = np.load(FIXTURES / "torch_stacked.npz")
BASIC = np.load(FIXTURES / "torch_rnns.npz")
ATOL = 2e-5


def fixture(arrays, name):
  out = {}
  for key in arrays.files:
    if key.startswith(f"{name}/sd/"):
      out.setdefault("sd", {})[key[len(name) + 4:]] = arrays[key]
    elif key.startswith(f"{name}/"):
      out[key[len(name) + 1:]] = arrays[key]
  return out


# name: (fixture file, kind, the rnnjax layer, or None: from_torch(kind, return_layer=True))
CASES = {
    "lstm_proj": (STACKED, "lstm", None),
    "lstm_proj_stacked_bidirectional": (STACKED, "lstm", None),
    "gru_three_bidirectional": (STACKED, "gru", None),
    "rnn_relu_stacked_bidirectional": (STACKED, "rnn", rj.StackedRNN(
        rj.SimpleRNN(5, activation="relu", return_sequences=True, return_state=True),
        num_layers=2, bidirectional=True, state_order="torch")),
    "lstm_stacked_bidirectional": (BASIC, "lstm", None),
    "gru_stacked": (BASIC, "gru", None),
}


@pytest.mark.parametrize("name", CASES)
def test_torch_outputs_and_states(name):
  arrays, kind, layer = CASES[name]
  fix = fixture(arrays, name)
  if layer is None:
    layer, params = rj.interop.from_torch(kind, fix["sd"], return_layer=True)
  else:
    params = rj.interop.from_torch(layer, fix["sd"])
  lstm = kind == "lstm"
  names = ("h_n", "c_n") if lstm else ("h_n",)
  out, *states = layer.apply(params, fix["x"])
  np.testing.assert_allclose(out, fix["out"], atol=ATOL)
  for label, state in zip(names, states):
    np.testing.assert_allclose(state, fix[label], atol=ATOL)
  start = (fix["h0"], fix["c0"]) if lstm else (fix["h0"],)
  out, *states = layer.apply(params, fix["x"], initial_state=start)
  np.testing.assert_allclose(out, fix["out_from_h0"], atol=ATOL)
  for label, state in zip(names, states):
    np.testing.assert_allclose(state, fix[f"{label}_from_h0"], atol=ATOL)
  sd = rj.interop.to_torch(layer, params)       # back to a state_dict torch would load
  assert {k: v.shape for k, v in sd.items()} == {k: v.shape for k, v in fix["sd"].items()}
  again = layer.apply(rj.interop.from_torch(layer, sd), fix["x"])
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), again,
               layer.apply(params, fix["x"]))


def composed(params, x, mask, template, levels, bidirectional):
  """The same stack written out: rj layers level by level (Keras state order)."""
  states = []
  for i in range(levels):
    layer = template if i == levels - 1 else rj.LSTM(template.units, return_sequences=True,
                                                      return_state=True)
    if bidirectional:
      layer = rj.Bidirectional(layer)
    x, *s = layer.apply(params[i], x, mask=mask)
    states += s
  return x, states


@pytest.mark.parametrize("bidirectional", [False, True])
def test_equals_rnnjax_layers_composed(bidirectional):
  template = rj.LSTM(4, return_sequences=False, return_state=True)
  stack = rj.StackedRNN(template, num_layers=3, bidirectional=bidirectional)
  x = jax.random.normal(jax.random.key(0), (3, 6, 2))
  mask = jnp.arange(6)[None] < jnp.array([6, 2, 4])[:, None]
  params = stack.init(jax.random.key(1), x)
  assert isinstance(params, tuple) and len(params) == 3
  out, *states = stack.apply(params, x, mask=mask)
  ref, ref_states = composed(params, x, mask, template, 3, bidirectional)
  np.testing.assert_allclose(out, ref, atol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), states, ref_states)
  # The torch order is the same states, stacked (L*D, B, H).
  torch_order = rj.StackedRNN(template, num_layers=3, bidirectional=bidirectional,
                              state_order="torch")
  _, h_n, c_n = torch_order.apply(params, x, mask=mask)
  np.testing.assert_allclose(h_n, np.stack(states[0::2]), atol=1e-6)
  np.testing.assert_allclose(c_n, np.stack(states[1::2]), atol=1e-6)
  # and goes back in: initial_state in torch order equals the flat Keras order.
  a = torch_order.apply(params, x, initial_state=(h_n, c_n))
  b = stack.apply(params, x, initial_state=states)
  np.testing.assert_allclose(a[0], b[0], atol=1e-6)


def test_inter_layer_dropout_is_inverted_dropout_between_levels_only():
  # Linear levels: the mean over dropout draws is the output without dropout.
  template = rj.SimpleRNN(3, activation="linear", return_sequences=True)
  stack = rj.StackedRNN(template, num_layers=2, dropout=0.5)
  x = jax.random.normal(jax.random.key(0), (2, 4, 3))
  params = stack.init(jax.random.key(1), x)
  plain = stack.apply(params, x)
  np.testing.assert_allclose(stack.apply(params, x, training=False, rng=jax.random.key(2)),
                             plain)
  draws = jax.vmap(lambda k: stack.apply(params, x, training=True, rng=k))(
      jax.random.split(jax.random.key(3), 4000))
  assert not np.allclose(draws[0], plain)
  # The top output is not dropped (zeros only where every input so far was: ~4%, not 50%).
  assert (np.asarray(draws) == 0).mean() < 0.1
  np.testing.assert_allclose(draws.mean(0), plain, atol=0.1 * np.abs(plain).max())
  with raises(ValueError, "training=True with dropout needs rng="):
    stack.apply(params, x, training=True)


def test_options_flow_and_errors():
  x = jnp.ones((2, 5, 3))
  stack = rj.StackedRNN(rj.GRU(4, initializers="torch", time_major=True, return_sequences=True),
                        num_layers=2)
  assert all(level.initializers == "torch" for level in stack.levels)
  assert stack.apply(stack.init(jax.random.key(0), x), x).shape == (2, 5, 4)  # time-major
  keras = rj.StackedRNN(rj.LSTM(4), num_layers=2, bidirectional=True)
  params = keras.init(jax.random.key(0), x)
  weights = rj.interop.to_keras(keras, params)
  assert len(weights) == 12
  jax.tree.map(np.testing.assert_array_equal, rj.interop.from_keras(keras, weights), params)
  regularized = rj.StackedRNN(rj.LSTM(4, kernel_regularizer="l2"), num_layers=2)
  reg_params = regularized.init(jax.random.key(0), x)
  np.testing.assert_allclose(rj.regularization_loss(regularized, reg_params), 0.01 * sum(
      jnp.sum(p["kernel"] ** 2) for p in reg_params), rtol=1e-6)
  with raises(TypeError, "layer must be an rnnjax sequence layer"):
    rj.StackedRNN(rj.LSTMCell(4))
  with raises(ValueError, "num_layers must be a positive int"):
    rj.StackedRNN(rj.LSTM(4), num_layers=0)
  with raises(ValueError, "proj_size is for an LSTM template"):
    rj.StackedRNN(rj.GRU(4), proj_size=2)
  with raises(ValueError, "proj_size must be smaller than units"):
    rj.StackedRNN(rj.LSTM(4), proj_size=4)
  with raises(ValueError, "stateful=True"):
    rj.StackedRNN(rj.LSTM(4, stateful=True))
  with raises(ValueError, 'state_order must be "keras" or "torch"'):
    rj.StackedRNN(rj.LSTM(4), state_order="pytorch")
  with raises(ValueError, "dropout must be a float in [0, 1)"):
    rj.StackedRNN(rj.LSTM(4), dropout=1.0)
  with raises(TypeError, "params must be the tuple that StackedRNN.init returns"):
    keras.apply(params[0], x)
  torch_order = rj.StackedRNN(rj.LSTM(4, return_state=True), num_layers=2, state_order="torch")
  with raises(ValueError, "first axis of L*D = 2"):
    torch_order.apply(torch_order.init(jax.random.key(0), x), x,
                      initial_state=(jnp.zeros((3, 2, 4)), jnp.zeros((3, 2, 4))))
