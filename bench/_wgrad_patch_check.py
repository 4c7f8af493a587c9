"""rnnjax's own LSTM train step (rj.LSTM(H) -> Dense(10), SGD) with and without the
"weight gradients as canonical GEMMs" change, patched into rnnjax.recurrences._driver._matmul
at trace time (the train step never calls _matmul on a tangent lhs, so the patch only
touches x @ dkernel and h_prev @ dW); both compiled in one process, checked equal, timed
interleaved (process CPU time, median) with the peers.

    PYTHONPATH=. python bench/_wgrad_patch_check.py 0 1 2     # shape indices
"""
import sys, time
sys.path.insert(0, 'bench')
import jax, jax.numpy as jnp, numpy as np
import rnnjax as rj
from rnnjax.recurrences import _driver as L
import cpu_variants as cv, _variants_lstm as vl
from _timing import interleaved_seconds

orig = L._matmul
def matmul_t(x, y):
  steps, batch, k = x.shape
  xt = jax.lax.optimization_barrier(x.reshape(steps * batch, k).T)
  return (xt.T @ y).reshape(steps, batch, y.shape[-1])

def build(b, t, f, h):
  layer = rj.LSTM(h, return_sequences=True)
  x = jnp.asarray(np.random.default_rng(0).normal(size=(b, t, f)), jnp.float32)
  p = layer.init(jax.random.key(0), x)
  dense = (jax.random.normal(jax.random.key(4), (h, 10)) * 0.1, jnp.zeros((10,)))
  def loss(pp, x):
    q, (wd, bd) = pp
    return jnp.mean((layer.apply(q, x) @ wd + bd) ** 2)
  def step(pp, x):
    v, g = jax.value_and_grad(loss)(pp, x)
    return jax.tree.map(lambda w, g: w - 1e-3 * g, pp, g), v
  return step, ((p, dense), x)

for s in [cv.SHAPES[int(a)] for a in sys.argv[1:]]:
  step, args = build(*s)
  f0 = jax.jit(lambda *a: step(*a))
  t0 = f0.lower(*args).compile().as_text()
  L._matmul = matmul_t
  f1 = jax.jit(lambda *a: step(*a))
  t1 = f1.lower(*args).compile().as_text()
  L._matmul = orig
  r0, r1 = f0(*args), f1(*args)
  err = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(jax.tree.leaves(r0), jax.tree.leaves(r1)))
  nd = lambda t: sum(1 for l in t.splitlines() if ' dot(' in l)
  print(s, 'plain dots (non-YNN):', nd(t0), '->', nd(t1), 'max diff', err)
  p0, x0 = cv.params('lstm', s[2], s[3]), None
  peer_fn = cv.step_fn(vl.peer_scan, 'train')
  xx = args[1]
  cands = {'rnnjax today': (f0, args), 'rnnjax + wgrad-T patch': (f1, args), cv.PEER: (peer_fn, (p0, xx))}
  cands.update(cv.framework_peers('lstm', 'train', *s))
  calls = {}
  for n, (fn, a) in cands.items():
    jax.block_until_ready(fn(*a)); tt = time.perf_counter(); jax.block_until_ready(fn(*a))
    reps = max(1, int(0.04 / (time.perf_counter() - tt)))
    calls[n] = lambda fn=fn, a=a, reps=reps: cv._cpu_timed(fn, a, reps)
  res = interleaved_seconds(calls, min_time=0.8)
  best = min(v[1] for n, v in res.items() if n.startswith('peer'))
  print(s, {n: f"{v[1]*1e3:.2f} ({v[1]/best:.2f})" for n, v in res.items()}, flush=True)
