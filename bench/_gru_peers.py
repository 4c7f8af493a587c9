"""GRU train and forward steps of rnnjax and its JAX peers: the same builders, model
(RNN(H) -> Dense(10) on every step) and loss as `_lstm_peers.py`.

Keras 3's GRU with `reset_after=True` (its default, and rj.GRU's) is the function:
Flax `GRUCell`, Equinox `GRUCell` and PyTorch `nn.GRU` compute it too (gate order and
bias split aside); Haiku's `hk.GRU` applies the reset gate before the recurrent matmul
(Keras `reset_after=False`) and swaps z and 1 - z, so it is a different function of the
same cost.
"""

import functools

import jax
import jax.numpy as jnp

from _lstm_peers import equinox_model, flax_model, haiku_model, keras_fit, keras_stateless_model, \
    scan_apply, scan_params
from _peer_model import Model, builder, rnnjax_model


def gru_step(p, x_t, carry):
  """Keras's GRU step, reset_after=True, gates z, r, h; the input GEMM inside the step."""
  (hh,) = carry
  xz, xr, xh = jnp.split(x_t @ p["kernel"] + p["bias"][None, 0], 3, axis=-1)
  uz, ur, uh = jnp.split(hh @ p["recurrent_kernel"] + p["bias"][None, 1], 3, axis=-1)
  z = jax.nn.sigmoid(xz + uz)
  r = jax.nn.sigmoid(xr + ur)
  hh = z * hh + (1.0 - z) * jnp.tanh(xh + r * uh)
  return hh, (hh,)


def scan_model(b, t, d, h):
  """The textbook lax.scan GRU: x_t @ W + h @ U inside the loop."""
  zeros = jnp.zeros((b, h))
  return Model(lambda p, x: scan_apply(gru_step, p, x, (zeros,)), scan_params(d, h, 3),
               lambda p: p)


PEERS = {
    "rnnjax": builder(functools.partial(rnnjax_model, "gru")),
    "rnnjax scan (use_fused=False)": builder(
        functools.partial(rnnjax_model, "gru", use_fused=False)),
    "scan (per-step x@W)": builder(scan_model),
    "flax GRUCell": builder(functools.partial(flax_model, "GRUCell", "gru")),
    "keras stateless": builder(functools.partial(keras_stateless_model, "gru")),
    "keras fit": functools.partial(keras_fit, kind="gru"),
    "haiku dynamic_unroll": builder(functools.partial(haiku_model, core_name="GRU")),
    "equinox scan+vmap": builder(functools.partial(equinox_model, cell_name="GRUCell")),
}
