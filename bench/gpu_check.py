"""One command that turns GPU minutes into results: the fused LSTM/GRU kernels against the
scan, jax.experimental.rnn (cuDNN) and torch's cuDNN RNNs, within a wall-time budget.

    python bench/gpu_check.py                        # on the GPU -> bench/results/gpu.md
    python bench/gpu_check.py --out DIR --budget-s 420
    python bench/gpu_check.py --dry-run              # CPU: interpret mode, tiny shapes

It writes the environment first (GPU, driver, JAX/jaxlib, the CUDA plugin, torch and its
cuDNN: cuDNN RNNs take bfloat16 only from cuDNN 9.13, pytorch#164411), then runs each cell
in priority order in its own subprocess with a timeout (a compile error or a CUDA fault
costs one cell) and appends each row to DIR/gpu.md the moment it is measured: numerics
against a float32 HIGHEST reference, µs per step forward and forward+backward, compile
seconds, the kernel's options. Cells past the budget are marked skipped; a plot
(DIR/gpu.png) and a summary of the ratios the targets are stated in come last. The last,
lowest-priority cells time the linear recurrences' training step (MinGRU / MinLSTM / LRU,
parallel and sequential scan) against GRU and LSTM and record what scan="auto" picks
(bench/_gpu_linear.py).
"""

import argparse
import datetime
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))   # the repository, for `rnnjax` and `bench`

from bench import _gpu_linear  # noqa: E402
from bench._gpu_cells import Cell, run_cell  # noqa: E402

TARGETS = ((64, 256, 512), (256, 512, 512))   # (B, H, T)
SANITY = ((64, 128, 512),)                    # resident recurrent weights (bfloat16)
MOSAIC = ((64, 128, 512), (64, 256, 512), (256, 512, 512))   # 1 CTA, a cluster of 4, n/a
RESET = ((128, 256, 128),)                    # the RL workload, 3% resets
F32_SHAPES = ((64, 64, 512), (64, 128, 512))  # resident, then streamed float32
LINEAR = {"short T": (8, 256, 1024), "mid T": (8, 256, 8192), "long T": (8, 256, 65536)}
LINEAR_DRY = {"short T": (2, 8, 5), "mid T": (2, 8, 9), "long T": (2, 8, 17)}
DRY = {TARGETS: ((17, 20, 6),), SANITY: ((3, 16, 5),), RESET: ((5, 16, 7),),
       F32_SHAPES: ((3, 8, 5),), MOSAIC: ((3, 16, 5),)}
MARK = "@@row "


def cells(dry_run: bool) -> list[Cell]:
  """Every cell, in priority order."""
  def s(shapes):
    return DRY[shapes] if dry_run else shapes
  out = [Cell(f"torch {k} {d}", "torch", k, d, s(TARGETS))
         for k in ("lstm", "gru") for d in ("float16", "bfloat16")]
  out += [Cell("fused lstm bf16 (resident sanity)", "fused", "lstm", "bfloat16", s(SANITY)),
          # The opt-in Mosaic GPU kernels (rnnjax.pallas.mosaic), next to the Triton ones.
          Cell("mosaic lstm bf16 (W_hh in SMEM)", "mosaic", "lstm", "bfloat16", s(MOSAIC),
               timeout_s=240),
          Cell("fused lstm bf16", "fused", "lstm", "bfloat16", s(TARGETS), timeout_s=240),
          Cell("scan lstm bf16", "scan", "lstm", "bfloat16", s(TARGETS)),
          Cell("jax.experimental.rnn lstm f32", "jax_cudnn", "lstm", "float32", s(TARGETS)),
          Cell("fused gru bf16", "fused", "gru", "bfloat16", s(SANITY) + s(TARGETS),
               timeout_s=240),
          Cell("mosaic gru bf16 (W_hh in SMEM)", "mosaic", "gru", "bfloat16", s(SANITY),
               timeout_s=240),
          Cell("scan gru bf16", "scan", "gru", "bfloat16", s(TARGETS)),
          Cell("fused lstm f32 (TF32)", "fused", "lstm", "float32", s(F32_SHAPES)),
          Cell("scan lstm f32", "scan", "lstm", "float32", s(TARGETS)),
          Cell("reset workload lstm bf16", "reset", "lstm", "bfloat16", s(RESET))]
  # Last, so that they never take budget from the cells above: the linear recurrences'
  # training step against GRU and LSTM (issue 17), one subprocess per T.
  out += [Cell(f"linear train f32 {k}", "linear", "linear", "float32",
               ((LINEAR_DRY if dry_run else LINEAR)[k],), timeout_s=240 if k == "long T" else 150)
          for k in LINEAR]
  return out


