"""Memory and time of an LSTM training gradient against sequence length, per remat scheme.

    python bench/remat.py                 # T = 1,000 / 10,000 / 100,000
    python bench/remat.py --steps 1000    # a quick run

The loss reads only the last output, so what grows with T is the loop's own residuals.
Memory is XLA's compiled temporary-buffer size for the jitted gradient (deterministic);
time is the median wall time of that gradient on this machine. Writes
bench/results/remat_cpu.md.
"""

import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import rnnjax as rj  # noqa: E402
from _timing import median_seconds  # noqa: E402

SCHEMES = [None, "step", 100, "sqrt"]


def measure(remat, steps, batch=8, features=16, units=64):
  layer = rj.LSTM(units, remat=remat)
  x = jnp.ones((batch, steps, features), jnp.float32)
  params = layer.init(jax.random.key(0), x)
  grad = jax.jit(jax.grad(lambda p, x: jnp.mean(layer.apply(p, x) ** 2)))
  compiled = grad.lower(params, x).compile()
  memory = compiled.memory_analysis().temp_size_in_bytes
  seconds = median_seconds(compiled, params, x, warmup=1, min_reps=3, min_time=0.0, max_reps=3)
  return memory, seconds


def read_table(path) -> dict:
  """The table `main` writes, read back: {scheme label: [(T, MiB, seconds), ...]} with
  labels as in its header (e.g. "remat='step'")."""
  lines = [l for l in pathlib.Path(path).read_text().splitlines() if l.startswith("|")]
  labels = [c.strip() for c in lines[0].strip("|").split("|")][1:]
  table = {label: [] for label in labels}
  for line in lines[2:]:
    steps, *cells = (c.strip() for c in line.strip("|").split("|"))
    for label, cell in zip(labels, cells):
      memory, seconds = cell.split(" / ")
      table[label].append((int(steps.replace(",", "")), float(memory.split()[0]),
                           float(seconds.split()[0])))
  return table


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, nargs="*", default=[1_000, 10_000, 100_000])
  parser.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" / "remat_cpu.md"))
  args = parser.parse_args()
  lines = ["LSTM(64), B=8, F=16, gradient of mean(last_output^2) w.r.t. params, CPU (the loss reads "
           "only the final output, so the table shows the loop's own memory). Temporary memory (MiB) / "
           "median time (s).", "",
           "| T | " + " | ".join(f"remat={s!r}" for s in SCHEMES) + " |",
           "|---|" + "---|" * len(SCHEMES)]
  for steps in args.steps:
    cells = []
    for scheme in SCHEMES:
      memory, seconds = measure(scheme, steps)
      cells.append(f"{memory / 2**20:.1f} MiB / {seconds:.2f} s")
      print(f"T={steps:7d} remat={scheme!r:7}  {cells[-1]}", flush=True)
    lines.append(f"| {steps:,} | " + " | ".join(cells) + " |")
  table = "\n".join(lines) + "\n"
  print(table)
  pathlib.Path(args.out).write_text(table)


if __name__ == "__main__":
  main()
