"""Pure-JAX LSTM reference (one lax.scan): the test oracle of the kernel and its
fallback. It follows the kernel's numerics: compute-dtype matmul operands with float32
accumulation, a float32 projection, float32 gates and (h, c) carries."""

import jax
import jax.numpy as jnp

F32 = jnp.float32


def lstm(x, kernel, recurrent_kernel, bias, h0, c0, lengths, *, go_backwards=False,
         zero_output_for_mask=False, dtype=F32):
  """x (B, T, F); kernel (F, 4U); recurrent_kernel (U, 4U); bias (4U,) or None;
  h0, c0 (B, U); lengths (B,) int or None.

  Returns outputs (B, T, U) in `dtype` (processing order) and the final h, c (B, U) float32.
  """
  steps = x.shape[1]
  xp = jnp.matmul(x.astype(dtype), kernel.astype(dtype), preferred_element_type=F32)
  if bias is not None:
    xp = xp + bias.astype(F32).reshape((1, 1, -1))
  xs = jnp.swapaxes(xp, 0, 1)                            # (T, B, 4U) float32
  times = jnp.arange(steps)
  if go_backwards:
    xs, times = jnp.flip(xs, 0), jnp.flip(times, 0)
  if lengths is None:
    valid = jnp.ones((steps, x.shape[0]), bool)
  else:
    valid = times[:, None] < jnp.asarray(lengths)[None, :]   # (T, B)
  # Cast inside the step: the weight cotangent then accumulates over time in float32.
  rk = recurrent_kernel

  def step(carry, inp):
    h, c = carry
    x_t, v = inp
    z = x_t.astype(F32) + jnp.matmul(h.astype(dtype), rk.astype(dtype), preferred_element_type=F32)
    zi, zf, zg, zo = jnp.split(z, 4, axis=-1)
    c_new = jax.nn.sigmoid(zf) * c + jax.nn.sigmoid(zi) * jnp.tanh(zg)
    h_new = jax.nn.sigmoid(zo) * jnp.tanh(c_new)
    v = v[:, None]
    h, c = jnp.where(v, h_new, h), jnp.where(v, c_new, c)
    y = jnp.where(v, h_new, 0.0) if zero_output_for_mask else h
    return (h, c), y.astype(dtype)

  (h, c), ys = jax.lax.scan(step, (h0.astype(F32), c0.astype(F32)), (xs, valid))
  return jnp.swapaxes(ys, 0, 1), h, c
