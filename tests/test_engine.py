"""The engine against the NumPy per-step loop: masks, resets, seq_lengths, reversal,
time-major layout and unrolling, for every built-in cell."""

import numpy as np
import pytest

import jax
import jax.numpy as jnp
import rnnjax as rj

from tests import keras_reference, numpy_reference as npref

B, T, F, U = 8, 9, 3, 5
TOL = 2e-5

LAYERS = {
    "lstm": (rj.LSTM, npref.lstm_step, 2),
    "gru": (rj.GRU, npref.gru_step, 1),
    "simple_rnn": (rj.SimpleRNN, npref.simple_step, 1),
}


def _setup(kind, seed=0):
  cls, step, n_states = LAYERS[kind]
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(B, T, F)).astype("float32")
  layer = cls(U)
  params = layer.init(jax.random.key(seed), x)
  # Random biases too, so that a bias mix-up shows.
  params = {k: v + 0.3 * jnp.asarray(rng.normal(size=v.shape), v.dtype) for k, v in params.items()}
  states = [rng.normal(size=(B, U)).astype("float32") for _ in range(n_states)]
  return cls, step, x, params, states


def _apply(cls, params, x, **kw):
  seq_kw = {k: kw.pop(k) for k in ("go_backwards", "zero_output_for_mask", "time_major", "unroll") if k in kw}
  seq = cls(U, return_sequences=True, return_state=True, **seq_kw).apply(params, x, **kw)
  last = cls(U, **seq_kw).apply(params, x, **kw)
  return np.asarray(seq[0]), np.asarray(last), [np.asarray(s) for s in seq[1:]]


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("zero_output_for_mask", [False, True])
def test_mask_and_reset_match_numpy_loop(kind, go_backwards, zero_output_for_mask):
  cls, step, x, params, states = _setup(kind)
  mask = keras_reference.mixed_mask(B, T)
  reset = np.random.default_rng(3).random((B, T)) < 0.25
  want_seq, want_last, want_state = npref.run(step, params, x, states, mask=mask, reset=reset,
                                              go_backwards=go_backwards,
                                              zero_output_for_mask=zero_output_for_mask)
  seq, last, state = _apply(cls, params, x, initial_state=states, mask=mask, reset=reset,
                            go_backwards=go_backwards, zero_output_for_mask=zero_output_for_mask)
  np.testing.assert_allclose(seq, want_seq, atol=TOL)
  np.testing.assert_allclose(last, want_last, atol=TOL)
  for s, w in zip(state, want_state):
    np.testing.assert_allclose(s, w, atol=TOL)


@pytest.mark.parametrize("kind", LAYERS)
def test_seq_lengths_equal_right_padded_mask_including_0_1_and_T(kind):
  cls, step, x, params, states = _setup(kind, seed=1)
  lengths = np.array([0, 1, T, 4, 2, T - 1, 3, 5], np.int32)
  mask = np.arange(T)[None, :] < lengths[:, None]
  want_seq, want_last, want_state = npref.run(step, params, x, states, mask=mask)
  seq, last, state = _apply(cls, params, x, initial_state=states, seq_lengths=lengths)
  np.testing.assert_allclose(seq, want_seq, atol=TOL)
  np.testing.assert_allclose(last, want_last, atol=TOL)
  # A zero-length row keeps its initial state (no wrap-around to the last step).
  np.testing.assert_allclose(state[0][0], states[0][0], atol=0)
  for s, w in zip(state, want_state):
    np.testing.assert_allclose(s, w, atol=TOL)


@pytest.mark.parametrize("kind", LAYERS)
def test_right_padded_final_state_equals_trimmed_sequence(kind):
  cls, _, x, params, states = _setup(kind, seed=2)
  lengths = np.array([T, 6, 1, 3, 4, 5, 2, 7])
  _, last, state = _apply(cls, params, x, initial_state=states, seq_lengths=lengths)
  for row, n in enumerate(lengths):
    row_states = [s[row:row + 1] for s in states]
    _, want_last, want_state = _apply(cls, params, x[row:row + 1, :n], initial_state=row_states)
    np.testing.assert_allclose(last[row:row + 1], want_last, atol=TOL)
    for s, w in zip(state, want_state):
      np.testing.assert_allclose(s[row:row + 1], w, atol=TOL)


@pytest.mark.parametrize("kind", LAYERS)
def test_time_major_is_the_same_computation(kind):
  cls, _, x, params, states = _setup(kind, seed=4)
  mask = keras_reference.mixed_mask(B, T)
  seq, last, state = _apply(cls, params, x, initial_state=states, mask=mask, go_backwards=True)
  seq_tm, last_tm, state_tm = _apply(cls, params, np.swapaxes(x, 0, 1), initial_state=states,
                                     mask=mask.T, go_backwards=True, time_major=True)
  np.testing.assert_allclose(np.swapaxes(seq_tm, 0, 1), seq, atol=1e-6)
  np.testing.assert_allclose(last_tm, last, atol=1e-6)
  for a, b in zip(state_tm, state):
    np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("unroll", [True, 2, 4])
@pytest.mark.parametrize("kind", LAYERS)
def test_unrolled_equals_rolled(kind, unroll):
  cls, _, x, params, states = _setup(kind, seed=5)
  mask = keras_reference.mixed_mask(B, T)
  rolled = _apply(cls, params, x, initial_state=states, mask=mask, zero_output_for_mask=True)
  unrolled = _apply(cls, params, x, initial_state=states, mask=mask, zero_output_for_mask=True,
                    unroll=unroll)
  for a, b in zip(jax.tree.leaves(rolled), jax.tree.leaves(unrolled)):
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_go_backwards_equals_forward_on_reversed_inputs():
  _, _, x, params, states = _setup("lstm", seed=6)
  back = rj.LSTM(U, return_sequences=True, go_backwards=True).apply(params, x)
  fwd = rj.LSTM(U, return_sequences=True).apply(params, x[:, ::-1])
  np.testing.assert_allclose(np.asarray(back), np.asarray(fwd), atol=1e-6)


def test_rnn_of_lstm_cell_equals_lstm_layer():
  _, _, x, params, states = _setup("lstm", seed=7)
  mask = keras_reference.mixed_mask(B, T)
  kw = dict(return_sequences=True, return_state=True, go_backwards=True)
  a = rj.LSTM(U, **kw).apply(params, x, initial_state=states, mask=mask)
  b = rj.RNN(rj.LSTMCell(U), **kw).apply(params, x, initial_state=states, mask=mask)
  # equal to rounding: the layer's CPU path is the native oneDNN forward, the cell's the scan
  for u, v in zip(a, b):
    np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=1e-6, atol=2e-7)


def test_initial_state_is_not_the_zero_state_by_accident():
  _, _, x, params, states = _setup("lstm", seed=8)
  with_init = rj.LSTM(U).apply(params, x, initial_state=states)
  without = rj.LSTM(U).apply(params, x)
  assert np.abs(np.asarray(with_init) - np.asarray(without)).max() > 1e-4
