"""The Mosaic GPU LSTM backward kernel (Hopper): the reverse-time loop with W_hh resident
in shared memory, dh's recurrent part as wgmmas on the gates' gradients.

Per CTA (one direction, one batch tile of Bt columns; one warpgroup, which owns all Hp
units: each step's dh needs every unit's gate gradients), in reverse processing order:
  once:      TMA W (4, Hp, Hp) [gate, in, out] into shared memory; the final states'
             cotangents dh_T, dc_T and c_{T-1} into registers;
  each step: take from the ring (TMA-prefetched, float32): dh_s (the output's
             cotangent), o, i, g, f and c_{s-1}; with c_s, dh and dc in registers:
               dh = dh_rec + dh_s;  dc~ = dc + dh o (1 - tanh(c_s)^2)
               dz_o = dh tanh(c_s) o(1-o), dz_i = dc~ g i(1-i), dz_g = dc~ i (1-g^2),
               dz_f = dc~ c_{s-1} f(1-f);  dc <- dc~ f
             each dz_k goes to the output (float32) and, in the compute dtype, to one of
             two shared-memory operand slots, and wgmma accumulates
             dh_rec (Hp x Bt) += W_k (Hp x Hp) @ dz_k^T as soon as it is written (the
             slot is reused two gates later, after wgmma_wait(1)).
dW_hh is not formed here: it is one time-parallel matmul (h_prev^T dz) outside.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import mosaic_gpu as plgpu

from . import _common
from ._common import F32
from ._plan import Plan
from ._ring import Ring

# Ring units per step: the output's cotangent, then the gates o, i, g, f, then c_{s-1}.
DH, GATES, C_PREV = 0, (3, 0, 2, 1), 5


def ring_sources(dhs, gates, c_prev, d, rows, cols, steps: int) -> list:
  """The ring's units in reverse processing order: dh_s, the gates o, i, g, f, c_{s-1}
  (views of `rows` x `cols` of direction d)."""
  def rev(r):
    return steps - 1 - r

  sources: list[Callable] = [lambda r: dhs.at[d, rev(r), rows, cols]]
  sources += [lambda r, k=k: gates.at[d, rev(r), k, rows, cols] for k in GATES]
  sources += [lambda r: c_prev.at[d, rev(r), rows, cols]]
  return sources


def step_grads(plan: Plan, steps: int, ring: Ring, r, carry, dz_out: Callable, w_smem,
               dz_smem, dtype):
  """Reverse step r of this CTA's units from carry (dh_rec, dc, c_s) (rows, Bt): writes
  each gate's dz_k to dz_out(s, k) (a GMEM view) and accumulates W_k @ dz_k with wgmma.
  Returns (that sum (Hp, Bt) float32, dc_{s-1}, c_{s-1})."""
  dh_rec, dc, c = carry
  s = steps - 1 - r
  dh = dh_rec + ring.take(r, DH)
  tc = jnp.tanh(c)

  def run(acc):
    def emit(n, k, dz):   # n: the gate's place in this step, k: its index
      dz_out(s, k)[...] = dz
      _common.stage_wgmma(acc, n, w_smem.at[k], dz_smem, dz, dtype)
    o = ring.take(r, 1)
    dct = dc + dh * o * (1.0 - tc * tc)
    emit(0, 3, dh * tc * o * (1.0 - o))
    i, g = ring.take(r, 2), ring.take(r, 3)
    emit(1, 0, dct * g * i * (1.0 - i))
    emit(2, 2, dct * i * (1.0 - g * g))
    f, cp = ring.take(r, 4), ring.take(r, C_PREV)
    emit(3, 1, dct * cp * f * (1.0 - f))
    return acc[...], dct * f, cp

  return pl.run_scoped(run, plgpu.ACC((plan.hp, plan.bt), F32))


def _body(plan: Plan, steps: int, dtype):
  def body(dhs, gates, c_prev, w, dh_final, dc_final, c_last,
           dxp, dh0, dc0, w_smem, dz_smem, slots, bars):
    d, cols, _, _ = _common.indices(plan)
    depth = plan.depth
    init, w_bar = bars.at[depth], bars.at[depth + 1]
    plgpu.copy_gmem_to_smem(w.at[d], w_smem, w_bar)
    loaded = _common.load_through(
        slots, init, [src.at[d, :, cols] for src in (dh_final, dc_final, c_last)])
    ring = Ring(slots, bars, 0, ring_sources(dhs, gates, c_prev, d, slice(None), cols,
                                             steps), steps)
    ring.start()
    plgpu.barrier_wait(w_bar)

    def step(r, carry):
      return step_grads(plan, steps, ring, r, carry, lambda s, k: dxp.at[d, s, k, :, cols],
                        w_smem, dz_smem, dtype)

    dh_rec, dc, _ = jax.lax.fori_loop(0, steps, step, tuple(loaded))
    dh0.at[d, :, cols][...] = dh_rec
    dc0.at[d, :, cols][...] = dc

  return body


def backward(plan: Plan, dhs, gates, cs, c0, w, dh_final, dc_final, *, interpret: bool):
  """The backward kernel on kernel layouts (processing order).

  Args:
    dhs: (D, T, Hp, Bp) float32 cotangent of the outputs.
    gates: (D, T, 4, Hp, Bp) float32 activated gates i, f, g, o saved by the forward.
    cs: (D, T, Hp, Bp) float32 c sequence; c0: (D, Hp, Bp) float32.
    w: (D, 4, Hp, Hp) compute dtype, W_k [dir, gate, in, out].
    dh_final, dc_final: (D, Hp, Bp) float32 cotangents of h_T and c_T.

  Returns:
    dxp (D, T, 4, Hp, Bp) float32 (the gates' pre-activation gradients, i.e. the
    projection's), dh0 and dc0 (D, Hp, Bp) float32.
  """
  directions, steps = dhs.shape[:2]
  hp, bp, dtype = plan.hp, plan.bp, w.dtype
  c_prev = jnp.concatenate([c0[:, None], cs[:, :-1]], axis=1)
  S = jax.ShapeDtypeStruct
  out_type = [S((directions, steps, 4, hp, bp), F32), S((directions, hp, bp), F32),
              S((directions, hp, bp), F32)]
  scratch = _common.backward_scratch(plan, 4, dtype)
  kernel = _common.launch(_body(plan, steps, dtype), plan=plan, directions=directions,
                          out_type=out_type, scratch=scratch, interpret=interpret)
  return kernel(dhs, gates, c_prev, w, dh_final, dc_final, cs[:, -1])
