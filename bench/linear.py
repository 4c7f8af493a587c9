"""Training throughput and memory of the linear recurrences (MinGRU, MinLSTM, LRU; the
parallel scan and the sequential loop) against rnnjax's GRU and LSTM, on the CPU, and the
8-device sequence-parallel run.

    python bench/linear.py                          # T = 512 ... 65,536, writes results/linear.md + .png
    python bench/linear.py --steps 512 2048 --budget 5    # a quick run

One training step: the gradient of mean((y - target)^2) over the whole output sequence
y = layer(x) with x, target (B, T, H), B = 8, H = units = 256 (features = units, as the
LRU maps H to H), w.r.t. the params, jitted. Tokens/s = B * T / median step time. Memory
is XLA's compiled peak (temporaries + arguments + outputs, deterministic); a step whose
compiled peak is over --max-gib is not run. A model stops growing T once one step takes
longer than --budget seconds (the table says so).

The sequence-parallel run splits T over 8 virtual CPU devices (XLA_FLAGS, in a
subprocess: `--sequence-parallel`) with `jax.shard_map` and `sequence_axis=`; memory is
per device. The virtual devices share this machine's cores, so the time is not a
speed-up measurement; the memory per device is the point.

On a GPU the same training step (`model`, `train_step`) runs through bench/gpu_check.py's
linear cells (bench/_gpu_linear.py).
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import rnnjax as rj  # noqa: E402
from _timing import interleaved_seconds, median_seconds  # noqa: E402

B, H = 8, 256
HERE = pathlib.Path(__file__).resolve().parent
NAMES = ("MinGRU parallel", "MinGRU sequential", "MinLSTM parallel", "MinLSTM sequential",
         "LRU parallel", "LRU sequential", "GRU", "LSTM")


def model(name: str, units: int = H):
  """The layer `name` of NAMES ("MinGRU parallel", "GRU", ...), `units` units, returning
  sequences (also bench/_gpu_linear.py, the GPU run)."""
  family, _, scan = name.partition(" ")
  return getattr(rj, family)(units, return_sequences=True, **({"scan": scan} if scan else {}))


MODELS = {name: (lambda name=name: model(name)) for name in NAMES}


def train_step(layer, sequence_axis_mesh=None):
  """jit(grad of the step's loss) w.r.t. params; with a mesh, time sharded over it."""
  def apply(params, x):
    return layer.apply(params, x)

  if sequence_axis_mesh is not None:
    from jax.sharding import PartitionSpec as P
    apply = jax.shard_map(apply, mesh=sequence_axis_mesh, in_specs=(P(), P(None, "time")),
                          out_specs=P(None, "time"))

  def loss(params, x, target):
    return jnp.mean((apply(params, x) - target) ** 2)

  return jax.jit(jax.grad(loss))


def peak_bytes(compiled) -> int:
  m = compiled.memory_analysis()
  return m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes


def measure(layer, steps: int, max_bytes: float, mesh=None):
  """(tokens/s or None when not run, compiled peak bytes, step seconds or None)."""
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(B, steps, H)), jnp.float32)
  target = jnp.asarray(rng.normal(size=(B, steps, H)), jnp.float32)
  params = layer.init(jax.random.key(0), x)
  compiled = train_step(layer, mesh).lower(params, x, target).compile()
  peak = peak_bytes(compiled)
  if peak > max_bytes:
    return None, peak, None
  seconds = median_seconds(compiled, params, x, target, warmup=1, min_reps=3, min_time=0.0,
                           max_reps=3)
  return B * steps / seconds, peak, seconds


