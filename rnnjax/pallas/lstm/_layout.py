"""Keras LSTM layout <-> the kernel's gate-major, padded layout.

Keras: kernel (F, 4U), recurrent_kernel (U, 4U), bias (4U,), gate column blocks i, f, c, o.
Kernel: projection slots (Bp, T, D, 4, Hp) and recurrent blocks (D, 4, Hp, Hp) [dir, gate,
in, out]. All conversions are reshapes, transposes and zero pads, so autodiff maps the
gradients back to the Keras layout.
"""

import jax
import jax.numpy as jnp

from .. import _shapes
from ._config import GATES


def recurrent_blocks(recurrent_kernels: jax.Array, hp: int) -> jax.Array:
  """(D, U, 4U) -> (D, 4, Hp, Hp)."""
  return jnp.stack([_shapes.gate_blocks(r, GATES, hp) for r in recurrent_kernels])


def projection_slots(projected: jax.Array, bp: int, hp: int) -> jax.Array:
  """(B, T, D, 4U) -> (Bp, T, D, 4, Hp)."""
  return _shapes.projection_slots(projected, GATES, bp, hp)
