"""Prototype: hand-written-VJP LSTM scans on the CPU against rnnjax and its peers (train
step), timed round-robin in one process (the order rotates every round) to share the noise
of a loaded machine; reports min and median wall time and min process CPU time.

    PYTHONPATH=. python bench/_cpu_vjp_proto.py [shape index ...] [variant name ...]

(with variant names, only those variants run beside the peers). The winner became
rnnjax/kernels/lstm/_xla.py; results in docs/cpu_perf.md.
"""

import functools
import statistics
import time
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from _lstm_peers import PEERS, _data, _finish  # noqa: E402
from _timing import median_seconds  # noqa: E402

SHAPES = [(64, 28, 28, 64), (64, 128, 128, 256), (32, 512, 64, 128)]
F32 = jnp.float32
ROUNDS = [60, 6, 8]


def _gates(z, c):
  u = c.shape[-1]
  i = jax.nn.sigmoid(z[:, :u])
  f = jax.nn.sigmoid(z[:, u:2 * u])
  g = jnp.tanh(z[:, 2 * u:3 * u])
  o = jax.nn.sigmoid(z[:, 3 * u:])
  c = f * c + i * g
  return i, f, g, o, c


def make_recurrence(save_tc: bool, concat_gates: bool, unroll: int = 1):
  """custom_vjp over the recurrence of time-major projected inputs xs (T, B, 4U)."""

  @jax.custom_vjp
  def rec(xs, w, h0, c0):
    def step(carry, x_t):
      h, c = carry
      i, f, g, o, c = _gates(x_t + h @ w, c)
      h = o * jnp.tanh(c)
      return (h, c), h
    (h, c), hs = jax.lax.scan(step, (h0, c0), xs)
    return hs, h, c

  def fwd(xs, w, h0, c0):
    def step(carry, x_t):
      h, c = carry
      i, f, g, o, c = _gates(x_t + h @ w, c)
      tc = jnp.tanh(c)
      h = o * tc
      acts = jnp.concatenate([i, f, g, o], -1) if concat_gates else (i, f, g, o)
      res = (acts, c, tc) if save_tc else (acts, c)
      return (h, c), (h, res)
    (h, c), (hs, res) = jax.lax.scan(step, (h0, c0), xs, unroll=unroll)
    return (hs, h, c), (w, h0, c0, hs, res)

  def bwd(resid, cts):
    w, h0, c0, hs, res = resid
    dhs, dhT, dcT = cts
    wt = w.T
    cs = res[1]
    c_prev = jnp.concatenate([c0[None], cs[:-1]], 0)
    u = w.shape[0]

    def step(carry, inp):
      dh, dc = carry
      if save_tc:
        dh_t, acts, c_p, tc = inp
      else:
        dh_t, acts, c_new, c_p = inp
        tc = jnp.tanh(c_new)
      if concat_gates:
        i, f, g, o = acts[:, :u], acts[:, u:2 * u], acts[:, 2 * u:3 * u], acts[:, 3 * u:]
      else:
        i, f, g, o = acts
      dh = dh + dh_t
      dc = dc + dh * o * (1.0 - tc * tc)
      dz = jnp.concatenate([dc * g * i * (1.0 - i), dc * c_p * f * (1.0 - f),
                            dc * i * (1.0 - g * g), dh * tc * o * (1.0 - o)], -1)
      return (dz @ wt, dc * f), dz

    if save_tc:
      inputs = (dhs, res[0], c_prev, res[2])
    else:
      inputs = (dhs, res[0], cs, c_prev)
    (dh0, dc0), dz = jax.lax.scan(step, (dhT, dcT), inputs, reverse=True, unroll=unroll)
    h_prev = jnp.concatenate([h0[None], hs[:-1]], 0)
    t, b, g4 = dz.shape
    dw = h_prev.reshape(t * b, u).T @ dz.reshape(t * b, g4)
    return dz, dw, dh0, dc0

  rec.defvjp(fwd, bwd)
  return rec


