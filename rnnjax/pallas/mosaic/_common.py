"""What the Mosaic GPU kernels share: shared-memory transforms, the per-CTA and
per-warpgroup indices, one wgmma into a scoped accumulator, the backward kernels'
staging of operands and initial loads, and the launch."""

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import mosaic_gpu as plgpu

from ._plan import Plan

F32 = jnp.float32
CTA, PEER, WG = "cta", "peer", "wg"   # grid (clusters), CTA within a cluster, warpgroup


def transforms(dtype) -> tuple:
  """128-byte swizzled tiles of 8 rows for a 2-D shared-memory operand of `dtype`
  (TMA and wgmma both read this layout)."""
  tiling = plgpu.TilingTransform((8, 128 // jnp.dtype(dtype).itemsize))  # type: ignore[abstract]
  return (tiling, plgpu.SwizzleTransform(128))  # type: ignore[abstract]


def smem(shape, dtype):
  return plgpu.SMEM(shape, dtype, transforms=transforms(dtype))


def indices(plan: Plan):
  """(direction, batch columns slice, warpgroup, its units: a slice of Hp) of this
  thread. A cluster's CTAs share the direction and batch tile and split the units."""
  cluster = jax.lax.axis_index(CTA)
  wg = jax.lax.axis_index(WG)
  peer = jax.lax.axis_index(PEER) if plan.cluster > 1 else 0
  d = cluster // plan.tiles
  cols = pl.ds((cluster % plan.tiles) * plan.bt, plan.bt)
  return d, cols, wg, pl.ds(peer * plan.hs + wg * plan.rows, plan.rows)


def matmul(a_ref, b_ref) -> jax.Array:
  """a (M, K) @ b (K, N) on the tensor cores (wgmma), float32 (M, N) in registers."""
  def run(acc):
    plgpu.wgmma(acc, a_ref, b_ref)
    return acc[...]
  return pl.run_scoped(run, plgpu.ACC((a_ref.shape[0], b_ref.shape[1]), F32))


def matmul_sum(pairs) -> jax.Array:
  """sum_k a_k @ b_k for (a_k, b_k) pairs, accumulated in one wgmma accumulator."""
  a0, b0 = pairs[0]

  def run(acc):
    for a, b in pairs:
      plgpu.wgmma(acc, a, b)
    return acc[...]
  return pl.run_scoped(run, plgpu.ACC((a0.shape[0], b0.shape[1]), F32))


def load_through(slots, barrier, sources) -> list:
  """Each GMEM view in `sources` (rows, Bt) copied in turn through slot 0 of `slots`
  into registers: the backward kernels' initial cotangents, before their ring starts."""
  loaded = []
  for src in sources:
    plgpu.copy_gmem_to_smem(src, slots.at[0], barrier)
    plgpu.barrier_wait(barrier)
    loaded.append(slots[0])
    plgpu.commit_smem()
  return loaded


def stage_wgmma(acc, n: int, w_k, operands, value, dtype):
  """acc += w_k @ value, `value` (K, Bt) cast to `dtype` in operand slot n % 2 of
  `operands` (2, K, Bt) shared memory: the n-th operand of a step reuses the slot of
  the (n-2)-th, so it waits (wgmma_wait(1)) for the wgmma that read it."""
  if n >= 2:
    plgpu.wgmma_wait(1)
  slot = operands.at[n % 2]
  slot[...] = value.astype(dtype)
  plgpu.commit_smem()
  plgpu.wgmma(acc, w_k, slot)


def backward_scratch(plan: Plan, gates: int, dtype) -> list:
  """A one-CTA backward kernel's scratch: W (gates, Hp, Hp) and two dz operand slots
  (2, Hp, Bt) in `dtype`, the ring (depth, Hp, Bt) float32, and depth + 2 barriers (the
  ring's, then the initial loads' and W's)."""
  return [smem((gates, plan.hp, plan.hp), dtype), smem((2, plan.hp, plan.bt), dtype),
          smem((plan.depth, plan.hp, plan.bt), F32),
          plgpu.Barrier(num_barriers=plan.depth + 2)]


def launch(body, *, plan: Plan, directions: int, out_type, scratch, interpret):
  """plgpu.kernel over a grid of directions x batch tiles (clusters of `plan.cluster`
  CTAs), `plan.warpgroups` warpgroups per CTA. `interpret`: Mosaic GPU interpret mode."""
  clustered = plan.cluster > 1
  return plgpu.kernel(
      body, out_type=out_type, scratch_types=scratch,
      grid=(directions * plan.tiles,), grid_names=(CTA,),
      cluster=(plan.cluster,) if clustered else (), cluster_names=(PEER,) if clustered else (),
      num_threads=plan.warpgroups, thread_name=WG,
      interpret=plgpu.InterpretGPUParams() if interpret else False)

