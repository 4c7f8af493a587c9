"""The cells of bench/gpu_check.py: each measures one implementation over its shapes and
yields one row per shape (numerics against a float32 HIGHEST reference, µs per step
forward and forward+backward, compile seconds, the kernel's options). A cell runs in its
own subprocess (gpu_check.py), so nothing here guards against a crash.

Every timing includes the input projection (as cuDNN's does), input size F = H. The
reference is the rnnjax scan in float32 under jax.default_matmul_precision("highest"), on
the float32 values of the same inputs and weights; a row's error is the largest
‖a - ref‖ / ‖ref‖ over the outputs and every gradient (torch rows: outputs and dx).
"""

import dataclasses
import statistics
import time

import numpy as np

F32_TOL = {"float32-highest": 1e-4, "float32": 5e-3, "float16": 1e-2, "bfloat16": 5e-2}


@dataclasses.dataclass(frozen=True)
class Cell:
  """One subprocess: an implementation over a list of (B, H, T) shapes."""

  name: str
  impl: str          # torch | fused | scan | jax_cudnn | reset | mosaic | linear
  kind: str          # lstm | gru | linear (every model of bench/linear.py)
  dtype: str         # float16 | bfloat16 | float32
  shapes: tuple
  timeout_s: float = 150.0


def us_per_step(seconds: float, steps: int) -> float:
  return seconds / steps * 1e6


def _rel(a, b) -> float:
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def _max_rel(got, want) -> float:
  import jax
  errs = [_rel(np.asarray(jax.numpy.asarray(a, jax.numpy.float32)), np.asarray(w))
          for a, w in zip(jax.tree.leaves(got), jax.tree.leaves(want))]
  return max(errs) if errs else float("nan")


# JAX side ---------------------------------------------------------------------------------

def _layer(kind, units, dtype, **kw):
  import rnnjax as rj
  cls = rj.LSTM if kind == "lstm" else rj.GRU
  return cls(units, return_sequences=True, dtype=dtype, carry_dtype="float32", **kw)


def problem(kind, b, h, t, seed=0, reset_rate=0.0):
  """(params float32 Keras layout, x (B, T, H) float32, cotangent, reset mask or None)."""
  import jax
  import jax.numpy as jnp
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.normal(size=(b, t, h)), jnp.float32)
  params = _layer(kind, h, "float32").init(jax.random.key(seed), x)
  cot = jnp.asarray(rng.normal(size=(b, t, h)), jnp.float32)
  reset = None
  if reset_rate:
    reset = jnp.asarray(rng.random((b, t)) < reset_rate)
  return params, x, cot, reset


def _train_fn(apply):
  import jax
  import jax.numpy as jnp

  def loss(params, x, cot):
    return jnp.sum(apply(params, x).astype(jnp.float32) * cot)
  return jax.grad(loss, argnums=(0, 1))


def reference(kind, params, x, cot, reset=None):
  """The float32 HIGHEST scan: (outputs, (dparams, dx))."""
  import jax
  layer = _layer(kind, x.shape[-1], "float32", use_fused=False)

  def apply(p, x):
    return layer.apply(p, x, reset=reset)
  with jax.default_matmul_precision("highest"):
    out = jax.jit(apply)(params, x)
    grads = jax.jit(_train_fn(apply))(params, x, cot)
  return out, grads


def median_seconds(fn, *args, warmup, reps) -> float:
  import jax
  for _ in range(warmup):
    jax.block_until_ready(fn(*args))
  times = []
  for _ in range(reps):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def _compiled(fn, *args):
  """(compiled function, seconds to lower and compile it)."""
  import jax
  start = time.perf_counter()
  compiled = jax.jit(fn).lower(*args).compile()
  return compiled, time.perf_counter() - start


