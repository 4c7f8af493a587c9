"""CPU benchmark: LSTM train step (and forward) of rnnjax against its peers, in one run.

    python bench/cpu_lstm.py                       # every installed peer, train + forward
    python bench/cpu_lstm.py --mode train --peers rnnjax "flax OptimizedLSTMCell"

Prints milliseconds per step and the ratio to the hand-written scan, writes
bench/results/cpu.md and a bar plot of the ratios, cpu.png (`--replot` redraws the plot
from an existing cpu.md without timing anything).
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


def read_table(path):
  """The rows `to_markdown` wrote, read back: [(mode, shape, {peer: seconds})]."""
  lines = [l for l in pathlib.Path(path).read_text().splitlines() if l.startswith("|")]
  names = [c.strip() for c in lines[0].strip("|").split("|")][2:]
  rows = []
  for line in lines[2:]:
    mode, shape, *cells = (c.strip() for c in line.strip("|").split("|"))
    times = {n: float(c.split()[0]) / 1e3 for n, c in zip(names, cells) if c != "—"}
    rows.append((mode, tuple(int(v) for v in shape.strip("()").split(",")), times))
  return rows


def plot(rows, path) -> None:
  """One panel per mode: each peer's time relative to the hand-written scan, per shape."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  modes = list(dict.fromkeys(mode for mode, _, _ in rows))
  fig, axes = plt.subplots(len(modes), 1, figsize=(11, 3.6 * len(modes)), squeeze=False)
  for ax, mode in zip(axes[:, 0], modes):
    panel = [(shape, times) for m, shape, times in rows if m == mode]
    names = list(dict.fromkeys(n for _, times in panel for n in times))
    width = 0.8 / len(names)
    for k, name in enumerate(names):
      xs = [i + k * width for i, (_, t) in enumerate(panel) if name in t]
      ys = [t[name] / t[BASELINE] for _, t in panel if name in t]
      ax.bar(xs, ys, width, label=name, color="black" if name == "rnnjax" else None)
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(panel))],
                  [str(shape) for shape, _ in panel])
    ax.set_ylabel(f"time / {BASELINE}")
    ax.set_title(f"LSTM {mode} step, (B, T, D, H); lower is faster")
  axes[0, 0].legend(fontsize=7, ncol=4)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--peers", nargs="*", default=[*PEERS, TORCH])
  parser.add_argument("--torch-python", help="an interpreter with torch, when this one has none")
  parser.add_argument("--mode", choices=["train", "forward", "both"], default="both")
  parser.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" / "cpu.md"))
  parser.add_argument("--replot", action="store_true",
                      help="only redraw the plot from the table at --out")
  args = parser.parse_args()
  out = pathlib.Path(args.out)
  if args.replot:
    plot(read_table(out), out.with_suffix(".png"))
    return
  modes = ["train", "forward"] if args.mode == "both" else [args.mode]
  rows = run(args.peers, SHAPES, modes, args.torch_python)
  table = to_markdown(rows)
  print(table)
  out.write_text(table)
  plot(rows, out.with_suffix(".png"))


if __name__ == "__main__":
  main()
