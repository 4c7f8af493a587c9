"""Flax linen LSTMCell / OptimizedLSTMCell / GRUCell / SimpleCell params <-> rnnjax:
flax's own nn.RNN with the original params against rnnjax with converted ones."""

import numpy as np
import pytest

import flax.linen as nn
import jax
import jax.numpy as jnp
import rnnjax as rj

from tests.cells import MyCell
from tests.interop.test_torch import Twin
from tests.test_errors import raises

B, T, F, U = 3, 6, 3, 4
X = jnp.asarray(np.random.default_rng(0).normal(size=(B, T, F)), jnp.float32)
ATOL = 1e-5

# name: (flax cell, rnnjax layer with the same math)
CASES = {
    "LSTMCell": (lambda: nn.LSTMCell(U), lambda **kw: rj.LSTM(U, **kw)),
    "OptimizedLSTMCell": (lambda: nn.OptimizedLSTMCell(U), lambda **kw: rj.LSTM(U, **kw)),
    "GRUCell": (lambda: nn.GRUCell(U), lambda **kw: rj.GRU(U, **kw)),
    "SimpleCell": (lambda: nn.SimpleCell(U), lambda **kw: rj.SimpleRNN(U, **kw)),
}


def randomize(tree, seed):
  """Random normal leaves (flax initialises biases to zero, which would hide bias bugs)."""
  leaves, treedef = jax.tree.flatten(tree)
  rng = np.random.default_rng(seed)
  return jax.tree.unflatten(
      treedef, [jnp.asarray(0.5 * rng.normal(size=l.shape), l.dtype) for l in leaves])


def flax_run(cell, variables, x, initial_carry=None, seq_lengths=None):
  carry, out = nn.RNN(cell, return_carry=True).apply(
      variables, x, initial_carry=initial_carry, seq_lengths=seq_lengths)
  return carry, out


def as_keras_states(name, carry):
  """Flax's carry in Keras's order: LSTM (c, h) -> [h, c]."""
  return [carry[1], carry[0]] if "LSTM" in name else [carry]


@pytest.mark.parametrize("name", CASES)
def test_from_flax_gives_flax_outputs(name):
  make_flax, make_layer = CASES[name]
  variables = randomize(nn.RNN(make_flax()).init(jax.random.key(0), X), seed=1)
  carry, flax_out = flax_run(make_flax(), variables, X)
  layer = make_layer(return_sequences=True, return_state=True)
  out, *states = layer.apply(rj.interop.from_flax(layer, variables), X)
  np.testing.assert_allclose(out, flax_out, atol=ATOL)
  for s, f in zip(states, as_keras_states(name, carry)):
    np.testing.assert_allclose(s, f, atol=ATOL)
  kind = {"LSTMCell": "lstm", "OptimizedLSTMCell": "lstm", "GRUCell": "gru", "SimpleCell": "rnn"}[name]
  by_kind = rj.interop.from_flax(kind, variables["params"]["cell"])
  for key, value in by_kind.items():
    np.testing.assert_array_equal(value, rj.interop.from_flax(layer, variables)[key])


@pytest.mark.parametrize("name", CASES)
def test_to_flax_gives_rnnjax_outputs(name):
  make_flax, make_layer = CASES[name]
  layer = make_layer(return_sequences=True, return_state=True)
  params = randomize(layer.init(jax.random.key(2), X), seed=3)   # every bias nonzero
  out, *states = layer.apply(params, X)
  cell_params = rj.interop.to_flax(layer, params)
  expected = jax.tree.map(lambda a: a.shape, nn.RNN(make_flax()).init(jax.random.key(0), X))
  assert jax.tree.map(lambda a: a.shape, {"params": {"cell": cell_params}}) == expected
  carry, flax_out = flax_run(make_flax(), {"params": {"cell": cell_params}}, X)
  np.testing.assert_allclose(flax_out, out, atol=ATOL)
  for s, f in zip(states, as_keras_states(name, carry)):
    np.testing.assert_allclose(f, s, atol=ATOL)


