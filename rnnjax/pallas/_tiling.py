"""Block sizes shared by the LSTM and GRU kernels (a cell's `GateSpec.options` fixes the
gate count).

The kernels are single-CTA: one program owns `block_b` batch rows of one direction for
the whole sequence. The hidden dimension is cut into chunks of `block_h` units (a power
of two), and units are padded to Hp, a multiple of it: each step's recurrent product is
(Hp / block_h)^2 dots per gate of (block_b, block_h) @ (block_h, block_h). Triton stages
a dot's operand in shared memory, so one (block_h, block_h) block must fit there, which
bounds block_h (256 in bfloat16, 128 in float32); any units runs. When all gates' blocks
fit together (one chunk, small units) the kernel loads them once before the time loop
("resident"), otherwise it re-reads them from global memory (L2) at every step
("streamed"). The byte budgets are estimates for an H100 (227 KiB of shared memory per
block), not measurements.
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


def max_block_h(dtype) -> int:
  """The largest hidden chunk whose (block_h, block_h) gate block fits GATE_TILE_BUDGET."""
  item = jnp.dtype(dtype).itemsize
  hp = MIN_UNITS_PAD
  while (2 * hp) ** 2 * item <= GATE_TILE_BUDGET:
    hp *= 2
  return hp


def units_pad(units: int, block_h: int) -> int:
  """Units padded to a multiple of the hidden chunk."""
  return -(-int(units) // block_h) * block_h


def dtype_reason(dtype, what: str = "compute dtype") -> str | None:
  """Why the kernels cannot compute in `dtype` (`what` names it in the reason), or None.

  >>> dtype_reason("float16")
  'compute dtype float16 (the kernel supports float32 and bfloat16)'
  """
  if jnp.dtype(dtype) not in SUPPORTED_DTYPES:
    return f"{what} {jnp.dtype(dtype).name} (the kernel supports float32 and bfloat16)"
  return None


@dataclasses.dataclass(frozen=True)
class KernelOptions:
  """Static configuration of one kernel launch (hashable: a custom_jvp nondiff argument).

  directions: per direction (grid axis 0), whether it reads time in reverse.
  block_b: batch rows per program (power of two >= 16).
  block_h: units per hidden chunk (power of two >= 16); units are padded to a multiple.
  resident: the recurrent blocks are loaded once before the time loop.
  """

  directions: tuple[bool, ...]
  block_b: int
  block_h: int
  resident: bool
  num_warps: int
  num_stages: int
  interpret: bool
  precision: jax.lax.Precision | None = None


def check_block(value, name: str, dtype=None) -> None:
  """`block_b` / `block_h`: None or a power of two >= 16 (block_h: at most max_block_h)."""
  if value is None:
    return
  if isinstance(value, bool) or not isinstance(value, int):
    raise TypeError(f"{name} must be None or an int, got {value!r}.")
  if value < MIN_BLOCK_B or value & (value - 1):
    raise ValueError(f"{name} must be a power of two >= {MIN_BLOCK_B}, got {value}.")
  if dtype is not None and value > max_block_h(dtype):
    raise ValueError(f"{name} must be at most {max_block_h(dtype)} for "
                     f"{jnp.dtype(dtype).name} (one gate block on chip), got {value}.")


def choose(*, batch: int, units: int, gates: int, dtype, directions: tuple[bool, ...],
           interpret: bool, block_b: int | None = None, block_h: int | None = None,
           precision=None) -> KernelOptions:
  """Kernel options for a (batch, units) problem."""
  check_block(block_b, "block_b")
  check_block(block_h, "block_h", dtype)
  item = jnp.dtype(dtype).itemsize
  if block_b is None:
    block_b = MIN_BLOCK_B   # more programs beat bigger tiles while B / 16 <= #SMs [est]
  if block_h is None:   # one chunk when it fits: small units keep the untiled kernel
    block_h = min(max(MIN_UNITS_PAD, next_pow2(units)), max_block_h(dtype))
  hp = units_pad(units, block_h)
  resident = gates * hp * hp * item <= RESIDENT_BUDGET
  num_warps = 4 if block_h <= 64 else 8
  return KernelOptions(directions=tuple(directions), block_b=block_b, block_h=block_h,
                       resident=resident, num_warps=num_warps, num_stages=2,
                       interpret=interpret, precision=precision)


def batch_pad(batch: int, block_b: int) -> int:
  return max(1, -(-batch // block_b)) * block_b
