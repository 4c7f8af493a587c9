"""rj.nnx: modules give exactly the pure layers' results with the same params, hold
nnx.Params in the Keras layout, work under nnx.grad / nnx.jit / nnx.Optimizer, stream
a stateful RNNCarry, and draw dropout from rngs as nnx.Dropout does."""

import dataclasses
import inspect

import numpy as np
import optax
import pytest
from flax import nnx

import jax
import jax.numpy as jnp
import rnnjax as rj

from tests.adapter_cases import B, CASES, F, T, assert_trees_close, assert_trees_equal, normal


def params_count(model) -> int:
  return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(nnx.state(model, nnx.Param)))


@pytest.mark.parametrize("case", CASES)
def test_module_equals_pure_layer_with_the_same_params(case):
  layer, x, in_features = CASES[case]
  model = rj.nnx.wrap(layer, in_features, rngs=nnx.Rngs(0))
  # Params come from rngs.params(), one key for the whole layer, as layer.init makes them.
  assert_trees_equal(model.pure_params(), layer.init(nnx.Rngs(0).params(), x))
  got, want = nnx.jit(lambda m: (m(x), layer.apply(m.pure_params(), x)))(model)
  assert_trees_close(got, want)


def test_params_are_nnx_params_with_keras_names():
  model = rj.nnx.GRU(F, 4, rngs=nnx.Rngs(0))
  assert isinstance(model.kernel, nnx.Param) and model.kernel.shape == (F, 12)
  assert model.recurrent_kernel.shape == (4, 12) and model.bias.shape == (2, 12)
  assert params_count(model) == F * 12 + 4 * 12 + 2 * 12
  stacked = rj.nnx.RNN(F, [rj.LSTMCell(3), rj.SimpleRNNCell(2)], rngs=nnx.Rngs(1))
  assert set(stacked.cell_0) == {"kernel", "recurrent_kernel", "bias"}
  assert isinstance(stacked.cell_1["kernel"], nnx.Param)
  assert stacked.cell_1["kernel"].shape == (3, 2)
  # The Keras guide's LSTM(128) on 64 features and GRU(256) on 64 (built abstractly).
  assert params_count(nnx.eval_shape(lambda: rj.nnx.LSTM(64, 128, rngs=nnx.Rngs(0)))) == 98_816
  assert params_count(nnx.eval_shape(lambda: rj.nnx.GRU(64, 256, rngs=nnx.Rngs(0)))) == 247_296


def test_constructor_takes_in_features_then_the_layer_arguments():
  sig = inspect.signature(rj.nnx.LSTM)
  assert list(sig.parameters)[:2] == ["in_features", "units"]
  assert sig.parameters["rngs"].kind is inspect.Parameter.KEYWORD_ONLY
  assert sig.parameters["unit_forget_bias"].default is True
  assert list(inspect.signature(rj.nnx.RNN).parameters)[:2] == ["in_features", "cell"]
  model = rj.nnx.GRU(3, 7, reset_after=False, return_sequences=True, rngs=nnx.Rngs(0))
  assert model.pure_layer == rj.GRU(7, reset_after=False, return_sequences=True)
  assert model.in_features == 3


def test_split_and_merge_keep_the_module():
  model = rj.nnx.RNN(F, [rj.LSTMCell(3), rj.GRUCell(4)], return_sequences=True,
                     rngs=nnx.Rngs(0))
  x = normal(0, (B, T, F))
  graphdef, state = nnx.split(model)
  merged = nnx.merge(graphdef, state)
  assert isinstance(merged.cell_0, dict)
  assert_trees_equal(merged(x), model(x))


# Transforms ---------------------------------------------------------------------------


def test_nnx_grad_equals_grad_of_the_pure_layer():
  model = rj.nnx.LSTM(F, 4, return_sequences=True, rngs=nnx.Rngs(0))
  layer = model.pure_layer
  x = normal(1, (B, T, F))
  got = nnx.grad(lambda m: jnp.sum(jnp.sin(m(x))))(model)
  want = jax.grad(lambda p: jnp.sum(jnp.sin(layer.apply(p, x))))(model.pure_params())
  for name in ("kernel", "recurrent_kernel", "bias"):
    g = np.asarray(getattr(got, name)[...])
    assert np.abs(g).max() > 0
    np.testing.assert_allclose(g, want[name], rtol=1e-5, atol=1e-6)


