"""Pallas plumbing shared by the kernels: block specs over the (Bp, T, D, ...) layouts,
the Triton compiler parameters, and in-kernel helpers for time order and masks.

Layouts (Bp batch padded to the tile, T time in input order, D directions, G gate slots,
Hp units padded): sequences (Bp, T, D, G, Hp) and (Bp, T, D, Hp); weights (D, G, Hp, Hp);
states (D, Bp, Hp); lengths (Bp,), or with `opts.masked` step flags (Bp, T, D) int32
(VALID | RESET bits, input time order). Grid = (D, Bp // block_b). Inside a kernel the D
axis is squeezed away: a program sees (bB, T, G, Hp), (G, Hp, Hp), (bB, Hp), (bB,).

Inside a kernel the hidden dimension is handled in chunks of `block_h` units: every load
and store reads or writes one chunk (a static slice of a ref, so every tensor Triton sees
is a power of two), and states are tuples of (bB, block_h) chunks.
"""

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plt

from .._linear_map import vary, varying_axes
from ._tiling import KernelOptions

F32 = jnp.float32
_SQ = pl.squeezed
VALID, RESET = 1, 2   # the bits of a step flag: the step is valid; the state resets before it


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


def flags_spec(bb: int, steps: int) -> pl.BlockSpec:
  return pl.BlockSpec((bb, steps, _SQ), lambda d, b: (b, 0, d))


def steps_spec(opts: KernelOptions, bb: int, steps: int) -> pl.BlockSpec:
  """The block of the kernels' first input: step flags when masked, else lengths."""
  return flags_spec(bb, steps) if opts.masked else lengths_spec(bb)


def call(kernel, opts: KernelOptions, *, batch: int, in_specs, out_specs, out_shape, name: str):
  """`pallas_call` on the Triton backend (explicit compiler params pin it on every JAX).

  Inside `jax.shard_map` the outputs vary over the mesh axes any input varies over: the
  inputs are cast to those axes and the outputs declare them (Pallas needs them stated).
  """
  def launch(*args):
    varying = frozenset().union(*(varying_axes(a) for a in args))
    args = [vary(a, varying) for a in args]
    manual = getattr(jax.typeof(args[0]), "manual_axis_type", None)
    shapes = [jax.ShapeDtypeStruct(s.shape, s.dtype, manual_axis_type=manual)
              for s in out_shape]
    return pl.pallas_call(
        kernel,
        grid=(len(opts.directions), batch // opts.block_b),
        in_specs=in_specs,
        out_specs=out_specs,
        out_shape=shapes,
        compiler_params=plt.CompilerParams(num_warps=opts.num_warps,
                                           num_stages=opts.num_stages),
        interpret=opts.interpret,
        name=name,
    )(*args)
  return launch


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


def step_flags(flags_ref, t):
  """((bB, 1) bool valid, (bB, 1) bool reset) of input-order step t, from the (bB, T)
  int32 step flags."""
  f = flags_ref[:, t]
  return ((f & VALID) != 0)[:, None], ((f & RESET) != 0)[:, None]


def dot(a, w, precision):
  """(bB, K) @ (K, N) on the tensor cores, operands in `w`'s dtype, f32 accumulation."""
  return jnp.dot(a.astype(w.dtype), w, preferred_element_type=F32, precision=precision)


def chunks(hp: int, block_h: int) -> list[slice]:
  """The static column slices of the Hp // block_h hidden chunks."""
  return [slice(a * block_h, (a + 1) * block_h) for a in range(hp // block_h)]


def load_chunks(ref, cols, *index):
  """A state or a step of a sequence as chunks: ref[(*index, chunk)] for each chunk."""
  return tuple(ref[(*index, c)] for c in cols)


def opaque_zero(s, interpret: bool):
  """0, computed from the loop index `s` by inline PTX that no compiler pass can fold or
  hoist out of the loop (in interpret mode, plainly 0)."""
  if interpret:
    return 0
  # A 0-d operand lowers to a tensor that scalar index math rejects: go through a
  # 16-vector and a reduction back to a scalar.
  (zeros,) = plt.elementwise_inline_asm(
      "and.b32 $0, $1, 0;", args=[jnp.full((16,), s, jnp.int32)], constraints="=r,r",
      pack=1, result_shape_dtypes=[jax.ShapeDtypeStruct((16,), jnp.int32)])
  return jnp.max(zeros)


def load_blocks(w_ref, slots: int, cols, resident: bool, interpret: bool):
  """The (block_h, block_h) recurrent blocks per step: `at(s)` is a loader w(k, a, b) of
  gate k's block of input chunk a and output chunk b at loop step s.

  Resident blocks are read once, before the loop. Streamed blocks are read at every
  step at an address made to depend on s (an opaque zero added to the gate index): a
  loop-invariant address is hoisted out of the loop, and then the addresses of every
  block stay live in registers across steps (64-bit each, for every 16-byte vector a
  thread loads), which made the streamed kernels spill."""
  if resident:
    blocks = {(k, a, b): w_ref[k, cols[a], cols[b]] for k in range(slots)
              for a in range(len(cols)) for b in range(len(cols))}
    return lambda s: (lambda k, a, b: blocks[k, a, b])

  def at(s):
    zero = opaque_zero(s, interpret)
    return lambda k, a, b: w_ref[k + zero, cols[a], cols[b]]
  return at


def chunk_product(xs, w, k: int, b: int, precision):
  """Output chunk b of (bB, Hp) @ gate k's (Hp, Hp) block: sum_a xs[a] @ w(k, a, b), each
  dot on the tensor cores with f32 accumulation (xs: the chunks, in the operand dtype)."""
  acc = dot(xs[0], w(k, 0, b), precision)
  for a in range(1, len(xs)):
    acc = acc + dot(xs[a], w(k, a, b), precision)
  return acc

