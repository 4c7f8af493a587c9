"""Standalone GRU formulations (Keras reset_after=True, gates z, r, h) for
`cpu_variants.py`, not rnnjax's code.

Parameters (K (F, 3H), W (H, 3H), bx (3H,), bh (3H,)); per step
  a = x_t @ K + bx, u = h @ W + bh,
  z = sig(a_z + u_z), r = sig(a_r + u_r), n = tanh(a_n + r u_n), h' = z h + (1 - z) n.
x is batch-major (B, T, F); every variant returns (B, T, H).
"""

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from _variants_lstm import _flat, _flat_t, sigmoid_fn


def _cell(a, u, h, sig):
  s = sigmoid_fn(sig)
  n3 = a.shape[-1] // 3
  zr = s(a[..., :2 * n3] + u[..., :2 * n3])
  z, r = zr[..., :n3], zr[..., n3:]
  n = jnp.tanh(a[..., 2 * n3:] + r * u[..., 2 * n3:])
  return z * h + (1 - z) * n, (z, r, n)


def forward(projection="inloop", unroll=1, sig="exp"):
  """apply(params, x) -> (B, T, H). projection: 'inloop' or 'hoisted' (flat GEMM)."""
  def apply(p, x):
    k, w, bx, bh = p
    xt = jnp.swapaxes(x, 0, 1)
    xs = _flat(xt, k) + bx if projection == "hoisted" else xt

    def step(h, x_t):
      a = x_t if projection == "hoisted" else x_t @ k + bx
      h, _ = _cell(a, h @ w + bh, h, sig)
      return h, h

    _, hs = jax.lax.scan(step, jnp.zeros((x.shape[0], w.shape[0]), x.dtype), xs,
                         unroll=unroll)
    return jnp.swapaxes(hs, 0, 1)

  return apply


def recurrence(projection="inloop", fwd_unroll=1, tan_unroll=1, sig="exp", wgrad="plain",
               tangent="pre"):
  """apply(params, x) -> (B, T, H) with a custom JVP: the tangent
    dh' = z dh + Cz (da_z + du_z) + Cr (da_r + du_r) + Cn da_n + Cu du_n,
    Cz = z(1-z)(h-n), Cn = (1-z)(1-n^2), Cr = Cn u_n r(1-r), Cu = Cn r,
  du = dh @ W + (h_prev @ dW + dbh). Everything but dh @ W is time-parallel, so it is
  summed before the loop into P (T, B, H); the step is dh' = z dh + P_t + the three
  (Cz, Cr, Cu) blocks of C * (dh @ W) summed. wgrad as in `_variants_lstm.recurrence`.
  tangent='inloop' instead feeds da and dv (T, B, 3H) to the tangent scan and does all
  the multiply-adds in the step (no time-parallel elementwise passes).
  """
  def primal(xs, k, bx, w, bh, coefs):
    steps, bsz, _ = xs.shape
    if projection == "hoisted":
      xs = _flat(xs, k) + bx

    def step(h, x_t):
      a = x_t if projection == "hoisted" else x_t @ k + bx
      u = h @ w + bh
      h2, (z, r, n) = _cell(a, u, h, sig)
      out = None
      if coefs:
        n3 = u.shape[-1] // 3
        cn = (1 - z) * (1 - n * n)
        out = (jnp.concatenate([z * (1 - z) * (h - n), cn * u[..., 2 * n3:] * r * (1 - r),
                                cn * r], -1), z, cn)
      return h2, (h2, out)

    _, (hs, co) = jax.lax.scan(step, jnp.zeros((bsz, w.shape[0]), xs.dtype), xs,
                               unroll=fwd_unroll)
    return hs, co

  @jax.custom_jvp
  def rec(xs, k, bx, w, bh):
    return primal(xs, k, bx, w, bh, False)[0]

  def rec_jvp(primals, tangents):
    xs, k, bx, w, bh = primals
    dxs, dk, dbx, dw, dbh = tangents
    hs, (c3, z, cn) = primal(xs, k, bx, w, bh, True)
    hprev = jnp.concatenate([jnp.zeros_like(hs[:1]), hs[:-1]], 0)
    shape = hs.shape[:2] + (w.shape[1],)
    da = jnp.zeros(shape, hs.dtype)
    wmul = _flat_t if wgrad == "transposed" else _flat
    if not isinstance(dk, SymbolicZero):
      da = da + wmul(xs, dk)
    if not isinstance(dxs, SymbolicZero):
      da = da + _flat(dxs, k)
    if not isinstance(dbx, SymbolicZero):
      da = da + dbx
    dv = jnp.zeros(shape, hs.dtype)
    if not isinstance(dw, SymbolicZero):
      dv = dv + wmul(hprev, dw)
    if not isinstance(dbh, SymbolicZero):
      dv = dv + dbh
    n3 = shape[-1] // 3
    if tangent == "inloop":
      def step_in(dh, inp):
        da_t, dv_t, c_t, z_t, cn_t = inp
        u = dv_t + dh @ w
        e = c_t * jnp.concatenate([da_t[..., :2 * n3] + u[..., :2 * n3], u[..., 2 * n3:]], -1)
        dh2 = (z_t * dh + e[..., :n3] + e[..., n3:2 * n3] + e[..., 2 * n3:]
               + cn_t * da_t[..., 2 * n3:])
        return dh2, dh2

      _, dhs = jax.lax.scan(step_in, jnp.zeros_like(hs[0]), (da, dv, c3, z, cn),
                            unroll=tan_unroll)
      return hs, dhs
    e = c3 * jnp.concatenate([da[..., :2 * n3] + dv[..., :2 * n3], dv[..., 2 * n3:]], -1)
    p = e[..., :n3] + e[..., n3:2 * n3] + e[..., 2 * n3:] + cn * da[..., 2 * n3:]

    def step(dh, inp):
      p_t, c_t, z_t = inp
      e = c_t * (dh @ w)
      dh2 = z_t * dh + p_t + e[..., :n3] + e[..., n3:2 * n3] + e[..., 2 * n3:]
      return dh2, dh2

    _, dhs = jax.lax.scan(step, jnp.zeros_like(hs[0]), (p, c3, z), unroll=tan_unroll)
    return hs, dhs

  rec.defjvp(rec_jvp, symbolic_zeros=True)

  def apply(p, x):
    k, w, bx, bh = p
    return jnp.swapaxes(rec(jnp.swapaxes(x, 0, 1), k, bx, w, bh), 0, 1)

  return apply