def test_nnx_jit_equals_eager_and_traces_once():
  model = rj.nnx.SimpleRNN(F, 4, return_state=True, rngs=nnx.Rngs(0))
  x = normal(2, (B, T, F))
  traces = []

  @nnx.jit
  def run(model, x):
    traces.append(1)
    return model(x)

  assert_trees_close(run(model, x), model.pure_layer.apply(model.pure_params(), x))
  run(model, x + 1.0)
  assert len(traces) == 1


def test_optax_training_loop_with_nnx_optimizer_equals_the_pure_loop():
  x = normal(3, (8, T, F))
  y = jnp.tanh(jnp.sum(x, axis=1)[:, :2])
  model = rj.nnx.GRU(F, 2, rngs=nnx.Rngs(0))
  layer, params = model.pure_layer, model.pure_params()
  tx = optax.adam(3e-2)
  optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)

  @nnx.jit
  def train_step(model, optimizer):
    loss, grads = nnx.value_and_grad(lambda m: jnp.mean((m(x) - y) ** 2))(model)
    optimizer.update(model, grads)
    return loss

  @jax.jit
  def pure_step(params, opt_state):
    loss, grads = jax.value_and_grad(lambda p: jnp.mean((layer.apply(p, x) - y) ** 2))(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  opt_state = tx.init(params)
  losses = []
  for _ in range(25):
    losses.append(float(train_step(model, optimizer)))
    params, opt_state, _ = pure_step(params, opt_state)
  assert losses[-1] < 0.5 * losses[0]
  for name, want in params.items():
    np.testing.assert_allclose(getattr(model, name)[...], want, rtol=1e-4, atol=1e-5)


# Stateful streaming -------------------------------------------------------------------


def test_stateful_streaming_in_an_rnn_carry_equals_one_call():
  model = rj.nnx.LSTM(F, 4, stateful=True, return_sequences=True, rngs=nnx.Rngs(0))
  x = normal(4, (B, 7, F))
  assert model.carry.get_value() is None
  model.initialize_carry(B)
  assert [s.shape for s in model.carry.get_value()] == [(B, 4), (B, 4)]
  assert all(np.all(np.asarray(s) == 0) for s in model.carry.get_value())
  step = nnx.jit(lambda m, chunk: m(chunk))
  outs = [step(model, chunk) for chunk in (x[:, :3], x[:, 3:4], x[:, 4:])]
  whole = rj.LSTM(4, return_sequences=True, return_state=True)
  want_out, *want_state = whole.apply(model.pure_params(), x)
  np.testing.assert_allclose(np.concatenate(outs, axis=1), want_out, rtol=1e-5, atol=1e-6)
  carried = nnx.state(model, rj.nnx.RNNCarry)
  assert isinstance(model.carry, rj.nnx.RNNCarry) and list(carried) == ["carry"]
  state = model.carry.get_value()
  assert isinstance(state, tuple)
  for g, w in zip(state, want_state):
    np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_reset_state_and_reset_carry():
  class Model(nnx.Module):
    def __init__(self, rngs):
      self.gru = rj.nnx.GRU(F, 4, stateful=True, return_sequences=True, rngs=rngs)
      self.lstm = rj.nnx.LSTM(4, 3, stateful=True, rngs=rngs)

    def __call__(self, x):
      return self.lstm(self.gru(x))

  model = Model(nnx.Rngs(0))
  x = normal(5, (B, T, F))
  first = model(x)
  before = [np.asarray(s) for s in jax.tree.leaves(nnx.state(model, rj.nnx.RNNCarry))]
  where = np.array([False, True, True])
  rj.nnx.reset_carry(model, where=where)
  after = jax.tree.leaves(nnx.state(model, rj.nnx.RNNCarry))
  for a, b in zip(after, before):
    np.testing.assert_array_equal(np.asarray(a)[where], 0.0)
    np.testing.assert_array_equal(np.asarray(a)[~where], b[~where])
  rj.nnx.reset_carry(model)
  np.testing.assert_array_equal(model(x), first)
  model.gru.reset_state()
  assert all(np.all(np.asarray(s) == 0) for s in model.gru.carry.get_value())
  with pytest.raises(ValueError, match="is not stateful"):
    rj.nnx.GRU(F, 4, rngs=nnx.Rngs(0)).reset_state()
  with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
    model.gru.initialize_carry(0)


# Dropout ------------------------------------------------------------------------------


def test_dropout_follows_nnx_conventions():
  def build():
    return rj.nnx.SimpleRNN(F, 6, dropout=0.4, recurrent_dropout=0.3, return_sequences=True,
                            rngs=nnx.Rngs(0))

  model = build()
  layer, x, params = model.pure_layer, normal(6, (B, T, F)), model.pure_params()
  run = nnx.jit(lambda m, rngs=None: m(x, rngs=rngs))
  pure = jax.jit(lambda key: (layer.apply(params, x, training=True, rng=key),
                              layer.apply(params, x)))
  # A key passed at call time gives exactly the pure layer's masks for that key.
  key = jax.random.key(3)
  want, eval_out = pure(key)
  assert_trees_close(run(model, key), want)
  # nnx.Rngs at call time: its "dropout" stream draws the key.
  want_streams, _ = pure(nnx.Rngs(dropout=7).dropout())
  assert_trees_close(run(model, nnx.Rngs(dropout=7)), want_streams)
  # Training by default (deterministic=False); the kept stream advances every call and
  # is a fork of the "dropout" stream of the constructor's rngs.
  out1, out2, twin = run(model), run(model), run(build())
  assert np.abs(np.asarray(out1 - eval_out)).max() > 1e-2
  assert np.abs(np.asarray(out1 - out2)).max() > 1e-2
  assert_trees_equal(twin, out1)
  model.eval()
  assert_trees_close(run(model), eval_out)
  model.train()
  assert_trees_close(run(nnx.view(model, deterministic=True)), eval_out)
  assert_trees_close(model(x, training=False), eval_out)
  with pytest.raises(TypeError, match="rngs must be an nnx.Rngs, nnx.RngStream or jax.random key"):
    model(x, rngs=3)


def test_dropout_under_nnx_jit_and_grad():
  model = rj.nnx.GRU(F, 4, dropout=0.5, rngs=nnx.Rngs(params=0, dropout=1))
  x = normal(7, (B, T, F))
  loss = nnx.jit(lambda m: jnp.sum(m(x) ** 2))
  a, b = loss(model), loss(model)
  assert a != b  # the stream state advanced through nnx.jit
  grads = nnx.grad(lambda m: jnp.sum(m(x) ** 2))(model)
  assert np.isfinite(np.asarray(grads.kernel[...])).all()


# Errors and Bidirectional ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _CollidingCell(rj.Cell):
  state_size = 2

  def init(self, key, input_shape):
    return {"in_features": jnp.ones(2)}

  def __call__(self, params, inputs, states, *, training=False, constants=None):
    return states[0], states


def test_bad_arguments():
  with pytest.raises(TypeError, match=r"rngs must be an nnx.Rngs \(e.g. nnx.Rngs\(0\)\)"):
    rj.nnx.LSTM(3, 4, rngs=0)
  with pytest.raises(TypeError, match="in_features must be a positive int"):
    rj.nnx.LSTM("3", 4, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="in_features must be a positive int or a shape tuple"):
    rj.nnx.LSTM(0, 4, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="units must be a positive int, got -1"):
    rj.nnx.GRU(3, -1, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="rngs needs a 'dropout' \\(or 'default'\\) stream"):
    rj.nnx.GRU(3, 4, dropout=0.1, rngs=nnx.Rngs(params=0))
  with pytest.raises(ValueError, match="'in_features', which is also an attribute"):
    rj.nnx.RNN(3, _CollidingCell(), rngs=nnx.Rngs(0))
  model = rj.nnx.LSTM(3, 4, rngs=nnx.Rngs(0))
  with pytest.raises(TypeError, match="training must be a Python bool"):
    model(jnp.ones((2, 4, 3)), training=1)
  with pytest.raises(ValueError, match="inputs have 5 features but params were built for 3"):
    model(jnp.ones((2, 4, 5)))
  with pytest.raises(TypeError, match="model must be an nnx.Module"):
    rj.nnx.reset_carry({"carry": 1})


def test_bidirectional_equals_pure_bidirectional_and_counts_like_keras():
  rngs = nnx.Rngs(0)
  model = rj.nnx.Bidirectional(rj.nnx.LSTM(10, 64, return_sequences=True, rngs=rngs), rngs=rngs)
  assert params_count(model) == 38_400  # the Keras guide's first Bidirectional(LSTM(64))
  assert set(model.forward) == {"kernel", "recurrent_kernel", "bias"}
  x = normal(8, (B, 5, 10))
  assert_trees_close(model(x), model.pure_layer.apply(model.pure_params(), x))
  second = rj.nnx.Bidirectional(rj.nnx.LSTM(128, 32, rngs=rngs), rngs=rngs)
  assert params_count(second) == 41_216