def auto_rule(args) -> list[str]:
  """The `scan="auto"` measurement: parallel and sequential timed interleaved (one call
  each per round, the order rotating), so that they share the machine's load; the
  minimum of each is its least-disturbed run."""
  lines = ["## The `scan=\"auto\"` rule", "",
           "Training step time of the sequential loop and the parallel scan on this CPU, timed "
           "interleaved (one call of each per round, rotating, so that both share the load; "
           f"min / median of {args.auto_rounds} rounds). {load()} at the start.", "",
           "| model | T | sequential (s) | parallel (s) | parallel / sequential (min) |",
           "|---|---|---|---|---|"]
  rng = np.random.default_rng(0)
  for model in ("MinGRU", "MinLSTM", "LRU"):
    for steps in args.auto_steps:
      x = jnp.asarray(rng.normal(size=(B, steps, H)), jnp.float32)
      target = jnp.asarray(rng.normal(size=(B, steps, H)), jnp.float32)
      candidates = {}
      for mode in ("sequential", "parallel"):
        layer = MODELS[f"{model} {mode}"]()
        params = layer.init(jax.random.key(0), x)
        compiled = train_step(layer).lower(params, x, target).compile()
        candidates[mode] = (lambda c=compiled, p=params: c(p, x, target))
      times = interleaved_seconds(candidates, warmup=1, min_rounds=args.auto_rounds, min_time=0.0,
                                  max_rounds=args.auto_rounds)
      (s_min, s_med), (p_min, p_med) = times["sequential"], times["parallel"]
      lines.append(f"| {model} | {steps:,} | {s_min:.3f} / {s_med:.3f} | {p_min:.3f} / {p_med:.3f} "
                   f"| {p_min / s_min:.2f} |")
      print(lines[-1], flush=True)
  lines += ["", f"{load()} at the end. Where the ratio is above 1 the loop is faster: on the "
            "CPU `scan=\"auto\"` takes the sequential loop, also because the associative scan "
            "keeps about twice the memory (the table above). The scan makes O(log T) passes "
            "over the (T, B, H) elements, memory-bound on a CPU, where the loop's per-step work "
            "is a few vector operations on (B, H). On GPUs and TPUs `auto` takes the parallel "
            "scan (the papers' measurements; no GPU was available to measure it here).", ""]
  return lines


def replace_section(text: str, heading: str, lines: list[str]) -> str:
  """`text` with the markdown section starting at `heading` replaced by `lines`."""
  start = text.index(heading)
  end = text.find("\n## ", start + len(heading))
  rest = "" if end < 0 else text[end + 1:]
  return text[:start] + "\n".join(lines) + "\n" + rest


def load() -> str:
  one, five, fifteen = os.getloadavg()
  return f"load average {one:.1f} / {five:.1f} / {fifteen:.1f} (1 / 5 / 15 min) on {os.cpu_count()} cores"


def sequence_parallel(args):
  """Run inside the 8-device subprocess: MinGRU / LRU parallel on 1 device vs 8."""
  from jax.sharding import Mesh
  mesh = Mesh(np.array(jax.devices()[:8]), ("time",))
  rows = []
  for name, make in (("MinGRU", rj.MinGRU), ("LRU", rj.LRU)):
    for steps in args.sp_steps:
      one = measure(make(H, return_sequences=True, scan="parallel"), steps, args.max_gib * 2**30)
      # The 8 virtual devices share this host's memory: their sum must fit.
      eight = measure(make(H, return_sequences=True, sequence_axis="time"), steps,
                      args.max_gib * 2**30 / 8, mesh=mesh)
      rows.append({"model": name, "T": steps, "one": one, "eight": eight})
      print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
  print(json.dumps(rows))


def run_sequence_parallel(args) -> list:
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
         "JAX_PLATFORMS": "cpu"}
  command = [sys.executable, __file__, "--sequence-parallel", "--max-gib", str(args.max_gib),
             "--sp-steps", *map(str, args.sp_steps)]
  out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
  return json.loads(out.strip().splitlines()[-1])


def cell(result) -> str:
  tokens, peak, seconds = result
  memory = f"{peak / 2**20:,.0f} MiB"
  return f"not run / {memory}" if tokens is None else f"{tokens:,.0f} / {memory}"


