"""An independent oracle: LSTM/GRU/SimpleRNN steps in NumPy and a plain Python loop
over time with Keras scan-path mask semantics, written without any rnnjax code."""

import numpy as np


def sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def lstm_step(p, x, state):
  h, c = state
  z = x @ p["kernel"] + h @ p["recurrent_kernel"] + p["bias"]
  u = h.shape[-1]
  i, f, g, o = sigmoid(z[:, :u]), sigmoid(z[:, u:2 * u]), np.tanh(z[:, 2 * u:3 * u]), sigmoid(z[:, 3 * u:])
  c = f * c + i * g
  h = o * np.tanh(c)
  return h, (h, c)


def gru_step(p, x, state):
  (h,) = state
  u = h.shape[-1]
  xz = x @ p["kernel"] + p["bias"][0]
  hz = h @ p["recurrent_kernel"] + p["bias"][1]
  z = sigmoid(xz[:, :u] + hz[:, :u])
  r = sigmoid(xz[:, u:2 * u] + hz[:, u:2 * u])
  hh = np.tanh(xz[:, 2 * u:] + r * hz[:, 2 * u:])
  h = z * h + (1 - z) * hh
  return h, (h,)


def simple_step(p, x, state):
  (h,) = state
  h = np.tanh(x @ p["kernel"] + h @ p["recurrent_kernel"] + p["bias"])
  return h, (h,)


def run(step, params, x, state, *, mask=None, reset=None, go_backwards=False,
        zero_output_for_mask=False):
  """x (B, T, F). Returns (outputs in processing order (B, T, U), last valid output, final state).

  Per row and step: a reset puts the state back to the initial one; a masked step keeps
  the state and outputs the incoming h (or zeros); the last valid output is the output
  of the last unmasked step (the initial h for a fully masked row).
  """
  params = {k: np.asarray(v, np.float64) for k, v in params.items()}
  x = np.asarray(x, np.float64)
  b, t = x.shape[:2]
  init = tuple(np.asarray(s, np.float64) for s in state)
  state = init
  order = range(t - 1, -1, -1) if go_backwards else range(t)
  outputs, last = [], init[0].copy()
  for k in order:
    if reset is not None:
      r = np.asarray(reset)[:, k][:, None]
      state = tuple(np.where(r, i, s) for i, s in zip(init, state))
    out, new = step(params, x[:, k], state)
    m = np.ones((b, 1), bool) if mask is None else np.asarray(mask)[:, k][:, None]
    held = np.zeros_like(out) if zero_output_for_mask else state[0]
    outputs.append(np.where(m, out, held))
    last = np.where(m, out, last)
    state = tuple(np.where(m, n, s) for n, s in zip(new, state))
  return np.stack(outputs, 1), last, state