def test_lstm_carry_order_and_right_padding():
  """A flax initial carry (c0, h0) is rnnjax's [h0, c0]; flax seq_lengths is a right-padded
  mask: the same final state, and the same outputs at valid steps."""
  variables = randomize(nn.RNN(nn.LSTMCell(U)).init(jax.random.key(0), X), seed=4)
  rng = np.random.default_rng(5)
  h0, c0 = (jnp.asarray(rng.normal(size=(B, U)), jnp.float32) for _ in range(2))
  lengths = jnp.array([T, 2, 1])
  carry, flax_out = flax_run(nn.LSTMCell(U), variables, X, initial_carry=(c0, h0),
                             seq_lengths=lengths)
  layer = rj.LSTM(U, return_sequences=True, return_state=True)
  out, h, c = layer.apply(rj.interop.from_flax(layer, variables), X, initial_state=[h0, c0],
                          seq_lengths=lengths)
  np.testing.assert_allclose(h, carry[1], atol=ATOL)
  np.testing.assert_allclose(c, carry[0], atol=ATOL)
  valid = np.arange(T)[None, :] < np.asarray(lengths)[:, None]
  np.testing.assert_allclose(np.asarray(out)[valid], np.asarray(flax_out)[valid], atol=ATOL)


def test_bidirectional_params():
  """nn.Bidirectional (backward reversed, kept in order, concatenated) <-> {"forward", "backward"}."""
  def flax_bi():
    return nn.Bidirectional(nn.RNN(nn.GRUCell(U)), nn.RNN(nn.GRUCell(U)))

  variables = randomize(flax_bi().init(jax.random.key(0), X), seed=6)
  flax_out = flax_bi().apply(variables, X)
  params = rj.interop.from_flax("gru", variables)
  assert sorted(params) == ["backward", "forward"]
  fwd = rj.GRU(U, return_sequences=True)
  bwd = rj.GRU(U, return_sequences=True, go_backwards=True)
  out = jnp.concatenate([fwd.apply(params["forward"], X),
                         bwd.apply(params["backward"], X)[:, ::-1]], axis=-1)
  np.testing.assert_allclose(out, flax_out, atol=ATOL)
  back = rj.interop.to_flax(Twin(fwd, bwd), params)
  np.testing.assert_allclose(flax_bi().apply({"params": back}, X), flax_out, atol=ATOL)


def test_flax_gru_is_keras_reset_after_gru():
  """Flax's GRUCell (with b_hn) computes Keras's reset_after=True GRU: Keras 3 itself
  reproduces flax's outputs with the converted weights."""
  import keras
  from tests import keras_reference

  variables = randomize(nn.RNN(nn.GRUCell(U)).init(jax.random.key(0), X), seed=7)
  _, flax_out = flax_run(nn.GRUCell(U), variables, X)
  layer = rj.GRU(U, return_sequences=True)
  twin = keras.layers.GRU(U, return_sequences=True, reset_after=True)
  keras_reference.run(twin, np.asarray(X))
  twin.set_weights(rj.interop.to_keras(layer, rj.interop.from_flax(layer, variables)))
  np.testing.assert_allclose(keras_reference.run(twin, np.asarray(X)), flax_out, atol=ATOL)


def test_use_bias_false():
  layer = rj.LSTM(U, use_bias=False, return_sequences=True)
  params = randomize(layer.init(jax.random.key(0), X), seed=8)
  flax_params = rj.interop.to_flax(layer, params)
  np.testing.assert_array_equal(flax_params["hi"]["bias"], 0.0)
  np.testing.assert_allclose(flax_run(nn.LSTMCell(U), {"params": {"cell": flax_params}}, X)[1],
                             layer.apply(params, X), atol=ATOL)
  assert sorted(rj.interop.from_flax(layer, flax_params)) == ["kernel", "recurrent_kernel"]


# Bad input -----------------------------------------------------------------------------


