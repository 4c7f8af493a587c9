"""Timing helpers shared by the benchmarks: warm up, then the median of repeated runs;
or several candidates interleaved round-robin, so that they share the machine's noise."""

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


def interleaved_rounds(candidates, *, warmup: int = 2, min_rounds: int = 7,
                       min_time: float = 2.0, max_rounds: int = 200) -> dict:
  """{name: [wall seconds, one per round]} of each `candidates[name]()` (results blocked
  on), timed one call per candidate per round, the order rotating every round, so that
  the calls of one round share the machine's load. A candidate returning a float is
  self-timed (its seconds are used)."""
  names = list(candidates)
  for name in names:
    for _ in range(warmup):
      jax.block_until_ready(candidates[name]())
  times = {name: [] for name in names}
  start = time.perf_counter()
  rounds = 0
  while rounds < min_rounds or (time.perf_counter() - start < min_time * len(names)
                                and rounds < max_rounds):
    for name in names[rounds % len(names):] + names[:rounds % len(names)]:
      t0 = time.perf_counter()
      out = jax.block_until_ready(candidates[name]())
      times[name].append(out if isinstance(out, float) else time.perf_counter() - t0)
    rounds += 1
  return times


def interleaved_seconds(candidates, **timing) -> dict:
  """{name: (min, median) wall seconds} of `interleaved_rounds`: on a shared machine a
  burst of load hits every candidate alike, and the minimum is each one's
  least-disturbed run."""
  rounds = interleaved_rounds(candidates, **timing)
  return {name: (min(ts), statistics.median(ts)) for name, ts in rounds.items()}


def paired_ratio(rounds: dict, name, reference) -> float:
  """The median over rounds of rounds[name] / rounds[reference] (both calls of a round
  share the machine's load: steadier than a ratio of minima)."""
  return statistics.median(a / b for a, b in zip(rounds[name], rounds[reference]))
