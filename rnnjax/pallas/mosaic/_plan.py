"""Sizes of the Mosaic GPU kernels: padding, the batch tile, the warpgroups, the depth of
the TMA ring, and the shared-memory budget that decides whether W_hh stays resident.

Layout (swap-AB): every per-step array is stored transposed, units on rows and batch on
columns, (Hp, Bt), so a gate's recurrent product is one wgmma acc (Hp x Bt) =
W_k^T (Hp x Hp) @ h^T (Hp x Bt): M = the units (a multiple of 64, split over
warpgroups of `rows` each), N = the batch tile (64, 128 or 256), K = Hp.
"""

import dataclasses

import jax.numpy as jnp

SMEM_LIMIT = 232_448      # bytes of shared memory per block on H100/H200 (227 KiB opt-in)
SMEM_SLACK = 1_024        # barriers and alignment
UNIT_ROWS = 64            # wgmma M granularity; units are padded to a multiple
BATCH_TILES = (128, 64)     # N of the wgmma; wider tiles would not fit the registers
MIN_DEPTH = 2             # the ring must hold the unit in use and the next one


@dataclasses.dataclass(frozen=True)
class Plan:
  """A kernel's static sizes (hashable: a static argument of the custom VJP).

  hp: padded units; bt: batch tile (columns per CTA); bp: padded batch; rows: units per
  warpgroup (hp = rows * warpgroups); depth: (Hp, Bt) float32 slots in the TMA ring;
  units: ring units per step (forward 4: the gates' projections; backward 6).
  """

  hp: int
  bt: int
  bp: int
  rows: int
  depth: int
  units: int

  @property
  def warpgroups(self) -> int:
    return self.hp // self.rows

  @property
  def tiles(self) -> int:
    return self.bp // self.bt


def pad_to(n: int, multiple: int) -> int:
  return -(-n // multiple) * multiple


def smem_bytes(hp: int, bt: int, depth: int, *, operand_slots: int, itemsize: int) -> int:
  """Shared memory of one CTA: W (4, Hp, Hp) resident, `operand_slots` (Hp, Bt) wgmma B
  operands (forward: h double-buffered, 2; backward: dz per gate, 4) and the float32 ring."""
  return (4 * hp * hp * itemsize + operand_slots * hp * bt * itemsize
          + depth * hp * bt * 4 + SMEM_SLACK)


def plan(batch: int, units: int, dtype, *, units_per_step: int, operand_slots: int,
         batch_tile: int | None = None, one_warpgroup: bool = False) -> Plan | None:
  """The plan for (batch, units) in `dtype`, or None when W_hh does not fit one CTA's
  shared memory with a ring of at least MIN_DEPTH (then see `fit_reason`).
  `one_warpgroup`: one warpgroup owns all units (the backward)."""
  itemsize = jnp.dtype(dtype).itemsize
  hp = pad_to(units, UNIT_ROWS)
  tiles = (batch_tile,) if batch_tile is not None else BATCH_TILES
  for bt in tiles:
    if bt > max(64, pad_to(batch, 64)):
      continue   # a tile wider than the padded batch only adds padding
    depth = units_per_step
    while depth >= MIN_DEPTH and smem_bytes(hp, bt, depth, operand_slots=operand_slots,
                                            itemsize=itemsize) > SMEM_LIMIT:
      depth -= 1
    if depth < MIN_DEPTH:
      continue
    # Registers: a warpgroup holds three (rows, Bt) float32 arrays (the accumulator, c
    # and a partial gate product) over its 128 threads: at most 192 registers of them.
    rows = hp if one_warpgroup else UNIT_ROWS
    while hp % (2 * rows) == 0 and 3 * 2 * rows * bt // 128 <= 192:
      rows *= 2
    return Plan(hp=hp, bt=bt, bp=pad_to(batch, bt), rows=rows, depth=depth,
                units=units_per_step)
  return None


def fit_reason(batch: int, units: int, dtype, *, operand_slots: int) -> str:
  """Why no plan exists: the smallest configuration's shared memory against the limit."""
  itemsize = jnp.dtype(dtype).itemsize
  hp = pad_to(units, UNIT_ROWS)
  need = smem_bytes(hp, 64, MIN_DEPTH, operand_slots=operand_slots, itemsize=itemsize)
  return (f"W_hh of {units} units in {jnp.dtype(dtype).name} does not stay resident in one "
          f"CTA: {need} bytes of shared memory at batch tile 64 > {SMEM_LIMIT} (a cluster "
          f"split of W_hh is not built yet; use rnnjax.pallas.run_lstm or the scan)")
