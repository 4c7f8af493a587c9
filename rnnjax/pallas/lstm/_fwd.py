"""Forward LSTM kernel: the whole time loop in one program per (direction, batch tile).

Per step s (processing order; input-order time t = s, or T-1-s in reverse):
  z_k = xp[t, k] + h @ W_k  (k = i, f, g, o; bf16/f32 operands, f32 accumulation)
  c' = sigmoid(z_f) * c + sigmoid(z_i) * tanh(z_g);  h' = sigmoid(z_o) * tanh(c')
  rows whose length <= t keep (h, c) (right padding; in reverse the pads come first).
h and c are f32 carries held in registers, in chunks of block_h units (each step is
(Hp/block_h)^2 dots per gate); W stays on chip across steps when it fits
(`opts.resident`). Outputs: the state sequence h (processing order), the final (h, c);
with `save`, also the residuals for the backward kernel (gate activations, c sequence).
"""

import functools

import jax
import jax.numpy as jnp

from .. import _pallas
from .._pallas import F32
from .._tiling import KernelOptions
from ._config import GATES, RESIDUAL_SLOTS


def _kernel(len_ref, xp_ref, w_ref, h0_ref, c0_ref, hs_ref, hT_ref, cT_ref, *res_refs,
            opts: KernelOptions, save: bool):
  # xp_ref (bB, T, 4, Hp); w_ref (4, Hp, Hp); h0/c0 (bB, Hp); len_ref (bB,);
  # hs_ref (bB, T, Hp); hT/cT (bB, Hp); res_refs: gates (bB, T, 4, Hp), c (bB, T, Hp).
  # h and c are carried as tuples of (bB, block_h) chunks (see `_pallas`).
  steps = xp_ref.shape[1]
  cols = _pallas.chunks(hs_ref.shape[-1], opts.block_h)
  rev = _pallas.reversed_direction(opts.directions)
  lengths = len_ref[...]
  w = _pallas.load_blocks(w_ref, GATES, cols, opts.resident)

  def body(s, carry):
    hs, cs = carry
    t = _pallas.time_index(rev, s, steps)
    valid = _pallas.valid_rows(t, lengths)
    rec = [_pallas.chunked_dot(hs, w, k, opts.precision) for k in range(GATES)]
    new_h, new_c = [], []
    for b, col in enumerate(cols):
      z = [xp_ref[:, t, k, col].astype(F32) + rec[k][b] for k in range(GATES)]
      i, f, g, o = (jax.nn.sigmoid(z[0]), jax.nn.sigmoid(z[1]), jnp.tanh(z[2]),
                    jax.nn.sigmoid(z[3]))
      c_new = f * cs[b] + i * g
      h_new = o * jnp.tanh(c_new)
      h = jnp.where(valid, h_new, hs[b])
      c = jnp.where(valid, c_new, cs[b])
      hs_ref[:, s, col] = h.astype(hs_ref.dtype)
      if save:
        gs_ref, cs_ref = res_refs
        for k, a in enumerate((i, f, g, o)):
          gs_ref[:, s, k, col] = a.astype(gs_ref.dtype)
        cs_ref[:, s, col] = c
      new_h.append(h)
      new_c.append(c)
    return tuple(new_h), tuple(new_c)

  h0 = tuple(h.astype(F32) for h in _pallas.load_chunks(h0_ref, cols, slice(None)))
  c0 = tuple(c.astype(F32) for c in _pallas.load_chunks(c0_ref, cols, slice(None)))
  hs, cs = jax.lax.fori_loop(0, steps, body, (h0, c0))
  for col, h, c in zip(cols, hs, cs):
    hT_ref[:, col] = h
    cT_ref[:, col] = c


def forward(xp, w, h0, c0, lengths, opts: KernelOptions, *, save: bool):
  """Runs the forward kernel.

  Args:
    xp: (Bp, T, D, 4, Hp) float32 projected inputs x @ kernel + bias, input time order.
    w: (D, 4, Hp, Hp) recurrent blocks in the compute dtype (bfloat16 or float32).
    h0, c0: (D, Bp, Hp) float32.
    lengths: (Bp,) int32.
    save: also return the residuals.

  Returns:
    hs (Bp, T, D, Hp) in w's dtype, processing order; hT, cT (D, Bp, Hp) float32;
    with save, gates (Bp, T, D, 4, Hp) in w's dtype and cs (Bp, T, D, Hp) float32.
  """
  bp, steps, d, _, hp = xp.shape
  bb = opts.block_b
  sds = jax.ShapeDtypeStruct
  out_shape = [sds((bp, steps, d, hp), w.dtype), sds((d, bp, hp), F32), sds((d, bp, hp), F32)]
  out_specs = [_pallas.seq_spec(bb, steps, hp), _pallas.state_spec(bb, hp),
               _pallas.state_spec(bb, hp)]
  if save:
    out_shape += [sds((bp, steps, d, RESIDUAL_SLOTS, hp), w.dtype), sds((bp, steps, d, hp), F32)]
    out_specs += [_pallas.gate_seq_spec(bb, steps, RESIDUAL_SLOTS, hp),
                  _pallas.seq_spec(bb, steps, hp)]
  in_specs = [_pallas.lengths_spec(bb), _pallas.gate_seq_spec(bb, steps, GATES, hp),
              _pallas.weight_spec(GATES, hp), _pallas.state_spec(bb, hp),
              _pallas.state_spec(bb, hp)]
  kernel = functools.partial(_kernel, opts=opts, save=save)
  return _pallas.call(kernel, opts, batch=bp, in_specs=in_specs, out_specs=out_specs,
                      out_shape=out_shape, name="rnnjax_lstm_fwd")(lengths, xp, w, h0, c0)
