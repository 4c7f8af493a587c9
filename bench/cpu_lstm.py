"""CPU benchmark: LSTM and GRU train step and forward pass of rnnjax against its peers,
the mask / reset workloads, and the GEMM compute floor, in one run.

    python bench/cpu_lstm.py                 # everything; writes bench/results/cpu.md + .png
    python bench/cpu_lstm.py --quick         # smoke run: tiny shapes, short timing
    python bench/cpu_lstm.py --kinds gru --tables cells --mode train --peers rnnjax "flax GRUCell"
    python bench/cpu_lstm.py --sync-docs     # only rewrite the docs' summary block from cpu.md
    python bench/cpu_lstm.py --replot        # only redraw cpu.png from cpu.md

Exit status 1 when the numerics check finds a peer computing another function.

The JAX peers of one table row (or, for the workloads, of one cell kind and mode) are
timed interleaved in one process (`_timing.interleaved_rounds`: minimum over rounds, and
rnnjax's paired ratio to the fastest peer, the median of per-round ratios);
PyTorch in its own (median). A full run to the default --out also rewrites the summary
block that README.md, docs/cpu_perf.md and bench/README.md quote (`_cpu_report.py`).
"""

import argparse
import datetime
import os
import pathlib
import platform
import statistics
import subprocess
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import jax  # noqa: E402

import _cpu_plot  # noqa: E402
import _cpu_report as report  # noqa: E402
import _floor  # noqa: E402
import _gru_peers  # noqa: E402
import _peer_checks  # noqa: E402
import _workload_peers  # noqa: E402
from _lstm_peers import PEERS  # noqa: E402
from _timing import interleaved_rounds, interleaved_seconds, paired_ratio  # noqa: E402

SHAPES = [(64, 28, 28, 64), (64, 128, 128, 256), (32, 512, 64, 128)]
WORKLOAD_SHAPE = (128, 128, 64, 256)  # (B, T, F, H)
QUICK_SHAPES = [(8, 8, 8, 16), (4, 16, 8, 16)]
QUICK_WORKLOAD_SHAPE = (8, 16, 8, 16)
QUICK_TIMING = dict(warmup=1, min_time=0.02, min_rounds=2, max_rounds=3, min_reps=2, max_reps=3)
BASELINE = "scan (per-step x@W)"
TORCH = "torch nn.LSTM"
TORCH_PEERS = {"lstm": TORCH, "gru": "torch nn.GRU"}
CELL_PEERS = {"lstm": PEERS, "gru": _gru_peers.PEERS}
HERE = pathlib.Path(__file__).resolve().parent
INTERLEAVE_KEYS = ("warmup", "min_time", "min_rounds", "max_rounds")


def torch_seconds(shape, mode, torch_python, kind="lstm", **timing):
  """PyTorch in-process when importable, else in `torch_python`; None when neither works."""
  timing = {k: v for k, v in timing.items() if k in ("min_time", "min_reps", "max_reps")}
  try:
    import _torch_peer
    import torch  # noqa: F401

    return _torch_peer.median_seconds(*shape, mode, kind, **timing)
  except ImportError:
    if not torch_python:
      return None
  out = subprocess.run([torch_python, str(HERE / "_torch_peer.py"), *map(str, shape), mode, kind],
                       capture_output=True, text=True, check=True)
  return float(out.stdout.strip().splitlines()[-1])


def _interleave(candidates, timing):
  return interleaved_seconds(candidates, **{k: v for k, v in timing.items()
                                            if k in INTERLEAVE_KEYS})


def run(peers, shapes, modes, torch_python=None, kind="lstm", **timing):
  """[(mode, shape, {peer: seconds})] for every mode and shape of the cell table of
  `kind`; peers not installed (or not of this kind) are skipped. `timing` goes to the
  timers (e.g. min_time=0.2 for a quick run, as the benchmarks notebook does)."""
  return [row[:3] for row in run_paired(peers, shapes, modes, torch_python, kind, **timing)]


