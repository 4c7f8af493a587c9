"""Pure-JAX GRU (reset_after=True) reference (one lax.scan): the test oracle of the
kernel and its fallback. It follows the kernel's numerics: compute-dtype matmul
operands with float32 accumulation; the projection (with the z and r recurrent biases
added), the gates and the h carry are float32."""

import jax
import jax.numpy as jnp

F32 = jnp.float32


def gru(x, kernel, recurrent_kernel, bias, h0, lengths, *, go_backwards=False,
        zero_output_for_mask=False, dtype=F32):
  """x (B, T, F); kernel (F, 3U); recurrent_kernel (U, 3U); bias (2, 3U) or None;
  h0 (B, U); lengths (B,) int or None.

  Returns outputs (B, T, U) in `dtype` (processing order) and the final h (B, U) float32.
  """
  steps, units = x.shape[1], recurrent_kernel.shape[0]
  xp = jnp.matmul(x.astype(dtype), kernel.astype(dtype), preferred_element_type=F32)
  if bias is None:
    rec_bias = jnp.zeros((3 * units,), F32)
  else:
    b = bias.astype(F32)
    rec_bias = b[1]
    fold = jnp.concatenate([b[1, : 2 * units], jnp.zeros((units,), F32)])
    xp = xp + (b[0] + fold).reshape((1, 1, -1))
  xs = jnp.swapaxes(xp, 0, 1)                            # (T, B, 3U) float32
  times = jnp.arange(steps)
  if go_backwards:
    xs, times = jnp.flip(xs, 0), jnp.flip(times, 0)
  if lengths is None:
    valid = jnp.ones((steps, x.shape[0]), bool)
  else:
    valid = times[:, None] < jnp.asarray(lengths)[None, :]
  # Cast inside the step: the weight cotangent then accumulates over time in float32.
  rk = recurrent_kernel
  bh = rec_bias[2 * units:].reshape((1, -1))

  def step(h, inp):
    x_t, v = inp
    xz, xr, xh = jnp.split(x_t.astype(F32), 3, axis=-1)
    inner = jnp.matmul(h.astype(dtype), rk.astype(dtype), preferred_element_type=F32)
    hz, hr, hh = jnp.split(inner, 3, axis=-1)
    z = jax.nn.sigmoid(xz + hz)
    r = jax.nn.sigmoid(xr + hr)
    n = jnp.tanh(xh + r * (hh + bh))
    h_new = z * h + (1.0 - z) * n
    v = v[:, None]
    h = jnp.where(v, h_new, h)
    y = jnp.where(v, h_new, 0.0) if zero_output_for_mask else h
    return h, y.astype(dtype)

  h, ys = jax.lax.scan(step, h0.astype(F32), (xs, valid))
  return jnp.swapaxes(ys, 0, 1), h
