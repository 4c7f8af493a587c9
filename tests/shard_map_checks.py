"""shard_map over 3 virtual CPU devices on every fast path, run in a subprocess by
tests/test_transform_matrix.py (XLA_FLAGS must be set before JAX starts):

  XLA_FLAGS=--xla_force_host_platform_device_count=3 JAX_PLATFORMS=cpu \\
      python -m tests.shard_map_checks

Prints one JSON line: the device count, and per case the largest difference between
the fast path and the scan path under the same shard_map (per-device loss and gradients
summed over devices, and a jvp of the outputs), between that scan and the same values on
one device without shard_map, and the scale of the reference.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np

from tests.transform_cases import (LAYERS, LENGTHS, applier, fast_and_scan, loss_of,
                                   max_difference, mesh_size, problem)

jax.config.update("jax_numpy_rank_promotion", "raise")

CASES = [("lstm", "cpu"), ("gru", "cpu"), ("lstm", "pallas"), ("gru", "pallas")]


def main():
  out = {"devices": jax.device_count(), "mesh": mesh_size()}
  for name, path in CASES:
    got, want, choice = fast_and_scan(name, path, "shard_map", LENGTHS)
    scale = max(float(np.max(np.abs(np.asarray(a)))) for a in jax.tree.leaves(want))
    # and the scan under shard_map against the scan on one device, without it
    scan = LAYERS[name](False)
    params, x = problem(scan)
    f = applier(scan)
    one = jax.jit(lambda p, x: (jax.value_and_grad(loss_of(f))(p, x, LENGTHS),
                                *jax.jvp(lambda x: f(p, x, LENGTHS), (x,), (jnp.cos(x),))))(
                                    params, x)
    out[f"{name}-{path}"] = {"path": choice.path, "difference": max_difference(got, want),
                             "unsharded_difference": max_difference(want, one),
                             "scale": scale}
  print(json.dumps(out))


if __name__ == "__main__":
  main()
