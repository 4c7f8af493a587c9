"""Pure-JAX LSTM reference (one lax.scan, see `gated.scan`): the test oracle of the
kernel and its fallback, with the kernel's numerics."""

import jax
import jax.numpy as jnp

from .. import gated

F32 = jnp.float32


def lstm(x, kernel, recurrent_kernel, bias, h0, c0, lengths, *, go_backwards=False,
         zero_output_for_mask=False, dtype=F32, mask=None, reset=None):
  """x (B, T, F); kernel (F, 4U); recurrent_kernel (U, 4U); bias (4U,) or None;
  h0, c0 (B, U); lengths (B,) int or None; mask, reset (B, T) bool or None (see `gated.scan`).

  Returns outputs (B, T, U) in `dtype` (processing order) and the final h, c (B, U) float32.
  """
  def step(state, x_t):
    h, c = state
    z = x_t + gated.recurrent_product(h, recurrent_kernel, dtype)
    zi, zf, zg, zo = jnp.split(z, 4, axis=-1)
    c_new = jax.nn.sigmoid(zf) * c + jax.nn.sigmoid(zi) * jnp.tanh(zg)
    return jax.nn.sigmoid(zo) * jnp.tanh(c_new), c_new

  outputs, (h, c) = gated.scan(step, x, kernel, bias, (h0, c0), lengths,
                                    go_backwards=go_backwards,
                                    zero_output_for_mask=zero_output_for_mask, dtype=dtype,
                                  mask=mask, reset=reset)
  return outputs, h, c