def run_paired(peers, shapes, modes, torch_python=None, kind="lstm", **timing):
  """`run`'s rows with a fourth entry: rnnjax / the fastest JAX peer of the row (by
  minimum), the median over rounds of the per-round ratio (None without rnnjax)."""
  table, torch_name = CELL_PEERS[kind], TORCH_PEERS[kind]
  rows = []
  for mode in modes:
    for shape in shapes:
      candidates = {}
      for name in peers:
        if name not in table:
          continue
        try:
          fn, args = table[name](*shape, mode)
        except ImportError as e:
          print(f"  skip {name}: {e}", flush=True)
          continue
        # keras fit's step function measures itself (seconds per batch)
        candidates[name] = fn if name == "keras fit" else (lambda fn=fn, args=args: fn(*args))
      interleave = {k: v for k, v in timing.items() if k in INTERLEAVE_KEYS}
      # keras fit in its own rounds after the others: its call returns while Keras's worker
      # threads still run, which slowed whichever call came next (see METHOD)
      fit = {n: candidates.pop(n) for n in ["keras fit"] if n in candidates}
      rounds = interleaved_rounds(candidates, **interleave)
      if fit:
        rounds.update(interleaved_rounds(fit, **interleave))
      times = {name: min(ts) for name, ts in rounds.items()}
      for name, ts in rounds.items():
        print(f"{kind} {mode:7s} {shape}  {name:30s} {1e3 * min(ts):9.2f} ms "
              f"(median {1e3 * statistics.median(ts):.2f})", flush=True)
      ref, _ = report.reference(times)
      paired = paired_ratio(rounds, "rnnjax", ref) if "rnnjax" in rounds and ref else None
      if torch_name in peers:
        seconds = torch_seconds(shape, mode, torch_python, kind, **timing)
        if seconds is None:
          print(f"  skip {torch_name}: torch not importable and no --torch-python", flush=True)
        else:
          times[torch_name] = seconds
          print(f"{kind} {mode:7s} {shape}  {torch_name:30s} {1e3 * seconds:9.2f} ms (median)")
      rows.append((mode, shape, times, paired))
  return rows


def run_workloads(kinds, modes, peers, shape=WORKLOAD_SHAPE, **timing):
  """[(kind, mode, workload, {peer: seconds}, cost)]: every workload x peer of one kind
  and mode timed interleaved together; cost: rnnjax with the workload / rnnjax without,
  the median of the per-round ratios (None when rnnjax was not timed)."""
  rows = []
  for kind in kinds:
    for mode in modes:
      candidates = {}
      for workload in _workload_peers.WORKLOADS:
        for peer in _workload_peers.PEERS:
          if peer not in peers:
            continue
          try:
            built = _workload_peers.build(peer, kind, *shape, mode, workload)
          except ImportError as e:
            print(f"  skip {peer}: {e}", flush=True)
            continue
          if built is not None:
            candidates[workload, peer] = lambda fn=built[0], args=built[1]: fn(*args)
      rounds = interleaved_rounds(candidates, **{k: v for k, v in timing.items()
                                                 if k in INTERLEAVE_KEYS})
      for workload in _workload_peers.WORKLOADS:
        times = {p: min(ts) for (w, p), ts in rounds.items() if w == workload}
        for p, s in times.items():
          print(f"{kind} {mode:7s} {workload:22s} {p:30s} {1e3 * s:9.2f} ms", flush=True)
        cost = None
        if (workload, "rnnjax") in rounds and ("none", "rnnjax") in rounds:
          cost = paired_ratio(rounds, (workload, "rnnjax"), ("none", "rnnjax"))
        rows.append((kind, mode, workload, times, cost))
  return rows


def to_markdown(rows) -> str:
  """The cell table of `run`'s rows (ms, and in brackets the ratio to the fastest JAX
  peer other than rnnjax)."""
  return report.table(["mode", "(B, T, D, H)"],
                      [((mode, shape), times, {}) for mode, shape, times in rows]) + "\n"


def _paired_column(paired):
  return {} if paired is None else {report.PAIRED: f"{paired:.3f}"}


def _floor_columns(kind, mode, shape, rates, times):
  """The GEMM floor columns; none when the GEMM rates were not measured (rates None)."""
  if rates is None:
    return {}
  floor = _floor.floor_seconds(kind, shape, rates, mode)
  more = {"GEMM floor ms": report.fmt_ms(floor)}
  if "rnnjax" in times:
    more["rnnjax / floor"] = f"{times['rnnjax'] / floor:.2f}"
  return more


