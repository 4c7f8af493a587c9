"""Standalone LSTM formulations for `cpu_variants.py` (not rnnjax's code): forward scans
and custom-JVP train recurrences, each a knob away from the others.

Parameters are always (K (F, 4H), W (H, 4H), b (4H,)) in Keras gate order (i, f, g, o);
a variant with another gate layout permutes them inside the jitted function (so its cost
is in the time and its gradients come back in Keras order). x is batch-major (B, T, F);
every variant returns (B, T, H).
"""

import jax
import jax.numpy as jnp

ORDER = {"ifgo": (0, 1, 2, 3), "ifog": (0, 1, 3, 2)}


def sigmoid_fn(kind):
  if kind == "tanh":  # one transcendental, no divide
    return lambda z: 0.5 * jnp.tanh(0.5 * z) + 0.5
  return jax.nn.sigmoid


def permute(a, layout, axis=-1):
  """Keras (i, f, g, o) blocks of the last axis into `layout`."""
  if layout == "ifgo":
    return a
  parts = jnp.split(a, 4, axis=axis)
  return jnp.concatenate([parts[k] for k in ORDER[layout]], axis=axis)


def split4(z, split, axis):
  """Four gate blocks of z along `axis` (-1, or 0 for the transposed layout)."""
  if split == "reshape" and axis == -1:
    r = z.reshape(z.shape[:-1] + (4, z.shape[-1] // 4))
    return [r[..., k, :] for k in range(4)]
  return jnp.split(z, 4, axis=axis)


def gates(z, layout, sig, split, axis=-1):
  """(i, f, g, o) activated from z in `layout`. 'ifog' runs one sigmoid over 3H."""
  s = sigmoid_fn(sig)
  if layout == "ifog":
    n = z.shape[axis] // 4
    sg = s(jax.lax.slice_in_dim(z, 0, 3 * n, axis=axis))
    g = jnp.tanh(jax.lax.slice_in_dim(z, 3 * n, 4 * n, axis=axis))
    i, f, o = jnp.split(sg, 3, axis=axis)
    return i, f, g, o
  zi, zf, zg, zo = split4(z, split, axis)
  return s(zi), s(zf), jnp.tanh(zg), s(zo)


def cell(z, c, layout, sig, split, axis=-1):
  i, f, g, o = gates(z, layout, sig, split, axis)
  c = f * c + i * g
  tc = jnp.tanh(c)
  return o * tc, c, (i, f, g, o, tc)


def forward(projection="inloop", unroll=1, layout="ifgo", sig="exp", split="slice",
            transposed=False, barrier=False):
  """apply(params, x) -> (B, T, H): one lax.scan.

  projection: 'inloop' (x_t @ K + b + h @ W in the step), 'hoisted' (one flat (T*B, F)
  GEMM before the loop), 'fused' (one [x_t, h] @ [[K], [W]] per step).
  transposed: carry h as (H, B) and compute z^T = W^T h^T (gate blocks are row slices).
  barrier: the step's input slice goes through lax.optimization_barrier, so XLA cannot
  fuse the dynamic-slice into the gate fusion.
  """
  def apply(p, x):
    k, w, b = (permute(a, layout) for a in p)
    bsz, steps, feat = x.shape
    h4 = w.shape[1]
    xt = jnp.swapaxes(x, 0, 1)  # (T, B, F)
    axis = 0 if transposed else -1
    if transposed:
      if projection == "hoisted":
        xs = jnp.swapaxes((xt.reshape(steps * bsz, feat) @ k + b).reshape(steps, bsz, h4), 1, 2)
      k, w, b = k.T, w.T, b[:, None]
      if projection == "hoisted":
        pre = lambda x_t, h: x_t + w @ h
      elif projection == "fused":
        kw = jnp.concatenate([k, w], 1)
        xs = jnp.swapaxes(xt, 1, 2)
        pre = lambda x_t, h: kw @ jnp.concatenate([x_t, h], 0) + b
      else:
        xs = jnp.swapaxes(xt, 1, 2)  # (T, F, B)
        pre = lambda x_t, h: k @ x_t + b + w @ h
    elif projection == "hoisted":
      xs = (xt.reshape(steps * bsz, feat) @ k + b).reshape(steps, bsz, h4)
      pre = lambda x_t, h: x_t + h @ w
    elif projection == "fused":
      kw = jnp.concatenate([k, w], 0)
      xs = xt
      pre = lambda x_t, h: jnp.concatenate([x_t, h], -1) @ kw + b
    else:
      xs = xt
      pre = lambda x_t, h: x_t @ k + b + h @ w

    def step(carry, x_t):
      h, c = carry
      if barrier:
        x_t = jax.lax.optimization_barrier(x_t)
      h, c, _ = cell(pre(x_t, h), c, layout, sig, split, axis)
      return (h, c), h

    shape = (h4 // 4, bsz) if transposed else (bsz, h4 // 4)
    zeros = jnp.zeros(shape, x.dtype)
    _, hs = jax.lax.scan(step, (zeros, zeros), xs, unroll=unroll)
    return jnp.transpose(hs, (2, 0, 1)) if transposed else jnp.swapaxes(hs, 0, 1)

  return apply


def chunked(chunk=8, inner_unroll=1, sig="exp"):
  """apply(params, x) -> (B, T, H): the input projection hoisted per chunk of `chunk`
  steps (one (chunk*B, F) @ K GEMM whose output stays in cache), then an inner scan of
  h @ W over the chunk; an outer scan over the T / chunk chunks."""
  import math

  def apply(p, x):
    k, w, b = p
    bsz, steps, feat = x.shape
    c = math.gcd(steps, chunk)
    xs = jnp.swapaxes(x, 0, 1).reshape(steps // c, c * bsz, feat)

    def inner(carry, z_t):
      h, cc = carry
      h, cc, _ = cell(z_t + h @ w, cc, "ifgo", sig, "slice")
      return (h, cc), h

    def outer(carry, x_c):
      z = (x_c @ k + b).reshape(c, bsz, -1)
      return jax.lax.scan(inner, carry, z, unroll=inner_unroll)

    zeros = jnp.zeros((bsz, w.shape[0]), x.dtype)
    _, hs = jax.lax.scan(outer, (zeros, zeros), xs)
    return jnp.swapaxes(hs.reshape(steps, bsz, -1), 0, 1)

  return apply


def _flat(x, y):
  t, b, k = x.shape
  return (x.reshape(t * b, k) @ y).reshape(t, b, y.shape[-1])


def _flat_t(x, dy):
  """x @ dy as a flat matmul whose reverse-mode weight gradient is a canonical GEMM:
  x is transposed into a buffer (the barrier keeps XLA from folding the transpose back),
  so the transpose rule's x^T @ ct reads (K, T*B) rows and XLA:CPU hands it to YNNPACK,
  not to the slower dot emitter it picks for a contraction over dimension 0."""
  t, b, k = x.shape
  xt = jax.lax.optimization_barrier(x.reshape(t * b, k).T)
  return (xt.T @ dy).reshape(t, b, dy.shape[-1])


def recurrence(projection="inloop", fwd_unroll=1, tan_unroll=1, layout="ifgo", sig="exp",
               save="concat", wgrad="plain"):
  """apply(params, x) -> (B, T, H) with a custom JVP in rnnjax's style: the primal scan
  saves the tangent's coefficients, the tangent's time-parallel part
  a = x @ dK + db + h_prev @ dW is hoisted as flat GEMMs, the tangent scan carries
  (dh, dc) with one dh @ W per step; reverse mode is JAX's transpose.

  save: 'concat' (A (T, B, 4H), f, B), 'split' (the six (T, B, H) arrays), 'post' (the
  loop saves only z (T, B, 4H) and c (T, B, H); A, f, B are computed after it,
  time-parallel), 'gates' (the activations (T, B, 4H) in i, f, g, o order, c, tanh(c');
  the tangent step multiplies out the coefficients).
  wgrad: 'plain' (x @ dK: reverse mode contracts x over dimension 0) or 'transposed'
  (`_flat_t`: the weight gradients become canonical GEMMs).
  """
  from jax.custom_derivatives import SymbolicZero

  def primal(xs, k, b, w, coefs):
    steps, bsz, feat = xs.shape
    h = w.shape[0]
    if projection == "hoisted":
      xs = _flat(xs, k) + b

    kw = jnp.concatenate([k, w], 0) if projection == "fused" else None

    def step(carry, x_t):
      hh, c = carry
      if projection == "fused":
        z = jnp.concatenate([x_t, hh], -1) @ kw + b
      else:
        z = (x_t if projection == "hoisted" else x_t @ k + b) + hh @ w
      h2, c2, (i, f, g, o, tc) = cell(z, c, layout, sig, "slice")
      out = None
      if coefs and save == "post":  # only z and c leave the loop; coefficients after it
        out = (z, c2)
      elif coefs and save == "gates":  # activations and c, tanh(c'); products in the tangent
        out = (jnp.concatenate([i, f, g, o], -1), c, tc)
      elif coefs:
        parts = {"i": g * i * (1 - i), "f": c * f * (1 - f), "g": i * (1 - g * g),
                 "o": tc * o * (1 - o)}
        a = [parts[n] for n in layout]
        bc = o * (1 - tc * tc)
        if save == "one":  # one (B, 6H) array per step: one dynamic-update-slice
          out = jnp.concatenate([*a, f, bc], -1)
        else:
          out = (jnp.concatenate(a, -1), f, bc) if save == "concat" else (*a, f, bc)
      return (h2, c2), (h2, out)

    zeros = jnp.zeros((bsz, h), xs.dtype)
    _, (hs, co) = jax.lax.scan(step, (zeros, zeros), xs, unroll=fwd_unroll)
    if coefs and save == "post":  # time-parallel: one vectorized pass over (T, B, .)
      z, cs = co
      i, f, g, o = gates(z, layout, sig, "slice")
      c = jnp.concatenate([jnp.zeros_like(cs[:1]), cs[:-1]], 0)
      tc = jnp.tanh(cs)
      parts = {"i": g * i * (1 - i), "f": c * f * (1 - f), "g": i * (1 - g * g),
               "o": tc * o * (1 - o)}
      co = (jnp.concatenate([parts[n] for n in layout], -1), f, o * (1 - tc * tc))
    return hs, co

  @jax.custom_jvp
  def rec(xs, k, b, w):
    return primal(xs, k, b, w, False)[0]

  def rec_jvp(primals, tangents):
    xs, k, b, w = primals
    dxs, dk, db, dw = tangents
    hs, co = primal(xs, k, b, w, True)
    hprev = jnp.concatenate([jnp.zeros_like(hs[:1]), hs[:-1]], 0)
    terms = []
    wmul = _flat_t if wgrad == "transposed" else _flat
    if not isinstance(dk, SymbolicZero):
      terms.append(wmul(xs, dk))
    if not isinstance(db, SymbolicZero):
      terms.append(jnp.broadcast_to(db, hs.shape[:2] + db.shape))
    if not isinstance(dw, SymbolicZero):
      terms.append(wmul(hprev, dw))
    if not isinstance(dxs, SymbolicZero):
      terms.append(_flat(dxs, k))
    a = sum(terms[1:], terms[0])

    def step(carry, inp):
      dh, dc = carry
      a_t, c_t = inp
      dz = a_t + dh @ w
      if save == "gates":
        act, c, tc = c_t
        i, f, g, o = jnp.split(act, 4, axis=-1)
        zi, zf, zg, zo = dict(zip(layout, jnp.split(dz, 4, axis=-1))).values() \
            if layout == "ifgo" else [dict(zip(layout, jnp.split(dz, 4, axis=-1)))[n]
                                      for n in "ifgo"]
        e = {"i": g * i * (1 - i) * zi, "f": c * f * (1 - f) * zf, "g": i * (1 - g * g) * zg,
             "o": tc * o * (1 - o) * zo}
        bc = o * (1 - tc * tc)
      elif save == "one":
        h1 = c_t.shape[-1] // 6
        coef, f, bc = c_t[..., :4 * h1], c_t[..., 4 * h1:5 * h1], c_t[..., 5 * h1:]
        e = dict(zip(layout, jnp.split(coef * dz, 4, axis=-1)))
      elif save in ("concat", "post"):
        coef, f, bc = c_t
        e = dict(zip(layout, jnp.split(coef * dz, 4, axis=-1)))
      else:
        *coef, f, bc = c_t
        e = dict(zip(layout, (cf * d for cf, d in zip(coef, jnp.split(dz, 4, axis=-1)))))
      dc2 = f * dc + e["i"] + e["f"] + e["g"]
      dh2 = e["o"] + bc * dc2
      return (dh2, dc2), dh2

    zeros = jnp.zeros_like(hs[0])
    _, dhs = jax.lax.scan(step, (zeros, zeros), (a, co), unroll=tan_unroll)
    return hs, dhs

  rec.defjvp(rec_jvp, symbolic_zeros=True)

  def apply(p, x):
    k, w, b = (permute(a, layout) for a in p)
    return jnp.swapaxes(rec(jnp.swapaxes(x, 0, 1), k, b, w), 0, 1)

  return apply


def peer_scan(p, x):
  """The hand-written peer: lax.scan, x_t @ K + h @ W + b inside the step, Keras order."""
  k, w, b = p

  def step(carry, x_t):
    h, c = carry
    zi, zf, zg, zo = jnp.split(x_t @ k + h @ w + b, 4, axis=-1)
    c = jax.nn.sigmoid(zf) * c + jax.nn.sigmoid(zi) * jnp.tanh(zg)
    h = jax.nn.sigmoid(zo) * jnp.tanh(c)
    return (h, c), h

  zeros = jnp.zeros((x.shape[0], w.shape[0]), x.dtype)
  _, hs = jax.lax.scan(step, (zeros, zeros), jnp.swapaxes(x, 0, 1))
  return jnp.swapaxes(hs, 0, 1)


def profile_pieces():
  """Forward scans that keep only parts of the LSTM step, for the per-step profile:
  both GEMMs (x_t @ K + h @ W, no gates), h @ W alone, and the loop with its
  stacked output but no matmul. Each carries h = a (B, H) slice, so the loop is real."""
  def scan(step, x, h):
    _, hs = jax.lax.scan(step, jnp.zeros((x.shape[0], h), x.dtype), jnp.swapaxes(x, 0, 1))
    return jnp.swapaxes(hs, 0, 1)

  def gemms(p, x):
    k, w, _ = p
    n = w.shape[0]
    return scan(lambda h, x_t: ((x_t @ k + h @ w)[:, :n],) * 2, x, n)

  def recurrent(p, x):
    w = p[1]
    n = w.shape[0]
    return scan(lambda h, x_t: ((h @ w)[:, :n],) * 2, x, n)

  def loop(p, x):
    return scan(lambda h, x_t: ((0.5 * h + x_t[:, :1]),) * 2, x, p[1].shape[0])

  return {"full step (inloop u1)": forward(), "both GEMMs only": gemms,
          "h @ W only": recurrent, "loop + stacked output only": loop}
