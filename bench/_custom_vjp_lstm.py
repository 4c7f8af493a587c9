"""A frozen copy of the CPU LSTM recurrence as it was before the custom JVP (commit 3968aca):
the hand-written `jax.custom_vjp`, kept only so that `jvp_vs_vjp.py` can time the two
train steps side by side in one process. Not used by rnnjax.

The fused LSTM recurrence as plain XLA (no Pallas): the CPU backend of the fused path.

Same structure as the Pallas kernels (`_api.recurrence`): a `jax.custom_vjp` whose
forward `lax.scan` saves only the gate activations (i, f, g, o), tanh(c') and the carried
c per step, and whose backward is a reverse `lax.scan` with one matmul per step
(dz @ W^T for dh). The recurrent-weight gradient dW = sum_t h_{t-1}^T dz_t is then ONE
time-parallel matmul outside the loop, instead of a small matmul accumulated inside
every backward step as autodiff of the scan does; the input projection's gradients
(dx, dkernel, dbias) come from autodiff of the hoisted projection (further big matmuls).

Everything is time-major (T, B, ...) in processing order, in one float dtype (`run`
uses float32).
"""

import jax
import jax.numpy as jnp

F32 = jnp.float32


def _split(z, units):
  return tuple(z[:, k * units:(k + 1) * units] for k in range(4))


def _scan_forward(xs, w, h0, c0, valid, projection=None, save: bool = True):
  """xs (T, B, 4U) projected inputs, or (T, B, F) inputs when `projection` = (kernel
  (F, 4U), bias (4U,)) is given: x_t @ kernel + bias then runs inside the loop;
  w (U, 4U); h0, c0 (B, U); valid (T, B) bool or None.

  Returns hs (T, B, U) (the carried h: masked steps repeat it), hT, cT (B, U), and the
  residuals: gate activations (i, f, g, o) each (T, B, U), tanh(c') (T, B, U) and the
  carried c (T, B, U); None without `save` (inference writes no residuals).
  """
  units = w.shape[0]

  def step(carry, inp):
    h, c = carry
    x_t, v = inp
    if projection is not None:
      x_t = x_t @ projection[0] + projection[1][None, :]
    zi, zf, zg, zo = _split(x_t + h @ w, units)
    i, f, g, o = jax.nn.sigmoid(zi), jax.nn.sigmoid(zf), jnp.tanh(zg), jax.nn.sigmoid(zo)
    c_new = f * c + i * g
    tc = jnp.tanh(c_new)
    h_new = o * tc
    if v is not None:
      v = v[:, None]
      h_new, c_new = jnp.where(v, h_new, h), jnp.where(v, c_new, c)
    return (h_new, c_new), (h_new, ((i, f, g, o), tc, c_new) if save else None)

  (hT, cT), (hs, res) = jax.lax.scan(step, (h0, c0), (xs, valid))
  return hs, hT, cT, res


@jax.custom_vjp
def recurrence(xs, w, h0, c0, valid):
  """The LSTM recurrence over projected inputs (shapes in `_scan_forward`): (hs, hT, cT)."""
  hs, hT, cT, _ = _scan_forward(xs, w, h0, c0, valid, save=False)
  return hs, hT, cT


def _recurrence_fwd(xs, w, h0, c0, valid):
  hs, hT, cT, res = _scan_forward(xs, w, h0, c0, valid)
  return (hs, hT, cT), (w, h0, c0, valid, hs, res)


def _recurrence_bwd(saved, cts):
  w, h0, c0, valid, hs, res = saved
  dz, dw, dh0, dc0 = _backward(w, h0, c0, valid, hs, res, cts)
  return dz, dw, dh0, dc0, None