def mosaic_row(cell: Cell, shape, *, warmup, reps, dry_run) -> dict:
  """A row of the Mosaic GPU LSTM or GRU (`rj.kernels.mosaic_lstm`, `mosaic_gru`),
  measured like the fused cells (bench/_gpu_cells.py): the projection included, error
  against the float32 HIGHEST scan over the outputs and every gradient."""
  del dry_run   # interpret mode comes from force_interpret in the child
  import jax.numpy as jnp
  import rnnjax as rj
  from bench import _gpu_cells as gc
  from rnnjax.pallas import mosaic
  b, h, t = shape
  dtype = jnp.dtype(cell.dtype)
  try:
    plans = mosaic.plans if cell.kind == "lstm" else mosaic.gru_plans
    fwd_plan, bwd_plan = plans(b, h, dtype)
  except ValueError as e:
    return dict(na=str(e))
  params, x, cot, _ = gc.problem(cell.kind, b, h, t)
  ref_out, ref_grads = gc.reference(cell.kind, params, x, cot)
  cast = {k: v.astype(dtype) for k, v in params.items()}
  xd = x.astype(dtype)

  fn = rj.kernels.mosaic_lstm if cell.kind == "lstm" else rj.kernels.mosaic_gru

  def apply(p, x):
    return fn(p, x, dtype=dtype)[0]
  fwd, c1 = gc._compiled(apply, cast, xd)
  err = gc._max_rel(fwd(cast, xd), ref_out)
  seconds = gc.median_seconds
  train_us, c2 = None, 0.0
  if bwd_plan is not None:   # a clustered forward has no backward kernel (docs/kernels.md)
    train, c2 = gc._compiled(gc._train_fn(apply), cast, xd, cot)
    err = max(err, gc._max_rel(train(cast, xd, cot), ref_grads))
    train_us = gc.us_per_step(seconds(train, cast, xd, cot, warmup=warmup, reps=reps), t)
  options = (f"Mosaic GPU, opt-in: cluster {fwd_plan.cluster}, batch tile {fwd_plan.bt}, "
             f"{fwd_plan.warpgroups} warpgroup(s)/CTA, TMA ring depth {fwd_plan.depth} fwd"
             + (f" / {bwd_plan.depth} bwd" if bwd_plan else "; no backward (W_hh > one CTA)"))
  return dict(options=options, err=err, tol=gc.F32_TOL[cell.dtype], compile_s=c1 + c2,
              fwd_us=gc.us_per_step(seconds(fwd, cast, xd, warmup=warmup, reps=reps), t),
              train_us=train_us)


# Environment ------------------------------------------------------------------------------

def _version(dist: str) -> str:
  from importlib import metadata
  try:
    return metadata.version(dist)
  except metadata.PackageNotFoundError:
    return "not installed"


def environment(timeout: float = 120.0) -> list[tuple[str, str]]:
  """(fact, value) pairs, found in a subprocess: this process never initializes a GPU,
  so that each cell's subprocess has it to itself."""
  cmd = [sys.executable, str(pathlib.Path(__file__).resolve()), "--env"]
  try:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                         env=_child_env()).stdout
    return [tuple(f) for f in json.loads(out.strip().splitlines()[-1][len(MARK):])]
  except (subprocess.SubprocessError, ValueError, IndexError) as e:
    return [("environment", f"could not be read ({type(e).__name__})")]


