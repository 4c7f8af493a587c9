"""The Mosaic GPU LSTM forward kernel (Hopper): W_hh resident in shared memory for all
steps, one swap-AB wgmma per gate, the projection streamed by TMA through a ring, and,
when W_hh does not fit one CTA, W_hh split over a cluster with h exchanged every step.

Per CTA (one direction, one batch tile of Bt columns, units Hs = Hp / P of a cluster of
P CTAs), per warpgroup (`rows` of those units):
  once:      TMA its rows of W_k^T (4, rows, Hp) and h0^T into shared memory, c0 into
             registers;
  each step: for the gates in the order i, g, f, o: acc (rows x Bt) = W_k^T @ h^T
             (wgmma, h^T the whole (Hp, Bt) operand in shared memory) + the gate's
             projection slot taken from the ring (prefetched by TMA up to `depth` units
             ahead), then the gate math with c in registers, one gate at a time (three
             (rows, Bt) float32 arrays live);
             h^T goes into the other half of a double-buffered (2, Hp, Bt) operand, is
             fenced and stored to the output by TMA. P = 1: the warpgroups meet at one
             barrier (every row of h_t in place before any next wgmma reads it). P > 1
             (one warpgroup per CTA): the store completes, the cluster meets at a cluster
             barrier, and each CTA loads the whole h_t back by TMA (the exchange goes
             through L2; TMA multicast or distributed shared memory would avoid the
             round trip but are not simulated by interpret mode in JAX 0.11.2).
"""

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import mosaic_gpu as plgpu

from . import _common
from ._common import F32
from ._plan import Plan
from ._ring import Ring

GATE_ORDER = (0, 2, 1, 3)   # i, g, f, o: i * g is formed before f and o are computed


def _body(plan: Plan, steps: int, dtype, save: bool):
  def body(xp, w_t, h0, c0, *outs, w_smem, h_smem, slots, bars, step_bar, cluster_bar=None):
    hs, h_final, c_final = outs[:3]
    d, cols, wg, rows = _common.indices(plan)
    local = pl.ds(wg * plan.rows, plan.rows)      # the warpgroup's rows within the CTA's
    depth, nwg, clustered = plan.depth, plan.warpgroups, plan.cluster > 1
    base = nwg * depth   # barriers: [ring of each wg | W, h0, c0 of each wg | exchange]
    plgpu.copy_gmem_to_smem(w_t.at[d, :, rows], w_smem.at[:, local], bars.at[base + 3 * wg])
    h0_rows = pl.ds(0, plan.hp) if clustered else rows   # a cluster CTA needs all of h0
    plgpu.copy_gmem_to_smem(h0.at[d, h0_rows, cols], h_smem.at[0, h0_rows],
                            bars.at[base + 3 * wg + 1])
    my_slots = slots.at[:, local]
    plgpu.copy_gmem_to_smem(c0.at[d, rows, cols], my_slots.at[0], bars.at[base + 3 * wg + 2])
    plgpu.barrier_wait(bars.at[base + 3 * wg + 2])
    c_start = my_slots[0]
    plgpu.commit_smem()
    ring = Ring(my_slots, bars, wg * depth,
                [lambda t, k=k: xp.at[d, t, k, rows, cols] for k in GATE_ORDER], steps)
    ring.start()
    plgpu.barrier_wait(bars.at[base + 3 * wg])
    plgpu.barrier_wait(bars.at[base + 3 * wg + 1])
    if nwg > 1:   # every warpgroup's rows of h0 are in place
      plgpu.barrier_arrive(step_bar)
      plgpu.barrier_wait(step_bar)

    def step(t, c):
      h_in = h_smem.at[t % 2]

      def gate(j):
        return _common.matmul(w_smem.at[GATE_ORDER[j], local], h_in) + ring.take(t, j)

      def keep(k, value):
        if save:
          outs[3].at[d, t, k, rows, cols][...] = value

      i = jax.nn.sigmoid(gate(0))
      keep(0, i)
      g = jnp.tanh(gate(1))
      keep(2, g)
      ig = i * g
      f = jax.nn.sigmoid(gate(2))
      keep(1, f)
      c = f * c + ig
      o = jax.nn.sigmoid(gate(3))
      keep(3, o)
      h = o * jnp.tanh(c)
      if save:
        outs[4].at[d, t, rows, cols][...] = c
      # The TMA store issued from this half two steps ago must have read it.
      plgpu.wait_smem_to_gmem(1, wait_read_only=True)
      h_next = h_smem.at[1 - t % 2]
      h_next.at[rows][...] = h.astype(dtype)
      plgpu.commit_smem()
      plgpu.copy_smem_to_gmem(h_next.at[rows], hs.at[d, t, rows, cols])
      if clustered:
        # The exchange: every CTA's slice of h_t reaches global memory (the output, which
        # each step writes at its own place, so it needs no double buffer), the cluster
        # meets, and each CTA loads the whole h_t by TMA as its next wgmma operand.
        plgpu.wait_smem_to_gmem(0)
        plgpu.barrier_arrive(cluster_bar)
        plgpu.barrier_wait(cluster_bar)
        plgpu.copy_gmem_to_smem(hs.at[d, t, :, cols], h_next, bars.at[base + 3 * nwg])
        plgpu.barrier_wait(bars.at[base + 3 * nwg])
      elif nwg > 1:
        plgpu.barrier_arrive(step_bar)
        plgpu.barrier_wait(step_bar)

      @pl.when(t == steps - 1)
      def _():
        h_final.at[d, rows, cols][...] = h
        c_final.at[d, rows, cols][...] = c

      return c

    jax.lax.fori_loop(0, steps, step, c_start)
    plgpu.wait_smem_to_gmem(0)

  return body


