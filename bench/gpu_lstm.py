"""GPU benchmark of the fused LSTM/GRU kernels against the scan and cuDNN.

Run on the GPU machine from the repository root:

    python bench/gpu_lstm.py                 # numerics check, then all timings
    python bench/gpu_lstm.py --shapes 64,256,512 --reps 30 --kinds lstm
    python bench/gpu_lstm.py --dry-run       # CPU: interpret mode, tiny shapes (CI smoke test)

First it checks the fused path against the scan (forward and gradients, LSTM and GRU,
float32 at HIGHEST precision and bfloat16); then it times forward and forward+backward
in microseconds per time step (median over reps, after warmup, with block_until_ready /
CUDA events) for: rnnjax fused (bf16, f32), rnnjax scan (bf16, f32),
jax.experimental.rnn.lstm (cuDNN, f32), torch.nn.LSTM with cuDNN (fp16, bf16; skipped
when torch is absent), and the GRU fused vs scan (bf16). Every timing includes the
input projection (as cuDNN's does), F = H. Results: a markdown table and a plot under
bench/results/ (bench/results/tmp/ for dry runs). A configuration the fused kernel does
not support is reported with the dispatch's reason instead of a time.
"""

import argparse
import datetime
import os
import pathlib
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))   # the repository

import numpy as np  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import rnnjax as rj  # noqa: E402

SHAPES = [(64, 256, 512), (256, 512, 512), (64, 1024, 512), (16, 768, 1024)]   # (B, H, T)
DRY_SHAPES = [(3, 20, 8)]
F32, BF16 = jnp.float32, jnp.bfloat16


# Timing -------------------------------------------------------------------------------

def median_seconds_jax(fn, *args, warmup: int, reps: int) -> float:
  """Median wall time of a jitted call (compiled and warmed up first)."""
  for _ in range(warmup):
    jax.block_until_ready(fn(*args))
  times = []
  for _ in range(reps):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def median_seconds_torch(torch, fn, *, warmup: int, reps: int) -> float:
  """Median CUDA-event time of `fn()` (which enqueues GPU work)."""
  for _ in range(warmup):
    fn()
  torch.cuda.synchronize()
  times = []
  for _ in range(reps):
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    torch.cuda.synchronize()
    times.append(start.elapsed_time(end) / 1e3)
  return statistics.median(times)


# The implementations ------------------------------------------------------------------

def _lstm_params(key, h, dtype):
  x = jax.ShapeDtypeStruct((1, 1, h), dtype)
  return rj.LSTM(h, param_dtype=dtype).init(key, x)


def _gru_params(key, h, dtype):
  x = jax.ShapeDtypeStruct((1, 1, h), dtype)
  return rj.GRU(h, param_dtype=dtype).init(key, x)


def _fwd_and_train(apply):
  """(forward, forward+backward) jitted from apply(params, x) -> outputs."""
  fwd = jax.jit(apply)

  def loss(params, x):
    return jnp.sum(apply(params, x).astype(F32))

  return fwd, jax.jit(jax.grad(loss, argnums=(0, 1)))


def rnnjax_runs(kind, h, dtype, *, fused: bool):
  """(fwd, train) or a string saying why the fused path does not run."""
  layer_cls = rj.LSTM if kind == "lstm" else rj.GRU
  layer = layer_cls(h, return_sequences=True, dtype=dtype, carry_dtype=F32,
                    use_fused=fused)
  if fused:
    try:
      probe = jax.ShapeDtypeStruct((16, 2, h), dtype)
      rj.kernels.which_path(layer, probe)
    except ValueError as e:
      return str(e)
  return _fwd_and_train(lambda p, x: layer.apply(p, x))


def jax_cudnn_runs(h):
  """jax.experimental.rnn.lstm (cuDNN, float32), or why not."""
  if jax.default_backend() != "gpu":
    return "needs a GPU (cuDNN)"
  from jax.experimental import rnn as jax_rnn

  def apply(weights, x):
    z = jnp.zeros((1, x.shape[0], h), F32)
    seq = jnp.full((x.shape[0],), x.shape[1], jnp.int32)
    y, _, _ = jax_rnn.lstm(x, z, z, weights, seq, h, h, 1, 0.0, False)
    return y

  return _fwd_and_train(apply)


def torch_runs(h, dtype_name):
  """(fwd, train) closures over torch.nn.LSTM on cuDNN, or why not."""
  try:
    import torch
  except ImportError:
    return "torch is not installed", None
  if not torch.cuda.is_available():
    return "torch has no CUDA device", None
  torch.backends.cudnn.enabled = True
  dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[dtype_name]
  lstm = torch.nn.LSTM(h, h, batch_first=True).cuda().to(dtype)
  return lstm, torch


