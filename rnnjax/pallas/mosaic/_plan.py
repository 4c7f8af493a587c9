"""Sizes of the Mosaic GPU kernels: padding, the batch tile, the cluster split of W_hh,
the warpgroups, the depth of the TMA ring, and the shared-memory budget that decides
whether W_hh stays resident.

Layout (swap-AB): every per-step array is stored transposed, units on rows and batch on
columns, (Hp, Bt), so a gate's recurrent product is one wgmma acc (Hs x Bt) =
W_k^T[slice] (Hs x Hp) @ h^T (Hp x Bt): M = the CTA's units Hs = Hp / cluster (a
multiple of 64, split over warpgroups of `rows` each), N = the batch tile (64 or 128),
K = Hp. A cluster of P CTAs splits the units (rows of W_k^T) P ways and exchanges h.
"""

import dataclasses

import jax.numpy as jnp

SMEM_LIMIT = 232_448      # bytes of shared memory per block on H100/H200 (227 KiB opt-in)
SMEM_SLACK = 1_024        # barriers and alignment
UNIT_ROWS = 64            # wgmma M granularity; units are padded to a multiple
BATCH_TILES = (128, 64)   # N of the wgmma; wider tiles would not fit the registers
CLUSTERS = (1, 2, 4, 8)   # CTAs sharing W_hh (8: the portable cluster size limit)
MIN_DEPTH = 2             # the ring must hold the unit in use and the next one


@dataclasses.dataclass(frozen=True)
class Plan:
  """A kernel's static sizes (hashable: a static argument of the custom VJP).

  hp: padded units; bt: batch tile (columns per cluster); bp: padded batch; cluster: P,
  the CTAs that split the units (hs = hp / P each); rows: units per warpgroup (hs = rows
  * warpgroups); depth: (rows, Bt) float32 slots in each warpgroup's TMA ring; units:
  ring units per step (forward 4: the gates' projections; backward 6).
  """

  hp: int
  bt: int
  bp: int
  rows: int
  depth: int
  units: int
  cluster: int = 1

  @property
  def hs(self) -> int:
    return self.hp // self.cluster

  @property
  def warpgroups(self) -> int:
    return self.hs // self.rows

  @property
  def tiles(self) -> int:
    return self.bp // self.bt


def pad_to(n: int, multiple: int) -> int:
  return -(-n // multiple) * multiple


def smem_bytes(hp: int, bt: int, depth: int, *, operand_slots: int, itemsize: int,
               cluster: int = 1, gates: int = 4) -> int:
  """Shared memory of one CTA: its rows of W (G, Hp/P, Hp) resident, `operand_slots`
  (Hp, Bt) wgmma B operands (forward: h double-buffered; backward: two dz slots) and the
  float32 ring of (Hp/P, Bt) slots."""
  hs = hp // cluster
  return (gates * hs * hp * itemsize + operand_slots * hp * bt * itemsize
          + depth * hs * bt * 4 + SMEM_SLACK)


def plan(batch: int, units: int, dtype, *, units_per_step: int, operand_slots: int,
         batch_tile: int | None = None, one_warpgroup: bool = False,
         clusters: tuple[int, ...] = (1,), gates: int = 4) -> Plan | None:
  """The plan for (batch, units) in `dtype`, or None when W_hh does not fit the shared
  memory of a cluster of any size in `clusters` with a ring of at least MIN_DEPTH (then
  see `fit_reason`). The smallest cluster and then the widest batch tile win.
  `one_warpgroup`: one warpgroup owns all the CTA's units (the backward; the cluster
  kernel)."""
  itemsize = jnp.dtype(dtype).itemsize
  tiles = (batch_tile,) if batch_tile is not None else BATCH_TILES
  for p in clusters:
    hp = pad_to(units, p * UNIT_ROWS)   # every CTA of the cluster owns a multiple of 64
    for bt in tiles:
      if bt > max(64, pad_to(batch, 64)):
        continue   # a tile wider than the padded batch only adds padding
      depth = units_per_step
      while depth >= MIN_DEPTH and smem_bytes(hp, bt, depth, operand_slots=operand_slots,
                                              itemsize=itemsize, cluster=p,
                                              gates=gates) > SMEM_LIMIT:
        depth -= 1
      if depth < MIN_DEPTH:
        continue
      hs = hp // p
      # Registers: a warpgroup holds three (rows, Bt) float32 arrays (the accumulator,
      # c and a partial gate product) over its 128 threads: at most 192 registers.
      rows = hs if (one_warpgroup or p > 1) else UNIT_ROWS
      while hs % (2 * rows) == 0 and 3 * 2 * rows * bt // 128 <= 192:
        rows *= 2
      return Plan(hp=hp, bt=bt, bp=pad_to(batch, bt), rows=rows, depth=depth,
                  units=units_per_step, cluster=p)
  return None


def fit_reason(batch: int, units: int, dtype, *, operand_slots: int,
               clusters: tuple[int, ...] = (1,), gates: int = 4) -> str:
  """Why no plan exists: the largest cluster's shared memory against the limit."""
  itemsize = jnp.dtype(dtype).itemsize
  p = max(clusters)
  hp = pad_to(units, p * UNIT_ROWS)
  need = smem_bytes(hp, 64, MIN_DEPTH, operand_slots=operand_slots, itemsize=itemsize,
                    cluster=p, gates=gates)
  where = "one CTA" if p == 1 else f"a cluster of {p} CTAs"
  return (f"W_hh of {units} units in {jnp.dtype(dtype).name} does not stay resident in "
          f"{where}: {need} bytes of shared memory per CTA at batch tile 64 > "
          f"{SMEM_LIMIT} (use rnnjax.pallas.run_lstm or the scan)")
