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
  assert fwd.cluster == cluster and (bwd is None) == (cluster > 1), (fwd, bwd)
  out, (h, c) = mosaic.mosaic_lstm(params, x, initial_state=state, dtype=jnp.bfloat16,
                                   go_backwards=True, interpret=True)
  ref, (rh, rc) = rj.kernels.fused_lstm(params, x, initial_state=state, go_backwards=True,
                                        dtype=jnp.bfloat16, implementation="reference")
  np.testing.assert_allclose(np.asarray(out, np.float32), np.asarray(ref, np.float32),
                             atol=1e-2)
  np.testing.assert_allclose(h, rh, atol=1e-4)
  np.testing.assert_allclose(c, rc, atol=1e-4)
  print(f"units {units}: cluster of {fwd.cluster} matches the reference", flush=True)


if __name__ == "__main__":
  check(256, 4)
