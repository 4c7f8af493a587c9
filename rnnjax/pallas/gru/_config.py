"""GRU kernel configuration: three gate blocks; see `kernels._tiling` for the heuristics."""

from .. import _tiling

GATES = 3     # z, r, h
RESIDUAL_SLOTS = 4   # saved z, r, candidate n, and q = h @ W_h + b_h


def options(*, batch, units, dtype, directions, interpret, block_b=None, block_h=None,
            precision=None):
  return _tiling.choose(batch=batch, units=units, gates=GATES, dtype=dtype,
                        directions=directions, interpret=interpret, block_b=block_b,
                        block_h=block_h, precision=precision)


def unsupported_reason(dtype) -> str | None:
  """Why the kernel cannot run this GRU, or None (any units runs: the kernel tiles the
  hidden dimension)."""
  return _tiling.dtype_reason(dtype)
