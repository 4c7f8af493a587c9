"""The Mosaic GPU LSTM backward on a cluster of P CTAs, for W_hh too large for one CTA.

CTA p owns the units O_p (Hs = Hp / P of them, one warpgroup): it streams the residuals
of O_p through its TMA ring and computes dz_k for O_p exactly as `_lstm_backward` does.
The recurrent part of dh needs every unit's dz, so the product is split over K instead:
each CTA keeps W_k[:, O_p] (4, Hp, Hs) resident and forms a partial
dh_p (Hp x Bt) = sum_k W_k[:, O_p] @ dz_k[O_p]^T with wgmma (M = Hp, K = Hs); the
partials meet in global memory (double-buffered by step parity: the cluster barrier of
each step keeps every CTA within one step of the others), and after the cluster barrier
CTA p sums the P partials' rows O_p, loaded by TMA two at a time, as its next dh_rec.
"""

import jax
import jax.numpy as jnp
from jax.experimental.pallas import mosaic_gpu as plgpu

from . import _common, _plan
from ._common import F32
from ._lstm_backward import ring_sources, step_grads
from ._plan import Plan
from ._ring import Ring


def cluster_plan(batch: int, units: int, dtype) -> Plan | None:
  """The smallest cluster (batch tile 64, one warpgroup per CTA) whose shared memory
  holds W_k[:, O_p], two dz operand slots, two exchange slots and a ring of >= 2."""
  itemsize, bt = jnp.dtype(dtype).itemsize, 64
  for p in _plan.CLUSTERS[1:]:
    hp = _plan.pad_to(units, p * _plan.UNIT_ROWS)
    hs = hp // p
    fixed = 4 * hp * hs * itemsize + 2 * hs * bt * itemsize + 2 * hs * bt * 4
    depth = (_plan.SMEM_LIMIT - _plan.SMEM_SLACK - fixed) // (hs * bt * 4)
    if depth >= _plan.MIN_DEPTH:
      return Plan(hp=hp, bt=bt, bp=_plan.pad_to(batch, bt), rows=hs, depth=min(depth, 6),
                  units=6, cluster=p)
  return None


def _body(plan: Plan, steps: int, dtype):
  peers = plan.cluster

  def body(dhs, gates, c_prev, w, dh_final, dc_final, c_last, dxp, dh0, dc0, parts,
           w_smem, dz_smem, slots, xslots, bars, cluster_bar):
    d, cols, _, mine = _common.indices(plan)
    peer = jax.lax.axis_index(_common.PEER)
    depth = plan.depth
    init, w_bar, xbar = bars.at[depth], bars.at[depth + 1], depth + 2   # xbar: two
    plgpu.copy_gmem_to_smem(w.at[d, :, :, mine], w_smem, w_bar)
    loaded = _common.load_through(
        slots, init, [src.at[d, mine, cols] for src in (dh_final, dc_final, c_last)])
    ring = Ring(slots, bars, 0, ring_sources(dhs, gates, c_prev, d, mine, cols, steps),
                steps)
    ring.start()
    plgpu.barrier_wait(w_bar)

    def step(r, carry):
      part, dc_new, c_before = step_grads(
          plan, steps, ring, r, carry, lambda s, k: dxp.at[d, s, k, mine, cols], w_smem,
          dz_smem, dtype)
      # The reduction over the cluster: publish this CTA's partial dh, meet, and sum
      # every CTA's partial over this CTA's units.
      parts.at[d, r % 2, peer, :, cols][...] = part
      plgpu.barrier_arrive(cluster_bar)
      plgpu.barrier_wait(cluster_bar)

      def fetch(q):
        plgpu.copy_gmem_to_smem(parts.at[d, r % 2, q, mine, cols], xslots.at[q % 2],
                                bars.at[xbar + q % 2])
      for q in range(min(2, peers)):
        fetch(q)
      total = None
      for q in range(peers):
        plgpu.barrier_wait(bars.at[xbar + q % 2])
        value = xslots[q % 2]
        plgpu.commit_smem()
        if q + 2 < peers:
          fetch(q + 2)
        total = value if total is None else total + value
      return total, dc_new, c_before

    dh_rec, dc, _ = jax.lax.fori_loop(0, steps, step, tuple(loaded))
    dh0.at[d, mine, cols][...] = dh_rec
    dc0.at[d, mine, cols][...] = dc

  return body


def backward(plan: Plan, dhs, gates, cs, c0, w, dh_final, dc_final, *, interpret: bool):
  """As `_lstm_backward.backward` (same arguments and results), on a cluster."""
  directions, steps = dhs.shape[:2]
  hp, bp, hs, dtype = plan.hp, plan.bp, plan.hs, w.dtype
  c_prev = jnp.concatenate([c0[:, None], cs[:, :-1]], axis=1)
  S = jax.ShapeDtypeStruct
  out_type = [S((directions, steps, 4, hp, bp), F32), S((directions, hp, bp), F32),
              S((directions, hp, bp), F32), S((directions, 2, plan.cluster, hp, bp), F32)]
  scratch = [_common.smem((4, hp, hs), dtype), _common.smem((2, hs, plan.bt), dtype),
             _common.smem((plan.depth, hs, plan.bt), F32),
             _common.smem((2, hs, plan.bt), F32),
             plgpu.Barrier(num_barriers=plan.depth + 4),
             plgpu.ClusterBarrier(collective_axes=(_common.PEER,))]
  kernel = _common.launch(_body(plan, steps, dtype), plan=plan, directions=directions,
                          out_type=out_type, scratch=scratch, interpret=interpret)
  dxp, dh0, dc0, _ = kernel(dhs, gates, c_prev, w, dh_final, dc_final, cs[:, -1])
  return dxp, dh0, dc0