def _child_env() -> dict:
  # No process preallocates most of the GPU's memory for JAX: torch shares it in a cell.
  return dict(os.environ, PYTHONUNBUFFERED="1", XLA_PYTHON_CLIENT_PREALLOCATE="false")


def environment_facts() -> list[tuple[str, str]]:
  """(fact, value) pairs, each found independently (a failure is written, not raised)."""
  facts = [("date", datetime.datetime.now().isoformat(timespec="seconds")),
           ("python", platform.python_version()), ("host", platform.node())]
  try:
    out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                          "--format=csv,noheader"], capture_output=True, text=True,
                         timeout=20)
    facts.append(("nvidia-smi", out.stdout.strip() or out.stderr.strip() or "no output"))
  except (OSError, subprocess.SubprocessError) as e:
    facts.append(("nvidia-smi", f"unavailable ({type(e).__name__})"))
  for dist in ("jax", "jaxlib", "jax-cuda13-plugin", "jax-cuda12-plugin", "jax-cuda13-pjrt",
               "triton", "torch"):
    facts.append((dist, _version(dist)))
  try:
    import jax
    facts.append(("jax backend", f"{jax.default_backend()}: {jax.devices()[0].device_kind}"))
  except Exception as e:   # noqa: BLE001 - a fact, not a failure
    facts.append(("jax backend", f"error: {e}"))
  try:
    import torch
    cudnn = torch.backends.cudnn.version() if torch.cuda.is_available() else None
    facts.append(("torch.backends.cudnn.version()", str(cudnn)))
    if cudnn is not None:
      facts.append(("cuDNN bf16 RNNs", "yes" if cudnn >= 91300 else
                    "no: cuDNN < 9.13 runs bfloat16 RNNs on another path (pytorch#164411)"))
  except ImportError:
    facts.append(("torch.backends.cudnn.version()", "torch not installed"))
  return facts


# The driver -------------------------------------------------------------------------------

HEADER = ("| cell | shape (B, H, T) | error vs f32 HIGHEST (tol) | forward µs/step | "
          "fwd+bwd µs/step | compile s | options |")


def _fmt(v, spec=".2f"):
  return "—" if v is None else format(v, spec)


def row_line(cell: Cell, shape, row: dict) -> str:
  if "model" in row:
    return _gpu_linear.row_line(cell.name, shape, row)
  shape_s = ", ".join(map(str, shape))
  if "na" in row:
    return f"| {cell.name} | {shape_s} | n/a: {row['na']} | | | | |"
  if "error" in row:
    return f"| {cell.name} | {shape_s} | {row['error']} | | | | |"
  ok = "ok" if row["err"] <= row["tol"] else "FAIL"
  options = row["options"]
  if "no_reset_us" in row:
    options += (f"; reset-free forward {row['no_reset_us']:.2f} µs/step, ratio "
                f"{row['fwd_us'] / row['no_reset_us']:.3f}")
  return (f"| {cell.name} | {shape_s} | {row['err']:.2e} ({row['tol']:.0e}) {ok} | "
          f"{_fmt(row['fwd_us'])} | {_fmt(row['train_us'])} | {_fmt(row['compile_s'], '.1f')} "
          f"| {options} |")