def plot(table, steps, path):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, (speed, memory) = plt.subplots(1, 2, figsize=(12, 4.5))
  for name, results in table.items():
    ts = [t for t in steps if t in results]
    style = "--" if "sequential" in name else ("-" if " " in name else ":")
    speed.plot([t for t in ts if results[t][0]], [results[t][0] for t in ts if results[t][0]],
               style, marker="o", label=name)
    memory.plot(ts, [results[t][1] / 2**20 for t in ts], style, marker="o", label=name)
  for ax, label in ((speed, "training tokens / s"), (memory, "compiled peak memory (MiB)")):
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length T")
    ax.set_ylabel(label)
    ax.grid(True, which="both", alpha=0.3)
  speed.legend(fontsize=8)
  fig.suptitle(f"B={B}, H={H}, CPU training step (gradient)")
  fig.tight_layout()
  fig.savefig(path, dpi=110)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, nargs="*", default=[2**k for k in range(9, 17)])
  parser.add_argument("--models", nargs="*", default=list(MODELS))
  parser.add_argument("--budget", type=float, default=12.0, help="seconds per step before T stops growing")
  parser.add_argument("--max-gib", type=float, default=5.0)
  parser.add_argument("--sp-steps", type=int, nargs="*", default=[16_384, 65_536])
  parser.add_argument("--sequence-parallel", action="store_true")
  parser.add_argument("--auto-only", action="store_true",
                      help="only re-measure the auto rule section of an existing --out file")
  parser.add_argument("--auto-steps", type=int, nargs="*", default=[512, 2048, 8192])
  parser.add_argument("--auto-rounds", type=int, default=7)
  parser.add_argument("--out", default=str(HERE / "results" / "linear.md"))
  args = parser.parse_args()
  if args.sequence_parallel:
    return sequence_parallel(args)
  out = pathlib.Path(args.out)
  if args.auto_only:
    heading = "## The `scan=\"auto\"` rule"
    out.write_text(replace_section(out.read_text(), heading, auto_rule(args)))
    return None

  started, load_before = time.time(), load()
  table, capped = {}, {}
  for name in args.models:
    table[name] = {}
    for steps in args.steps:
      result = measure(MODELS[name](), steps, args.max_gib * 2**30)
      table[name][steps] = result
      print(f"{name:20s} T={steps:6d}  {cell(result)}  step {result[2] or 0:.2f} s", flush=True)
      if result[2] is not None and result[2] > args.budget:
        capped[name] = steps
        break
  sp = run_sequence_parallel(args)
  load_after = load()

  lines = [
      f"# Linear recurrences on the CPU: training tokens/s and memory",
      "",
      f"B={B}, H=units=features={H} (LRU: N={H}), float32; one training step = the jitted "
      "gradient of mean((y - target)^2) over the output sequence. Cells: training tokens/s / "
      "XLA's compiled peak memory (temporaries + arguments + outputs). `bench/linear.py`, "
      f"jax {jax.__version__}, {os.cpu_count()} CPU cores shared with other jobs: {load_before} "
      f"at the start, {load_after} at the end ({(time.time() - started) / 60:.0f} min). Under "
      "such load the times are noisy (a factor of ~1.5 between runs); the memory is exact.",
      "",
      "| model | " + " | ".join(f"T={t:,}" for t in args.steps) + " |",
      "|---|" + "---|" * len(args.steps),
  ]
  for name, results in table.items():
    row = [cell(results[t]) if t in results else "-" for t in args.steps]
    lines.append(f"| {name} | " + " | ".join(row) + " |")
  stops = (", ".join(f"{n} stops after T={t:,}" for n, t in capped.items()) if capped
           else "none did")
  lines += ["", "`-`: not run, the previous T already took longer than "
            f"{args.budget:.0f} s per step on this shared machine ({stops}); "
            f"`not run`: compiled peak over {args.max_gib:g} GiB (this machine has 23 GiB, "
            "shared), so only the memory is given.", ""]
  lines += auto_rule(args)
  lines += ["## Sequence parallelism: 8 virtual CPU devices", "",
            "The same step with the time axis split over 8 devices (`jax.shard_map`, "
            "`sequence_axis=\"time\"`); memory is per device. The 8 virtual devices share the "
            "same 2 cores, so the time measures overhead, not a speed-up; `not run`: the "
            "8 devices' memory together would pass the limit.", "",
            "| model | T | 1 device: tokens/s / peak | 8 devices: tokens/s / peak per device |",
            "|---|---|---|---|"]
  for row in sp:
    lines.append(f"| {row['model']} parallel | {row['T']:,} | {cell(row['one'])} | "
                 f"{cell(row['eight'])} |")
  text = "\n".join(lines) + "\n"
  print(text)
  out.write_text(text)
  plot(table, args.steps, out.with_suffix(".png"))


if __name__ == "__main__":
  main()
