"""PyTorch's RNN equations in NumPy (from the torch.nn.LSTM / GRU / RNN documentation),
an oracle that reads torch state_dicts directly. It is checked against outputs that real
PyTorch produced (tests/fixtures/torch_rnns.npz) before it is used to check `to_torch`."""

import numpy as np


def _sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def _step(kind, nonlinearity, w_ih, w_hh, b_ih, b_hh, x, h, c):
  gi = x @ w_ih.T + b_ih
  gh = h @ w_hh.T + b_hh
  if kind == "lstm":
    i, f, g, o = np.split(gi + gh, 4, axis=-1)
    c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
    return _sigmoid(o) * np.tanh(c), c
  if kind == "gru":
    ir, iz, in_ = np.split(gi, 3, axis=-1)
    hr, hz, hn = np.split(gh, 3, axis=-1)
    r, z = _sigmoid(ir + hr), _sigmoid(iz + hz)
    n = np.tanh(in_ + r * hn)
    return (1 - z) * n + z * h, c
  act = np.tanh if nonlinearity == "tanh" else (lambda v: np.maximum(v, 0.0))
  return act(gi + gh), c


def run(kind, sd, x, h0=None, c0=None, *, num_layers=1, bidirectional=False,
        nonlinearity="tanh"):
  """torch module(x, state) with batch_first=True: out (B, T, D*H), h_n (L*D, B, H), c_n."""
  directions = 2 if bidirectional else 1
  units = sd["weight_hh_l0"].shape[1]
  batch, steps = x.shape[:2]
  zeros = np.zeros((num_layers * directions, batch, units), np.float64)
  h0 = zeros if h0 is None else h0
  c0 = zeros if c0 is None else c0
  inputs = x.astype(np.float64)
  h_n, c_n = [], []
  for layer in range(num_layers):
    outs = []
    for d, suffix in enumerate(["", "_reverse"][:directions]):
      tag = f"_l{layer}{suffix}"
      w_ih, w_hh = sd["weight_ih" + tag], sd["weight_hh" + tag]
      gates = w_hh.shape[0]
      b_ih = sd.get("bias_ih" + tag, np.zeros(gates))
      b_hh = sd.get("bias_hh" + tag, np.zeros(gates))
      h, c = h0[layer * directions + d], c0[layer * directions + d]
      out = np.zeros((batch, steps, units))
      order = range(steps - 1, -1, -1) if d else range(steps)
      for t in order:
        h, c = _step(kind, nonlinearity, w_ih, w_hh, b_ih, b_hh, inputs[:, t], h, c)
        out[:, t] = h
      outs.append(out)
      h_n.append(h)
      c_n.append(c)
    inputs = np.concatenate(outs, axis=-1)
  return inputs, np.stack(h_n), np.stack(c_n)
