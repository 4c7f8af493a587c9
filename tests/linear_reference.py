"""An independent oracle for the linear recurrences: the papers' equations as NumPy
per-step functions in float64 (complex128 for the LRU), and a plain loop over time with
the engine's mask / reset semantics, written without any rnnjax code.

minGRU / minLSTM: Feng et al. 2024, "Were RNNs All We Needed?", sections 3.1-3.2 and
the log-space variant of their appendix (candidate g(h~)). LRU: Orvieto et al. 2023,
"Resurrecting Recurrent Neural Networks for Long Sequences", its listing of the forward
pass (with the x @ kernel layout: B (F, N), C (N, U))."""

import numpy as np


def sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def g(x):
  return np.where(x >= 0, x + 0.5, sigmoid(x))


def _f64(params):
  return {k: np.asarray(v, np.float64) for k, v in params.items()}


def min_gru_step(p, x, h, log_space=False):
  u = h.shape[-1]
  z = sigmoid(x @ p["kernel"][:, :u] + p["bias"][:u])
  h_tilde = x @ p["kernel"][:, u:] + p["bias"][u:]
  if log_space:
    h_tilde = g(h_tilde)
  h = (1 - z) * h + z * h_tilde
  return h, h


def min_lstm_step(p, x, h, log_space=False):
  u = h.shape[-1]
  f = sigmoid(x @ p["kernel"][:, :u] + p["bias"][:u])
  i = sigmoid(x @ p["kernel"][:, u:2 * u] + p["bias"][u:2 * u])
  h_tilde = x @ p["kernel"][:, 2 * u:] + p["bias"][2 * u:]
  if log_space:
    h_tilde = g(h_tilde)
  f_norm, i_norm = f / (f + i), i / (f + i)
  h = f_norm * h + i_norm * h_tilde
  return h, h


def lru_step(p, u, x):
  """x: complex (B, N). Returns (y (B, U), new x)."""
  lam = np.exp(-np.exp(p["nu_log"]) + 1j * np.exp(p["theta_log"]))
  b = p["B_re"] + 1j * p["B_im"]
  c = p["C_re"] + 1j * p["C_im"]
  x = lam * x + np.exp(p["gamma_log"]) * (u @ b)
  y = (x @ c).real + p["D"] * u
  return y, x


def run(step, params, x, h0, *, mask=None, reset=None, go_backwards=False,
        zero_output_for_mask=False, output_is_state=True):
  """x (B, T, F); h0 the carried state (B, N) (complex for the LRU). Returns (outputs in
  processing order (B, T, U), last valid output, final state).

  A reset puts the state back to h0 before the step; a masked step keeps the state and
  outputs the incoming state when the output is the state (minGRU, minLSTM), else the
  last valid output (zeros before any), or zeros with zero_output_for_mask."""
  params = _f64(params)
  x = np.asarray(x, np.float64)
  b, t = x.shape[:2]
  state = h0
  order = range(t - 1, -1, -1) if go_backwards else range(t)
  outputs = []
  last = h0.copy() if output_is_state else None
  for k in order:
    if reset is not None:
      state = np.where(np.asarray(reset)[:, k][:, None], h0, state)
    y, new = step(params, x[:, k], state)
    if last is None:
      last = np.zeros_like(y)
    m = np.ones((b, 1), bool) if mask is None else np.asarray(mask)[:, k][:, None]
    held = np.zeros_like(y) if zero_output_for_mask else (state if output_is_state else last)
    outputs.append(np.where(m, y, held))
    last = np.where(m, y, last)
    state = np.where(m, new, state)
  return np.stack(outputs, 1), last, state


def coefficients(kind, params, x, log_space=False):
  """(a, b) of h_t = a_t h_{t-1} + b_t for every step at once, (B, T, N), from the same
  equations (the gates read x_t only, so they vectorise over time): for the long runs."""
  p = _f64(params)
  x = np.asarray(x, np.float64)
  if kind == "lru":
    lam = np.exp(-np.exp(p["nu_log"]) + 1j * np.exp(p["theta_log"]))
    b = np.exp(p["gamma_log"]) * (x @ (p["B_re"] + 1j * p["B_im"]))
    return np.broadcast_to(lam, b.shape), b
  z = x @ p["kernel"] + p["bias"]
  u = z.shape[-1] // (2 if kind == "min_gru" else 3)
  h_tilde = z[..., -u:]
  if log_space:
    h_tilde = g(h_tilde)
  if kind == "min_gru":
    gate = sigmoid(z[..., :u])
    return 1 - gate, gate * h_tilde
  f, i = sigmoid(z[..., :u]), sigmoid(z[..., u:2 * u])
  return f / (f + i), i / (f + i) * h_tilde


def affine_loop(a, b, h0):
  """The per-step loop h_t = a_t h_{t-1} + b_t over (B, T, N) arrays: states (B, T, N)."""
  h, hs = h0, np.empty_like(b)
  for t in range(b.shape[1]):
    h = a[:, t] * h + b[:, t]
    hs[:, t] = h
  return hs
