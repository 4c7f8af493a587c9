"""The two scans of the CPU LSTM recurrence: the primal scan (`forward`), which can save
what the tangent needs, and the tangent scan (`tangent`), linear in the tangents.

Per step, with z = x_t + h @ W split into gates (i, f, g, o) = (sig, sig, tanh, sig)(z):
  c' = f c + i g;  h' = o tanh(c').
Its tangent, with dz = a_t + dh @ W (a_t: the time-parallel part, see `lstm`):
  dc' = f dc + A_i dz_i + A_f dz_f + A_g dz_g;  dh' = A_o dz_o + B dc'
  A_i = g i(1-i), A_f = c f(1-f), A_g = i (1-g^2), A_o = tanh(c') o(1-o), B = o (1-tanh(c')^2).
The forward saves exactly these coefficients (A, f, B), so both the tangent scan and its
transpose (JAX derives it: the reverse-mode backward) do only multiply-adds and ONE
matmul per step (dh @ W forward, dz @ W^T in the transpose).

Masked steps (valid False) keep the carried (h, c) and so their tangents. Everything is
time-major (T, B, ...) in processing order, in one float dtype.
"""

import jax
import jax.numpy as jnp

from ._carry import matched


def forward(xs, w, h0, c0, valid, projection=None, save: bool = False):
  """The primal scan.

  Args:
    xs: (T, B, 4U) projected inputs, or (T, B, F) inputs when `projection` = (kernel
      (F, 4U), bias (4U,)) is given (then x_t @ kernel + bias runs inside the loop).
    w: (U, 4U) recurrent kernel; h0, c0: (B, U); valid: (T, B) bool or None.
    save: also return the tangent's coefficients.

  Returns:
    hs (T, B, U) (the carried h: masked steps repeat it), hT, cT (B, U), and with `save`
    the coefficients (A (T, B, 4U) in gate order i, f, g, o; f (T, B, U); B (T, B, U)),
    else None.
  """
  def step(carry, inp):
    h, c = carry
    x_t, v = inp
    if projection is not None:
      x_t = x_t @ projection[0] + projection[1][None, :]
    zi, zf, zg, zo = jnp.split(x_t + h @ w, 4, axis=-1)
    i, f, g, o = jax.nn.sigmoid(zi), jax.nn.sigmoid(zf), jnp.tanh(zg), jax.nn.sigmoid(zo)
    c_new = f * c + i * g
    tc = jnp.tanh(c_new)
    h_new = o * tc
    coefficients = None
    if save:
      a = jnp.concatenate([g * i * (1.0 - i), c * f * (1.0 - f), i * (1.0 - g * g),
                           tc * o * (1.0 - o)], axis=-1)
      coefficients = (a, f, o * (1.0 - tc * tc))
    if v is not None:
      v = v[:, None]
      h_new, c_new = jnp.where(v, h_new, h), jnp.where(v, c_new, c)
    return (h_new, c_new), (h_new, coefficients)

  init = matched(step, (h0, c0), (xs, valid))
  (hT, cT), (hs, coefficients) = jax.lax.scan(step, init, (xs, valid))
  return hs, hT, cT, coefficients


def tangent(w, coefficients, a, dh0, dc0, valid):
  """The tangent scan, linear in (a, dh0, dc0).

  Args:
    w: (U, 4U) recurrent kernel (a primal: the tangent of W enters through `a`).
    coefficients: `forward`'s saved (A, f, B).
    a: (T, B, 4U) the time-parallel part of dz, or None when it is zero.
    dh0, dc0: (B, U) tangents of the initial state.
    valid: (T, B) bool or None.

  Returns:
    dhs (T, B, U), dhT, dcT (B, U).
  """
  def step(carry, inp):
    dh, dc = carry
    a_t, (coef, f, b), v = inp
    dz = dh @ w if a_t is None else a_t + dh @ w
    ei, ef, eg, eo = jnp.split(coef * dz, 4, axis=-1)
    dc_new = f * dc + ei + ef + eg
    dh_new = eo + b * dc_new
    if v is not None:
      dh_new, dc_new = jnp.where(v, dh_new, dh), jnp.where(v, dc_new, dc)
    return (dh_new, dc_new), dh_new

  if valid is not None:
    # (T, B, U) before the loop: the body then holds only linear operations on the
    # tangents, so reverse mode splits off no loop of its own to broadcast the mask.
    valid = jnp.broadcast_to(valid[..., None], valid.shape + (w.shape[0],))
  xs = (a, coefficients, valid)
  (dhT, dcT), dhs = jax.lax.scan(step, matched(step, (dh0, dc0), xs), xs)
  return dhs, dhT, dcT
