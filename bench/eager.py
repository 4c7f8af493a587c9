"""What an eager `layer.apply` costs against the same call under `jax.jit`, after warm-up:
the eager compilation cache (rnnjax/layers/_eager.py) should make the two equal but for a
few microseconds of Python (argument checks, the cache lookup). Also the first (compiling)
eager call, and what an uncached eager call costs (`apply.uncached`, the pre-cache
behaviour: the scan traced and compiled on every call).

  python bench/eager.py            # -> bench/results/eager.md
"""

import os
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import rnnjax as rj  # noqa: E402
from bench._timing import interleaved_seconds  # noqa: E402

SHAPES = [(3, 6, 8, 16), (32, 128, 64, 128)]   # (B, T, F, U)
OUT = pathlib.Path(__file__).resolve().parent / "results" / "eager.md"


def main():
  rows = []
  for b, t, f, u in SHAPES:
    for layer in (rj.LSTM(u), rj.GRU(u), rj.Bidirectional(rj.LSTM(u))):
      x = jax.random.normal(jax.random.key(0), (b, t, f))
      params = layer.init(jax.random.key(1), x)
      start = time.perf_counter()
      jax.block_until_ready(layer.apply(params, x))
      first = time.perf_counter() - start
      jitted = jax.jit(layer.apply)
      start = time.perf_counter()
      jax.block_until_ready(type(layer).apply.uncached(layer, params, x))
      uncached = time.perf_counter() - start
      times = interleaved_seconds({"eager": lambda: layer.apply(params, x),
                                   "jit": lambda: jitted(params, x)}, min_time=1.0)
      (e, _), (j, _) = times["eager"], times["jit"]
      rows.append(f"| {type(layer).__name__}({getattr(layer, 'units', u)}) | {(b, t, f)} | "
                  f"{first * 1e3:.0f} | {uncached * 1e3:.0f} | {e * 1e3:.3f} | {j * 1e3:.3f} | "
                  f"{(e - j) * 1e3:+.3f} |")
      print(rows[-1], flush=True)
  load = os.getloadavg()
  OUT.parent.mkdir(parents=True, exist_ok=True)
  OUT.write_text(
      "# Eager `apply` against `jax.jit(layer.apply)` (CPU)\n\n"
      f"`python bench/eager.py`; jax {jax.__version__}, {os.cpu_count()} cores, load average "
      f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}. Times in ms: the first eager call "
      "(compiles), one uncached eager call (before the cache: traced and compiled every "
      "call), then the minimum over interleaved rounds of a warm eager call and a warm "
      "jitted call, and their difference.\n\n"
      "| layer | (B, T, F) | first eager | uncached eager | eager | jit | eager - jit |\n"
      "|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n")


if __name__ == "__main__":
  main()
