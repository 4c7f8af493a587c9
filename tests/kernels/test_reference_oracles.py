"""The pure-JAX references against oracles that share no code with them:
`jax.experimental.rnn.lstm_ref` (cuDNN's reference LSTM) and a NumPy step loop of the
Keras GRU equations. (test_recurrence.py also checks them against the rnnjax scan.)"""

import numpy as np

import jax.numpy as jnp
from jax.experimental import rnn as jax_rnn
from rnnjax.pallas.gru import _reference as gru_reference
from rnnjax.pallas.lstm import _reference as lstm_reference

from tests.kernels._helpers import Case, problem

B, T, U = 6, 7, 12


def _cudnn_weights(params):
  """Keras (F, 4U), (U, 4U), (4U,) -> lstm_ref's per-layer dicts ((4U, F), (4U, U)), same
  gate order i, f, g(c), o; Keras's one bias goes to b_ih, b_hh is zero."""
  w_ih = {0: jnp.asarray(params["kernel"]).T}
  w_hh = {0: jnp.asarray(params["recurrent_kernel"]).T}
  b_ih = {0: jnp.asarray(params["bias"])}
  b_hh = {0: jnp.zeros_like(params["bias"])}
  return w_ih, w_hh, b_ih, b_hh


def test_lstm_reference_matches_jax_experimental_lstm_ref():
  params, x, (h0, c0), _ = problem("lstm", Case(b=B, t=T, u=U), seed=3)
  # lstm_ref picks the state at length - 1 (a zero length wraps around), so lengths >= 1;
  # its outputs past a row's length are 0 (zero_output_for_mask=True, forward only).
  lengths = jnp.array([1, T, 3, 5, 2, T - 1], jnp.int32)
  want_y, want_h, want_c = jax_rnn.lstm_ref(
      x, h0[None], c0[None], *_cudnn_weights(params), lengths, input_size=x.shape[-1],
      hidden_size=U, num_layers=1, dropout=0.0, bidirectional=False)
  y, h, c = lstm_reference.lstm(x, params["kernel"], params["recurrent_kernel"],
                                params["bias"], h0, c0, lengths, zero_output_for_mask=True)
  np.testing.assert_allclose(y, want_y, atol=1e-5)
  np.testing.assert_allclose(h, want_h[0], atol=1e-5)
  np.testing.assert_allclose(c, want_c[0], atol=1e-5)


def _sigmoid(v):
  return 1.0 / (1.0 + np.exp(-v))


def _numpy_gru(params, x, h0, lengths, go_backwards):
  """Keras GRU(reset_after=True) step by step in float64, masked steps keep h."""
  k, rk, b = (np.asarray(params[n], np.float64) for n in ("kernel", "recurrent_kernel", "bias"))
  h = np.asarray(h0, np.float64)
  x = np.asarray(x, np.float64)
  outs = []
  order = range(T - 1, -1, -1) if go_backwards else range(T)
  for t in order:
    xz, xr, xh = np.split(x[:, t] @ k + b[0], 3, axis=-1)
    hz, hr, hh = np.split(h @ rk + b[1], 3, axis=-1)
    z, r = _sigmoid(xz + hz), _sigmoid(xr + hr)
    n = np.tanh(xh + r * hh)
    new = z * h + (1 - z) * n
    h = np.where((t < lengths)[:, None], new, h)
    outs.append(h)
  return np.stack(outs, 1), h


def test_gru_reference_matches_numpy_loop():
  params, x, (h0,), lengths = problem("gru", Case(b=B, t=T, u=U), seed=4)
  for go_backwards in (False, True):
    want_y, want_h = _numpy_gru(params, x, h0, np.asarray(lengths), go_backwards)
    y, h = gru_reference.gru(x, params["kernel"], params["recurrent_kernel"], params["bias"],
                             h0, lengths, go_backwards=go_backwards)
    np.testing.assert_allclose(y, want_y, atol=1e-5)
    np.testing.assert_allclose(h, want_h, atol=1e-5)
