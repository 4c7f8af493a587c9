"""Timing helpers shared by the benchmarks: warm up, then the median of repeated runs."""

import statistics
import time

import jax


def median_seconds(fn, *args, warmup: int = 2, min_reps: int = 5, min_time: float = 2.0,
                   max_reps: int = 50) -> float:
  """Median wall time of `fn(*args)` (results blocked on), after `warmup` calls."""
  for _ in range(warmup):
    jax.block_until_ready(fn(*args))
  times = []
  start = time.perf_counter()
  while len(times) < min_reps or (time.perf_counter() - start < min_time and len(times) < max_reps):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t0)
  return statistics.median(times)
