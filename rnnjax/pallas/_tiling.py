"""Block sizes shared by the LSTM and GRU kernels (a cell's `GateSpec.options` fixes the
gate count).

The kernels are single-CTA: one program owns `block_b` batch rows of one direction for
the whole sequence. The hidden dimension is cut into chunks of `block_h` units (a power
of two), and units are padded to Hp, a multiple of it: each step's recurrent product is
(Hp / block_h)^2 dots per gate of (block_b, block_h) @ (block_h, block_h). Triton stages
a dot's operand in shared memory, so one (block_h, block_h) block must fit there, which
bounds block_h (256 in bfloat16, 128 in float32). When all gates' blocks fit together
(small units) the kernel loads them once before the time loop ("resident"), otherwise it
re-reads them from global memory (L2) at every step ("streamed"). `candidates` lists the
tilings of a problem, best first; which of them compile within sm_90's shared memory and
registers is the compile check's verdict (`compile_check`, `_envelope`), not these
budgets.
"""

import dataclasses

import jax
import jax.numpy as jnp

from ..types import DTypeLike

MIN_BLOCK_B = 16          # Triton's dot needs every dimension >= 16
MIN_UNITS_PAD = 16
GATE_TILE_BUDGET = 128 * 1024   # bytes: one gate's (Hp, Hp) block as a dot operand [est]
RESIDENT_BUDGET = 128 * 1024    # bytes: all gates' blocks kept on chip across steps [est]
SUPPORTED_DTYPES = (jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16))


def next_pow2(n: int) -> int:
  return 1 << max(0, int(n) - 1).bit_length()


def max_block_h(dtype: DTypeLike) -> int:
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
  num_warps, num_stages: Triton's (num_stages=1 when the blocks are streamed).
  precision: of the float32 dots (None: TF32 unless jax.default_matmul_precision says).
  prefetch: the forward loads the next step's projection one step ahead.
  masked: the kernels read per-step flags (Bp, T, D) int32 (`_pallas.VALID`,
    `_pallas.RESET`: arbitrary masks and segment resets) instead of lengths (Bp,). A
    static option: a call without masks or resets lowers to the unmasked kernels' IR.
  """

  directions: tuple[bool, ...]
  block_b: int
  block_h: int
  resident: bool
  num_warps: int
  num_stages: int
  interpret: bool
  precision: jax.lax.Precision | None = None
  prefetch: bool = False
  masked: bool = False


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


@dataclasses.dataclass(frozen=True)
class Tiling:
  """How one kernel is cut and compiled (the part of KernelOptions the compile check
  varies): block_h, Triton's num_warps and num_stages, whether the recurrent blocks are
  resident, whether the forward prefetches the next step's projection."""

  block_h: int
  num_warps: int
  num_stages: int
  resident: bool
  prefetch: bool

  def options(self, *, directions, interpret: bool, block_b: int = MIN_BLOCK_B,
              precision=None, masked: bool = False) -> KernelOptions:
    return KernelOptions(directions=tuple(directions), block_b=block_b,
                         block_h=self.block_h, resident=self.resident,
                         num_warps=self.num_warps, num_stages=self.num_stages,
                         interpret=interpret, precision=precision, prefetch=self.prefetch,
                         masked=masked)


def candidates(*, units: int, gates: int, dtype, block_h: int | None = None) -> list[Tiling]:
  """The tilings for a problem, best first; the first one the compile check verified is
  used (`_envelope.choose`).

  block_h: one chunk when it fits (small units keep the untiled kernel), the largest
  chunk above; then half of it, a smaller tiling for streamed blocks. The blocks are
  resident when all gates' fit RESIDENT_BUDGET, else streamed from L2 at every step
  with num_stages=1 (Triton's pipeliner would prefetch every streamed block of the next
  step into shared memory: 520 KiB at bfloat16 units=256). Each block_h first with the
  next step's projection prefetched through the loop carry, then without (it costs
  registers).
  """
  item = jnp.dtype(dtype).itemsize
  if block_h is None:
    natural = min(max(MIN_UNITS_PAD, next_pow2(units)), max_block_h(dtype))
    sizes = [natural]
    if gates * units_pad(units, natural) ** 2 * item > RESIDENT_BUDGET and natural >= 128:
      sizes.append(natural // 2)
  else:
    sizes = [block_h]
  out = []
  for bh in sizes:
    hp = units_pad(units, bh)
    resident = gates * hp * hp * item <= RESIDENT_BUDGET
    warps = 4 if bh <= 64 and resident else 8
    stages = 2 if resident else 1
    out += [Tiling(bh, warps, stages, resident, prefetch) for prefetch in (True, False)]
  return out


def batch_pad(batch: int, block_b: int) -> int:
  return max(1, -(-batch // block_b)) * block_b