def forward(plan: Plan, xp, w_t, h0, c0, *, save: bool, interpret: bool):
  """The forward kernel on kernel layouts.

  Args:
    xp: (D, T, 4, Hp, Bp) float32 projection slots in processing order.
    w_t: (D, 4, Hp, Hp) compute dtype, W_k^T [dir, gate, out, in].
    h0: (D, Hp, Bp) compute dtype; c0: (D, Hp, Bp) float32.
    save: also return the residuals (activated gates and the c sequence).

  Returns:
    hs (D, T, Hp, Bp) compute dtype, h_T and c_T (D, Hp, Bp) float32, and with `save`
    gates (D, T, 4, Hp, Bp) and cs (D, T, Hp, Bp) float32.
  """
  directions, steps = xp.shape[:2]
  dtype, hp, bp = w_t.dtype, plan.hp, plan.bp
  nwg, depth = plan.warpgroups, plan.depth
  S = jax.ShapeDtypeStruct
  out_type = [S((directions, steps, hp, bp), dtype), S((directions, hp, bp), F32),
              S((directions, hp, bp), F32)]
  if save:
    out_type += [S((directions, steps, 4, hp, bp), F32), S((directions, steps, hp, bp), F32)]
  scratch = dict(w_smem=_common.smem((4, plan.hs, hp), dtype),
                 h_smem=_common.smem((2, hp, plan.bt), dtype),
                 slots=_common.smem((depth, plan.hs, plan.bt), F32),
                 bars=plgpu.Barrier(num_barriers=nwg * (depth + 3) + 1),
                 step_bar=plgpu.Barrier(num_arrivals=nwg))
  if plan.cluster > 1:
    if nwg != 1:
      raise ValueError(f"a cluster plan must have one warpgroup per CTA, got {plan}.")
    scratch["cluster_bar"] = plgpu.ClusterBarrier(collective_axes=(_common.PEER,))
  kernel = _common.launch(_body(plan, steps, dtype, save), plan=plan, directions=directions,
                          out_type=out_type, scratch=scratch, interpret=interpret)
  return kernel(xp, w_t, h0, c0)
