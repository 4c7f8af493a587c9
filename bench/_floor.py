"""The compute floor of a recurrent layer on this machine: its GEMM FLOPs over the rate
this machine reaches on the same GEMM shapes, measured in-process with jnp matmuls.

FLOPs of the forward pass, input and recurrent GEMMs only (2 flops per multiply-add; the
gate math, the Dense head and the loss are left out): T * 2B(D + H) * GH, G = 4 (LSTM) or
3 (GRU). The train step is counted as 3x the forward (forward, and the backward's two
GEMMs per forward GEMM: the input / state gradient and the weight gradient).

Two rates: the per-step shape (B, H) @ (H, GH), timed as T such matmuls in one lax.scan
(what a recurrence can reach, loop overhead included; summed, not stacked), and the big flat shape
(T*B, D) @ (D, GH) (what the time-parallel input projection can reach), one jitted
matmul per call (its dispatch, some 10-20 us, is in the time: at (64, 28, 28, 64), a
0.2 ms GEMM, the flat rate reads up to ~10% low; at large shapes it streams its (T*B, GH)
output through memory and reads lower still). The floor is a lower bound: the recurrent
GEMM at the per-step rate, the input GEMM at the better of the two rates (a recurrence
may run it per step inside the loop, as rnnjax's CPU path does, or flat before it).
"""

import time

import jax
import jax.numpy as jnp

GATES = {"lstm": 4, "gru": 3}


def flops(kind, b, t, d, h):
  """(input GEMM, recurrent GEMM) FLOPs of one forward pass over the sequence."""
  g = GATES[kind] * h
  return 2 * t * b * d * g, 2 * t * b * h * g


def _best_seconds(fn, *args, reps):
  jax.block_until_ready(fn(*args))
  best = float("inf")
  for _ in range(reps):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    best = min(best, time.perf_counter() - t0)
  return best


def gemm_rates(kind, b, t, d, h, reps=5):
  """(per-step, flat) GEMM rates in FLOP/s, the fastest of `reps` runs each."""
  g = GATES[kind] * h
  keys = jax.random.split(jax.random.key(2), 4)
  xs = jax.random.normal(keys[0], (t, b, h))
  u = jax.random.normal(keys[1], (h, g)) * h ** -0.5
  flat = jax.random.normal(keys[2], (t * b, d))
  w = jax.random.normal(keys[3], (d, g)) * d ** -0.5

  # the products are summed in the carry (an add per element, 1/H of the flops) rather
  # than stacked, so the loop does not stream a (T, B, GH) output through memory
  per_step = jax.jit(lambda xs, u: jax.lax.scan(
      lambda c, x: (c + x @ u, None), jnp.zeros((b, g)), xs)[0])
  big = jax.jit(lambda a, w: a @ w)
  step_rate = 2 * t * b * h * g / _best_seconds(per_step, xs, u, reps=reps)
  flat_rate = 2 * t * b * d * g / _best_seconds(big, flat, w, reps=reps)
  return step_rate, flat_rate


def floor_seconds(kind, shape, rates, mode):
  """Seconds of the GEMMs at the measured rates; x3 for the train step."""
  (input_flops, recurrent_flops), (step_rate, flat_rate) = flops(kind, *shape), rates
  forward = input_flops / max(flat_rate, step_rate) + recurrent_flops / step_rate
  return forward * (3 if mode == "train" else 1)
