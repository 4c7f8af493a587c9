"""CPU benchmark: LSTM train step (and forward) of rnnjax against its peers, in one run.

    python bench/cpu_lstm.py                       # every installed peer, train + forward
    python bench/cpu_lstm.py --mode train --peers rnnjax "flax OptimizedLSTMCell"

Prints milliseconds per step and the ratio to the hand-written scan, writes
bench/results/cpu.md (and cpu.png with --plot).
"""

import argparse
import pathlib
import platform
import statistics
import subprocess
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import jax  # noqa: E402

from _lstm_peers import PEERS  # noqa: E402
from _timing import median_seconds  # noqa: E402

SHAPES = [(64, 28, 28, 64), (64, 128, 128, 256), (32, 512, 64, 128)]
BASELINE = "scan (per-step x@W)"
TORCH = "torch nn.LSTM"
HERE = pathlib.Path(__file__).resolve().parent


def torch_seconds(shape, mode, torch_python, **timing):
  """PyTorch in-process when importable, else in `torch_python`; None when neither works."""
  try:
    import _torch_peer
    import torch  # noqa: F401

    return _torch_peer.median_seconds(*shape, mode, **{
        k: v for k, v in timing.items() if k in ("min_time", "min_reps", "max_reps")})
  except ImportError:
    if not torch_python:
      return None
  out = subprocess.run([torch_python, str(HERE / "_torch_peer.py"), *map(str, shape), mode],
                       capture_output=True, text=True, check=True)
  return float(out.stdout.strip().splitlines()[-1])


def run(peers, shapes, modes, torch_python=None, **timing):
  """[(mode, shape, {peer: median seconds})] for every mode and shape; peers that are not
  installed are skipped. `timing` goes to `median_seconds` (e.g. min_time=0.2 for a quick
  run, as the benchmarks notebook does)."""
  rows = []
  for mode in modes:
    for shape in shapes:
      times = {}
      for name in peers:
        if name == TORCH:
          seconds = torch_seconds(shape, mode, torch_python, **timing)
          if seconds is None:
            print(f"  skip {name}: torch not importable and no --torch-python", flush=True)
            continue
          times[name] = seconds
          print(f"{mode:7s} {shape}  {name:26s} {1e3 * times[name]:9.2f} ms", flush=True)
          continue
        try:
          fn, args = PEERS[name](*shape, mode)
        except ImportError as e:
          print(f"  skip {name}: {e}", flush=True)
          continue
        times[name] = median_seconds(fn, *args, **timing)
        if name == "keras fit":   # its step function measures itself (seconds per batch)
          times[name] = statistics.median(fn() for _ in range(3))
        print(f"{mode:7s} {shape}  {name:26s} {1e3 * times[name]:9.2f} ms", flush=True)
      rows.append((mode, shape, times))
  return rows


def to_markdown(rows) -> str:
  names = []
  for _, _, times in rows:
    names += [n for n in times if n not in names]
  out = [f"CPU: {platform.processor() or platform.machine()}, {jax.local_device_count()} JAX device(s), "
         f"jax {jax.__version__}. Milliseconds per step (median); in brackets the time relative "
         f"to `{BASELINE}` (lower is faster).", ""]
  out.append("| mode | (B, T, D, H) | " + " | ".join(names) + " |")
  out.append("|---|---|" + "---|" * len(names))
  for mode, shape, times in rows:
    base = times.get(BASELINE)
    cells = []
    for n in names:
      if n not in times:
        cells.append("—")
      else:
        ratio = f" ({times[n] / base:.2f})" if base else ""
        cells.append(f"{1e3 * times[n]:.1f}{ratio}")
    out.append(f"| {mode} | {shape} | " + " | ".join(cells) + " |")
  return "\n".join(out) + "\n"


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--peers", nargs="*", default=[*PEERS, TORCH])
  parser.add_argument("--torch-python", help="an interpreter with torch, when this one has none")
  parser.add_argument("--mode", choices=["train", "forward", "both"], default="both")
  parser.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" / "cpu.md"))
  args = parser.parse_args()
  modes = ["train", "forward"] if args.mode == "both" else [args.mode]
  rows = run(args.peers, SHAPES, modes, args.torch_python)
  table = to_markdown(rows)
  print(table)
  pathlib.Path(args.out).write_text(table)


if __name__ == "__main__":
  main()
