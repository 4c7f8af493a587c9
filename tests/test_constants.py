"""`constants` (Keras 2's `RNN(..., constants=)`): static inputs handed to the cell at every
step. An attention cell over a (B, S, D) memory is checked against a NumPy loop, alone,
stacked and bidirectional; gradients flow to the constants; bad constants are caught
before tracing."""

import jax
import jax.numpy as jnp
import numpy as np

import rnnjax as rj

from tests import fast_jit, numpy_reference as npref
from tests.cells import AttentionCell
from tests.test_errors import raises

B, T, F, S, D, U = 4, 6, 3, 5, 7, 8


def attention_step(p, memory):
  """The same step in NumPy, for npref.run."""

  def step(params, x, state):
    (h,) = state
    scores = np.einsum("bd,bsd->bs", h @ p["w_q"], memory)
    a = np.exp(scores - scores.max(-1, keepdims=True))
    a /= a.sum(-1, keepdims=True)
    h = np.tanh(x @ p["w_x"] + h @ p["w_h"] + np.einsum("bs,bsd->bd", a, memory) @ p["w_c"] + p["b"])
    return h, (h,)

  return step


def _data(seed=0):
  rng = np.random.default_rng(seed)
  return (jnp.asarray(rng.normal(size=(B, T, F)), jnp.float32),
          jnp.asarray(rng.normal(size=(B, S, D)), jnp.float32))


def _np(params):
  return {k: np.asarray(v, np.float64) for k, v in params.items()}


MASK = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1], [0, 1, 0, 1, 1, 0]], bool)


def test_attention_over_memory_matches_a_numpy_loop():
  x, memory = _data()
  cell = AttentionCell(U, D)
  seq = rj.RNN(cell, return_sequences=True, return_state=True)
  back = rj.RNN(cell, return_sequences=True, go_backwards=True)
  params = fast_jit.init(seq, jax.random.key(0), x)
  (outs, h), outs_back = fast_jit.run(lambda p, x, m: (
      seq.apply(p, x, mask=MASK, constants=[m]),
      back.apply(p, x, constants=[m])), params, x, memory)
  step = attention_step(_np(params), np.asarray(memory, np.float64))
  zeros = [np.zeros((B, U))]
  want, _, (want_h,) = npref.run(step, {}, x, zeros, mask=MASK)
  want_back, _, _ = npref.run(step, {}, x, zeros, go_backwards=True)
  np.testing.assert_allclose(outs, want, atol=1e-5)
  np.testing.assert_allclose(h, want_h, atol=1e-5)
  np.testing.assert_allclose(outs_back, want_back, atol=1e-5)
  # The memory matters: another memory gives other outputs.
  other = fast_jit.run(lambda p, x, m: seq.apply(p, x, mask=MASK, constants=[m])[0], params, x, -memory)
  assert np.abs(np.asarray(other) - np.asarray(outs)).max() > 1e-3


def test_constants_reach_every_cell_of_a_stack_and_both_directions():
  x, memory = _data(1)
  stack = rj.RNN([AttentionCell(U, D), rj.LSTMCell(5)], return_sequences=True)
  params = fast_jit.init(stack, jax.random.key(1), x)
  bidir = rj.Bidirectional(rj.RNN(AttentionCell(U, D), return_sequences=True), merge_mode=None)
  bparams = fast_jit.init(bidir, jax.random.key(2), x)
  outs, (y, y_rev) = fast_jit.run(lambda p, q, x, m: (
      stack.apply(p, x, constants=[m]), bidir.apply(q, x, constants=[m])), params, bparams, x, memory)
  mem = np.asarray(memory, np.float64)
  first, _, _ = npref.run(attention_step(_np(params[0]), mem), {}, x, [np.zeros((B, U))])
  want, _, _ = npref.run(npref.lstm_step, params[1], first, [np.zeros((B, 5))] * 2)
  np.testing.assert_allclose(outs, want, atol=1e-5)
  want_f, _, _ = npref.run(attention_step(_np(bparams["forward"]), mem), {}, x, [np.zeros((B, U))])
  want_b, _, _ = npref.run(attention_step(_np(bparams["backward"]), mem), {}, x, [np.zeros((B, U))],
                           go_backwards=True)
  np.testing.assert_allclose(y, want_f, atol=1e-5)
  np.testing.assert_allclose(y_rev, want_b[:, ::-1], atol=1e-5)


def test_gradient_with_respect_to_constants():
  with jax.enable_x64(True):
    x, memory = (a.astype(jnp.float64) for a in _data(2))
    layer = rj.RNN(AttentionCell(U, D), return_sequences=True)
    params = jax.tree.map(lambda p: p.astype(jnp.float64), fast_jit.init(layer, jax.random.key(3), x))

    def loss(memory, params):
      return jnp.sum(jnp.sin(layer.apply(params, x, mask=MASK, constants=[memory])))

    g, _ = fast_jit.check_scalar_grads(loss, (memory, params))
    assert np.abs(np.asarray(g)).max() > 1e-3


def test_bad_constants_are_caught_before_tracing():
  x, memory = _data()
  layer = rj.RNN(AttentionCell(U, D))
  params = jax.eval_shape(layer.init, jax.random.key(0), x)
  with raises(ValueError, "constants[0]", "batch size 4", "(B, ...) = (4, ...)", "(3, 5, 7)"):
    layer.apply(params, x, constants=[memory[:3]])
  with raises(ValueError, "constants[1]", "batch size 4", "got shape ()"):
    layer.apply(params, x, constants=[memory, jnp.float32(1.0)])
  with raises(TypeError, "constants['scale']", "array of shape (B, ...)", "float"):
    layer.apply(params, x, constants={"scale": 2.0})
  with raises(ValueError, "constants must be an array or a pytree of arrays", "[]"):
    layer.apply(params, x, constants=[])
  with raises(ValueError, "constants[0] (memory)", "(B, S, 7)", "(4, 5, 2)"):
    layer.apply(params, x, constants=[memory[..., :2]])
  with raises(TypeError, "constants=[memory]", "dict"):
    layer.apply(params, x, constants={"memory": memory})
  lstm = rj.LSTM(U)
  with raises(ValueError, "constants= was given", "LSTMCell takes no constants"):
    lstm.apply(jax.eval_shape(lstm.init, jax.random.key(0), x), x, constants=[memory])
  stack = rj.RNN([rj.GRUCell(2), rj.LSTMCell(3)])
  with raises(ValueError, "StackedRNNCells takes no constants"):
    stack.apply(jax.eval_shape(stack.init, jax.random.key(0), x), x, constants=[memory])


def test_constants_under_jit_are_traced_not_baked_in():
  x, memory = _data(3)
  layer = rj.RNN(AttentionCell(U, D))
  params = fast_jit.init(layer, jax.random.key(4), x)
  traces = []

  @jax.jit
  def run(params, memory):
    traces.append(1)
    return layer.apply(params, x, constants=(memory,))

  a = run(params, memory)
  b = run(params, 2 * memory)
  assert len(traces) == 1
  assert not np.allclose(a, b)
