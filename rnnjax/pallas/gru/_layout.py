"""Keras GRU (reset_after=True) layout <-> the kernel's gate-major, padded layout.

Keras: kernel (F, 3U), recurrent_kernel (U, 3U), bias (2, 3U) (row 0 input, row 1
recurrent), gate column blocks z, r, h. The kernel takes projection slots
(Bp, T, D, 3, Hp) = x @ kernel + input bias + the recurrent bias of z and r (those add
linearly, so they fold into the projection), recurrent blocks (D, 3, Hp, Hp), and the
recurrent bias of the candidate, (D, Hp), which the reset gate multiplies.
"""

import jax
import jax.numpy as jnp

from .. import _shapes
from ._config import GATES


def recurrent_blocks(recurrent_kernels: jax.Array, hp: int) -> jax.Array:
  """(D, U, 3U) -> (D, 3, Hp, Hp)."""
  return jnp.stack([_shapes.gate_blocks(r, GATES, hp) for r in recurrent_kernels])


def fold_recurrent_bias(projected: jax.Array, recurrent_bias: jax.Array | None):
  """projected (B, T, D, 3U) (input bias included), recurrent_bias (D, 3U) or None ->
  (projected with the z, r recurrent biases added, candidate bias (D, U))."""
  d, gu = projected.shape[2], projected.shape[3]
  u = gu // GATES
  if recurrent_bias is None:
    return projected, jnp.zeros((d, u), jnp.float32)
  rb = recurrent_bias.astype(projected.dtype)
  zr = jnp.concatenate([rb[:, : 2 * u], jnp.zeros((d, u), rb.dtype)], axis=-1)
  return projected + zr.reshape((1, 1, d, gu)), recurrent_bias[:, 2 * u:].astype(jnp.float32)


def projection_slots(projected: jax.Array, bp: int, hp: int) -> jax.Array:
  """(B, T, D, 3U) -> (Bp, T, D, 3, Hp)."""
  return _shapes.projection_slots(projected, GATES, bp, hp)
