"""Variational dropout masks: drawn once per call, reused at every step (as Keras does)."""

from typing import NamedTuple

import jax
import jax.numpy as jnp


class DropoutMasks(NamedTuple):
  """Keep-masks scaled by 1 / (1 - rate), or None where that dropout is off.

  inputs:    (N, B, *input_shape), one mask per gate (N gates) or one shared (N = 1).
  recurrent: (N, B, *state_shape), likewise for the recurrent state.
  """

  inputs: jax.Array | None
  recurrent: jax.Array | None


def keep_mask(key: jax.Array, rate: float, shape: tuple[int, ...], dtype) -> jax.Array | None:
  """`bernoulli(1 - rate) / (1 - rate)` of `shape`, or None when `rate` is 0."""
  if rate <= 0.0:
    return None
  keep = jax.random.bernoulli(key, 1.0 - rate, shape)
  return keep.astype(dtype) / jnp.asarray(1.0 - rate, dtype)


def check_rate(rate, argument: str) -> float:
  """Validates a dropout rate; Keras clips silently, rnnjax says what is wrong."""
  if isinstance(rate, bool) or not isinstance(rate, (int, float)):
    raise TypeError(f"{argument} must be a float in [0, 1), got {rate!r}.")
  if not 0.0 <= rate < 1.0:
    raise ValueError(f"{argument} must be in [0, 1), got {rate!r}.")
  return float(rate)


def apply_mask(x: jax.Array, mask: jax.Array | None) -> jax.Array:
  """`x * mask`, with `mask` (B, ...) broadcast over any leading axes of `x` (e.g. time)."""
  if mask is None:
    return x
  lead = x.ndim - mask.ndim
  return x * mask.reshape((1,) * lead + mask.shape).astype(x.dtype)
