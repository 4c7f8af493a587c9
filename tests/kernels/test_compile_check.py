"""The compile check in CI (rnnjax.pallas.compile_check, docs/kernels.md): the committed
result table `rnnjax/pallas/compile_verified.json` is what the grid walk chooses, every row
still lowers to the IR that was compiled (else: regenerate it), a sample recompiles cold
with the triton wheel and its ptxas to the same numbers, and the check has teeth (the
pre-fix streamed configuration fails it). The float32 dots' precision is read from the IR.

Why a committed table rather than only a cache directory: CI runs on a fresh clone, where
a gitignored cache is always empty, and compiling every row cold costs minutes (the
boundary kernels take 5-20 s each on two cores); the table is also what the dispatch
reads, so it must be committed anyway. Each row carries the hash of the exact IR (and
num_warps, num_stages, target and Triton version) it was compiled from, so a kernel change
that alters the IR cannot keep a stale verdict: `test_every_row_still_lowers_to_its_ir`
fails until the table is regenerated (`python -m rnnjax.pallas.compile_check --write`,
which recompiles only what changed, through the cache in .compile_cache/).
"""

import dataclasses

import pytest

import jax
import jax.numpy as jnp
import rnnjax as rj
from rnnjax.pallas import _envelope, _tiling
from rnnjax.pallas import compile_check as cc
from rnnjax.pallas.lstm import SPEC as LSTM

ROWS = _envelope.table()["rows"]
needs_triton = pytest.mark.skipif(cc.triton_available() is not None,
                                  reason=str(cc.triton_available()))
S = jax.ShapeDtypeStruct


def test_table_records_the_check():
  meta = _envelope.table()["meta"]
  assert meta["triton"] == cc.TRITON_VERSION == "3.6.0"
  assert meta["target"] == "sm_90a" and meta["smem_limit"] == cc.SMEM_LIMIT == 232_448
  assert meta["jax"] == jax.__version__   # the IR hashes are of this JAX's lowering
  for r in ROWS:
    assert r["passed"] == (not r["why"])
    if r["passed"]:
      assert r["smem"] <= cc.SMEM_LIMIT and not (r["stack"] or r["spill_stores"]
                                                  or r["spill_loads"])


def test_table_is_what_the_grid_walk_chooses():
  """Every row the walk needs is in the table, and the table holds nothing else."""
  by_config = {cc.row_config(r): r for r in ROWS}
  missing = []

  def lookup(config):
    if config not in by_config:
      missing.append(config.label)
      return {"passed": False}
    return by_config[config]

  walked = cc.walk_grid(lookup)
  assert not missing, "regenerate the table: " + "; ".join(missing)
  assert len(walked) == len(ROWS)


GROUPS = sorted({(r["kind"], r["dtype"], r["precision"]) for r in ROWS})


@pytest.mark.parametrize("group", GROUPS, ids="-".join)
def test_every_row_still_lowers_to_its_ir(group):
  """(In groups, which pytest-xdist spreads over CI's workers.)"""
  stale = cc.stale_rows([r for r in ROWS if (r["kind"], r["dtype"], r["precision"]) == group])
  assert not stale, ("the kernels changed: python -m rnnjax.pallas.compile_check --write "
                     "(stale: " + "; ".join(stale[:5]) + ")")


@pytest.mark.parametrize("masked", [False, True], ids=["plain", "masked"])
def test_public_path_launches_the_checked_kernels(masked):
  """At the check's shape, the kernels a fused_lstm call and its gradient launch have the
  IR hashes of the table's rows for the tiling the dispatch chooses; with a mask and
  resets, the masked rows' (a call without them keeps the kernels it had before)."""
  units, dtype = 100, jnp.bfloat16
  params = {"kernel": S((8, 4 * units), dtype), "recurrent_kernel": S((units, 4 * units), dtype),
            "bias": S((4 * units,), dtype)}
  x = S((cc.CHECK_BATCH, cc.CHECK_STEPS, 8), dtype)
  flags = S((cc.CHECK_BATCH, cc.CHECK_STEPS), jnp.bool_)

  def call(p, x, mask, reset):
    kw = dict(mask=mask, reset=reset) if masked else {}
    return rj.kernels.fused_lstm(p, x, implementation="pallas", interpret=False, **kw)

  def loss(p, x, mask, reset):
    return call(p, x, mask, reset)[0].astype(jnp.float32).sum()

  opts = LSTM.options(batch=cc.CHECK_BATCH, units=units, dtype=dtype,
                      directions=(False,), interpret=False, masked=masked)
  tiling = _tiling.Tiling(opts.block_h, opts.num_warps, opts.num_stages, opts.resident,
                          opts.prefetch)
  rows = {r["kernel"]: r for r in ROWS if cc.row_config(r) == cc.Config(
      "lstm", "bfloat16", "default", 128, 1, r["kernel"], tiling, masked)}
  assert set(rows) == {"fwd", "fwd_res", "bwd"} and all(r["passed"] for r in rows.values())
  fwd = cc.lower_for_h100(call, params, x, flags, flags)
  grads = cc.lower_for_h100(jax.grad(loss), params, x, flags, flags)
  got = [cc.ir_hash(t, tiling.num_warps, tiling.num_stages) for t in fwd + grads]
  assert got == [rows["fwd"]["ir_hash"], rows["fwd_res"]["ir_hash"], rows["bwd"]["ir_hash"]]