def test_from_flax_bad_input():
  variables = nn.RNN(nn.LSTMCell(U)).init(jax.random.key(0), X)
  cell = variables["params"]["cell"]
  with raises(ValueError, "flax_params", "LSTMCell / OptimizedLSTMCell", "GRUCell", "got ['a']"):
    rj.interop.from_flax(rj.LSTM(U), {"a": 1})
  with raises(ValueError, "flax LSTMCell / OptimizedLSTMCell", "GRUCell(units=4)"):
    rj.interop.from_flax(rj.GRU(U), variables)
  with raises(ValueError, "flax_params['hf']['kernel']", "(4, 4)", "(5, 4)"):
    rj.interop.from_flax(rj.LSTM(U), {**cell, "hf": {**cell["hf"], "kernel": jnp.ones((5, 4))}})
  with raises(ValueError, "flax_params['if']['kernel']", "(3, 4)", "(2, 4)"):
    rj.interop.from_flax(rj.LSTM(U), {**cell, "if": {"kernel": jnp.ones((2, 4))}})
  with raises(ValueError, "flax_params['ii']['kernel']", "(3, 5)", "LSTMCell(units=5)", "(3, 4)"):
    rj.interop.from_flax(rj.LSTM(5), cell)
  with raises(ValueError, "flax_params['hf']['bias']", "(4,)", "(3,)"):
    rj.interop.from_flax(rj.LSTM(U), {**cell, "hf": {**cell["hf"], "bias": jnp.ones(3)}})
  with raises(ValueError, "flax_params['ii']", "['kernel']", "['bias', 'kernel']"):
    rj.interop.from_flax(rj.LSTM(U), {**cell, "ii": {**cell["ii"], "bias": jnp.ones(4)}})
  with raises(ValueError, "reset_after=False"):
    rj.interop.from_flax(rj.GRU(U, reset_after=False),
                         nn.RNN(nn.GRUCell(U)).init(jax.random.key(0), X))
  with raises(ValueError, "nonzero biases", "use_bias=False"):
    rj.interop.from_flax(rj.LSTM(U, use_bias=False), randomize(variables, 0))
  with raises(ValueError, "GRUCell, not of kind 'lstm'"):
    rj.interop.from_flax("lstm", nn.RNN(nn.GRUCell(U)).init(jax.random.key(0), X))
  with raises(ValueError, "layer", "'conv'"):
    rj.interop.from_flax("conv", variables)
  with raises(TypeError, "flax has no stacked cells", "2 levels"):
    rj.interop.from_flax(rj.RNN([rj.LSTMCell(U), rj.LSTMCell(U)]), variables)
  with raises(ValueError, "2 direction(s)", "one cell"):
    rj.interop.from_flax(Twin(rj.LSTM(U), rj.LSTM(U)), variables)
  with raises(TypeError, "flax_params['ii']['kernel']", "floating-point"):
    rj.interop.from_flax(rj.LSTM(U), {**cell, "ii": {"kernel": np.array([["x"] * 4] * 3)}})


def test_to_flax_bad_input():
  layer = rj.GRU(U)
  params = layer.init(jax.random.key(0), X)
  with raises(ValueError, "params['recurrent_kernel']", "(4, 12)", "(5, 12)"):
    rj.interop.to_flax(layer, {**params, "recurrent_kernel": jnp.ones((5, 12))})
  with raises(ValueError, "reset_after=False"):
    rj.interop.to_flax(rj.GRU(U, reset_after=False),
                       rj.GRU(U, reset_after=False).init(jax.random.key(0), X))
  with raises(TypeError, "params", "dict", "list"):
    rj.interop.to_flax(layer, [params])
  with raises(TypeError, "layer", "instance", "the class RNN"):
    rj.interop.to_flax(rj.RNN, params)
  with raises(TypeError, "layer", "SimpleRNN, GRU or LSTM", "MyCell"):
    rj.interop.to_flax(MyCell(), params)
  with raises(TypeError, "params must be a list with 1 entries", "a dict with keys ['bias',"):
    rj.interop.to_flax([layer], params)

