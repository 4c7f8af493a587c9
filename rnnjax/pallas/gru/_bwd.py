"""Backward GRU kernel: the reverse-time recurrence of the gradient.

Per processing step s, last to first (t its input-order time; h_prev the state the step
started from):
  dh += dhs[s];  masked rows pass dh through and get zero gradients;
  dn = dh (1 - z) (1 - n^2)              (gradient of the candidate's pre-activation)
  dz = dh (h_prev - n) z (1 - z);  dq = dn r;  dr = dn q r (1 - r)
  dh <- dh z + dz @ W_z^T + dr @ W_r^T + dq @ W_h^T
It writes (dz, dr, dn) (the projection slots' gradient) and dq at input-order time t;
dW and the candidate bias gradient are time-parallel reductions outside (see `_api`).
"""

import functools

import jax
import jax.numpy as jnp

from .. import _pallas
from .._pallas import F32
from .._tiling import KernelOptions
from ._config import GATES, RESIDUAL_SLOTS


def _kernel(len_ref, dhs_ref, dhT_ref, gs_ref, hs_ref, h0_ref, wt_ref,
            dxp_ref, dq_ref, dh0_ref, *, opts: KernelOptions):
  # dhs_ref/hs_ref (bB, T, Hp); dhT/h0 (bB, Hp) f32; gs_ref (bB, T, 4, Hp) z, r, n, q;
  # wt_ref (3, Hp, Hp) = W_k^T; dxp_ref (bB, T, 3, Hp); dq_ref (bB, T, Hp); dh0 (bB, Hp).
  # dh is carried as a tuple of (bB, block_h) chunks (see `_pallas`).
  steps = dhs_ref.shape[1]
  cols = _pallas.chunks(dhs_ref.shape[-1], opts.block_h)
  rev = _pallas.reversed_direction(opts.directions)
  lengths = len_ref[...]
  wt = _pallas.load_blocks(wt_ref, GATES, cols, opts.resident)
  h0 = _pallas.load_chunks(h0_ref, cols, slice(None))

  def body(j, dhs):
    s = steps - 1 - j
    t = _pallas.time_index(rev, s, steps)
    valid = _pallas.valid_rows(t, lengths)
    grads, direct, new_dh = [[] for _ in range(GATES)], [], []
    for b, col in enumerate(cols):
      dh = dhs[b] + dhs_ref[:, s, col].astype(F32)
      z, r, n, q = (gs_ref[:, s, k, col].astype(F32) for k in range(RESIDUAL_SLOTS))
      h_prev = jnp.where(s > 0, hs_ref[:, jnp.maximum(s - 1, 0), col].astype(F32), h0[b])
      dh_v = jnp.where(valid, dh, 0.0)
      dn = dh_v * (1.0 - z) * (1.0 - n * n)
      dz = dh_v * (h_prev - n) * z * (1.0 - z)
      dq = dn * r
      dr = dn * q * r * (1.0 - r)
      for k, g in enumerate((dz, dr, dn)):
        dxp_ref[:, t, k, col] = g.astype(dxp_ref.dtype)
      dq_ref[:, t, col] = dq.astype(dq_ref.dtype)
      for k, g in enumerate((dz, dr, dq)):   # the recurrent products' operands
        grads[k].append(g)
      direct.append(dh_v * z)
      new_dh.append(dh)
    rec = direct
    for k in range(GATES):
      rec = [r + p for r, p in zip(rec, _pallas.chunked_dot(grads[k], wt, k, opts.precision))]
    return tuple(jnp.where(valid, r, dh) for r, dh in zip(rec, new_dh))

  dhT = _pallas.load_chunks(dhT_ref, cols, slice(None))
  for col, dh in zip(cols, jax.lax.fori_loop(0, steps, body, dhT)):
    dh0_ref[:, col] = dh


def backward(dhs, dhT, gates, hs, h0, wt, lengths, opts: KernelOptions, *, dz_dtype):
  """Runs the backward kernel.

  Args:
    dhs: (Bp, T, D, Hp) cotangent of the state sequence (processing order).
    dhT: (D, Bp, Hp) float32 cotangent of the final state.
    gates: (Bp, T, D, 4, Hp) residuals z, r, n, q; hs: (Bp, T, D, Hp) the state sequence.
    h0: (D, Bp, Hp) float32.
    wt: (D, 3, Hp, Hp) transposed recurrent blocks.
    lengths: (Bp,) int32.

  Returns:
    dxp (Bp, T, D, 3, Hp) and dq (Bp, T, D, Hp) in `dz_dtype`, input time order;
    dh0 (D, Bp, Hp) float32.
  """
  bp, steps, d, hp = dhs.shape
  bb = opts.block_b
  sds = jax.ShapeDtypeStruct
  seq, st = _pallas.seq_spec(bb, steps, hp), _pallas.state_spec(bb, hp)
  in_specs = [_pallas.lengths_spec(bb), seq, st,
              _pallas.gate_seq_spec(bb, steps, RESIDUAL_SLOTS, hp), seq, st,
              _pallas.weight_spec(GATES, hp)]
  out_specs = [_pallas.gate_seq_spec(bb, steps, GATES, hp), seq, st]
  out_shape = [sds((bp, steps, d, GATES, hp), dz_dtype), sds((bp, steps, d, hp), dz_dtype),
               sds((d, bp, hp), F32)]
  kernel = functools.partial(_kernel, opts=opts)
  return _pallas.call(kernel, opts, batch=bp, in_specs=in_specs, out_specs=out_specs,
                      out_shape=out_shape, name="rnnjax_gru_bwd")(
                          lengths, dhs, dhT, gates, hs, h0, wt)
