"""The linear-recurrence cells of bench/gpu_check.py (issue 17 item 4 on a GPU): the
training step of bench/linear.py (jitted gradient of mean((y - target)^2), its models and
`train_step`, reused) for MinGRU / MinLSTM / LRU with scan="parallel" and "sequential"
against rj.GRU and rj.LSTM, float32, one (B, H, T) per cell; then which scan is faster
per model and what `scan="auto"` picks on this backend (rj.kernels.which_path), so that the
rule can be checked against the measurement (recorded, not changed here).

Rows carry `model` and `train_us` (µs per time step of the whole batch) and the tokens/s
and XLA's compiled peak memory as options; no numerics column (tests/ check parallel =
sequential). A model's reps are capped so that it takes about SECONDS_PER_MODEL.
"""

import time

import numpy as np

SECONDS_PER_MODEL = 2.0
FAMILIES = ("MinGRU", "MinLSTM", "LRU")
AUTO = 'scan="auto"'


def rows(cell, shape, *, warmup, reps, dry_run):
  """Yields one row per model of bench/linear.py, then one `scan="auto"` row."""
  import jax
  import jax.numpy as jnp
  from bench import _gpu_cells as gc
  from bench import linear
  b, h, t = shape
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(b, t, h)), jnp.float32)
  target = jnp.asarray(rng.normal(size=(b, t, h)), jnp.float32)
  train_us = {}
  for name in linear.NAMES:
    try:
      layer = linear.model(name, h)
      params = layer.init(jax.random.key(0), x)
      start = time.perf_counter()
      step = linear.train_step(layer).lower(params, x, target).compile()
      compile_s = time.perf_counter() - start
      start = time.perf_counter()
      jax.block_until_ready(step(params, x, target))   # the first call, also a warm-up
      first = time.perf_counter() - start
      n = max(1, min(reps, int(SECONDS_PER_MODEL / max(first, 1e-9))))
      seconds = gc.median_seconds(step, params, x, target, warmup=min(warmup, 1), reps=n)
      train_us[name] = gc.us_per_step(seconds, t)
      yield dict(model=name, train_us=train_us[name], compile_s=compile_s,
                 options=f"{b * t / seconds:,.0f} tokens/s, peak "
                         f"{linear.peak_bytes(step) / 2**20:,.0f} MiB, median of {n}")
    except Exception as e:   # noqa: BLE001 - the row records it; the next model still runs
      yield dict(model=name, error=f"{type(e).__name__}: {' '.join(str(e).split())[:200]}")
  yield dict(model=AUTO, note=auto_note(train_us, x, dry_run))


def auto_note(train_us: dict, x, dry_run: bool) -> str:
  """Per family: the faster scan measured and the one `scan="auto"` takes here."""
  import jax
  import rnnjax as rj
  parts = []
  for family in FAMILIES:
    layer = getattr(rj, family)(x.shape[-1], return_sequences=True)   # scan="auto"
    picks = ("parallel" if rj.kernels.which_path(layer, x).path == "fused"
             else "sequential")
    par, seq = train_us.get(f"{family} parallel"), train_us.get(f"{family} sequential")
    if par is None or seq is None:
      parts.append(f"{family}: auto picks {picks}, not both measured")
      continue
    faster = "parallel" if par < seq else "sequential"
    parts.append(f"{family}: parallel/sequential {par / seq:.2f}, {faster} faster, auto picks "
                 f"{picks} ({'agrees' if faster == picks else 'DIFFERS'})")
  where = ("cpu, dry run (interpret mode: the dispatch takes its GPU rule)" if dry_run
           else jax.default_backend())
  return f"on {where}: " + "; ".join(parts)


def row_line(name: str, shape, row: dict) -> str:
  """The gpu.md table row of one linear-cell row."""
  label, shape_s = f"{name}: {row['model']}", ", ".join(map(str, shape))
  if "note" in row:
    return f"| {label} | {shape_s} | {row['note']} | | | | |"
  if "error" in row:
    return f"| {label} | {shape_s} | {row['error']} | | | | |"
  return (f"| {label} | {shape_s} | — | — | {row['train_us']:.2f} | {row['compile_s']:.1f} "
          f"| {row['options']} |")


def summary(results) -> str:
  """Training-step time of each linear model over rj.GRU's and rj.LSTM's at each shape
  (< 1: the linear model is faster), and the auto notes."""
  lines = ["## Linear recurrences (training step time / GRU's, / LSTM's; < 1: faster)", ""]
  by_shape: dict = {}
  for _, shape, row in results:
    if "model" in row:
      by_shape.setdefault(tuple(shape), {})[row["model"]] = row
  for shape, got in sorted(by_shape.items()):
    ref = {k: got.get(k, {}).get("train_us") for k in ("GRU", "LSTM")}
    ratios = [f"{m} {r['train_us'] / ref['GRU']:.2f} / {r['train_us'] / ref['LSTM']:.2f}"
              for m, r in got.items()
              if m[:3] in ("Min", "LRU") and "train_us" in r and ref["GRU"] and ref["LSTM"]]
    lines.append(f"- {shape}: " + ("; ".join(ratios) or "GRU/LSTM not both measured"))
    if AUTO in got:
      lines.append(f"  - {AUTO} {got[AUTO]['note']}")
  return "\n".join(lines if len(lines) > 2 else lines + ["(no linear cell ran)"])
