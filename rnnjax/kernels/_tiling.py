"""Block sizes and limits shared by the LSTM and GRU kernels (the per-cell `_config`
modules fix the gate count).

The kernels are single-CTA: one program owns `block_b` batch rows of one direction for
the whole sequence, and needs every gate's (Hp, Hp) recurrent block (Hp = units padded
to a power of two) as a dot operand at every step. Triton stages a dot's operand in
shared memory, so one gate's block must fit there; when all gates fit together the
kernel loads them once before the time loop ("resident"), otherwise it re-reads them
from global memory (L2) at every step ("streamed"). The byte budgets are estimates for
an H100 (227 KiB of shared memory per block), not measurements.
"""

import dataclasses

import jax
import jax.numpy as jnp

MIN_BLOCK_B = 16          # Triton's dot needs every dimension >= 16
MIN_UNITS_PAD = 16
GATE_TILE_BUDGET = 128 * 1024   # bytes: one gate's (Hp, Hp) block as a dot operand [est]
RESIDENT_BUDGET = 128 * 1024    # bytes: all gates' blocks kept on chip across steps [est]
SUPPORTED_DTYPES = (jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16))


def next_pow2(n: int) -> int:
  return 1 << max(0, int(n) - 1).bit_length()


def units_pad(units: int) -> int:
  return max(MIN_UNITS_PAD, next_pow2(units))


def max_units(dtype) -> int:
  """The largest `units` whose padded gate block fits GATE_TILE_BUDGET."""
  item = jnp.dtype(dtype).itemsize
  hp = MIN_UNITS_PAD
  while (2 * hp) ** 2 * item <= GATE_TILE_BUDGET:
    hp *= 2
  return hp


def dtype_reason(dtype, argument: str = "compute dtype") -> str | None:
  if jnp.dtype(dtype) not in SUPPORTED_DTYPES:
    return f"{argument} {jnp.dtype(dtype).name} (the kernel supports float32 and bfloat16)"
  return None


def units_reason(units: int, dtype) -> str | None:
  """Why `units` is too large for the single-CTA kernel, or None."""
  hp = units_pad(units)
  tile = hp * hp * jnp.dtype(dtype).itemsize
  if tile <= GATE_TILE_BUDGET:
    return None
  return (
      f"units={units} is too large for the single-CTA kernel: one gate's recurrent block "
      f"(units padded to {hp}) is {tile // 1024} KiB of {jnp.dtype(dtype).name}, over the "
      f"{GATE_TILE_BUDGET // 1024} KiB on-chip budget; the largest supported units is "
      f"{max_units(dtype)} for {jnp.dtype(dtype).name}"
  )


@dataclasses.dataclass(frozen=True)
class KernelOptions:
  """Static configuration of one kernel launch (hashable: a custom_vjp nondiff argument).

  directions: per direction (grid axis 0), whether it reads time in reverse.
  block_b: batch rows per program (power of two >= 16).
  resident: the recurrent blocks are loaded once before the time loop.
  """

  directions: tuple[bool, ...]
  block_b: int
  resident: bool
  num_warps: int
  num_stages: int
  interpret: bool
  precision: jax.lax.Precision | None = None


def check_block_b(block_b) -> None:
  if block_b is None:
    return
  if isinstance(block_b, bool) or not isinstance(block_b, int):
    raise TypeError(f"block_b must be None or an int, got {block_b!r}.")
  if block_b < MIN_BLOCK_B or block_b & (block_b - 1):
    raise ValueError(f"block_b must be a power of two >= {MIN_BLOCK_B}, got {block_b}.")


def choose(*, batch: int, units: int, gates: int, dtype, directions: tuple[bool, ...],
           interpret: bool, block_b: int | None = None, precision=None) -> KernelOptions:
  """Kernel options for a (batch, units) problem; units must pass `units_reason`."""
  check_block_b(block_b)
  hp = units_pad(units)
  item = jnp.dtype(dtype).itemsize
  if block_b is None:
    block_b = MIN_BLOCK_B   # more programs beat bigger tiles while B / 16 <= #SMs [est]
  resident = gates * hp * hp * item <= RESIDENT_BUDGET
  num_warps = 4 if hp <= 64 else 8
  return KernelOptions(directions=tuple(directions), block_b=block_b, resident=resident,
                       num_warps=num_warps, num_stages=2, interpret=interpret,
                       precision=precision)


def batch_pad(batch: int, block_b: int) -> int:
  return max(1, -(-batch // block_b)) * block_b
