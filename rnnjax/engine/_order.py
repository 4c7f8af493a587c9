"""Layout changes between the user's (B, T, ...) order and the scan's (T, B, ...) order."""

import jax
import jax.numpy as jnp


def to_scan_order(tree, *, time_major: bool, reverse: bool):
  """(B, T, ...) leaves (or (T, B, ...) if time_major) -> (T, B, ...), reversed in time if asked.

  The swap is done on the raw inputs, before the input projection, so the large
  projected tensor is born time-major and is never transposed.
  """

  def one(x):
    if not time_major:
      x = jnp.swapaxes(x, 0, 1)
    return jnp.flip(x, 0) if reverse else x

  return jax.tree.map(one, tree)


def from_scan_order(tree, *, time_major: bool):
  """(T, B, ...) -> the user's order; outputs stay in processing order (Keras `go_backwards`)."""
  if time_major:
    return tree
  return jax.tree.map(lambda y: jnp.swapaxes(y, 0, 1), tree)