def document(meta, cell_rows, workload_rows, rates, workload_shape) -> str:
  """The whole of cpu.md."""
  out = ["# CPU benchmark: rnnjax against its peers", "", meta["title_note"], ""]
  out += [f"- {key}: {value}" for key, value in meta["facts"].items()]
  out += ["", meta["method"], ""]
  floor = ["GEMM floor ms", "rnnjax / floor"]
  for kind, rows in cell_rows.items():
    out += [f"## {report.cell_section_title(kind)}", ""]
    if kind == "gru":
      out += [GRU_NOTE, ""]
    body = [((mode, shape), times, {**_paired_column(paired),
                                    **_floor_columns(kind, mode, shape, rates.get((kind, shape)), times)})
            for mode, shape, times, paired in rows]
    out += [report.table(["mode", "(B, T, D, H)"], body, [report.PAIRED, *floor]), ""]
  if workload_rows:
    b, t, f, h = workload_shape
    out += ["## Masks and resets", "",
            f"(B, T, F, H) = {workload_shape}: no mask; `reset=` with {_workload_peers.RESET_RATE:.0%}"
            f" of the (B, T) steps True (seed 3); a right-padded batch, lengths uniform in "
            f"[{max(1, t // 4)}, {t}] (seed 4), as `mask=` and as `seq_lengths=`. `scan (where)` "
            "is the hand-written scan with where-based resets / mask; Flax's nn.RNN takes "
            "seq_lengths only. `rnnjax / rnnjax (none)` is the cost of the workload on "
            "rnnjax's default path (target for resets: ≤ 1.05): the median over the "
            "interleaved rounds of the per-round ratio (both calls of a round share the "
            "machine's load), not the ratio of the minima shown.", ""]
    body = []
    for kind, mode, workload, times, cost in workload_rows:
      more = _floor_columns(kind, mode, workload_shape, rates.get((kind, workload_shape)),
                            times)
      if cost is not None:
        more["rnnjax / rnnjax (none)"] = f"{cost:.3f}"
      body.append(((report.KINDS[kind], mode, workload), times, more))
    out += [report.table(["cell", "mode", "workload"], body, ["rnnjax / rnnjax (none)", *floor]),
            ""]
  return "\n".join(out)


def machine_facts():
  model = platform.processor() or platform.machine()
  try:
    with open("/proc/cpuinfo") as f:
      names = [l.split(":", 1)[1].strip() for l in f if l.startswith("model name")]
    model = names[0] if names else model
  except OSError:
    pass
  return (f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; "
          f"python {platform.python_version()}, jax {jax.__version__} "
          f"({jax.local_device_count()} CPU device(s))")


def load():
  return " ".join(f"{v:.2f}" for v in os.getloadavg())


def parse_args(argv):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--peers", nargs="*", help="peer names (default: every peer)")
  parser.add_argument("--kinds", nargs="*", choices=["lstm", "gru"], default=["lstm", "gru"])
  parser.add_argument("--tables", nargs="*", choices=["cells", "workloads"],
                      default=["cells", "workloads"])
  parser.add_argument("--torch-python", help="an interpreter with torch, when this one has none")
  parser.add_argument("--mode", choices=["train", "forward", "both"], default="both")
  parser.add_argument("--quick", action="store_true",
                      help="smoke run: tiny shapes and timing, written to bench/results/tmp/")
  parser.add_argument("--out", help="default bench/results/cpu.md (tmp/cpu.md with --quick)")
  parser.add_argument("--no-checks", action="store_true",
                      help="skip the numerics checks of the peers (tests run them on their own)")
  parser.add_argument("--replot", action="store_true", help="only redraw the plot from --out")
  parser.add_argument("--sync-docs", action="store_true",
                      help="only rewrite the docs' summary block from --out")
  return parser.parse_args(argv)


def main(argv=None):
  argv = sys.argv[1:] if argv is None else list(argv)
  args = parse_args(argv)
  default_out = HERE / "results" / ("tmp/cpu.md" if args.quick else "cpu.md")
  out = pathlib.Path(args.out or default_out)
  if args.replot or args.sync_docs:
    if args.replot:
      _cpu_plot.plot(out.read_text(), out.with_suffix(".png"))
    if args.sync_docs:
      print("rewrote:", report.sync_docs(out) or "nothing (already current)")
    return 0
  every = [*PEERS, *_gru_peers.PEERS, *TORCH_PEERS.values(), *_workload_peers.PEERS]
  peers = list(dict.fromkeys(args.peers if args.peers is not None else every))
  unknown = [p for p in peers if p not in every]
  if unknown:
    raise ValueError(f"--peers got unknown peer name(s) {unknown}; expected names from "
                     f"{list(dict.fromkeys(every))}.")
  modes = ["train", "forward"] if args.mode == "both" else [args.mode]
  shapes, wshape = (QUICK_SHAPES, QUICK_WORKLOAD_SHAPE) if args.quick else (SHAPES, WORKLOAD_SHAPE)
  timing = QUICK_TIMING if args.quick else {}
  start_load, started = load(), datetime.datetime.now(datetime.timezone.utc)

  checks, agree = ([] if not args.no_checks else ["skipped (--no-checks)"]), True
  for kind in args.kinds if not args.no_checks else []:
    for table, check in (("cells", _peer_checks.check_cells),
                         ("workloads", _peer_checks.check_workloads)):
      if table in args.tables:
        results = check(kind, peers=peers)
        agree = agree and _peer_checks.agree(results)
        checks.append(f"{report.KINDS[kind]}{' workloads' if table == 'workloads' else ''}: "
                      + _peer_checks.summary(results))
  print("\n".join(checks), flush=True)

  cell_rows = {kind: run_paired(peers, shapes, modes, args.torch_python, kind, **timing)
               for kind in args.kinds} if "cells" in args.tables else {}
  workload_rows = (run_workloads(args.kinds, modes, peers, wshape, **timing)
                   if "workloads" in args.tables else [])
  rates = {(kind, shape): _floor.gemm_rates(kind, *shape, reps=3 if args.quick else 10)
           for kind in args.kinds for shape in [*shapes, wshape]}
  text = document(_meta(argv, args, started, start_load, rates, checks), cell_rows, workload_rows,
                  rates, wshape)
  print(text)
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(text)
  _cpu_plot.plot(text, out.with_suffix(".png"))
  if not args.quick and out == HERE / "results" / "cpu.md":
    print("rewrote:", report.sync_docs(out) or "nothing (already current)")
  if not agree:
    print("A peer computed another function than rnnjax (see Numerics in the table).")
  return 0 if agree else 1


