"""CPU LSTM train step: the custom-JVP recurrence (rnnjax now) against the hand-written
custom VJP it replaced (`_custom_vjp_lstm.py`, a frozen copy), in one process.

    python bench/jvp_vs_vjp.py                 # writes bench/results/jvp_vs_vjp.md
    python bench/jvp_vs_vjp.py --repeats 3     # three independent interleaved runs

The train step is jit(value_and_grad(mean square of rj.LSTM(H).apply(params, x))) plus
an SGD update, as in `cpu_lstm.py`. Both variants go through the same layer and dispatch;
the old one is traced with `rnnjax.recurrences.run_dense` pointing at the frozen custom
VJP. Two kinds of evidence, since the machine is shared and noisy:
  - the compiled programs (no noise): while loops, dots, XLA's flop and byte counts and
    temporary memory of each train step;
  - times: one call per candidate per round, the order rotating every round (as
    `_timing.interleaved_seconds`), each one's minimum and median over rounds, and the
    median over rounds of the per-round ratio now / before (both calls of a round share
    the machine's load). Wall time, and the process's CPU time (all its threads), which
    a loaded machine disturbs less: time spent waiting for a core is not in it. The load
    average is printed with each run.
"""

import argparse
import os
import pathlib
import platform
import re
import statistics
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import jax  # noqa: E402

import _custom_vjp_lstm  # noqa: E402
from _lstm_peers import PEERS  # noqa: E402
import rnnjax  # noqa: E402

SHAPES = [(64, 28, 28, 64), (64, 128, 128, 256), (32, 512, 64, 128)]
NEW, OLD, SCAN = "custom_jvp (now)", "custom_vjp (before)", "engine scan (use_fused=False)"


def _frozen_custom_vjp(math, inputs, recurrent_kernel, state0, valid=None, reset=None, *,
                       zero_output_for_mask=False, projection=None, recurrent_bias=None):
  """`rnnjax.recurrences.run_dense`'s signature over the frozen custom-VJP LSTM (no masks,
  resets or recurrent bias: the benchmark's calls have none)."""
  assert valid is None and reset is None and recurrent_bias is None
  hs, h, c = _custom_vjp_lstm.run(inputs, recurrent_kernel, *state0, None,
                                  go_backwards=False, projection=projection,
                                  zero_output_for_mask=zero_output_for_mask)
  return hs, h, (h, c)


VARIANTS = {NEW: (rnnjax.recurrences.run_dense, "custom_jvp_call"),
            OLD: (_frozen_custom_vjp, "custom_vjp_call")}


def _built_with(variant, shape):
  """A train step (fn, args) of rj.LSTM traced and compiled with the variant's recurrence
  (its forward program must hold the variant's primitive), and the compiled program."""
  run_dense, primitive = VARIANTS[variant]
  saved = rnnjax.recurrences.run_dense
  rnnjax.recurrences.run_dense = run_dense
  try:
    fn, args = PEERS["rnnjax"](*shape, "train")
    compiled = fn.lower(*args).compile()
    jax.block_until_ready(fn(*args))
    forward, fargs = PEERS["rnnjax"](*shape, "forward")   # (grad expands the custom rules)
    assert primitive in str(jax.make_jaxpr(forward)(*fargs)), primitive
  finally:
    rnnjax.recurrences.run_dense = saved
  return fn, args, compiled


def structure(compiled) -> dict:
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  text = compiled.as_text()
  return {"while loops": len(re.findall(r"\bwhile\(", text)), "dots": text.count(" dot("),
          "GFLOP": cost["flops"] / 1e9, "MB accessed": cost["bytes accessed"] / 1e6,
          "temp MB": compiled.memory_analysis().temp_size_in_bytes / 1e6}


def paired_times(candidates, *, warmup=2, min_rounds=9, min_time=2.0, max_rounds=200):
  """({name: [wall seconds per round]}, {name: [CPU seconds per round]}): one call each
  per round, the order rotating."""
  names = list(candidates)
  for name in names:
    for _ in range(warmup):
      jax.block_until_ready(candidates[name]())
  wall, cpu = {name: [] for name in names}, {name: [] for name in names}
  start, rounds = time.perf_counter(), 0
  while rounds < min_rounds or (time.perf_counter() - start < min_time * len(names)
                                and rounds < max_rounds):
    for name in names[rounds % len(names):] + names[:rounds % len(names)]:
      t0, c0 = time.perf_counter(), time.process_time()
      jax.block_until_ready(candidates[name]())
      wall[name].append(time.perf_counter() - t0)
      cpu[name].append(time.process_time() - c0)
    rounds += 1
  return wall, cpu


def _summary(times, names):
  """Cells 'min (median)' in ms, and the median per-round ratio now / before."""
  cells = [f"{1e3 * min(times[n]):.2f} ({1e3 * statistics.median(times[n]):.2f})"
           for n in names]
  return cells, statistics.median(n / o for n, o in zip(times[NEW], times[OLD]))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=1, help="independent interleaved runs")
  parser.add_argument("--min-time", type=float, default=2.0, help="seconds per candidate")
  parser.add_argument("--no-scan", action="store_true", help="skip the engine scan")
  parser.add_argument("--out", default=str(HERE / "results" / "jvp_vs_vjp.md"))
  args = parser.parse_args()
  lines = [f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores "
           f"(shared), jax {jax.__version__}; `python bench/jvp_vs_vjp.py --repeats "
           f"{args.repeats}`.", "", "Compiled train steps (XLA's counts, no noise):", "",
           "| (B, T, D, H) | variant | while loops | dots | GFLOP | MB accessed | temp MB |",
           "|---|---|---|---|---|---|---|"]
  built = {}
  for shape in SHAPES:
    for variant in VARIANTS:
      fn, fargs, compiled = _built_with(variant, shape)
      built[shape, variant] = (fn, fargs)
      s = structure(compiled)
      lines.append(f"| {shape} | {variant} | {s['while loops']} | {s['dots']} | "
                   f"{s['GFLOP']:.3f} | {s['MB accessed']:.1f} | {s['temp MB']:.1f} |")
      print(lines[-1], flush=True)
  names = [NEW, OLD] + ([] if args.no_scan else [SCAN])
  lines += ["", "Train step ms, min over interleaved rounds (median in brackets), wall "
            "and process CPU time; now / before: the median over rounds of the per-round "
            "ratio.", "",
            "| run | (B, T, D, H) | load avg | rounds | time | " + " | ".join(names)
            + " | now / before |", "|---|---|---|---|---|" + "---|" * len(names) + "---|"]
  for repeat in range(args.repeats):
    for shape in SHAPES:
      candidates = {v: (lambda fn=fn, a=a: fn(*a)) for v in VARIANTS
                    for fn, a in [built[shape, v]]}
      if not args.no_scan:
        fn, a = PEERS["rnnjax scan (use_fused=False)"](*shape, "train")
        candidates[SCAN] = lambda fn=fn, a=a: fn(*a)
      load = os.getloadavg()[0]
      wall, cpu = paired_times(candidates, min_time=args.min_time)
      load = (load + os.getloadavg()[0]) / 2
      for what, times in (("wall", wall), ("CPU", cpu)):
        cells, ratio = _summary(times, names)
        lines.append(f"| {repeat} | {shape} | {load:.1f} | {len(times[NEW])} | {what} | "
                     + " | ".join(cells) + f" | {ratio:.3f} |")
        print(lines[-1], flush=True)
  table = "\n".join(lines) + "\n"
  print(table)
  pathlib.Path(args.out).write_text(table)


if __name__ == "__main__":
  main()
