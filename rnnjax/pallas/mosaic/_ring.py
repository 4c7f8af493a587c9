"""A ring of float32 (rows, Bt) shared-memory slots filled by TMA ahead of their use.

A kernel consumes a fixed sequence of units per time step (forward: the 4 gates'
projections; backward: the output gradient, the residuals). Unit u = step * U + j lives in
slot u % depth; when a unit is taken, the unit `depth` places later is issued into its
slot, so up to depth - 1 units (more than a step when depth > U) are in flight while the
warpgroup computes. Each warpgroup runs its own ring over its own rows, with one
barrier per slot, so warpgroups never wait on each other's copies.
"""

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
from jax.experimental import pallas as pl
from jax.experimental.pallas import mosaic_gpu as plgpu


@dataclasses.dataclass(frozen=True)
class Ring:
  """slots: SMEM (depth, rows, Bt) float32; barriers: a barrier array whose entries
  first + 0 .. first + depth - 1 are this ring's; sources[j](step): the GMEM (rows, Bt)
  view of unit j at `step` (a traced int); steps: T."""

  slots: Any
  barriers: Any
  first: Any
  sources: Sequence[Callable]
  steps: int

  @property
  def depth(self) -> int:
    return self.slots.shape[0]

  def _issue(self, step, j: int):
    slot = (step * len(self.sources) + j) % self.depth
    plgpu.copy_gmem_to_smem(self.sources[j](step), self.slots.at[slot],
                            self.barriers.at[self.first + slot])

  def start(self):
    """Issues the first `depth` units (those of the first steps)."""
    per_step = len(self.sources)
    for u in range(min(self.depth, per_step * self.steps)):
      self._issue(u // per_step, u % per_step)

  def take(self, step, j: int) -> jax.Array:
    """Waits for unit j of `step`, reads it into registers, then refills its slot with
    the unit `depth` places later (if any)."""
    per_step = len(self.sources)
    slot = (step * per_step + j) % self.depth
    plgpu.barrier_wait(self.barriers.at[self.first + slot])
    value = self.slots[slot]
    # Every thread's read of the slot must finish before the TMA overwrites it.
    plgpu.commit_smem()
    ahead, j_next = divmod(j + self.depth, per_step)

    @pl.when(step + ahead < self.steps)
    def _():
      self._issue(step + ahead, j_next)

    return value