def run_in_subprocess(cell: Cell, index: int, timeout: float, args, emit) -> None:
  """Runs cell `index` in a child process; calls emit(shape, row) for each row the moment
  the child prints it, then for each shape it did not reach (timed out or crashed)."""
  cmd = [sys.executable, str(pathlib.Path(__file__).resolve()), "--cell", str(index),
         "--reps", str(args.reps), "--warmup", str(args.warmup)]
  cmd += ["--dry-run"] if args.dry_run else []
  done = []
  with tempfile.TemporaryFile("w+") as err:
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True,
                          env=_child_env(), cwd=ROOT) as proc:

      def read():
        for line in proc.stdout:
          if line.startswith(MARK):
            shape, row = json.loads(line[len(MARK):])
            if row.get("model") in (None, _gpu_linear.AUTO):   # a linear shape ends there
              done.append(tuple(shape))
            emit(tuple(shape), row)
      reader = threading.Thread(target=read, daemon=True)
      reader.start()
      start = time.monotonic()
      try:
        proc.wait(timeout=timeout)
        why = None if proc.returncode == 0 else f"crashed (exit {proc.returncode})"
      except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        why = f"timeout after {time.monotonic() - start:.0f} s"
      reader.join(timeout=10)
    err.seek(0)
    lines = err.read().strip().splitlines()
  tail = " ".join(lines[-1:])[-200:].replace("|", "/")
  for shape in cell.shapes:
    if tuple(shape) not in done:
      emit(tuple(shape), {"error": f"{why or 'no row'}: {tail}"})


