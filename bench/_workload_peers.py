"""Mask and reset workloads: the LSTM / GRU train step and forward pass (the model of
`_peer_model.py`) without a mask, with 3% of the steps starting a new segment (`reset=`,
as in RL batches with episode boundaries), and on a right-padded batch given as a
boolean `mask=` or as `seq_lengths=`.

`build(peer, kind, b, t, d, h, mode, workload)` -> (fn, args), or None where the peer
has no such call (Flax's nn.RNN takes seq_lengths but neither a mask nor resets). The
hand-written scan applies resets and masks with `jnp.where`, as rnnjax's engine does
(Keras semantics: a masked step keeps the state and outputs the previous h).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

import _gru_peers
import _lstm_peers
from _peer_model import Model, data, finish, rnnjax_layer

RESET_RATE = 0.03
WORKLOADS = ("none", "reset 3%", "padded, mask=", "padded, seq_lengths=")
AUX = {"none": None, "reset 3%": "reset", "padded, mask=": "mask",
       "padded, seq_lengths=": "seq_lengths"}


def aux_arrays(b, t):
  """{"reset": (B, T) bool, 3% True; "mask": (B, T) bool, right-padded to random lengths
  in [T/4, T]; "seq_lengths": (B,) int32, those lengths}, from fixed seeds."""
  reset = np.random.default_rng(3).random((b, t)) < RESET_RATE
  lengths = np.random.default_rng(4).integers(max(1, t // 4), t + 1, size=b)
  mask = np.arange(t)[None, :] < lengths[:, None]
  return {"reset": jnp.asarray(reset), "mask": jnp.asarray(mask),
          "seq_lengths": jnp.asarray(lengths, jnp.int32)}


def _select(flags, new, old):
  return jax.tree.map(lambda a, b: jnp.where(flags[:, None], a, b), new, old)


def where_scan_apply(step, zeros, p, x, reset=None, mask=None):
  """lax.scan of step(p, x_t, carry) with resets (state back to zeros before the step)
  and a mask (masked steps keep the state; the output is the kept h)."""
  def body(carry, inp):
    x_t, r_t, m_t = inp
    if r_t is not None:
      carry = _select(r_t, zeros, carry)
    y, new = step(p, x_t, carry)
    if m_t is not None:
      new = _select(m_t, new, carry)
      y = new[0]
    return new, y

  swap = lambda a: None if a is None else jnp.swapaxes(a, 0, 1)  # noqa: E731
  _, ys = jax.lax.scan(body, zeros, (swap(x), swap(reset), swap(mask)))
  return jnp.swapaxes(ys, 0, 1)


def rnnjax_model(kind, workload, b, t, d, h, use_fused="auto"):
  layer = rnnjax_layer(kind, h, use_fused)
  params = layer.init(jax.random.key(0), data(b, t, d))
  arg = AUX[workload]
  if arg is None:
    return Model(layer.apply, params, lambda p: p)
  return Model(lambda p, x, a: layer.apply(p, x, **{arg: a}), params, lambda p: p)


def scan_model(kind, workload, b, t, d, h):
  if workload == "padded, seq_lengths=":
    return None
  zeros = (jnp.zeros((b, h)),) * (2 if kind == "lstm" else 1)
  step = _lstm_peers.lstm_step if kind == "lstm" else _gru_peers.gru_step
  params = _lstm_peers.scan_params(d, h, 4 if kind == "lstm" else 3)
  arg = AUX[workload]
  if arg is None:
    return Model(functools.partial(where_scan_apply, step, zeros), params, lambda p: p)
  return Model(lambda p, x, a: where_scan_apply(step, zeros, p, x, **{arg: a}), params,
               lambda p: p)


def flax_model(kind, workload, b, t, d, h):
  if workload not in ("none", "padded, seq_lengths="):
    return None
  model = _lstm_peers.flax_model("OptimizedLSTMCell" if kind == "lstm" else "GRUCell", kind,
                                 b, t, d, h)
  if workload == "none":
    return model
  return Model(lambda p, x, n: model.apply(p, x, seq_lengths=n), model.params, model.to_rnnjax)


PEERS = {
    "rnnjax": rnnjax_model,
    "rnnjax scan (use_fused=False)": functools.partial(rnnjax_model, use_fused=False),
    "scan (where)": scan_model,
    "flax nn.RNN": flax_model,
}


def model(peer, kind, b, t, d, h, workload):
  """The peer's Model for this workload, or None where it has no such call."""
  return PEERS[peer](kind, workload, b, t, d, h)


def build(peer, kind, b, t, d, h, mode, workload):
  """(jitted fn, args) of the peer's train step / forward pass, or None."""
  m = model(peer, kind, b, t, d, h, workload)
  if m is None:
    return None
  arg = AUX[workload]
  aux = () if arg is None else (aux_arrays(b, t)[arg],)
  return finish(m, data(b, t, d), mode, *aux)
