"""Between user arrays and kernel arrays, for any gate count: the input projection, batch-
or time-major order, padding (B, U) <-> (Bp, Hp), and the time order of the states.

Keras layout: kernel (F, G*U), recurrent_kernel (U, G*U), gate column blocks in the
cell's order. Kernel layout: projection slots (Bp, T, D, G, Hp) and recurrent blocks
(D, G, Hp, Hp) [dir, gate, in, out]. All conversions are reshapes, transposes and zero
pads, so autodiff maps the gradients back to the Keras layout."""

import jax
import jax.numpy as jnp

from ._pallas import RESET, VALID


def pad_axis(x: jax.Array, axis: int, size: int) -> jax.Array:
  """Zero-pads `x` along `axis` up to `size` (no copy when it already has that size)."""
  extra = size - x.shape[axis]
  if extra == 0:
    return x
  widths = [(0, 0)] * x.ndim
  widths[axis] = (0, extra)
  return jnp.pad(x, widths)


def gate_blocks(matrix: jax.Array, gates: int, hp: int) -> jax.Array:
  """Keras (U, G*U) recurrent kernel -> gate-major (G, Hp, Hp) [gate, in, out], zero-padded."""
  u = matrix.shape[0]
  blocks = jnp.transpose(matrix.reshape(u, gates, u), (1, 0, 2))
  return pad_axis(pad_axis(blocks, 1, hp), 2, hp)


def recurrent_blocks(recurrent_kernels: jax.Array, gates: int, hp: int) -> jax.Array:
  """(D, U, G*U) Keras recurrent kernels -> (D, G, Hp, Hp) gate-major, zero-padded."""
  return jnp.stack([gate_blocks(r, gates, hp) for r in recurrent_kernels])


def projection_slots(projected: jax.Array, gates: int, bp: int, hp: int) -> jax.Array:
  """(B, T, D, G*U) -> (Bp, T, D, G, Hp): gate slots, padded rows and units."""
  b, t, d, gu = projected.shape
  slots = projected.reshape(b, t, d, gates, gu // gates)
  return pad_axis(pad_axis(slots, 4, hp), 0, bp)


def pad_states(states: jax.Array, bp: int, hp: int) -> jax.Array:
  """(D, B, U) -> (D, Bp, Hp)."""
  return pad_axis(pad_axis(states, 1, bp), 2, hp)


def pad_lengths(lengths: jax.Array | None, batch: int, steps: int, bp: int) -> jax.Array:
  """(B,) int lengths (None: all T) -> (Bp,) int32; padded rows get length 0."""
  if lengths is None:
    lengths = jnp.full((batch,), steps, jnp.int32)
  lengths = jnp.clip(jnp.asarray(lengths), 0, steps).astype(jnp.int32)
  return pad_axis(lengths, 0, bp)


def valid_in_processing_order(lengths: jax.Array, steps: int, reverse: bool) -> jax.Array:
  """(B, T) bool: whether processing step s of each row is a valid (unpadded) step."""
  s = jnp.arange(steps)
  t = steps - 1 - s if reverse else s
  return t[None, :] < lengths[:, None]


def batch_major(x: jax.Array, time_major: bool) -> jax.Array:
  return jnp.swapaxes(x, 0, 1) if time_major else x


def project(x: jax.Array, kernel: jax.Array, bias: jax.Array | None, dtype) -> jax.Array:
  """x (B, T, F) @ kernel (F, G) + bias (G,) with `dtype` operands, float32 result."""
  z = jnp.matmul(x.astype(dtype), kernel.astype(dtype), preferred_element_type=jnp.float32)
  if bias is not None:
    z = z + bias.astype(jnp.float32).reshape((1, 1, -1))
  return z


def previous_states_in_input_order(hs, h0, directions, flags=None):
  """The state each step started from, (Bp, T, D, Hp) in input time order: h0 then
  hs[:-1] in processing order, flipped back for reversed directions; h0 at the steps
  whose step flags (Bp, T, D) int32 (input order) have the reset bit set."""
  first = jnp.swapaxes(h0, 0, 1)[:, None].astype(hs.dtype)
  prev = jnp.concatenate([first, hs[:, :-1]], axis=1)
  per_dir = [jnp.flip(prev[:, :, d], 1) if rev else prev[:, :, d]
             for d, rev in enumerate(directions)]
  prev = jnp.stack(per_dir, axis=2)
  if flags is None:
    return prev
  return jnp.where(((flags & RESET) != 0)[..., None], first, prev)


def step_flags(mask, reset, lengths, batch: int, steps: int, bp: int) -> jax.Array:
  """The kernels' step flags (Bp, T, D) int32 in input time order: bit 1 (valid) where
  `mask` (B, T, D) bool (None: every step) holds and t < `lengths` (B,) (None: T); bit 2
  (reset) where `reset` (B, T, D) bool is set. Padded rows get 0 (masked, no reset)."""
  d = (mask if mask is not None else reset).shape[2]
  valid = jnp.ones((batch, steps, d), bool) if mask is None else jnp.asarray(mask, bool)
  if lengths is not None:
    valid = valid & (jnp.arange(steps)[None, :, None] < jnp.asarray(lengths)[:, None, None])
  flags = jnp.where(valid, VALID, 0).astype(jnp.int32)
  if reset is not None:
    flags = flags | jnp.where(jnp.asarray(reset, bool), RESET, 0)
  return pad_axis(flags, 0, bp)


def valid_in_processing_order_of_flags(flags: jax.Array, directions) -> jax.Array:
  """(B, T, D) bool: whether processing step s of each row and direction is valid, from
  step flags (B, T, D) in input order."""
  valid = (flags & VALID) != 0
  return jnp.stack([jnp.flip(valid[:, :, d], 1) if rev else valid[:, :, d]
                    for d, rev in enumerate(directions)], axis=2)
