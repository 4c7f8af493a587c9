"""The Mosaic GPU GRU (reset_after=True) forward kernel (Hopper), one CTA per direction
and batch tile: the LSTM forward's design (`_lstm_forward`) with three gates.

Per warpgroup (`rows` units), once: TMA its rows of W_k^T (3, rows, Hp) and h0^T (the
wgmma operand) into shared memory, h0 (float32) and the candidate's recurrent bias bh
into registers. Each step, from the ring's projection slots xz, xr, xh (float32, input
and z/r recurrent biases folded in) and wgmma products W_k^T @ h^T:
  z = sigmoid(W_z^T h + xz);  r = sigmoid(W_r^T h + xr);  hb = W_h^T h + bh
  n = tanh(xh + r hb);  h <- z h + (1 - z) n          (h carried in float32 registers)
then h^T is published as in the LSTM (double-buffered operand, TMA store, one barrier).
Residuals: z, r, n, hb and the float32 h sequence.
"""

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import mosaic_gpu as plgpu

from . import _common
from ._common import F32
from ._plan import Plan
from ._ring import Ring


def _body(plan: Plan, steps: int, dtype, save: bool):
  def body(xp, w_t, h0, h0_f32, bh, *outs, w_smem, h_smem, slots, bars, step_bar):
    hs, h_final = outs[:2]
    d, cols, wg, rows = _common.indices(plan)
    depth, nwg = plan.depth, plan.warpgroups
    base = nwg * depth   # barriers: [ring of each wg | W, h0, registers of each wg]
    plgpu.copy_gmem_to_smem(w_t.at[d, :, rows], w_smem.at[:, rows], bars.at[base + 3 * wg])
    plgpu.copy_gmem_to_smem(h0.at[d, rows, cols], h_smem.at[0, rows],
                            bars.at[base + 3 * wg + 1])
    my_slots = slots.at[:, rows]
    loaded = []
    for src in (h0_f32, bh):   # through slot 0, before the ring starts
      plgpu.copy_gmem_to_smem(src.at[d, rows, cols], my_slots.at[0], bars.at[base + 3 * wg + 2])
      plgpu.barrier_wait(bars.at[base + 3 * wg + 2])
      loaded.append(my_slots[0])
      plgpu.commit_smem()
    h_start, bias = loaded
    ring = Ring(my_slots, bars, wg * depth,
                [lambda t, k=k: xp.at[d, t, k, rows, cols] for k in range(3)], steps)
    ring.start()
    plgpu.barrier_wait(bars.at[base + 3 * wg])
    plgpu.barrier_wait(bars.at[base + 3 * wg + 1])
    if nwg > 1:
      plgpu.barrier_arrive(step_bar)
      plgpu.barrier_wait(step_bar)

    def step(t, h):
      h_in = h_smem.at[t % 2]

      def product(k):
        return _common.matmul(w_smem.at[k, rows], h_in)

      def keep(k, value):
        if save:
          outs[2].at[d, t, k, rows, cols][...] = value

      z = jax.nn.sigmoid(product(0) + ring.take(t, 0))
      keep(0, z)
      r = jax.nn.sigmoid(product(1) + ring.take(t, 1))
      keep(1, r)
      hb = product(2) + bias
      keep(3, hb)
      n = jnp.tanh(ring.take(t, 2) + r * hb)
      keep(2, n)
      h = z * h + (1.0 - z) * n
      if save:
        outs[3].at[d, t, rows, cols][...] = h
      plgpu.wait_smem_to_gmem(1, wait_read_only=True)
      h_next = h_smem.at[1 - t % 2, rows]
      h_next[...] = h.astype(dtype)
      plgpu.commit_smem()
      plgpu.copy_smem_to_gmem(h_next, hs.at[d, t, rows, cols])
      if nwg > 1:
        plgpu.barrier_arrive(step_bar)
        plgpu.barrier_wait(step_bar)

      @pl.when(t == steps - 1)
      def _():
        h_final.at[d, rows, cols][...] = h

      return h

    jax.lax.fori_loop(0, steps, step, h_start)
    plgpu.wait_smem_to_gmem(0)

  return body


def forward(plan: Plan, xp, w_t, h0, h0_f32, bh, *, save: bool, interpret: bool):
  """The GRU forward kernel on kernel layouts.

  Args:
    xp: (D, T, 3, Hp, Bp) float32 projection slots z, r, h in processing order.
    w_t: (D, 3, Hp, Hp) compute dtype, W_k^T [dir, gate, out, in].
    h0: (D, Hp, Bp) compute dtype (the first wgmma operand); h0_f32 the same in float32.
    bh: (D, Hp, Bp) float32, the candidate's recurrent bias broadcast over the batch.

  Returns:
    hs (D, T, Hp, Bp) compute dtype and h_T (D, Hp, Bp) float32; with `save` also the
    residuals (D, T, 4, Hp, Bp) float32 (z, r, n, hb) and the float32 h sequence.
  """
  directions, steps = xp.shape[:2]
  dtype, hp, bp = w_t.dtype, plan.hp, plan.bp
  nwg, depth = plan.warpgroups, plan.depth
  S = jax.ShapeDtypeStruct
  out_type = [S((directions, steps, hp, bp), dtype), S((directions, hp, bp), F32)]
  if save:
    out_type += [S((directions, steps, 4, hp, bp), F32), S((directions, steps, hp, bp), F32)]
  scratch = dict(w_smem=_common.smem((3, hp, hp), dtype),
                 h_smem=_common.smem((2, hp, plan.bt), dtype),
                 slots=_common.smem((depth, hp, plan.bt), F32),
                 bars=plgpu.Barrier(num_barriers=nwg * (depth + 3)),
                 step_bar=plgpu.Barrier(num_arrivals=nwg))
  kernel = _common.launch(_body(plan, steps, dtype, save), plan=plan, directions=directions,
                          out_type=out_type, scratch=scratch, interpret=interpret)
  return kernel(xp, w_t, h0, h0_f32, bh)
