"""The LSTM cell's math for the generic recurrence (`_driver.py`), Keras gate order
(i, f, g, o).

Per step, with z = x_t + h @ W split into gates (i, f, g, o) = (sig, sig, tanh, sig)(z):
  c' = f c + i g;  h' = o tanh(c').
Its tangent, with dz = a_t + dh @ W (a_t: the hoisted, time-parallel part):
  dc' = f dc + A_i dz_i + A_f dz_f + A_g dz_g;  dh' = A_o dz_o + B dc'
  A_i = g i(1-i), A_f = c f(1-f), A_g = i (1-g^2), A_o = tanh(c') o(1-o), B = o (1-tanh(c')^2).
The forward saves exactly these coefficients (A_i, A_f, A_g, A_o, f, B), six (B, U) arrays
per step (kept apart: a concatenated (B, 4U) copy measured ~2% slower per train step).
Its transpose, from the cotangents (gh, gc) of (dh', dc'): gc~ = gc + B gh;
gz = (A_i gc~, A_f gc~, A_g gc~, A_o gh) for a_t and dh @ W;  gc_prev = f gc~.
"""

import jax
import jax.numpy as jnp

from ._driver import SummedHoist


class LSTMMath(SummedHoist):
  """States (h, c), each (B, U); z, hw (B, 4U)."""

  gates = 4
  states = 2
  native = "lstm"   # its forward has a native CPU call (`_native.py`)

  def step(self, z, hw, state, save: bool):
    _, c = state
    zi, zf, zg, zo = jnp.split(z + hw, 4, axis=-1)
    i, f, g, o = jax.nn.sigmoid(zi), jax.nn.sigmoid(zf), jnp.tanh(zg), jax.nn.sigmoid(zo)
    c_new = f * c + i * g
    tc = jnp.tanh(c_new)
    h_new = o * tc
    coefficients = None
    if save:
      coefficients = (g * i * (1.0 - i), c * f * (1.0 - f), i * (1.0 - g * g),
                      tc * o * (1.0 - o), f, o * (1.0 - tc * tc))
    return (h_new, c_new), coefficients

  def tangent(self, coefficients, a_t, dhw, dstate):
    _, dc = dstate
    ai, af, ag, ao, f, b = coefficients
    dz = dhw if a_t is None else a_t + dhw
    zi, zf, zg, zo = jnp.split(dz, 4, axis=-1)
    eo = ao * zo
    dc_new = f * dc + ai * zi + af * zf + ag * zg
    return (eo + b * dc_new, dc_new)

  def transpose(self, coefficients, g):
    # dz = a_t + dhw feeds both; dh' = eo + b dc', so dc' gathers b gh too
    gh, gc = g
    ai, af, ag, ao, f, b = coefficients
    gc = gc + b * gh
    gz = jnp.concatenate([ai * gc, af * gc, ag * gc, ao * gh], axis=-1)
    return gz, gz, (None, f * gc)


LSTM = LSTMMath()
