"""Pure-JAX GRU (reset_after=True) reference (one lax.scan, see `gated.scan`): the test
oracle of the kernel and its fallback, with the kernel's numerics (the z and r recurrent
biases folded into the float32 projection, as the kernel folds them)."""

import jax
import jax.numpy as jnp

from .. import gated

F32 = jnp.float32


def gru(x, kernel, recurrent_kernel, bias, h0, lengths, *, go_backwards=False,
        zero_output_for_mask=False, dtype=F32, mask=None, reset=None):
  """x (B, T, F); kernel (F, 3U); recurrent_kernel (U, 3U); bias (2, 3U) or None;
  h0 (B, U); lengths (B,) int or None; mask, reset (B, T) bool or None (see `gated.scan`).

  Returns outputs (B, T, U) in `dtype` (processing order) and the final h (B, U) float32.
  """
  units = recurrent_kernel.shape[0]
  if bias is None:
    input_bias, bh = None, jnp.zeros((1, units), F32)
  else:
    b = bias.astype(F32)
    input_bias = b[0] + jnp.concatenate([b[1, : 2 * units], jnp.zeros((units,), F32)])
    bh = b[1, 2 * units:].reshape((1, -1))

  def step(state, x_t):
    (h,) = state
    xz, xr, xh = jnp.split(x_t, 3, axis=-1)
    hz, hr, hh = jnp.split(gated.recurrent_product(h, recurrent_kernel, dtype), 3, axis=-1)
    z = jax.nn.sigmoid(xz + hz)
    r = jax.nn.sigmoid(xr + hr)
    n = jnp.tanh(xh + r * (hh + bh))
    return (z * h + (1.0 - z) * n,)

  outputs, (h,) = gated.scan(step, x, kernel, input_bias, (h0,), lengths,
                                  go_backwards=go_backwards,
                                  zero_output_for_mask=zero_output_for_mask, dtype=dtype,
                                  mask=mask, reset=reset)
  return outputs, h
