"""CPU LSTM / GRU formulations against the strongest JAX peers, timed interleaved.

    python bench/cpu_variants.py                          # every cell, mode, shape
    python bench/cpu_variants.py --cell lstm --mode forward --shapes 2 --min-time 0.3
    python bench/cpu_variants.py --flags                  # XLA flag sets, one subprocess each

Every variant is standalone code (`_variants_lstm.py`, `_variants_gru.py`), checked equal
to the hand-written scan (outputs; for train, the gradients recovered from the SGD update)
before timing. Candidates of one (cell, mode, shape) are timed round-robin in one process
(`_timing.interleaved_seconds`, minimum over rounds). Train step: model RNN(H) ->
Dense(10) on every step, loss mean square, SGD. Writes bench/results/cpu_variants.md.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import _variants_gru as vg  # noqa: E402
import _variants_lstm as vl  # noqa: E402
from _timing import interleaved_seconds  # noqa: E402

SHAPES = [(64, 28, 28, 64), (64, 128, 128, 256), (32, 512, 64, 128)]
LR = 1e-3
HERE = pathlib.Path(__file__).resolve().parent

LSTM_FORWARD = {
    "inloop u1 (rnnjax today)": vl.forward(),
    "inloop u2": vl.forward(unroll=2),
    "inloop u4": vl.forward(unroll=4),
    "inloop u8": vl.forward(unroll=8),
    "fused [x,h]@[K;W]": vl.forward("fused"),
    "hoisted flat GEMM": vl.forward("hoisted"),
    "ifog (1 sigmoid over 3H)": vl.forward(layout="ifog"),
    "tanh-sigmoid": vl.forward(sig="tanh"),
    "reshape split": vl.forward(split="reshape"),
    "transposed h (H,B)": vl.forward(transposed=True),
    "transposed, hoisted": vl.forward("hoisted", transposed=True),
    "hoisted u2": vl.forward("hoisted", unroll=2),
    "hoisted + barrier": vl.forward("hoisted", barrier=True),
    "chunk-hoisted 4": vl.chunked(4),
    "chunk-hoisted 16": vl.chunked(16),
    "chunk-hoisted 4, inner unrolled": vl.chunked(4, inner_unroll=4),
    "inloop + barrier": vl.forward(barrier=True),
}
LSTM_TRAIN = {
    "cjvp concat (rnnjax today)": vl.recurrence(),
    "cjvp split coefs": vl.recurrence(save="split"),
    "cjvp post-loop coefs": vl.recurrence(save="post"),
    "cjvp post, fwd u2": vl.recurrence(save="post", fwd_unroll=2),
    "cjvp fwd u2": vl.recurrence(fwd_unroll=2),
    "cjvp tan u2": vl.recurrence(tan_unroll=2),
    "cjvp fwd u2 tan u2": vl.recurrence(fwd_unroll=2, tan_unroll=2),
    "cjvp hoisted": vl.recurrence("hoisted"),
    "cjvp ifog": vl.recurrence(layout="ifog"),
    "cjvp wgrad transposed": vl.recurrence(wgrad="transposed"),
    "cjvp wgrad transposed + ifog": vl.recurrence(wgrad="transposed", layout="ifog"),
    "cjvp wgrad-T, one saved array": vl.recurrence(wgrad="transposed", save="one"),
    "cjvp wgrad-T, fused [x,h] GEMM": vl.recurrence("fused", wgrad="transposed"),
    "cjvp wgrad-T, fused, one saved": vl.recurrence("fused", wgrad="transposed", save="one"),
    "cjvp wgrad-T, save gates": vl.recurrence(wgrad="transposed", save="gates"),
    "cjvp wgrad-T, save gates, ifog": vl.recurrence(wgrad="transposed", save="gates",
                                                    layout="ifog"),
    "cjvp wgrad-T, fwd u2 tan u2": vl.recurrence(wgrad="transposed", fwd_unroll=2,
                                                 tan_unroll=2),
    "cjvp tanh-sigmoid": vl.recurrence(sig="tanh"),
}
GRU_FORWARD = {
    "inloop u1": vg.forward(),
    "inloop u2": vg.forward(unroll=2),
    "inloop u4": vg.forward(unroll=4),
    "hoisted flat GEMM": vg.forward("hoisted"),
    "tanh-sigmoid": vg.forward(sig="tanh"),
}
GRU_TRAIN = {
    "cjvp": vg.recurrence(),
    "cjvp fwd u2": vg.recurrence(fwd_unroll=2),
    "cjvp tan u2": vg.recurrence(tan_unroll=2),
    "cjvp hoisted": vg.recurrence("hoisted"),
    "cjvp tanh-sigmoid": vg.recurrence(sig="tanh"),
    "cjvp wgrad transposed": vg.recurrence(wgrad="transposed"),
    "cjvp wgrad-T, fwd u2 tan u2": vg.recurrence(wgrad="transposed", fwd_unroll=2, tan_unroll=2),
    "cjvp in-loop tangent": vg.recurrence(tangent="inloop"),
    "cjvp in-loop tangent, wgrad-T": vg.recurrence(tangent="inloop", wgrad="transposed"),
    "autodiff scan, per-gate weights": vg.per_gate_scan,
}
VARIANTS = {("lstm", "forward"): LSTM_FORWARD, ("lstm", "train"): LSTM_TRAIN,
            ("gru", "forward"): GRU_FORWARD, ("gru", "train"): GRU_TRAIN}
PEER = "peer: scan (x@K in step)"


def params(cell, f, h):
  g = 4 if cell == "lstm" else 3
  ks = jax.random.split(jax.random.key(0), 6)
  p = [jax.random.normal(ks[0], (f, g * h)) * 0.1, jax.random.normal(ks[1], (h, g * h)) * 0.1,
       jax.random.normal(ks[2], (g * h,)) * 0.1]
  if cell == "gru":
    p.append(jax.random.normal(ks[3], (g * h,)) * 0.1)
  dense = (jax.random.normal(ks[4], (h, 10)) * 0.1, jnp.zeros((10,)))
  return tuple(p), dense


def step_fn(apply, mode):
  """jit(apply) for forward; for train jit(SGD step) of mean((apply @ Wd + bd)^2)."""
  if mode == "forward":
    return jax.jit(apply)

  def loss(p, x):
    cell_p, (wd, bd) = p
    return jnp.mean((apply(cell_p, x) @ wd + bd) ** 2)

  @jax.jit
  def step(p, x):
    value, grads = jax.value_and_grad(loss)(p, x)
    return jax.tree.map(lambda w, g: w - LR * g, p, grads), value

  return step


def framework_peers(cell, mode, b, t, f, h):
  """{name: (fn, args)} of Keras 3 stateless and Flax linen, each with its own params."""
  import flax.linen as nn
  import keras

  x = jnp.asarray(np.random.default_rng(0).normal(size=(b, t, f)), jnp.float32)
  out = {}
  layers = [keras.Input((t, f)),
            (keras.layers.LSTM if cell == "lstm" else keras.layers.GRU)(h, return_sequences=True)]
  if mode == "train":
    layers.append(keras.layers.Dense(10))
  model = keras.Sequential(layers)
  nt = [v.value for v in model.non_trainable_variables]

  def kapply(p, x):
    with jax.numpy_rank_promotion("allow"):
      return model.stateless_call(p, nt, x)[0]

  tr = [v.value for v in model.trainable_variables]
  out["peer: keras stateless"] = _wrap(kapply, tr, x, mode)
  mcell = nn.OptimizedLSTMCell(h) if cell == "lstm" else nn.GRUCell(h)

  class Net(nn.Module):
    @nn.compact
    def __call__(self, x):
      y = nn.RNN(mcell)(x)
      return nn.Dense(10)(y) if mode == "train" else y

  net = Net()
  name = "OptimizedLSTMCell" if cell == "lstm" else "GRUCell"
  out[f"peer: flax {name}"] = _wrap(net.apply, net.init(jax.random.key(0), x), x, mode)
  return out


def _wrap(apply, p, x, mode):
  """A framework model whose apply already includes the Dense(10) in train mode."""
  if mode == "forward":
    return jax.jit(apply), (p, x)

  @jax.jit
  def step(p, x):
    value, grads = jax.value_and_grad(lambda p, x: jnp.mean(apply(p, x) ** 2))(p, x)
    return jax.tree.map(lambda w, g: w - LR * g, p, grads), value

  return step, (p, x)


def candidates(cell, mode, shape, names=None, peers=True):
  """{name: (fn, args)} after checking every own variant equals the hand-written scan."""
  b, t, f, h = shape
  x = jnp.asarray(np.random.default_rng(0).normal(size=(b, t, f)), jnp.float32)
  p = params(cell, f, h)
  if mode == "forward":
    p = p[0]
  peer = vl.peer_scan if cell == "lstm" else vg.peer_scan
  out = {PEER: (step_fn(peer, mode), (p, x))}
  ref = jax.block_until_ready(out[PEER][0](p, x))
  for name, apply in VARIANTS[(cell, mode)].items():
    if names and name not in names:
      continue
    fn = step_fn(apply, mode)
    got = fn(p, x)
    if mode == "train":  # gradients from the SGD update: (p - p') / LR
      g_ref = jax.tree.map(lambda a, b: (a - b) / LR, p, ref[0])
      g_got = jax.tree.map(lambda a, b: (a - b) / LR, p, got[0])
      err = max(float(jnp.max(jnp.abs(a - b)) / (jnp.max(jnp.abs(a)) + 1e-6))
                for a, b in zip(jax.tree.leaves(g_ref), jax.tree.leaves(g_got)))
      tol = 5e-3
    else:
      err = float(jnp.max(jnp.abs(got - ref)))
      tol = 1e-4
    if not err < tol:
      raise AssertionError(f"{cell} {mode} {shape} {name}: differs from the scan by {err}")
    out[name] = (fn, (p, x))
  if peers:
    out.update(framework_peers(cell, mode, *shape))
  return out


def _cpu_timed(fn, args, reps):
  """Process CPU time (all threads) per call over `reps` calls, in seconds: on a machine
  shared by several busy processes it does not count the waits for a core that wall
  time does. The kernel updates a running worker thread's CPU time only at ticks and
  context switches, so one sample spans several calls (>= ~40 ms) and the median over
  rounds is used, not the minimum (which would pick a tick's undercount)."""
  t0 = time.process_time()
  for _ in range(reps):
    jax.block_until_ready(fn(*args))
  return (time.process_time() - t0) / reps


def time_all(cell, mode, shape, names=None, peers=True, clock="cpu", **timing):
  cands = candidates(cell, mode, shape, names, peers)
  if clock == "cpu":
    calls = {}
    for n, (fn, a) in cands.items():
      jax.block_until_ready(fn(*a))
      t0 = time.perf_counter()
      jax.block_until_ready(fn(*a))
      reps = max(1, int(0.04 / max(time.perf_counter() - t0, 1e-5)))
      calls[n] = lambda fn=fn, a=a, reps=reps: _cpu_timed(fn, a, reps)
  else:
    calls = {n: (lambda fn=fn, a=a: fn(*a)) for n, (fn, a) in cands.items()}
  res = interleaved_seconds(calls, **timing)
  if clock == "cpu":
    return {n: 1e3 * v[1] for n, v in res.items()}
  return {n: 1e3 * v[0] for n, v in res.items()}


def table(cell, mode, rows, clock) -> str:
  """rows: [(shape, {name: ms})]; ratios to the fastest peer of each shape."""
  names = list(dict.fromkeys(n for _, r in rows for n in r))
  out = [f"### {cell.upper()} {mode}", "",
         "ms per step (" + ("process CPU time, median" if clock == "cpu" else "wall time, minimum")
         + " over interleaved rounds); in brackets relative to the "
         "fastest peer of that shape (< 1 = faster).", "",
         "| variant | " + " | ".join(str(s) for s, _ in rows) + " |",
         "|---|" + "---|" * len(rows)]
  best = [min(v for n, v in r.items() if n.startswith("peer")) for _, r in rows]
  for n in names:
    cells = [f"{r[n]:.2f} ({r[n] / fb:.2f})" if n in r else "—" for (_, r), fb in zip(rows, best)]
    out.append(f"| {n} | " + " | ".join(cells) + " |")
  return "\n".join(out) + "\n"


def profile(clock, **timing) -> str:
  """Where a forward LSTM step's time goes: the full step against scans that keep only
  its GEMMs, only h @ W, or only the loop, at every shape; and the GEMM rate."""
  lines = ["### Profile: LSTM forward, pieces of the step", "",
           "ms (" + ("process CPU time, median" if clock == "cpu" else "wall, minimum")
           + " over interleaved rounds); GFLOP/s = 2 B T (F + H) 4H / time.", "",
           "| (B, T, F, H) | " + " | ".join(vl.profile_pieces()) + " | GFLOP/s full / GEMMs |",
           "|---|" + "---|" * (len(vl.profile_pieces()) + 1)]
  for b, t, f, h in SHAPES:
    x = jnp.asarray(np.random.default_rng(0).normal(size=(b, t, f)), jnp.float32)
    p = params("lstm", f, h)[0]
    fns = {n: jax.jit(a) for n, a in vl.profile_pieces().items()}
    calls = {}
    for n, fn in fns.items():
      jax.block_until_ready(fn(p, x))
      t0 = time.perf_counter()
      jax.block_until_ready(fn(p, x))
      reps = max(1, int(0.04 / max(time.perf_counter() - t0, 1e-5)))
      calls[n] = (lambda fn=fn, reps=reps: _cpu_timed(fn, (p, x), reps)) if clock == "cpu" \
          else (lambda fn=fn: fn(p, x))
    res = interleaved_seconds(calls, **timing)
    ms = {n: 1e3 * v[1 if clock == "cpu" else 0] for n, v in res.items()}
    flops = 2 * b * t * (f + h) * 4 * h
    names = list(fns)
    rate = f"{flops / ms[names[0]] / 1e6:.0f} / {flops / ms[names[1]] / 1e6:.0f}"
    lines.append(f"| {(b, t, f, h)} | " + " | ".join(f"{ms[n]:.2f}" for n in names)
                 + f" | {rate} |")
    print(lines[-1], flush=True)
  return "\n".join(lines) + "\n"


FLAG_SETS = {
    "default": "",
    "ynn off (Eigen dots)": "--xla_cpu_experimental_ynn_fusion_type=",
    "ynn dot+eltwise fusion": "--xla_cpu_experimental_ynn_fusion_type=individual_dot,dot,eltwise",
    "eigen single-thread": "--xla_cpu_multi_thread_eigen=false",
    "prefer_vector_width=512": "--xla_cpu_prefer_vector_width=512",
    "onednn": "--xla_cpu_use_onednn=true",
    "fast_math (UNSAFE)": "--xla_cpu_enable_fast_math=true",
}


def flag_sweep(args):
  """Each flag set in a subprocess (XLA_FLAGS must be set before the backend starts),
  timing the same candidates; the default set runs first and last."""
  sets = list(FLAG_SETS.items()) + [("default (again)", "")]
  lines = ["### XLA flag sets (one subprocess each, run one after the other)", "",
           f"Candidates {args.flag_variants} at {SHAPES[args.flag_shape]}, {args.cell} "
           f"{args.mode}; ms ({'process CPU time, median' if args.clock == 'cpu' else 'wall, minimum'}"
           " over rounds).", "",
           "| flags | " + " | ".join(args.flag_variants) + " |",
           "|---|" + "---|" * len(args.flag_variants)]
  for label, flags in sets:
    env = dict(os.environ, XLA_FLAGS=flags)
    cmd = [sys.executable, __file__, "--worker", "--cell", args.cell, "--mode", args.mode,
           "--shapes", str(args.flag_shape), "--min-time", str(args.min_time),
           "--clock", args.clock,
           "--variants", *args.flag_variants]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
      cells = ["failed: " + (r.stderr.strip().splitlines() or ["?"])[-1][:80]]
    else:
      ms = json.loads(r.stdout.strip().splitlines()[-1])
      cells = [f"{ms.get(n, float('nan')):.2f}" for n in args.flag_variants]
    lines.append(f"| {label} `{flags}` | " + " | ".join(cells) + " |")
    print(lines[-1], flush=True)
  return "\n".join(lines) + "\n"


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--cell", nargs="*", default=["lstm", "gru"])
  ap.add_argument("--mode", nargs="*", default=["forward", "train"])
  ap.add_argument("--shapes", nargs="*", type=int, default=[0, 1, 2])
  ap.add_argument("--variants", nargs="*", help="restrict to these (peers always run)")
  ap.add_argument("--no-peers", action="store_true", help="skip Keras and Flax")
  ap.add_argument("--min-time", type=float, default=0.5)
  ap.add_argument("--clock", choices=["cpu", "wall"], default="cpu",
                  help="process CPU time (default) or wall time per call")
  ap.add_argument("--out", default=str(HERE / "results" / "cpu_variants.md"))
  ap.add_argument("--flags", action="store_true", help="run the XLA flag sweep instead")
  ap.add_argument("--flag-shape", type=int, default=2)
  ap.add_argument("--flag-variants", nargs="*", default=[PEER, "inloop u1 (rnnjax today)"])
  ap.add_argument("--append", action="store_true", help="append to --out")
  ap.add_argument("--profile", action="store_true", help="time pieces of the LSTM step")
  ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
  args = ap.parse_args()
  timing = dict(min_time=args.min_time, warmup=2, clock=args.clock)
  if args.worker:
    ms = time_all(args.cell[0], args.mode[0], SHAPES[args.shapes[0]], args.variants,
                  peers=False, **timing)
    print(json.dumps(ms))
    return
  load0 = os.getloadavg()
  parts = []
  if args.profile:
    parts.append(profile(args.clock, min_time=args.min_time, warmup=2))
  elif args.flags:
    args.cell, args.mode = args.cell[0], args.mode[0]
    parts.append(flag_sweep(args))
  else:
    for cell in args.cell:
      for mode in args.mode:
        rows = []
        for s in args.shapes:
          ms = time_all(cell, mode, SHAPES[s], args.variants, not args.no_peers, **timing)
          print(cell, mode, SHAPES[s], {k: round(v, 2) for k, v in ms.items()}, flush=True)
          rows.append((SHAPES[s], ms))
        parts.append(table(cell, mode, rows, args.clock))
        print(parts[-1], flush=True)
  load1 = os.getloadavg()
  head = (f"jax {jax.__version__}, {os.cpu_count()} CPUs (shared). Load average (1, 5, 15 "
          f"min) at start {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}, at end {load1[0]:.2f} "
          f"{load1[1]:.2f} {load1[2]:.2f}. Command: `python bench/cpu_variants.py "
          f"{' '.join(sys.argv[1:])}`\n\n")
  out = pathlib.Path(args.out)
  text = head + "\n".join(parts)
  out.write_text((out.read_text() + "\n" if args.append and out.exists() else "") + text)


if __name__ == "__main__":
  main()