def vjp_lstm(b, t, d, h, mode, *, layout="tm", save_tc=False, concat_gates=True, unroll=1):
  """layout "tm": transpose x to (T, B, F) then project as a flat 2-D GEMM;
  "bm": project batch-major (B, T, 4U) then transpose the projection."""
  rec = make_recurrence(save_tc, concat_gates, unroll)

  def apply(p, x):
    if layout == "tm":
      xt = jnp.swapaxes(x, 0, 1)
      xs = (xt.reshape(t * b, d) @ p["w"]).reshape(t, b, 4 * h) + p["b"][None, None]
    else:
      xs = jnp.swapaxes(x @ p["w"] + p["b"][None, None], 0, 1)
    zeros = jnp.zeros((b, h), F32)
    hs, _, _ = rec(xs, p["u"], zeros, zeros)
    return jnp.swapaxes(hs, 0, 1)

  k1, k2 = jax.random.split(jax.random.key(0))
  params = {"w": jax.random.normal(k1, (d, 4 * h)) * 0.1,
            "u": jax.random.normal(k2, (h, 4 * h)) * 0.1, "b": jnp.zeros((4 * h,))}
  return _finish(apply, params, _data(b, t, d), mode)


def make_perstep():
  """custom_vjp over (xs (T, B, F), kernel, bias, w, h0, c0) with x_t @ kernel in the loop."""

  @jax.custom_vjp
  def rec(xs, k, bias, w, h0, c0):
    return fwd(xs, k, bias, w, h0, c0)[0]

  def fwd(xs, k, bias, w, h0, c0):
    def step(carry, x_t):
      h, c = carry
      i, f, g, o, c = _gates(x_t @ k + bias[None] + h @ w, c)
      tc = jnp.tanh(c)
      h = o * tc
      return (h, c), (h, (i, f, g, o), c)
    (h, c), (hs, acts, cs) = jax.lax.scan(step, (h0, c0), xs)
    return (hs, h, c), (xs, k, w, h0, c0, hs, acts, cs)

  def bwd(resid, cts):
    xs, k, w, h0, c0, hs, acts, cs = resid
    dhs, dhT, dcT = cts
    wt = w.T
    c_prev = jnp.concatenate([c0[None], cs[:-1]], 0)

    def step(carry, inp):
      dh, dc = carry
      dh_t, (i, f, g, o), c_new, c_p = inp
      tc = jnp.tanh(c_new)
      dh = dh + dh_t
      dc = dc + dh * o * (1.0 - tc * tc)
      dz = jnp.concatenate([dc * g * i * (1.0 - i), dc * c_p * f * (1.0 - f),
                            dc * i * (1.0 - g * g), dh * tc * o * (1.0 - o)], -1)
      return (dz @ wt, dc * f), dz

    (dh0, dc0), dz = jax.lax.scan(step, (dhT, dcT), (dhs, acts, cs, c_prev), reverse=True)
    h_prev = jnp.concatenate([h0[None], hs[:-1]], 0)
    t, b, g4 = dz.shape
    dz2 = dz.reshape(t * b, g4)
    dw = h_prev.reshape(t * b, -1).T @ dz2
    dk = xs.reshape(t * b, -1).T @ dz2
    dx = (dz2 @ k.T).reshape(xs.shape)
    return dx, dk, dz2.sum(0), dw, dh0, dc0

  rec.defvjp(fwd, bwd)
  return rec


def vjp_perstep(b, t, d, h, mode):
  rec = make_perstep()

  def apply(p, x):
    zeros = jnp.zeros((b, h), F32)
    hs, _, _ = rec(jnp.swapaxes(x, 0, 1), p["w"], p["b"], p["u"], zeros, zeros)
    return jnp.swapaxes(hs, 0, 1)

  k1, k2 = jax.random.split(jax.random.key(0))
  params = {"w": jax.random.normal(k1, (d, 4 * h)) * 0.1,
            "u": jax.random.normal(k2, (h, 4 * h)) * 0.1, "b": jnp.zeros((4 * h,))}
  return _finish(apply, params, _data(b, t, d), mode)