# Numerics check ---------------------------------------------------------------------

def _rel(a, b) -> float:
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12))


def numerics_check(b, h, t, *, interpret: bool, kinds=("lstm", "gru"),
                   dtypes=(F32, BF16)) -> list[tuple[str, float, float, bool]]:
  """Fused vs scan, forward outputs and every gradient: (what, max rel error, tol, ok)."""
  rows = []
  rng = np.random.default_rng(0)
  lengths = rng.integers(0, t + 1, size=b).astype(np.int32)
  lengths[:3] = [0, 1, t][: min(3, b)]
  tolerances = {F32: (1e-4, "highest"), BF16: (2e-2, None)}
  for kind in kinds:
    for dtype in dtypes:
      tol, precision = tolerances[dtype]
      layer_cls = rj.LSTM if kind == "lstm" else rj.GRU
      x = jnp.asarray(rng.normal(size=(b, t, h)), F32)
      params = layer_cls(h).init(jax.random.key(1), x)
      results = {}
      for fused in (True, False):
        layer = layer_cls(h, return_sequences=True, return_state=True, dtype=dtype,
                          carry_dtype=F32, use_fused=fused, go_backwards=True)

        def loss(p, x, layer=layer):
          out = layer.apply(p, x, seq_lengths=lengths)
          return sum(jnp.sum(jnp.sin(o.astype(F32))) for o in out), out

        with jax.default_matmul_precision(precision), rj.kernels.force_interpret(interpret):
          (_, out), grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(
              params, x)
        results[fused] = jax.tree.leaves((out, grads))
      err = max(_rel(a, w) for a, w in zip(results[True], results[False]))
      rows.append((f"{kind} {jnp.dtype(dtype).name}", err, tol, err <= tol))
  return rows


# The benchmark ----------------------------------------------------------------------

def run(shapes, *, reps, warmup, dry_run: bool, skip_f32: bool, kinds=("lstm", "gru")):
  """Rows (shape, implementation, fwd us/step or reason, fwd+bwd us/step or '')."""
  rows = []
  key = jax.random.key(0)
  for b, h, t in shapes:
    shape = f"B={b} H={h} T={t}"
    x32 = jax.random.normal(key, (b, t, h), F32)
    us = lambda seconds: seconds / t * 1e6   # noqa: E731

    def time_jax(name, runs, params, x):
      if isinstance(runs, str):
        rows.append((shape, name, f"n/a: {runs}", ""))
        return
      fwd, train = runs
      rows.append((shape, name, us(median_seconds_jax(fwd, params, x, warmup=warmup, reps=reps)),
                   us(median_seconds_jax(train, params, x, warmup=warmup, reps=reps))))
      print(rows[-1], flush=True)

    configs = [("bf16", BF16)] + ([] if skip_f32 else [("f32", F32)])
    for kind, init in (("lstm", _lstm_params), ("gru", _gru_params)):
      if kind not in kinds:
        continue
      for dname, dtype in configs if kind == "lstm" else configs[:1]:
        params = init(key, h, F32)
        x = x32.astype(dtype)
        with rj.kernels.force_interpret(dry_run):
          time_jax(f"rnnjax {kind} fused {dname}", rnnjax_runs(kind, h, dtype, fused=True),
                   params, x)
          time_jax(f"rnnjax {kind} scan {dname}", rnnjax_runs(kind, h, dtype, fused=False),
                   params, x)
    if jax.default_backend() == "gpu":
      from jax.experimental import rnn as jax_rnn
      weights = jax_rnn.init_lstm_weight(key, h, h, 1, False)
      time_jax("jax.experimental.rnn.lstm cuDNN f32", jax_cudnn_runs(h), weights, x32)
    else:
      rows.append((shape, "jax.experimental.rnn.lstm cuDNN f32", "n/a: needs a GPU (cuDNN)", ""))
    for dname in ("fp16", "bf16"):
      lstm, torch = torch_runs(h, dname)
      name = f"torch.nn.LSTM cuDNN {dname}"
      if torch is None:
        rows.append((shape, name, f"n/a: {lstm}", ""))
        continue
      xt = torch.randn(b, t, h, device="cuda", dtype=next(lstm.parameters()).dtype)
      xg = xt.clone().requires_grad_(True)
      grad = torch.randn(b, t, h, device="cuda", dtype=xt.dtype)

      def fwd():
        with torch.no_grad():
          lstm(xt)

      def train():
        out, _ = lstm(xg)
        out.backward(grad)

      rows.append((shape, name, us(median_seconds_torch(torch, fwd, warmup=warmup, reps=reps)),
                   us(median_seconds_torch(torch, train, warmup=warmup, reps=reps))))
      print(rows[-1], flush=True)
  return rows