def peer_scan(p, x):
  """The hand-written peer: lax.scan, both GEMMs inside the step (Keras formula)."""
  k, w, bx, bh = p

  def step(h, x_t):
    a = x_t @ k + bx
    u = h @ w + bh
    az, ar, an = jnp.split(a, 3, axis=-1)
    uz, ur, un = jnp.split(u, 3, axis=-1)
    z = jax.nn.sigmoid(az + uz)
    r = jax.nn.sigmoid(ar + ur)
    h = z * h + (1 - z) * jnp.tanh(an + r * un)
    return h, h

  _, hs = jax.lax.scan(step, jnp.zeros((x.shape[0], w.shape[0]), x.dtype),
                       jnp.swapaxes(x, 0, 1))
  return jnp.swapaxes(hs, 0, 1)


def per_gate_scan(p, x):
  """Autodiff of a scan with one GEMM per gate and operand (six per step), as Flax's
  GRUCell does: no gate slicing of a (B, 3H) product, in the loop or its backward."""
  k, w, bx, bh = p
  ks, ws = jnp.split(k, 3, axis=-1), jnp.split(w, 3, axis=-1)
  bxs, bhs = jnp.split(bx, 3), jnp.split(bh, 3)

  def step(h, x_t):
    z = jax.nn.sigmoid(x_t @ ks[0] + bxs[0] + h @ ws[0] + bhs[0])
    r = jax.nn.sigmoid(x_t @ ks[1] + bxs[1] + h @ ws[1] + bhs[1])
    n = jnp.tanh(x_t @ ks[2] + bxs[2] + r * (h @ ws[2] + bhs[2]))
    h = z * h + (1 - z) * n
    return h, h

  _, hs = jax.lax.scan(step, jnp.zeros((x.shape[0], w.shape[0]), x.dtype),
                       jnp.swapaxes(x, 0, 1))
  return jnp.swapaxes(hs, 0, 1)
