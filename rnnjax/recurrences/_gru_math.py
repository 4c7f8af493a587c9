"""The GRU cell's math for the generic recurrence (`_driver.py`): Keras layout, gate order
(z, r, h), reset_after=True (cuDNN's), the recurrent bias inside hw.

Per step, with x = (x_z, x_r, x_h) the projected input and hw = h @ W + b_rec:
  z = sig(x_z + hw_z);  r = sig(x_r + hw_r);  n = tanh(x_h + r hw_h);  h' = z h + (1-z) n.
Its tangent, with dhw = dh @ W + a_h (a_h = h_prev @ dW + db_rec, hoisted) and a_x the
projected input's tangent:
  dh' = z dh + A_z dpre_z + D_r dpre_r + A_n a_x,h + C_n dhw_h
  A_z = (h - n) z(1-z), A_n = (1-z)(1-n^2), C_n = A_n r, D_r = A_n hw_h r(1-r),
  dpre_g = a_x,g + dhw_g (g = z, r).
Everything that does not involve dh @ W is summed before the loop (`hoist`: one (T, B, U)
array), so the loop does dh' = z dh + sum_g C_g (dh @ W)_g + b_t with C = (A_z, D_r, C_n).
"""

import jax
import jax.numpy as jnp


def _blocks(a):
  return jnp.split(a, 3, axis=-1)


class GRUMath:
  """State (h,), (B, U); x, hw (B, 3U)."""

  gates = 3
  states = 1
  native = "gru"    # its forward has a native CPU call (`_native.py`)

  def step(self, x, hw, state, save: bool):
    (h,) = state
    xz, xr, xh = _blocks(x)
    hz, hr, hh = _blocks(hw)
    z = jax.nn.sigmoid(xz + hz)
    r = jax.nn.sigmoid(xr + hr)
    n = jnp.tanh(xh + r * hh)
    h_new = z * h + (1.0 - z) * n
    coefficients = None
    if save:
      an = (1.0 - z) * (1.0 - n * n)
      c = jnp.concatenate([(h - n) * z * (1.0 - z), an * hh * r * (1.0 - r), an * r], -1)
      coefficients = (z, c, an)
    return (h_new,), coefficients

  def hoist(self, coefficients, a_x, a_h):
    _, c, an = coefficients
    cz, cr, cn = _blocks(c)
    b = None
    if a_x is not None:
      xz, xr, xh = _blocks(a_x)
      b = cz * xz + cr * xr + an * xh
    if a_h is not None:
      hz, hr, hh = _blocks(a_h)
      bh = cz * hz + cr * hr + cn * hh
      b = bh if b is None else b + bh
    return b

  def loop(self, coefficients):
    z, c, _ = coefficients
    return z, c

  def tangent(self, coefficients, b_t, dhw, dstate):
    (dh,) = dstate
    z, c = coefficients
    ez, er, en = _blocks(c * dhw)
    dh_new = z * dh + ez + er + en
    return (dh_new if b_t is None else dh_new + b_t,)

  def transpose(self, coefficients, g):
    (gh,) = g
    z, c = coefficients
    return gh, c * jnp.concatenate([gh, gh, gh], axis=-1), (z * gh,)


GRU = GRUMath()
