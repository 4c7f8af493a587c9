"""Backward LSTM kernel: the reverse-time recurrence of the gradient.

Per processing step s, from the last to the first (t its input-order time):
  dh += dhs[s];  masked rows pass (dh, dc) through unchanged and get dz = 0;
  dc_tot = dc + dh * o * (1 - tanh(c')^2)
  dz_i = dc_tot g i(1-i);  dz_f = dc_tot c_prev f(1-f);  dz_g = dc_tot i (1-g^2);
  dz_o = dh tanh(c') o(1-o)
  dh <- sum_k dz_k @ W_k^T;  dc <- dc_tot * f
dz (the gradient of the projected inputs) is written at input-order time t. Only the one
recurrent product per step is sequential: every weight gradient is a time-parallel
matmul outside the kernel (see `_api`).
"""

import functools

import jax
import jax.numpy as jnp

from .. import _pallas
from .._pallas import F32
from .._tiling import KernelOptions
from ._config import GATES, RESIDUAL_SLOTS


def _kernel(len_ref, dhs_ref, dhT_ref, dcT_ref, gs_ref, cs_ref, c0_ref, wt_ref,
            dz_ref, dh0_ref, dc0_ref, *, opts: KernelOptions):
  # dhs_ref (bB, T, Hp); dhT/dcT/c0 (bB, Hp) f32; gs_ref (bB, T, 4, Hp); cs_ref (bB, T, Hp)
  # f32; wt_ref (4, Hp, Hp) = W_k^T; dz_ref (bB, T, 4, Hp); dh0/dc0 (bB, Hp).
  # dh and dc are carried as tuples of (bB, block_h) chunks (see `_pallas`).
  steps = dhs_ref.shape[1]
  cols = _pallas.chunks(dhs_ref.shape[-1], opts.block_h)
  rev = _pallas.reversed_direction(opts.directions)
  lengths = len_ref[...]
  wt = _pallas.load_blocks(wt_ref, GATES, cols, opts.resident)
  c0 = _pallas.load_chunks(c0_ref, cols, slice(None))

  def body(j, carry):
    dhs, dcs = carry
    s = steps - 1 - j
    t = _pallas.time_index(rev, s, steps)
    valid = _pallas.valid_rows(t, lengths)
    dzs, new_dh, new_dc = [[] for _ in range(GATES)], [], []
    for b, col in enumerate(cols):
      dh = dhs[b] + dhs_ref[:, s, col].astype(F32)
      i, f, g, o = (gs_ref[:, s, k, col].astype(F32) for k in range(RESIDUAL_SLOTS))
      c_new = cs_ref[:, s, col]
      c_prev = jnp.where(s > 0, cs_ref[:, jnp.maximum(s - 1, 0), col], c0[b])
      tc = jnp.tanh(c_new)
      dh_v = jnp.where(valid, dh, 0.0)
      dc_tot = jnp.where(valid, dcs[b], 0.0) + dh_v * o * (1.0 - tc * tc)
      dz = (dc_tot * g * i * (1.0 - i), dc_tot * c_prev * f * (1.0 - f),
            dc_tot * i * (1.0 - g * g), dh_v * tc * o * (1.0 - o))
      for k in range(GATES):
        dz_ref[:, t, k, col] = dz[k].astype(dz_ref.dtype)
        dzs[k].append(dz[k])
      new_dh.append(dh)
      new_dc.append(jnp.where(valid, dc_tot * f, dcs[b]))
    rec = _pallas.chunked_dot(dzs[0], wt, 0, opts.precision)
    for k in range(1, GATES):
      rec = [r + q for r, q in zip(rec, _pallas.chunked_dot(dzs[k], wt, k, opts.precision))]
    return (tuple(jnp.where(valid, r, dh) for r, dh in zip(rec, new_dh)), tuple(new_dc))

  dhT = _pallas.load_chunks(dhT_ref, cols, slice(None))
  dcT = _pallas.load_chunks(dcT_ref, cols, slice(None))
  dh0, dc0 = jax.lax.fori_loop(0, steps, body, (dhT, dcT))
  for col, dh, dc in zip(cols, dh0, dc0):
    dh0_ref[:, col] = dh
    dc0_ref[:, col] = dc


def backward(dhs, dhT, dcT, gates, cs, c0, wt, lengths, opts: KernelOptions, *, dz_dtype):
  """Runs the backward kernel.

  Args:
    dhs: (Bp, T, D, Hp) cotangent of the state sequence (processing order).
    dhT, dcT: (D, Bp, Hp) float32 cotangents of the final state.
    gates, cs: the forward residuals, (Bp, T, D, 4, Hp) and (Bp, T, D, Hp).
    c0: (D, Bp, Hp) float32 initial cell state.
    wt: (D, 4, Hp, Hp) transposed recurrent blocks W_k^T.
    lengths: (Bp,) int32.

  Returns:
    dz (Bp, T, D, 4, Hp) in `dz_dtype`, input time order; dh0, dc0 (D, Bp, Hp) float32.
  """
  bp, steps, d, hp = dhs.shape
  bb = opts.block_b
  sds = jax.ShapeDtypeStruct
  seq, st = _pallas.seq_spec(bb, steps, hp), _pallas.state_spec(bb, hp)
  in_specs = [_pallas.lengths_spec(bb), seq, st, st,
              _pallas.gate_seq_spec(bb, steps, RESIDUAL_SLOTS, hp), seq, st,
              _pallas.weight_spec(GATES, hp)]
  out_specs = [_pallas.gate_seq_spec(bb, steps, GATES, hp), st, st]
  out_shape = [sds((bp, steps, d, GATES, hp), dz_dtype), sds((d, bp, hp), F32),
               sds((d, bp, hp), F32)]
  kernel = functools.partial(_kernel, opts=opts)
  return _pallas.call(kernel, opts, batch=bp, in_specs=in_specs, out_specs=out_specs,
                      out_shape=out_shape, name="rnnjax_lstm_bwd")(
                          lengths, dhs, dhT, dcT, gates, cs, c0, wt)
