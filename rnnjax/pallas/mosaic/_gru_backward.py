"""The Mosaic GPU GRU backward kernel (Hopper): the reverse loop of `_lstm_backward` with
the GRU's gradients, one CTA (one warpgroup) per direction and batch tile.

Each step takes from the ring dh_s, z, n, h_{s-1}, r and hb (float32) and, with
dh = dh_rec + dh_s:
  dz_z = dh (h_{s-1} - n) z (1 - z);  da_n = dh (1 - z)(1 - n^2)
  dz_r = da_n hb r (1 - r);           dhh = da_n r
  dh_rec <- dh z + W_z dz_z + W_r dz_r + W_h dhh   (wgmma, W_k [in, out] resident)
The projection's gradients are (dz_z, dz_r, da_n); dhh is also written (dW_h's operand
and, summed, the candidate's recurrent bias gradient).
"""

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import mosaic_gpu as plgpu

from . import _common
from ._common import F32
from ._plan import Plan
from ._ring import Ring

# Ring units per step: dh_s, then the residual slots z, n, the previous h, r, hb.
DH, Z, N, H_PREV, R, HB = range(6)
SLOT = {Z: 0, R: 1, N: 2, HB: 3}


def _body(plan: Plan, steps: int, dtype):
  def body(dhs, res, h_prev, w, dh_final, dxp, dhh_out, dh0, w_smem, dz_smem, slots, bars):
    d, cols, _, _ = _common.indices(plan)
    depth = plan.depth
    init, w_bar = bars.at[depth], bars.at[depth + 1]
    plgpu.copy_gmem_to_smem(w.at[d], w_smem, w_bar)
    dh_start, = _common.load_through(slots, init, [dh_final.at[d, :, cols]])

    def rev(r):
      return steps - 1 - r

    def source(unit):
      if unit == DH:
        return lambda r: dhs.at[d, rev(r), :, cols]
      if unit == H_PREV:
        return lambda r: h_prev.at[d, rev(r), :, cols]
      return lambda r: res.at[d, rev(r), SLOT[unit], :, cols]
    ring = Ring(slots, bars, 0, [source(u) for u in range(6)], steps)
    ring.start()
    plgpu.barrier_wait(w_bar)

    def step(r, dh_rec):
      s = rev(r)
      dh = dh_rec + ring.take(r, DH)

      def emit(acc, n, k, operand):
        _common.stage_wgmma(acc, n, w_smem.at[k], dz_smem, operand, dtype)

      def run(acc):
        z, n, hp_ = ring.take(r, Z), ring.take(r, N), ring.take(r, H_PREV)
        dz_z = dh * (hp_ - n) * z * (1.0 - z)
        dxp.at[d, s, 0, :, cols][...] = dz_z
        emit(acc, 0, 0, dz_z)
        da_n = dh * (1.0 - z) * (1.0 - n * n)
        dxp.at[d, s, 2, :, cols][...] = da_n
        rr, hb = ring.take(r, R), ring.take(r, HB)
        dz_r = da_n * hb * rr * (1.0 - rr)
        dxp.at[d, s, 1, :, cols][...] = dz_r
        emit(acc, 1, 1, dz_r)
        dhh = da_n * rr
        dhh_out.at[d, s, :, cols][...] = dhh
        emit(acc, 2, 2, dhh)
        return acc[...] + dh * z

      return pl.run_scoped(run, plgpu.ACC((plan.hp, plan.bt), F32))

    dh0.at[d, :, cols][...] = jax.lax.fori_loop(0, steps, step, dh_start)

  return body


def backward(plan: Plan, dhs, res, hs32, h0_f32, w, dh_final, *, interpret: bool):
  """The GRU backward kernel on kernel layouts (processing order).

  Args:
    dhs: (D, T, Hp, Bp) float32 cotangent of the outputs.
    res: (D, T, 4, Hp, Bp) float32 residuals z, r, n, hb; hs32: (D, T, Hp, Bp) float32 h
      sequence; h0_f32: (D, Hp, Bp).
    w: (D, 3, Hp, Hp) compute dtype, W_k [dir, gate, in, out].
    dh_final: (D, Hp, Bp) float32 cotangent of h_T.

  Returns:
    dxp (D, T, 3, Hp, Bp), dhh (D, T, Hp, Bp) and dh0 (D, Hp, Bp), float32.
  """
  directions, steps = dhs.shape[:2]
  hp, bp, dtype = plan.hp, plan.bp, w.dtype
  h_prev = jnp.concatenate([h0_f32[:, None], hs32[:, :-1]], axis=1)
  S = jax.ShapeDtypeStruct
  out_type = [S((directions, steps, 3, hp, bp), F32), S((directions, steps, hp, bp), F32),
              S((directions, hp, bp), F32)]
  scratch = _common.backward_scratch(plan, 3, dtype)
  kernel = _common.launch(_body(plan, steps, dtype), plan=plan, directions=directions,
                          out_type=out_type, scratch=scratch, interpret=interpret)
  return kernel(dhs, res, h_prev, w, dh_final)