def test_float32_dots_are_tf32_unless_highest():
  """Triton runs a float32 dot as TF32 unless told IEEE: precision=None gives TF32 (as
  XLA's default), HIGHEST (or jax.default_matmul_precision("highest") around the call)
  gives IEEE; bfloat16 dots take bfloat16 operands. The envelope reads the same."""
  tiling = _tiling.Tiling(32, 4, 2, True, True)
  for dtype, precision, want in (("float32", "default", {("f32", "tf32")}),
                                 ("float32", "highest", {("f32", "ieee")}),
                                 ("bfloat16", "default", {("bf16", "tf32")})):
    config = cc.Config("lstm", dtype, precision, 32, 1, "bwd", tiling)
    assert set(cc.dot_precisions(cc.lower_config(config))) == want
  params = {"kernel": S((8, 128), jnp.float32), "recurrent_kernel": S((32, 128), jnp.float32)}
  x = S((16, 4, 8), jnp.float32)

  def call(p, x):
    return rj.kernels.fused_lstm(p, x, implementation="pallas", interpret=False)

  (default,) = cc.lower_for_h100(call, params, x)
  with jax.default_matmul_precision("highest"):
    (highest,) = cc.lower_for_h100(call, params, x)
    assert _envelope.precision_class(None, jnp.float32) == "highest"
    assert _envelope.precision_class(None, jnp.bfloat16) == "default"
  assert set(cc.dot_precisions(default)) == {("f32", "tf32")}
  assert set(cc.dot_precisions(highest)) == {("f32", "ieee")}
  assert _envelope.precision_class(None, jnp.float32) == "default"
  assert _envelope.precision_class(jax.lax.Precision.HIGHEST, jnp.float32) == "highest"
  assert _envelope.precision_class("tensorfloat32", jnp.float32) == "default"


def _verified(row) -> bool:
  config = cc.row_config(row)
  return not _envelope.failures(config.kind, config.dtype, config.precision, config.hp,
                                config.directions, config.tiling, config.masked)


def _sample():
  """Per (kind, dtype, precision), the largest verified configuration's forward with
  residuals and backward (LSTM) or backward (GRU); IEEE float32 only for the LSTM."""
  best = {}
  for r in ROWS:
    if r["kernel"] in ("fwd_res", "bwd") and _verified(r):
      key = (r["kind"], r["dtype"], r["precision"], r["kernel"])
      if key not in best or (r["hp"], r["directions"]) > (best[key]["hp"],
                                                          best[key]["directions"]):
        best[key] = r
  keep = lambda k: k[0] == "lstm" and (k[2] == "default" or k[3] == "bwd") or (   # noqa
      k[0] == "gru" and k[1] == "bfloat16" and k[3] == "bwd")
  return [r for k, r in sorted(best.items()) if keep(k)]


@needs_triton
@pytest.mark.parametrize("row", _sample(), ids=lambda r: cc.row_config(r).label)
def test_sample_recompiles_cold_as_recorded(row):
  fresh = cc.lower_and_compile(cc.row_config(row), cache=False)
  for key in ("ir_hash", "smem", "registers", "stack", "spill_stores", "spill_loads",
              "passed"):
    assert fresh[key] == row[key], (key, fresh[key], row[key])


@needs_triton
def test_the_check_fails_the_configuration_before_the_fix():
  """Streamed blocks with num_stages=2 (the tiling before the compile check): Triton's
  pipeliner stages every block of the next step in shared memory (520 KiB at bfloat16
  units=256), and the registers spill."""
  before = cc.Config("lstm", "bfloat16", "default", 256, 1, "fwd",
                     _tiling.Tiling(256, 8, 2, False, False))
  row = cc.lower_and_compile(before, cache=False)
  assert not row["passed"]
  assert row["smem"] > cc.SMEM_LIMIT and "shared memory" in row["why"]
  assert row["spill_stores"] > 0 and "register spills" in row["why"]


@needs_triton
def test_check_shape_stands_for_any_shape():
  """T is a loop bound and B a grid size: another shape compiles to the same resources."""
  config = cc.Config("gru", "bfloat16", "default", 64, 2, "fwd_res",
                     _tiling.Tiling(64, 4, 2, True, True))
  ours = cc.compile_ir(cc.lower_config(config), 4, 2)
  other = cc.compile_ir(cc.lower_config(config, batch=48, steps=37), 4, 2)
  assert not ours.error and dataclasses.replace(ours, seconds=0) == dataclasses.replace(
      other, seconds=0)
