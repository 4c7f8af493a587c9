"""Pallas plumbing shared by the kernels: block specs over the (Bp, T, D, ...) layouts,
the Triton compiler parameters, and in-kernel helpers for time order and masks.

Layouts (Bp batch padded to the tile, T time in input order, D directions, G gate slots,
Hp units padded): sequences (Bp, T, D, G, Hp) and (Bp, T, D, Hp); weights (D, G, Hp, Hp);
states (D, Bp, Hp); lengths (Bp,). Grid = (D, Bp // block_b). Inside a kernel the D
axis is squeezed away: a program sees (bB, T, G, Hp), (G, Hp, Hp), (bB, Hp), (bB,).
"""

import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plt

from ._tiling import KernelOptions

F32 = jnp.float32
_SQ = pl.squeezed


def gate_seq_spec(bb: int, steps: int, slots: int, hp: int) -> pl.BlockSpec:
  return pl.BlockSpec((bb, steps, _SQ, slots, hp), lambda d, b: (b, 0, d, 0, 0))


def seq_spec(bb: int, steps: int, hp: int) -> pl.BlockSpec:
  return pl.BlockSpec((bb, steps, _SQ, hp), lambda d, b: (b, 0, d, 0))


def weight_spec(slots: int, hp: int) -> pl.BlockSpec:
  return pl.BlockSpec((_SQ, slots, hp, hp), lambda d, b: (d, 0, 0, 0))


def vector_spec(hp: int) -> pl.BlockSpec:
  return pl.BlockSpec((_SQ, hp), lambda d, b: (d, 0))


def state_spec(bb: int, hp: int) -> pl.BlockSpec:
  return pl.BlockSpec((_SQ, bb, hp), lambda d, b: (d, b, 0))


def lengths_spec(bb: int) -> pl.BlockSpec:
  return pl.BlockSpec((bb,), lambda d, b: (b,))


def call(kernel, opts: KernelOptions, *, batch: int, in_specs, out_specs, out_shape, name: str):
  """`pallas_call` on the Triton backend (explicit compiler params pin it on every JAX)."""
  return pl.pallas_call(
      kernel,
      grid=(len(opts.directions), batch // opts.block_b),
      in_specs=in_specs,
      out_specs=out_specs,
      out_shape=out_shape,
      compiler_params=plt.CompilerParams(num_warps=opts.num_warps, num_stages=opts.num_stages),
      interpret=opts.interpret,
      name=name,
  )


def reversed_direction(directions: tuple[bool, ...]):
  """Whether this program reads time in reverse: a Python bool for one direction, a
  traced scalar (from the grid position) for two."""
  if len(set(directions)) == 1:
    return directions[0]
  return pl.program_id(0) == directions.index(True)


def time_index(rev, s, steps: int):
  """Input-order time index of processing step `s`."""
  if isinstance(rev, bool):
    return steps - 1 - s if rev else s
  return jnp.where(rev, steps - 1 - s, s)


def valid_rows(t, lengths):
  """(bB, 1) bool: rows whose sequence covers input-order time index `t` (right padding)."""
  return (t < lengths)[:, None]


def dot(a, w, precision):
  """(bB, K) @ (K, N) on the tensor cores, operands in `w`'s dtype, f32 accumulation."""
  return jnp.dot(a.astype(w.dtype), w, preferred_element_type=F32, precision=precision)


def load_blocks(w_ref, slots, resident: bool):
  """The per-gate (Hp, Hp) blocks: loaded now (resident) or a loader for each step."""
  if resident:
    blocks = [w_ref[k] for k in range(slots)]
    return lambda k: blocks[k]
  return lambda k: w_ref[k]
