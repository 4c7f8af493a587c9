"""Between the caller's arrays and the Mosaic kernels' transposed (swap-AB) layouts:
units on rows, batch on columns, gates on their own axis, time in processing order.

Caller: projected (B, T, D, G*U), recurrent kernels (D, U, G*U) (Keras), states (D, B, U).
Kernel: projection (D, T, G, Hp, Bp), W (D, G, Hp, Hp) [dir, gate, in, out], states
(D, Hp, Bp), outputs (D, T, Hp, Bp). Only reshapes, transposes, flips and zero pads, so
autodiff maps the gradients back."""

import jax
import jax.numpy as jnp


def _pad(x: jax.Array, sizes: dict[int, int]) -> jax.Array:
  widths = [(0, sizes.get(a, n) - n) for a, n in enumerate(x.shape)]
  return jnp.pad(x, widths) if any(w for _, w in widths) else x


def projection(projected, directions, hp: int, bp: int, gates: int = 4) -> jax.Array:
  """(B, T, D, G*U) -> (D, T, G, Hp, Bp), reversed directions flipped in time."""
  b, t, d, gu = projected.shape
  slots = jnp.transpose(projected.reshape(b, t, d, gates, gu // gates), (2, 1, 3, 4, 0))
  per_dir = [jnp.flip(slots[i], 0) if rev else slots[i] for i, rev in enumerate(directions)]
  return _pad(jnp.stack(per_dir), {3: hp, 4: bp})


def recurrent(recurrent_kernels, hp: int, gates: int = 4) -> jax.Array:
  """(D, U, G*U) -> (D, G, Hp, Hp) [dir, gate, in, out]."""
  d, u, _ = recurrent_kernels.shape
  blocks = jnp.transpose(recurrent_kernels.reshape(d, u, gates, u), (0, 2, 1, 3))
  return _pad(blocks, {2: hp, 3: hp})


def state(s, hp: int, bp: int) -> jax.Array:
  """(D, B, U) -> (D, Hp, Bp)."""
  return _pad(jnp.swapaxes(s, 1, 2), {1: hp, 2: bp})


def unstate(s, b: int, u: int) -> jax.Array:
  """(D, Hp, Bp) -> (D, B, U)."""
  return jnp.swapaxes(s[:, :u, :b], 1, 2)


def outputs(hs, b: int, u: int) -> jax.Array:
  """(D, T, Hp, Bp) -> (B, T, D, U) (processing order, as the kernels wrote it)."""
  return jnp.transpose(hs[:, :, :u, :b], (3, 1, 0, 2))