def jax_row(cell: Cell, b, h, t, *, warmup, reps, dry_run):
  """A row of an rnnjax (fused, scan, reset) or jax.experimental.rnn cell."""
  import jax
  import jax.numpy as jnp
  import rnnjax as rj
  from rnnjax import pallas
  reset_rate = 0.03 if cell.impl == "reset" else 0.0
  params, x, cot, reset = problem(cell.kind, b, h, t, reset_rate=reset_rate)
  ref_out, ref_grads = reference(cell.kind, params, x, cot, reset)
  dtype = jnp.dtype(cell.dtype)
  cast = jax.tree.map(lambda a: a.astype(dtype), params)
  xd = x.astype(dtype)
  options, extra = "", {}
  if cell.impl == "fused":
    fn = rj.kernels.fused_lstm if cell.kind == "lstm" else rj.kernels.fused_gru

    def apply(p, x):
      return fn(p, x, implementation="pallas", dtype=dtype)[0]
    spec = _spec(cell.kind)
    opts = spec.options(batch=b, units=h, dtype=dtype, directions=(False,),
                        interpret=not _on_gpu())
    why = pallas.compile_envelope_reason(cell.kind, h, dtype)
    options = (f"block_b {opts.block_b}, block_h {opts.block_h}, warps {opts.num_warps}, "
               f"stages {opts.num_stages}, {'resident' if opts.resident else 'streamed'}"
               f"{', prefetch' if opts.prefetch else ''}; "
               + ("verified" if why is None else "OUTSIDE the verified envelope"))
  elif cell.impl == "jax_cudnn":
    return _jax_cudnn_row(cell, b, h, t, params, x, cot, ref_out, warmup=warmup, reps=reps)
  else:
    layer = _layer(cell.kind, h, dtype, use_fused=False)

    def apply(p, x):
      return layer.apply(p, x, reset=reset)
    options = "lax.scan" + (f", {int(reset_rate * 100)}% resets" if reset is not None else "")
    if cell.impl == "reset":
      extra["no_reset_us"] = _scan_without_resets(cell, cast, xd, cot, warmup, reps)
  fwd, c1 = _compiled(apply, cast, xd)
  train, c2 = _compiled(_train_fn(apply), cast, xd, cot)
  out = fwd(cast, xd)
  grads = train(cast, xd, cot)
  err = max(_max_rel(out, ref_out), _max_rel(grads, ref_grads))
  return dict(options=options, err=err, tol=F32_TOL[cell.dtype], compile_s=c1 + c2,
              fwd_us=us_per_step(median_seconds(fwd, cast, xd, warmup=warmup, reps=reps), t),
              train_us=us_per_step(median_seconds(train, cast, xd, cot, warmup=warmup,
                                                  reps=reps), t), **extra)


def _scan_without_resets(cell, params, x, cot, warmup, reps) -> float:
  layer = _layer(cell.kind, x.shape[-1], x.dtype, use_fused=False)
  fwd, _ = _compiled(lambda p, x: layer.apply(p, x), params, x)
  return us_per_step(median_seconds(fwd, params, x, warmup=warmup, reps=reps), x.shape[1])


def _jax_cudnn_row(cell, b, h, t, params, x, cot, ref_out, *, warmup, reps):
  """jax.experimental.rnn.lstm (cuDNN, float32 only, STANDARD algorithm), Keras weights."""
  import jax
  import jax.numpy as jnp
  from jax.experimental import rnn as jax_rnn
  if not _on_gpu():
    return dict(na="needs a GPU (cuDNN)")
  w = jnp.concatenate([params["kernel"].T.ravel(), params["recurrent_kernel"].T.ravel(),
                       params["bias"], jnp.zeros_like(params["bias"])])
  seq = jnp.full((b,), t, jnp.int32)
  z = jnp.zeros((1, b, h), jnp.float32)

  def apply(w, x):
    y, _, _ = jax_rnn.lstm(x, z, z, w, seq, h, h, 1, 0.0, False)
    return y
  fwd, c1 = _compiled(apply, w, x)
  train, c2 = _compiled(_train_fn(apply), w, x, cot)
  err = _max_rel(fwd(w, x), ref_out)
  return dict(options="cuDNN STANDARD, float32 (TF32 allowed)", err=err,
              tol=F32_TOL["float32"], compile_s=c1 + c2,
              fwd_us=us_per_step(median_seconds(fwd, w, x, warmup=warmup, reps=reps), t),
              train_us=us_per_step(median_seconds(train, w, x, cot, warmup=warmup,
                                                  reps=reps), t))