def _backward(w, h0, c0, valid, hs, res, cts):
  """dz (T, B, 4U), dw, dh0, dc0 from the saved residuals and the output cotangents.

  Per step s, last to first: dh += dhs[s]; masked rows pass (dh, dc) through and get
  dz = 0; dc_tot = dc + dh o (1 - tanh(c')^2); dz = (dc_tot g i(1-i), dc_tot c_prev f(1-f),
  dc_tot i (1-g^2), dh tanh(c') o(1-o)); dh <- dz @ W^T; dc <- dc_tot f."""
  acts, tcs, cs = res
  dhs, dhT, dcT = cts
  wt = w.T
  c_prev = jnp.concatenate([c0[None], cs[:-1]], 0)

  def step(carry, inp):
    dh, dc = carry
    dh_t, (i, f, g, o), tc, cp, v = inp
    dh = dh + dh_t
    if v is None:
      dh_v, dc_v = dh, dc
    else:
      v = v[:, None]
      dh_v, dc_v = jnp.where(v, dh, 0.0), jnp.where(v, dc, 0.0)
    dc_tot = dc_v + dh_v * o * (1.0 - tc * tc)
    dz = jnp.concatenate([dc_tot * g * i * (1.0 - i), dc_tot * cp * f * (1.0 - f),
                          dc_tot * i * (1.0 - g * g), dh_v * tc * o * (1.0 - o)], -1)
    dh_prev, dc_prev = dz @ wt, dc_tot * f
    if v is not None:
      dh_prev, dc_prev = jnp.where(v, dh_prev, dh), jnp.where(v, dc_prev, dc)
    return (dh_prev, dc_prev), dz

  (dh0, dc0), dz = jax.lax.scan(step, (dhT.astype(c0.dtype), dcT.astype(c0.dtype)),
                                (dhs.astype(c0.dtype), acts, tcs, c_prev, valid), reverse=True)
  h_prev = jnp.concatenate([h0[None], hs[:-1]], 0)
  steps, batch, gu = dz.shape
  dw = h_prev.reshape(steps * batch, -1).T @ dz.reshape(steps * batch, gu)
  return dz, dw, dh0, dc0


recurrence.defvjp(_recurrence_fwd, _recurrence_bwd)


@jax.custom_vjp
def projected_recurrence(x, kernel, bias, w, h0, c0, valid):
  """The recurrence with the input projection x_t @ kernel + bias inside the loop.

  x (T, B, F); kernel (F, 4U); bias (4U,); the rest as `recurrence`. Returns (hs, hT, cT).
  Backward: the same reverse scan gives dz; then dx = dz @ kernel^T, dkernel = x^T dz and
  dbias = sum dz are time-parallel matmuls over all T*B rows.
  """
  hs, hT, cT, _ = _scan_forward(x, w, h0, c0, valid, (kernel, bias), save=False)
  return hs, hT, cT


def _projected_fwd(x, kernel, bias, w, h0, c0, valid):
  hs, hT, cT, res = _scan_forward(x, w, h0, c0, valid, (kernel, bias))
  return (hs, hT, cT), (x, kernel, w, h0, c0, valid, hs, res)


def _projected_bwd(saved, cts):
  x, kernel, w, h0, c0, valid, hs, res = saved
  dz, dw, dh0, dc0 = _backward(w, h0, c0, valid, hs, res, cts)
  steps, batch, features = x.shape
  dz2 = dz.reshape(steps * batch, -1)
  dx = (dz2 @ kernel.T).reshape(x.shape)
  dkernel = x.reshape(steps * batch, features).T @ dz2
  return dx, dkernel, dz2.sum(0), dw, dh0, dc0, None


projected_recurrence.defvjp(_projected_fwd, _projected_bwd)


def valid_steps(lengths, steps: int, go_backwards: bool):
  """(T, B) bool in processing order, or None when `lengths` is None."""
  if lengths is None:
    return None
  t = jnp.arange(steps)
  if go_backwards:
    t = steps - 1 - t
  return t[:, None] < jnp.asarray(lengths)[None, :]


def run(inputs, recurrent_kernel, h0, c0, lengths, *, go_backwards: bool,
        zero_output_for_mask: bool = False, projection=None):
  """The recurrence of one direction on time-major inputs.

  Args:
    inputs: (T, B, 4U) = x @ kernel + bias when `projection` is None, else (T, B, F) x;
      already in processing order (reversed in time when go_backwards).
    recurrent_kernel: (U, 4U) Keras layout.
    projection: None, or (kernel (F, 4U), bias (4U,)) to project inside the loop.
    h0, c0: (B, U).
    lengths: (B,) int or None (right padding, in input time order).

  Returns:
    outputs (T, B, U) float32 in processing order; h, c (B, U) float32 final states.
  """
  steps = inputs.shape[0]
  valid = valid_steps(lengths, steps, go_backwards)
  state = (recurrent_kernel.astype(F32), h0.astype(F32), c0.astype(F32), valid)
  if projection is None:
    hs, h, c = recurrence(inputs.astype(F32), *state)
  else:
    kernel, bias = (a.astype(F32) for a in projection)
    hs, h, c = projected_recurrence(inputs.astype(F32), kernel, bias, *state)
  if zero_output_for_mask and valid is not None:
    hs = jnp.where(valid[..., None], hs, jnp.zeros((), hs.dtype))
  return hs, h, c