def make_onegate():
  """Gate activations as ONE (B, 4U) array per step (one fusion, one saved residual)."""

  def acts_of(z, u):
    col = jnp.arange(4 * u)[None, :]
    is_g = (col >= 2 * u) & (col < 3 * u)
    return jnp.where(is_g, jnp.tanh(z), jax.nn.sigmoid(z))

  def fwd(xs, w, h0, c0):
    u = w.shape[0]

    def step(carry, x_t):
      h, c = carry
      a = acts_of(x_t + h @ w, u)
      c = a[:, u:2 * u] * c + a[:, :u] * a[:, 2 * u:3 * u]
      tc = jnp.tanh(c)
      h = a[:, 3 * u:] * tc
      return (h, c), (h, a, c, tc)
    (h, c), (hs, acts, cs, tcs) = jax.lax.scan(step, (h0, c0), xs)
    return (hs, h, c), (w, h0, c0, hs, acts, cs, tcs)

  @jax.custom_vjp
  def rec(xs, w, h0, c0):
    return fwd(xs, w, h0, c0)[0]

  def bwd(resid, cts):
    w, h0, c0, hs, acts, cs, tcs = resid
    dhs, dhT, dcT = cts
    u = w.shape[0]
    wt = w.T
    c_prev = jnp.concatenate([c0[None], cs[:-1]], 0)
    col = jnp.arange(4 * u)[None, :]
    is_g = (col >= 2 * u) & (col < 3 * u)

    def step(carry, inp):
      dh, dc = carry
      dh_t, a, cp, tc = inp
      dh = dh + dh_t
      o = a[:, 3 * u:]
      dc = dc + dh * o * (1.0 - tc * tc)
      # d(activation input) = upstream * act'(z); upstream per gate block
      up = jnp.concatenate([dc * a[:, 2 * u:3 * u], dc * cp, dc * a[:, :u], dh * tc], -1)
      dz = up * jnp.where(is_g, 1.0 - a * a, a * (1.0 - a))
      return (dz @ wt, dc * a[:, u:2 * u]), dz

    (dh0, dc0), dz = jax.lax.scan(step, (dhT, dcT), (dhs, acts, c_prev, tcs), reverse=True)
    h_prev = jnp.concatenate([h0[None], hs[:-1]], 0)
    t, b, g4 = dz.shape
    dw = h_prev.reshape(t * b, u).T @ dz.reshape(t * b, g4)
    return dz, dw, dh0, dc0

  rec.defvjp(fwd, bwd)
  return rec


def vjp_onegate(b, t, d, h, mode):
  rec = make_onegate()

  def apply(p, x):
    xs = (jnp.swapaxes(x, 0, 1).reshape(t * b, d) @ p["w"]).reshape(t, b, 4 * h) + p["b"][None, None]
    zeros = jnp.zeros((b, h), F32)
    return jnp.swapaxes(rec(xs, p["u"], zeros, zeros)[0], 0, 1)

  k1, k2 = jax.random.split(jax.random.key(0))
  params = {"w": jax.random.normal(k1, (d, 4 * h)) * 0.1,
            "u": jax.random.normal(k2, (h, 4 * h)) * 0.1, "b": jnp.zeros((4 * h,))}
  return _finish(apply, params, _data(b, t, d), mode)


VARIANTS = {
    "vjp onegate": vjp_onegate,
    "vjp perstep tuple": vjp_perstep,
    "vjp tm tuple": functools.partial(vjp_lstm, layout="tm", concat_gates=False),
    "vjp tm tuple save_tc": functools.partial(vjp_lstm, layout="tm", save_tc=True,
                                              concat_gates=False),
}
VARIANTS["rnnjax engine scan"] = PEERS["rnnjax scan (use_fused=False)"]
NAMES = ["rnnjax", "flax OptimizedLSTMCell", "keras stateless", "scan (per-step x@W)"]


def main():
  idx = [int(a) for a in sys.argv[1:] if a.isdigit()] or range(len(SHAPES))
  only = [a for a in sys.argv[1:] if not a.isdigit()]
  for k in idx:
    shape = SHAPES[k]
    builders = {n: PEERS[n] for n in NAMES} | VARIANTS
    if only:
      builders = {n: b for n, b in builders.items() if n in only or n in NAMES}
    fns = {}
    for name, build in builders.items():
      fn, args = build(*shape, "train")
      for _ in range(2):
        jax.block_until_ready(fn(*args))
      fns[name] = (fn, args)
    samples = {n: [] for n in fns}
    cpu = {n: [] for n in fns}
    rounds = ROUNDS[k]
    order = list(fns)
    for r in range(rounds):
      for name in order[r % len(order):] + order[:r % len(order)]:   # rotate: no fixed slot
        fn, args = fns[name]
        t0, p0 = time.perf_counter(), time.process_time()
        jax.block_until_ready(fn(*args))
        samples[name].append(time.perf_counter() - t0)
        cpu[name].append(time.process_time() - p0)
    times = {n: min(v) for n, v in samples.items()}
    for n, v in samples.items():
      print(f"{shape} {n:26s} min {1e3 * min(v):8.2f}  median {1e3 * statistics.median(v):8.2f}"
            f"  cpu-min {1e3 * min(cpu[n]):8.2f} ms", flush=True)
    best_peer = min(times[n] for n in NAMES[1:])
    print(f"  best peer {1e3 * best_peer:.2f} ms; ratios: " + ", ".join(
        f"{n}={times[n] / best_peer:.2f}" for n in times), flush=True)


if __name__ == "__main__":
  main()
