"""The pure-JAX references' scan, for any gated cell (one lax.scan): the test oracle of
the kernels and their fallback. It follows the kernels' numerics: compute-dtype matmul
operands with float32 accumulation, a float32 projection, float32 gates and carries."""

import jax
import jax.numpy as jnp

F32 = jnp.float32


def scan(step, x, kernel, input_bias, states, lengths, *, go_backwards, zero_output_for_mask,
         dtype, mask=None, reset=None):
  """Runs `step` over time with Keras masking semantics.

  Args:
    step: (states, x_t) -> new states, x_t the (B, G*U) float32 projection of one step
      and states a tuple of (B, U) float32, state 0 being h (the output).
    x: (B, T, F); kernel (F, G*U); input_bias (G*U,) or None (added in float32).
    states: initial states, each (B, U); lengths: (B,) int or None.
    mask: (B, T) bool or None: False at the steps to skip (the state is kept, the output
      is the incoming h); reset: (B, T) bool or None: True where the state is set back to
      `states` just before the step (also at a masked step). Input time order.

  Returns:
    outputs (B, T, U) in `dtype` (processing order) and the final states (B, U) float32,
    a tuple.
  """
  steps = x.shape[1]
  xp = jnp.matmul(x.astype(dtype), kernel.astype(dtype), preferred_element_type=F32)
  if input_bias is not None:
    xp = xp + input_bias.astype(F32).reshape((1, 1, -1))
  xs = jnp.swapaxes(xp, 0, 1)                            # (T, B, G*U) float32
  times = jnp.arange(steps)
  if go_backwards:
    xs, times = jnp.flip(xs, 0), jnp.flip(times, 0)
  if lengths is None:
    valid = jnp.ones((steps, x.shape[0]), bool)
  else:
    valid = times[:, None] < jnp.asarray(lengths)[None, :]   # (T, B)
  order = (lambda a: jnp.flip(a.T, 0)) if go_backwards else (lambda a: a.T)   # noqa: E731
  if mask is not None:
    valid = valid & order(jnp.asarray(mask, bool))
  resets = jnp.zeros_like(valid) if reset is None else order(jnp.asarray(reset, bool))
  start = tuple(s.astype(F32) for s in states)

  def masked_step(carry, inp):
    x_t, v, r = inp
    carry = tuple(jnp.where(r[:, None], s, c) for s, c in zip(start, carry))
    new = step(carry, x_t.astype(F32))
    v = v[:, None]
    carry = tuple(jnp.where(v, n, o) for n, o in zip(new, carry))
    y = jnp.where(v, new[0], 0.0) if zero_output_for_mask else carry[0]
    return carry, y.astype(dtype)

  final, ys = jax.lax.scan(masked_step, start, (xs, valid, resets))
  return jnp.swapaxes(ys, 0, 1), final


def recurrent_product(h, recurrent_kernel, dtype):
  """h (B, U) @ recurrent_kernel (U, G*U) with `dtype` operands, float32 result. The cast
  happens inside the step, so the weight's cotangent accumulates over time in float32."""
  return jnp.matmul(h.astype(dtype), recurrent_kernel.astype(dtype), preferred_element_type=F32)