def child(index: int, args) -> int:
  """The subprocess side: one cell, one JSON line per shape, printed as it is measured."""
  import rnnjax as rj
  cell = cells(args.dry_run)[index]
  run = {"mosaic": mosaic_row, "linear": _gpu_linear.rows}.get(cell.impl, run_cell)
  for shape in cell.shapes:
    try:
      with rj.kernels.force_interpret(args.dry_run):
        got = run(cell, shape, warmup=args.warmup, reps=args.reps, dry_run=args.dry_run)
        for row in ([got] if isinstance(got, dict) else got):   # linear: a row per model
          print(MARK + json.dumps([list(shape), row]), flush=True)
    except Exception as e:   # noqa: BLE001 - the row records it; the next shape still runs
      row = {"error": f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"}
      print(MARK + json.dumps([list(shape), row]), flush=True)
  return 0


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--dry-run", action="store_true",
                      help="CPU: interpret mode, tiny shapes, one rep")
  parser.add_argument("--out", default=None, help="output directory (default bench/results, "
                      "bench/results/tmp for a dry run)")
  parser.add_argument("--budget-s", type=float, default=420.0,
                      help="wall-time budget for all cells; later cells are skipped")
  parser.add_argument("--cells", nargs="*", default=None,
                      help="run only the cells whose name contains one of these strings")
  parser.add_argument("--reps", type=int, default=None)
  parser.add_argument("--warmup", type=int, default=None)
  parser.add_argument("--cell", type=int, default=None, help=argparse.SUPPRESS)
  parser.add_argument("--env", action="store_true", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  args.reps = args.reps or (1 if args.dry_run else 20)
  args.warmup = args.warmup if args.warmup is not None else (0 if args.dry_run else 3)
  if args.env:
    print(MARK + json.dumps(environment_facts()), flush=True)
    return 0
  if args.cell is not None:
    return child(args.cell, args)
  start = time.monotonic()
  out_dir = pathlib.Path(args.out or ROOT / "bench" / "results" / ("tmp" if args.dry_run else ""))
  out_dir.mkdir(parents=True, exist_ok=True)
  md = out_dir / "gpu.md"
  facts = environment()
  on_gpu = any(k == "jax backend" and v.startswith("gpu") for k, v in facts)
  if not on_gpu and not args.dry_run:
    print("No GPU: use --dry-run for the CPU smoke test.", file=sys.stderr)
    return 2
  title = "# rnnjax GPU check" + (" (DRY RUN: CPU, interpret mode, tiny shapes)"
                                  if args.dry_run else "")
  lines = [title, "", f"`python bench/gpu_check.py {' '.join(argv or sys.argv[1:])}`, "
           f"budget {args.budget_s:.0f} s, reps {args.reps}, warmup {args.warmup}; input "
           "size F = H; times include the input projection.", "", "## Environment", ""]
  lines += [f"- {k}: {v}" for k, v in facts] + ["", "## Cells", "", HEADER,
                                                "|---|---|---|---|---|---|---|"]
  md.write_text("\n".join(lines) + "\n")
  results = []

  def append(text):
    with md.open("a") as f:
      f.write(text + "\n")
    print(text, flush=True)

  for index, cell in enumerate(cells(args.dry_run)):
    if args.cells and not any(c in cell.name for c in args.cells):
      continue
    left = args.budget_s - (time.monotonic() - start)
    if left < 10:
      for shape in cell.shapes:
        append(row_line(cell, shape, {"error": "skipped: past the budget"}))
      continue

    def emit(shape, row, cell=cell):
      results.append((cell, shape, row))
      append(row_line(cell, shape, row))
    run_in_subprocess(cell, index, min(cell.timeout_s, left), args, emit)
  append("\n" + summary(results))
  if any(c.impl == "linear" for c, _, _ in results):
    append("\n" + _gpu_linear.summary(results))
  note = plot(results, out_dir / "gpu.png")
  append(f"\n{note or 'Plot: gpu.png'}; wall time {time.monotonic() - start:.0f} s.")
  failed = [r for _, _, r in results if "err" in r and r["err"] > r["tol"]]
  return 1 if failed else 0


def summary(results) -> str:
  """The ratios the issue's targets are stated in, where both sides were measured."""
  def us(name, shape, key="fwd_us"):
    for cell, s, row in results:
      if cell.name == name and tuple(s) == tuple(shape) and key in row:
        return row[key]
    return None
  lines = ["## Ratios (forward, fwd+bwd; < 1 means the first is faster)", ""]
  pairs = [("fused lstm bf16", "scan lstm bf16"), ("fused lstm bf16", "torch lstm float16"),
           ("fused lstm bf16", "jax.experimental.rnn lstm f32"),
           ("fused gru bf16", "torch gru float16"), ("fused gru bf16", "scan gru bf16"),
           ("mosaic lstm bf16 (W_hh in SMEM)", "fused lstm bf16 (resident sanity)"),
           ("mosaic lstm bf16 (W_hh in SMEM)", "fused lstm bf16"),
           ("mosaic lstm bf16 (W_hh in SMEM)", "torch lstm float16"),
           ("mosaic gru bf16 (W_hh in SMEM)", "fused gru bf16")]
  shapes = {tuple(s) for _, s, _ in results}
  for a, b in pairs:
    for shape in sorted(shapes):
      vals = [(us(a, shape, k), us(b, shape, k)) for k in ("fwd_us", "train_us")]
      if all(x is not None and y for x, y in vals[:1]):   # a forward-only row: "—" after
        lines.append(f"- {a} / {b} at {shape}: " + ", ".join(
            f"{x / y:.2f}" if x is not None and y else "—" for x, y in vals))
  return "\n".join(lines if len(lines) > 2 else lines + ["(no pair measured)"])


def plot(results, path) -> str | None:
  try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
  except ImportError:
    return "matplotlib is not installed: no plot"
  timed = [(c.name, tuple(s), r) for c, s, r in results if "fwd_us" in r]
  if not timed:
    return "nothing timed: no plot"
  shapes = sorted({s for _, s, _ in timed})
  names = list(dict.fromkeys(n for n, _, _ in timed))
  fig, axes = plt.subplots(1, 2, figsize=(14, 5), sharey=True)
  width = 0.8 / len(names)
  for ax, key, title in ((axes[0], "fwd_us", "forward"), (axes[1], "train_us", "fwd+bwd")):
    for i, name in enumerate(names):
      vals = [next((r[key] for n, s, r in timed if n == name and s == shape
                    and r.get(key) is not None), float("nan")) for shape in shapes]
      ax.bar([j + i * width for j in range(len(shapes))], vals, width, label=name)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(shapes))],
                  [str(s) for s in shapes], rotation=15)
    ax.set_yscale("log")
    ax.set_title(f"{title}, µs per step (B, H, T); lower is better")
  axes[0].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return None


if __name__ == "__main__":
  sys.exit(main())