def _spec(kind):
  from rnnjax.pallas import gru, lstm
  return lstm.SPEC if kind == "lstm" else gru.SPEC


def _on_gpu() -> bool:
  import jax
  return jax.default_backend() == "gpu"


# torch side -------------------------------------------------------------------------------

def torch_row(cell: Cell, b, h, t, *, warmup, reps, dry_run):
  """A row of torch.nn.LSTM / GRU on cuDNN, weights copied from the Keras-layout problem."""
  del dry_run
  try:
    import torch
  except ImportError:
    return dict(na="torch is not installed")
  if not torch.cuda.is_available():
    return dict(na="torch has no CUDA device")
  params, x, cot, _ = problem(cell.kind, b, h, t)
  ref_out, (_, ref_dx) = reference(cell.kind, params, x, cot)
  dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16}[cell.dtype]
  net = (torch.nn.LSTM if cell.kind == "lstm" else torch.nn.GRU)(h, h, batch_first=True)
  _copy_keras_weights(torch, net, cell.kind, params, h)
  net = net.cuda().to(dtype)
  xt = torch.tensor(np.asarray(x), device="cuda", dtype=dtype)
  xg = xt.clone().requires_grad_(True)
  gt = torch.tensor(np.asarray(cot), device="cuda", dtype=dtype)
  out, _ = net(xg)
  out.backward(gt)
  err = max(_rel(out.detach().float().cpu().numpy(), ref_out),
            _rel(xg.grad.float().cpu().numpy(), ref_dx))

  def fwd():
    with torch.no_grad():
      net(xt)

  def train():
    o, _ = net(xg)
    o.backward(gt)

  return dict(options=f"cuDNN {cell.dtype} (algorithm chosen by PyTorch)", err=err,
              tol=F32_TOL[cell.dtype], compile_s=None,
              fwd_us=us_per_step(_torch_seconds(torch, fwd, warmup, reps), t),
              train_us=us_per_step(_torch_seconds(torch, train, warmup, reps), t))


def _copy_keras_weights(torch, net, kind, params, h):
  """Keras (F, G*U) kernels -> torch (G*U, F) weights. LSTM gates i, f, c, o in both;
  GRU: Keras z, r, h -> torch r, z, n, with the recurrent bias row as b_hh."""
  k = np.asarray(params["kernel"]).T
  r = np.asarray(params["recurrent_kernel"]).T
  b = np.asarray(params["bias"])
  if kind == "lstm":
    b_ih, b_hh = b, np.zeros_like(b)
  else:
    order = np.concatenate([np.arange(h, 2 * h), np.arange(h), np.arange(2 * h, 3 * h)])
    k, r, b_ih, b_hh = k[order], r[order], b[0][order], b[1][order]
  with torch.no_grad():
    for name, value in (("weight_ih_l0", k), ("weight_hh_l0", r), ("bias_ih_l0", b_ih),
                        ("bias_hh_l0", b_hh)):
      getattr(net, name).copy_(torch.tensor(value))


def _torch_seconds(torch, fn, warmup, reps) -> float:
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


def run_cell(cell: Cell, shape, **kw) -> dict:
  """One row (a dict): measured values, or `na` (why it does not apply here)."""
  b, h, t = shape
  fn = torch_row if cell.impl == "torch" else jax_row
  return fn(cell, b, h, t, **kw)
