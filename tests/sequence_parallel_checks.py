"""Sequence-parallel checks, run in a subprocess by tests/test_sequence_parallel.py
(XLA_FLAGS must give 8 virtual CPU devices before JAX starts):

  XLA_FLAGS=--xla_force_host_platform_device_count=8 JAX_PLATFORMS=cpu \
      python -m tests.sequence_parallel_checks

The time axis of the inputs (and of the mask and resets) is split over 8 devices with
`jax.shard_map`; each layer runs with `sequence_axis="time"`. Printed as one JSON line:
the largest difference of each sharded result (outputs, last output, final state,
gradients) from the same layer on one device, and every collective in the compiled
program with its result shape (the test asserts none holds the whole time axis).
"""

import json
import re

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

import rnnjax as rj

jax.config.update("jax_numpy_rank_promotion", "raise")

DEVICES = 8
B, T, F = 3, 80, 5            # 10 steps per device; no other axis is 80 or 10 long
KINDS = {
    "min_lstm_log": lambda **kw: rj.MinLSTM(4, log_space=True, **kw),
    "lru": lambda **kw: rj.LRU(F, state_units=6, r_min=0.9, r_max=0.99, **kw),
}
CASES = {
    "mask_reset": dict(mask=True, reset=True),
    "backwards_lengths": dict(go_backwards=True, seq_lengths=True),
}
RUNS = [("lru", "mask_reset"), ("min_lstm_log", "backwards_lengths")]
# XLA's cheap CPU settings: the shapes are tiny, compile time dominates.
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
COLLECTIVES = ("all-gather", "all-reduce", "all-to-all", "collective-permute", "reduce-scatter")


def data():
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(B, T, F)), jnp.float32)
  mask = rng.random((B, T)) > 0.3
  mask[1, 30:] = False                 # valid steps end on device 2
  reset = rng.random((B, T)) > 0.9
  lengths = jnp.asarray([T, 31, 3])    # ends inside device 2's and device 0's chunks
  return x, jnp.asarray(mask), jnp.asarray(reset), lengths


def build(kind, case, mesh, sharded: bool):
  """loss(params, x, mask, reset, lengths) -> (loss, (outputs, last, state)), on one
  device or with time sharded over the mesh."""
  options = CASES[case]
  axis = "time" if sharded else None
  layer = KINDS[kind](return_sequences=True, return_state=True, scan="parallel",
                      go_backwards=options.get("go_backwards", False), sequence_axis=axis)
  last_layer = KINDS[kind](return_state=True, scan="parallel", sequence_axis=axis,
                           go_backwards=options.get("go_backwards", False))

  def run(params, x, mask, reset, lengths):
    kw = dict(mask=mask if options.get("mask") else None,
              reset=reset if options.get("reset") else None,
              seq_lengths=lengths if options.get("seq_lengths") else None)
    y, state = layer.apply(params, x, **kw)
    last, _ = last_layer.apply(params, x, **kw)
    return y, last, state

  if sharded:
    time_spec = P(None, "time")
    run = jax.shard_map(run, mesh=mesh, in_specs=(P(), time_spec, time_spec, time_spec, P()),
                        out_specs=(time_spec, P(), P()))

  def loss(params, x, mask, reset, lengths):
    y, last, state = run(params, x, mask, reset, lengths)
    weights = jnp.cos(jnp.arange(T, dtype=jnp.float32))[None, :, None]
    value = jnp.sum(jnp.sin(y) * weights) + jnp.sum(last ** 2) + jnp.sum(jnp.tanh(state))
    return value, (y, last, state)

  return layer, jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))


def max_diff(a, b) -> float:
  pairs = list(zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))
  return float(max(np.max(np.abs(np.asarray(u) - np.asarray(v))) for u, v in pairs))


def collectives(hlo: str) -> list:
  """[op, result shape] of every collective in compiled HLO text."""
  found = []
  for line in hlo.splitlines():
    for op in COLLECTIVES:
      match = re.search(r"=\s*(\(?[a-z0-9]+\[[0-9,]*\][^=]*?)\s" + op + r"(-start)?\(", line)
      if match:
        found.append([op, match.group(1).strip()])
  return found


def main():
  mesh = Mesh(np.array(jax.devices()[:DEVICES]), ("time",))
  x, mask, reset, lengths = data()
  results = {"devices": len(jax.devices())}
  args = (x, mask, reset, lengths)
  for kind, case in RUNS:
    layer, one = build(kind, case, mesh, sharded=False)
    _, many = build(kind, case, mesh, sharded=True)
    params = layer.init(jax.random.key(1), x)
    one = one.lower(params, *args).compile(FAST_COMPILE)
    many = many.lower(params, *args).compile(FAST_COMPILE)
    (v1, aux1), g1 = one(params, *args)
    (v2, aux2), g2 = many(params, *args)
    key = f"{kind}/{case}"
    results[f"{key}/outputs"] = max_diff(aux1, aux2)
    results[f"{key}/loss"] = abs(float(v1) - float(v2))
    results[f"{key}/grads"] = max_diff(g1, g2)
    results[f"{key}/scale"] = float(max(np.max(np.abs(np.asarray(g))) for g in jax.tree.leaves(g1)))
    results[f"{key}/collectives"] = collectives(many.as_text())
  print(json.dumps(results))


if __name__ == "__main__":
  main()