def _meta(argv, args, started, start_load, rates, checks):
  gflops = "; ".join(f"{report.KINDS[k]} {s} {r[0] / 1e9:.3g} / {r[1] / 1e9:.3g}"
                     for (k, s), r in rates.items())
  note = ("Written by `python bench/cpu_lstm.py " + " ".join(argv) + "`."
          + (" **SMOKE RUN (--quick: tiny shapes, a few rounds): proves the code runs; its "
             "numbers mean nothing.**" if args.quick else ""))
  return {
      "title_note": note,
      "facts": {
          "Run": started.strftime("%Y-%m-%d %H:%M UTC"),
          "Load average": f"{start_load.split()[0]} at start, {load().split()[0]} at end "
                          f"(1-minute; 1/5/15-minute at start {start_load}, at end {load()})",
          "Machine": machine_facts(),
          "GEMM rates, GFLOP/s, per-step (B, H) @ (H, GH) in a scan / flat (T*B, D) @ (D, GH)":
              gflops,
          "Numerics (each peer's output on its weights converted to rnnjax's layout against "
          "rnnjax's engine scan; gradients too for the hand-written scans)": " | ".join(checks),
      },
      "method": METHOD,
  }


GRU_NOTE = ("Keras's GRU, `reset_after=True` (rj.GRU's default): Flax `GRUCell`, Equinox "
            "`GRUCell` and PyTorch `nn.GRU` compute the same function; Haiku's `hk.GRU` applies "
            "the reset gate before the recurrent matmul (`reset_after=False`), a different "
            "function of the same cost.")
METHOD = ("Model: RNN(H, return_sequences=True) -> Dense(10) on every step; train step = "
          "value_and_grad of the mean square of the (B, T, 10) output + SGD, jitted; forward = "
          "the (B, T, 10) output. Milliseconds per step: the JAX peers of a row timed "
          "interleaved round-robin in one process after two warm-up calls, minimum over rounds "
          "(at least 7 rounds, about 2 s per peer); PyTorch in its own process, median. In "
          "brackets: time / the fastest JAX peer of the row other than rnnjax (`keras fit` and "
          "PyTorch are not candidates); below 1 is faster. `keras fit` (Keras's own loop: "
          "`model.fit` / `model.predict` over 8 batches, seconds per batch) runs in rounds of "
          "its own after the others, in the same process: its call returns while Keras's "
          "worker threads still run, and in the shared rounds they slowed the next call "
          "(at (64, 28, 28, 64), LSTM forward: the hand-written scan 0.69 -> 0.75 ms, rnnjax "
          "0.43 -> 0.56 ms, with about one involuntary context switch per call after it "
          "against 0.1 after the scan). `rnnjax / fastest (paired)`: "
          "rnnjax / that peer, the median over rounds of the per-round ratio (both calls of "
          "a round share the machine's load: steadier than the ratio of minima). GEMM floor: the forward's input and "
          "recurrent GEMM FLOPs at the measured rates (a lower bound: input GEMM at the better "
          "of the two rates, recurrent at the per-step rate), x3 for the train step; FLOPs of the forward = T * 2B(D + H) * GH, "
          "G = 4 (LSTM) or 3 (GRU) (bench/_floor.py).")


if __name__ == "__main__":
  sys.exit(main())