def markdown(rows, checks, header: str) -> str:
  fmt = lambda v: v if isinstance(v, str) else f"{v:.2f}"   # noqa: E731
  lines = [header, "", "## Numerics (fused vs scan, outputs and gradients, max relative error)",
           "", "| config | error | tolerance | ok |", "|---|---|---|---|"]
  lines += [f"| {w} | {e:.2e} | {tol:.0e} | {'PASS' if ok else 'FAIL'} |"
            for w, e, tol, ok in checks]
  lines += ["", "## Time per step (µs, median)", "",
            "| shape | implementation | forward | forward+backward |", "|---|---|---|---|"]
  lines += [f"| {s} | {n} | {fmt(f)} | {fmt(fb)} |" for s, n, f, fb in rows]
  return "\n".join(lines) + "\n"


def plot(rows, path: str) -> str | None:
  try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
  except ImportError:
    return "matplotlib is not installed: no plot"
  timed = [r for r in rows if not isinstance(r[2], str)]
  shapes = list(dict.fromkeys(r[0] for r in timed))
  names = list(dict.fromkeys(r[1] for r in timed))
  fig, axes = plt.subplots(1, 2, figsize=(14, 5), sharey=True)
  width = 0.8 / max(1, len(names))
  for ax, col, title in ((axes[0], 2, "forward"), (axes[1], 3, "forward+backward")):
    for i, name in enumerate(names):
      vals = [next((r[col] for r in timed if r[0] == s and r[1] == name), np.nan) for s in shapes]
      ax.bar(np.arange(len(shapes)) + i * width, vals, width, label=name)
    ax.set_xticks(np.arange(len(shapes)) + 0.4 - width / 2, shapes, rotation=15)
    ax.set_yscale("log")
    ax.set_title(f"{title}, µs per step (lower is better)")
  axes[0].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return None


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--dry-run", action="store_true",
                      help="CPU smoke test: interpret mode, tiny shapes, 1 rep")
  parser.add_argument("--shapes", nargs="*", default=None, help="B,H,T triples")
  parser.add_argument("--reps", type=int, default=20)
  parser.add_argument("--warmup", type=int, default=3)
  parser.add_argument("--skip-f32", action="store_true", help="time bf16 rnnjax only")
  parser.add_argument("--kinds", nargs="*", default=["lstm", "gru"], choices=["lstm", "gru"],
                      help="which rnnjax cells to check and time")
  parser.add_argument("--out", default=None, help="output directory")
  args = parser.parse_args(argv)
  on_gpu = jax.default_backend() == "gpu"
  if not on_gpu and not args.dry_run:
    print("No GPU: use --dry-run for the CPU smoke test.", file=sys.stderr)
    return 2
  shapes = (DRY_SHAPES if args.dry_run else SHAPES) if args.shapes is None else [
      tuple(int(v) for v in s.split(",")) for s in args.shapes]
  reps, warmup = (1, 1) if args.dry_run else (args.reps, args.warmup)
  out_dir = args.out or os.path.join(os.path.dirname(__file__), "results",
                                     "tmp" if args.dry_run else "")
  os.makedirs(out_dir, exist_ok=True)

  check_shape = (3, 20, 8) if args.dry_run else (64, 256, 64)
  dtypes = (BF16,) if args.skip_f32 else (F32, BF16)
  checks = numerics_check(*check_shape, interpret=args.dry_run, kinds=args.kinds, dtypes=dtypes)
  for c in checks:
    print("numerics", c, flush=True)
  rows = run(shapes, reps=reps, warmup=warmup, dry_run=args.dry_run, skip_f32=args.skip_f32,
             kinds=args.kinds)

  device = jax.devices()[0].device_kind
  stamp = datetime.date.today().isoformat()
  stem = f"gpu_lstm_{device.replace(' ', '_')}_{stamp}" + ("_dry" if args.dry_run else "")
  header = (f"# rnnjax fused LSTM/GRU benchmark\n\ndevice: {device}; jax {jax.__version__}; "
            f"{stamp}; reps {reps}, warmup {warmup}; input size F = H; times include the "
            "input projection" + ("; DRY RUN (CPU, interpret mode)" if args.dry_run else ""))
  md_path = os.path.join(out_dir, stem + ".md")
  with open(md_path, "w") as f:
    f.write(markdown(rows, checks, header))
  note = plot(rows, os.path.join(out_dir, stem + ".png"))
  print(f"wrote {md_path}" + (f" ({note})" if note else ""))
  return 0 if all(ok for *_, ok in checks) else 1


if __name__ == "__main__":
  sys.exit(main())
