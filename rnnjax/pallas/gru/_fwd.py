"""Forward GRU kernel (Keras reset_after=True), one program per (direction, batch tile).

Per step s (processing order; input-order time t):
  z = sigmoid(xp[t, z] + h @ W_z);  r = sigmoid(xp[t, r] + h @ W_r)
  q = h @ W_h + b_h;  n = tanh(xp[t, h] + r * q);  h' = z * h + (1 - z) * n
(xp holds x @ kernel + input bias + the z, r recurrent biases.) Rows whose length <= t
keep h. h is an f32 carry in registers, in chunks of block_h units; W stays on chip
when it fits. With `save`, the
residuals z, r, n, q go out for the backward kernel.
"""

import functools

import jax
import jax.numpy as jnp

from .. import _pallas
from .._pallas import F32
from .._tiling import KernelOptions
from ._config import GATES, RESIDUAL_SLOTS


def _kernel(len_ref, xp_ref, w_ref, bh_ref, h0_ref, hs_ref, hT_ref, *res_refs,
            opts: KernelOptions, save: bool):
  # xp_ref (bB, T, 3, Hp); w_ref (3, Hp, Hp); bh_ref (Hp,) f32; h0 (bB, Hp); len_ref (bB,);
  # hs_ref (bB, T, Hp); hT (bB, Hp); res_refs: (bB, T, 4, Hp) z, r, n, q.
  # h is carried as a tuple of (bB, block_h) chunks (see `_pallas`).
  steps = xp_ref.shape[1]
  cols = _pallas.chunks(hs_ref.shape[-1], opts.block_h)
  rev = _pallas.reversed_direction(opts.directions)
  lengths = len_ref[...]
  w = _pallas.load_blocks(w_ref, GATES, cols, opts.resident)
  bh = [b[None, :] for b in _pallas.load_chunks(bh_ref, cols)]

  def body(s, hs):
    t = _pallas.time_index(rev, s, steps)
    valid = _pallas.valid_rows(t, lengths)
    rec = [_pallas.chunked_dot(hs, w, k, opts.precision) for k in range(GATES)]
    new_h = []
    for b, col in enumerate(cols):
      z = jax.nn.sigmoid(xp_ref[:, t, 0, col].astype(F32) + rec[0][b])
      r = jax.nn.sigmoid(xp_ref[:, t, 1, col].astype(F32) + rec[1][b])
      q = rec[2][b] + bh[b]
      n = jnp.tanh(xp_ref[:, t, 2, col].astype(F32) + r * q)
      h = jnp.where(valid, z * hs[b] + (1.0 - z) * n, hs[b])
      hs_ref[:, s, col] = h.astype(hs_ref.dtype)
      if save:
        (gs_ref,) = res_refs
        for k, a in enumerate((z, r, n, q)):
          gs_ref[:, s, k, col] = a.astype(gs_ref.dtype)
      new_h.append(h)
    return tuple(new_h)

  h0 = tuple(h.astype(F32) for h in _pallas.load_chunks(h0_ref, cols, slice(None)))
  for col, h in zip(cols, jax.lax.fori_loop(0, steps, body, h0)):
    hT_ref[:, col] = h


def forward(xp, w, bh, h0, lengths, opts: KernelOptions, *, save: bool):
  """Runs the forward kernel.

  Args:
    xp: (Bp, T, D, 3, Hp) float32 projection slots, input time order.
    w: (D, 3, Hp, Hp) recurrent blocks in the compute dtype.
    bh: (D, Hp) float32 recurrent bias of the candidate.
    h0: (D, Bp, Hp) float32.
    lengths: (Bp,) int32.

  Returns:
    hs (Bp, T, D, Hp) in w's dtype, processing order; hT (D, Bp, Hp) float32; with save,
    the residuals (Bp, T, D, 4, Hp) in w's dtype.
  """
  bp, steps, d, _, hp = xp.shape
  bb = opts.block_b
  sds = jax.ShapeDtypeStruct
  out_shape = [sds((bp, steps, d, hp), w.dtype), sds((d, bp, hp), F32)]
  out_specs = [_pallas.seq_spec(bb, steps, hp), _pallas.state_spec(bb, hp)]
  if save:
    out_shape.append(sds((bp, steps, d, RESIDUAL_SLOTS, hp), w.dtype))
    out_specs.append(_pallas.gate_seq_spec(bb, steps, RESIDUAL_SLOTS, hp))
  in_specs = [_pallas.lengths_spec(bb), _pallas.gate_seq_spec(bb, steps, GATES, hp),
              _pallas.weight_spec(GATES, hp), _pallas.vector_spec(hp),
              _pallas.state_spec(bb, hp)]
  kernel = functools.partial(_kernel, opts=opts, save=save)
  return _pallas.call(kernel, opts, batch=bp, in_specs=in_specs, out_specs=out_specs,
                      out_shape=out_shape, name="rnnjax_gru_fwd")(lengths, xp, w, bh, h0)
