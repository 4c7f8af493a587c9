"""The CPU LSTM backward two ways, interleaved in one process: rnnjax's (the hand-written
reverse scan writes dz (T, B, 4U), then the weight gradients are flat (T*B, .) GEMMs)
against a chunked reverse scan that runs the weight-gradient GEMMs per chunk of C steps
(K = C*B rows, operands still in cache), so that dz is never written whole.

    python bench/chunked_reverse.py      # writes bench/results/chunked_reverse.md

Both take the same saved coefficients (rnnjax's saving forward) and output cotangents,
and are checked equal before timing. Times: wall ms, minimum over interleaved rounds;
ratio: the median over rounds of chunked / flat (both calls of a round share the load).
"""

import os
import pathlib
import statistics
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from rnnjax.recurrences import _driver, _tangent, dense  # noqa: E402

LSTM = dense.cell_math("lstm")
CASES = [((64, 28, 28, 64), 4), ((64, 128, 128, 256), 4), ((64, 128, 128, 256), 8),
         ((32, 512, 64, 128), 4), ((32, 512, 64, 128), 16)]


def problem(b, t, d, h):
  """(w, kernel, x (T, B, D), hs, loop coefficients, ct (T, B, H), h0, c0)."""
  k = jax.random.split(jax.random.key(0), 4)
  x = jax.random.normal(k[0], (t, b, d))
  kernel = 0.05 * jax.random.normal(k[1], (d, 4 * h))
  w = 0.05 * jax.random.normal(k[2], (h, 4 * h))
  h0 = c0 = jnp.zeros((b, h))
  hs, _, coefficients = jax.jit(lambda: _driver.forward(
      LSTM, x, (kernel, jnp.zeros(4 * h)), w, None, (h0, c0), None, None, save=True))()
  ct = jax.random.normal(k[3], (t, b, h))
  return w, kernel, x, hs, LSTM.loop(coefficients), ct, h0, c0


def flat(w, kernel, x, hs, loop, ct, h0, c0):
  """rnnjax's backward: (dW, dkernel, dx, dbias, dh0)."""
  t, b, d = x.shape
  gz, (dh0, _) = _tangent.reverse(LSTM, w, loop, ct, (h0, c0), None, None, True)
  h_prev = jnp.concatenate([h0[None], hs[:-1]], 0).reshape(t * b, -1)
  g = gz.reshape(t * b, -1)
  return h_prev.T @ g, x.reshape(t * b, d).T @ g, (g @ kernel.T).reshape(t, b, d), g.sum(0), dh0


def chunked(w, kernel, x, hs, loop, ct, h0, c0, *, chunk):
  """The same, the weight gradients accumulated per chunk of `chunk` steps (T % chunk == 0)."""
  t, b, d = x.shape
  units = w.shape[0]
  h_prev = jnp.concatenate([h0[None], hs[:-1]], 0)
  split = lambda a: a.reshape((t // chunk, chunk) + a.shape[1:])   # noqa: E731

  def body(carry, inp):
    (gh, gc), dw, dk, db = carry
    ct_c, loop_c, x_c, hp_c = inp
    gzs = [None] * chunk
    for i in reversed(range(chunk)):
      gz, _, (_, gc) = LSTM.transpose(jax.tree.map(lambda a: a[i], loop_c), (gh + ct_c[i], gc))
      gzs[i], gh = gz, gz @ w.T
    g = jnp.stack(gzs).reshape(chunk * b, -1)
    dw = dw + hp_c.reshape(chunk * b, units).T @ g
    dk = dk + x_c.reshape(chunk * b, d).T @ g
    return ((gh, gc), dw, dk, db + g.sum(0)), (g @ kernel.T).reshape(chunk, b, d)

  init = ((jnp.zeros_like(h0), jnp.zeros_like(c0)), jnp.zeros_like(w), jnp.zeros_like(kernel),
          jnp.zeros(w.shape[1]))
  xs = (split(ct), jax.tree.map(split, loop), split(x), split(h_prev))
  ((dh0, _), dw, dk, db), dx = jax.lax.scan(body, init, xs, reverse=True)
  return dw, dk, dx.reshape(t, b, d), db, dh0


def measure(shape, chunk, rounds):
  args = problem(*shape)
  fns = {"flat": jax.jit(flat), "chunked": jax.jit(lambda *a: chunked(*a, chunk=chunk))}
  for want, got in zip(fns["flat"](*args), fns["chunked"](*args)):
    assert jnp.allclose(want, got, rtol=1e-4, atol=1e-4), float(jnp.max(jnp.abs(want - got)))
  times = {n: [] for n in fns}
  for r in range(rounds):
    for name in (list(fns) if r % 2 else list(fns)[::-1]):
      t0 = time.perf_counter()
      jax.block_until_ready(fns[name](*args))
      times[name].append(time.perf_counter() - t0)
  ratio = statistics.median(c / f for c, f in zip(times["chunked"], times["flat"]))
  return 1e3 * min(times["flat"]), 1e3 * min(times["chunked"]), ratio


def main():
  load = os.getloadavg()[0]
  lines = ["# CPU LSTM backward: flat weight-gradient GEMMs against chunked ones", "",
           f"`python bench/chunked_reverse.py`; {os.cpu_count()} cores, jax {jax.__version__}; "
           f"load average {load:.2f} at start.", "",
           "| (B, T, D, H) | chunk C | flat (rnnjax) ms | chunked ms | chunked / flat |",
           "|---|---|---|---|---|"]
  for shape, chunk in CASES:
    f, c, ratio = measure(shape, chunk, rounds=200 if shape[1] * shape[0] < 4096 else 25)
    lines.append(f"| {shape} | {chunk} | {f:.2f} | {c:.2f} | {ratio:.3f} |")
    print(lines[-1], flush=True)
  lines += ["", f"Load average at end {os.getloadavg()[0]:.2f}."]
  (HERE / "results" / "chunked_reverse.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
  main()
