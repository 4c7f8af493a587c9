"""CPU benchmark: LSTM train step (and forward) of rnnjax against its peers, in one run.

    python bench/cpu_lstm.py                       # every installed peer, train + forward
    python bench/cpu_lstm.py --mode train --peers rnnjax "flax OptimizedLSTMCell"

Prints milliseconds per step and the ratio to the hand-written scan, writes
bench/results/cpu.md (and cpu.png with --plot).
"""

import argparse
import pathlib
import platform
import subprocess
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import jax  # noqa: E402

from _lstm_peers import PEERS  # noqa: E402
from _timing import interleaved_seconds  # noqa: E402

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
  """[(mode, shape, {peer: seconds})] for every mode and shape; peers that are not
  installed are skipped. The JAX peers of one (mode, shape) are timed interleaved
  (`interleaved_seconds`: the minimum over rounds); PyTorch, in its own process, by
  its median. `timing` goes to the timers (e.g. min_time=0.2 for a quick run, as the
  benchmarks notebook does)."""
  rows = []
  for mode in modes:
    for shape in shapes:
      candidates = {}
      for name in peers:
        if name == TORCH:
          continue
        try:
          fn, args = PEERS[name](*shape, mode)
        except ImportError as e:
          print(f"  skip {name}: {e}", flush=True)
          continue
        # keras fit's step function measures itself (seconds per batch)
        candidates[name] = fn if name == "keras fit" else (lambda fn=fn, args=args: fn(*args))
      interleaved = interleaved_seconds(
          candidates, **{k: v for k, v in timing.items() if k in ("warmup", "min_time")})
      times = {}
      for name in peers:
        if name in interleaved:
          times[name] = interleaved[name][0]
          median = 1e3 * interleaved[name][1]
        elif name == TORCH:
          seconds = torch_seconds(shape, mode, torch_python, **timing)
          if seconds is None:
            print(f"  skip {name}: torch not importable and no --torch-python", flush=True)
            continue
          times[name] = median = seconds
          median *= 1e3
        else:
          continue
        print(f"{mode:7s} {shape}  {name:30s} {1e3 * times[name]:9.2f} ms "
              f"(median {median:.2f})", flush=True)
      rows.append((mode, shape, times))
  return rows


def to_markdown(rows) -> str:
  names = []
  for _, _, times in rows:
    names += [n for n in times if n not in names]
  out = [f"CPU: {platform.processor() or platform.machine()}, {jax.local_device_count()} JAX device(s), "
         f"jax {jax.__version__}. Milliseconds per step: JAX peers timed interleaved round-robin "
         f"in one process, minimum over rounds; {TORCH} in its own process, median. In "
         f"brackets the time relative to `{BASELINE}` (lower is faster).", ""]
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
