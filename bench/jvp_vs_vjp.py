"""CPU LSTM train step: the custom-JVP recurrence (rnnjax now) against the hand-written
custom VJP it replaced (`_custom_vjp_lstm.py`, a frozen copy), in one process.

    python bench/jvp_vs_vjp.py                 # writes bench/results/jvp_vs_vjp.md
    python bench/jvp_vs_vjp.py --repeats 3     # three independent interleaved runs

The train step is jit(value_and_grad(mean square of rj.LSTM(H).apply(params, x))) plus
an SGD update, as in `cpu_lstm.py`. Both variants go through the same layer and dispatch;
the old one is traced with `rnnjax.recurrences.run_lstm` pointing at the frozen custom
VJP. The candidates are timed interleaved round-robin (`_timing.interleaved_seconds`),
minimum over rounds; the load average is printed with each run, the machine being shared.
"""

import argparse
import os
import pathlib
import platform
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import jax  # noqa: E402

import _custom_vjp_lstm  # noqa: E402
from _lstm_peers import rnnjax_lstm  # noqa: E402
from _timing import interleaved_seconds  # noqa: E402
import rnnjax  # noqa: E402

SHAPES = [(64, 28, 28, 64), (64, 128, 128, 256), (32, 512, 64, 128)]
NEW, OLD, SCAN = "custom_jvp (now)", "custom_vjp (before)", "engine scan (use_fused=False)"


def _traced_with(run_lstm, shape, primitive: str):
  """A train step (fn, args) of rj.LSTM, traced and compiled now with `run_lstm` as the
  CPU recurrence; its program must hold `primitive` (the variant really is the one named)."""
  saved = rnnjax.recurrences.run_lstm
  rnnjax.recurrences.run_lstm = run_lstm
  try:
    fn, args = rnnjax_lstm(*shape, "train")
    jax.block_until_ready(fn(*args))
    assert primitive in str(jax.make_jaxpr(fn)(*args)), primitive
  finally:
    rnnjax.recurrences.run_lstm = saved
  return fn, args


def candidates(shape, scan: bool):
  built = {NEW: _traced_with(rnnjax.recurrences.run_lstm, shape, "custom_jvp_call"),
           OLD: _traced_with(_custom_vjp_lstm.run, shape, "custom_vjp_call")}
  if scan:
    built[SCAN] = rnnjax_lstm(*shape, "train", use_fused=False)
  return {name: (lambda fn=fn, args=args: fn(*args)) for name, (fn, args) in built.items()}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=1, help="independent interleaved runs")
  parser.add_argument("--min-time", type=float, default=2.0, help="seconds per candidate")
  parser.add_argument("--no-scan", action="store_true", help="skip the engine scan")
  parser.add_argument("--out", default=str(HERE / "results" / "jvp_vs_vjp.md"))
  args = parser.parse_args()
  rows = []
  for repeat in range(args.repeats):
    for shape in SHAPES:
      load = os.getloadavg()[0]
      times = interleaved_seconds(candidates(shape, not args.no_scan), min_time=args.min_time)
      load = (load + os.getloadavg()[0]) / 2
      rows.append((repeat, shape, load, times))
      ratio = times[NEW][0] / times[OLD][0]
      print(f"run {repeat} {shape} load {load:.1f}: " + ", ".join(
          f"{n} {1e3 * t[0]:.2f} ms (median {1e3 * t[1]:.2f})" for n, t in times.items())
          + f"; now / before {ratio:.3f}", flush=True)
  names = list(rows[0][3])
  lines = [f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared), "
           f"jax {jax.__version__}. LSTM train step, ms: minimum over interleaved rounds "
           f"(median in brackets); `python bench/jvp_vs_vjp.py --repeats {args.repeats}`.", "",
           "| run | (B, T, D, H) | load avg | " + " | ".join(names) + " | now / before |",
           "|---|---|---|" + "---|" * len(names) + "---|"]
  for repeat, shape, load, times in rows:
    cells = [f"{1e3 * times[n][0]:.2f} ({1e3 * times[n][1]:.2f})" for n in names]
    lines.append(f"| {repeat} | {shape} | {load:.1f} | " + " | ".join(cells)
                 + f" | {times[NEW][0] / times[OLD][0]:.3f} |")
  table = "\n".join(lines) + "\n"
  print(table)
  pathlib.Path(args.out).write_text(table)


if __name__ == "__main__":
  main()
