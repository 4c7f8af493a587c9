"""The Mosaic GPU LSTM forward on a cluster of CTAs, in interpret mode, run by
tests/kernels/test_mosaic_cluster.py in a subprocess: interpret mode runs every CTA as an
XLA computation whose barrier waits block a worker of the CPU client, and with the two
workers of a 2-core machine a 4-CTA cluster can deadlock before its last CTAs start;
XLA_FLAGS=--xla_force_host_platform_device_count=8 gives the client enough workers.
Prints one line per check; exits non-zero on the first failure."""

import jax
import jax.numpy as jnp
import numpy as np
import rnnjax as rj
from rnnjax.pallas import mosaic

B, T, F = 6, 3, 5


def check(units: int, cluster: int) -> None:
  keys = jax.random.split(jax.random.key(units), 4)
  x = jax.random.normal(keys[0], (B, T, F))
  params = rj.LSTM(units).init(keys[1], x)
  state = tuple(jax.random.normal(k, (B, units)) for k in keys[2:])
  fwd, bwd = mosaic.plans(B, units, jnp.bfloat16)
  assert fwd.cluster == cluster and bwd.cluster == cluster, (fwd, bwd)

  def kernel(p, x, s):
    return mosaic.mosaic_lstm(p, x, initial_state=s, dtype=jnp.bfloat16, go_backwards=True,
                              interpret=True)

  def reference(p, x, s):
    return rj.kernels.fused_lstm(p, x, initial_state=s, go_backwards=True,
                                 dtype=jnp.bfloat16, implementation="reference")
  out, (h, c) = kernel(params, x, state)
  ref, (rh, rc) = reference(params, x, state)
  np.testing.assert_allclose(np.asarray(out, np.float32), np.asarray(ref, np.float32),
                             atol=1e-2)
  np.testing.assert_allclose(h, rh, atol=1e-4)
  np.testing.assert_allclose(c, rc, atol=1e-4)
  print(f"units {units}: cluster of {fwd.cluster} forward matches the reference", flush=True)

  def loss(fn, p, x, s):
    out, (h, c) = fn(p, x, s)
    weights = jnp.cos(jnp.arange(out.size, dtype=jnp.float32)).reshape(out.shape)
    return jnp.sum(out.astype(jnp.float32) * weights) + jnp.sum(h) + 0.5 * jnp.sum(c)
  got, want = (jax.grad(lambda *a, fn=fn: loss(fn, *a), argnums=(0, 1, 2))(params, x, state)
               for fn in (kernel, reference))
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert np.linalg.norm(a - b) <= 1e-2 * np.linalg.norm(b), np.linalg.norm(a - b)
  print(f"units {units}: cluster of {bwd.cluster} gradients match the reference", flush=True)


def check_backward_float32(units: int = 256, steps: int = 3) -> None:
  """The clustered backward kernel alone, float32 (interpret mode only), against jax.vjp
  of a per-step loop on kernel layouts: equal to rounding."""
  from rnnjax.pallas.mosaic import _lstm_backward_cluster, _lstm_forward
  fwd, bwd = mosaic.plans(64, units, jnp.bfloat16)
  hp, bp, f32 = bwd.hp, bwd.bp, jnp.float32
  keys = jax.random.split(jax.random.key(3), 7)
  xp = jax.random.normal(keys[0], (1, steps, 4, hp, bp))
  w = 0.1 * jax.random.normal(keys[1], (1, 4, hp, hp))     # [dir, gate, in, out]
  h0, c0, dh_t, dc_t = (jax.random.normal(k, (1, hp, bp)) for k in keys[2:6])
  dhs = jax.random.normal(keys[6], (1, steps, hp, bp))
  _, _, _, gates, cs = _lstm_forward.forward(fwd, xp, jnp.swapaxes(w, -1, -2), h0, c0,
                                             save=True, interpret=True)
  got = _lstm_backward_cluster.backward(bwd, dhs, gates, cs, c0, w, dh_t, dc_t,
                                        interpret=True)

  def loop(xp, h, c):
    hs = []
    for t in range(steps):
      z = [jnp.dot(w[0, k].T, h, precision="highest") + xp[0, t, k] for k in range(4)]
      c = jax.nn.sigmoid(z[1]) * c + jax.nn.sigmoid(z[0]) * jnp.tanh(z[2])
      h = jax.nn.sigmoid(z[3]) * jnp.tanh(c)
      hs.append(h)
    return jnp.stack(hs)[None], h[None], c[None]
  _, vjp = jax.vjp(loop, xp, h0[0].astype(f32), c0[0])
  want = vjp((dhs, dh_t, dc_t))
  for a, b in zip(got, want):
    np.testing.assert_allclose(np.asarray(a).reshape(np.shape(b)), b, rtol=1e-5, atol=1e-5)
  print(f"units {units}: clustered backward (float32) matches jax.vjp", flush=True)


if __name__ == "__main__":
  check(256, 4)
  check_backward_float32()
