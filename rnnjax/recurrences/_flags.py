"""Masks and resets in the recurrences' scans (`_driver.py`, `_tangent.py`), with the scan
engine's semantics (`engine/_scan.py`): at a reset step the state is set back to the
initial state first (also when that step is masked); at a masked step the (reset) state
is kept."""

import jax.numpy as jnp

from ._carry import cast_like


def select(flags, fresh, held) -> tuple:
  """Per row: `fresh` (what the step computed) where flags (B,) or (B, U), else `held` (the
  carried or initial state, cast to `fresh`'s sharding and varying axes), over tuples."""
  if flags.ndim == 1:
    flags = flags[:, None]
  return tuple(jnp.where(flags, a, cast_like(b, a)) for a, b in zip(fresh, held))


def keep_flags(reset):
  """(T, B) False where the NEXT step resets (True after the last), or None: the scans
  apply a reset at the end of the step before it, where the select fuses with the step's
  elementwise math (a reset at the first step is a no-op:
  the carry starts at the initial state)."""
  if reset is None:
    return None
  return ~jnp.concatenate([reset[1:], jnp.zeros_like(reset[:1])], 0)
