"""The verified envelope: which kernel configurations passed the compile check
(`compile_check`: Triton IR from the abstract-H100 lowering, compiled for sm_90 by
Triton 3.6 and ptxas; shared memory <= 232,448 B, no spills, no stack), read from its
committed result table `compile_verified.json`, and the tiling choice that follows.

A configuration is (kind, compute dtype, dot precision class, padded units Hp,
directions in one launch, tiling, masked: whether the kernels read step flags for masks
and resets, `KernelOptions.masked`, their own rows); it is verified when its three
kernels (the inference forward, the residual-saving forward and the backward: whether a
call is differentiated is not known when the dispatch decides) all passed. `choose` takes the first verified
tiling of `_tiling.candidates`; the dispatch declines what `envelope_reason` reports.
"""

import functools
import json
import pathlib

import jax
import jax.numpy as jnp

from . import _tiling

TABLE_PATH = pathlib.Path(__file__).with_name("compile_verified.json")
KERNELS = ("fwd", "fwd_res", "bwd")   # inference forward, residual-saving forward, backward
# The ladder of units the check walks up, per compute dtype, until no tiling passes.
LADDER = {"bfloat16": (16, 32, 64, 128, 256, 512, 768, 1024),
          "float32": (16, 32, 64, 128, 256, 384, 512)}


@functools.cache
def table() -> dict:
  """The committed compile-check results: {"meta": {...}, "rows": [row dict, ...]}."""
  data = json.loads(TABLE_PATH.read_text())
  cols = data["columns"]
  # (a table from before the masked kernels has no column "masked": its rows are not)
  return {"meta": data["meta"],
          "rows": [{"masked": False, **dict(zip(cols, r))} for r in data["rows"]]}


def row_key(kind, dtype, precision, hp, directions, kernel, tiling: _tiling.Tiling,
            masked: bool = False) -> tuple:
  return (kind, jnp.dtype(dtype).name, precision, hp, directions, kernel, tiling.block_h,
          tiling.num_warps, tiling.num_stages, tiling.resident, tiling.prefetch, masked)


@functools.cache
def _rows_by_key() -> dict:
  rows = {}
  for r in table()["rows"]:
    tiling = _tiling.Tiling(r["block_h"], r["num_warps"], r["num_stages"], r["resident"],
                            r["prefetch"])
    rows[row_key(r["kind"], r["dtype"], r["precision"], r["hp"], r["directions"],
                 r["kernel"], tiling, r.get("masked", False))] = r
  return rows


def precision_class(precision, dtype) -> str:
  """How the kernel's dots will run: "default" (bfloat16 operands; float32 operands as
  TF32, Triton's default for a float32 dot), "highest" (IEEE float32: precision=HIGHEST,
  or jax.default_matmul_precision("highest" / "float32") in effect when precision is
  None, as the Pallas lowering reads it), or "other" (anything else, never verified)."""
  if jnp.dtype(dtype) != jnp.float32:
    return "default"
  value = jax.config.jax_default_matmul_precision if precision is None else precision
  if isinstance(value, str):
    try:
      value = jax.lax.Precision(value)
    except ValueError:
      value = jax.lax.DotAlgorithmPreset.__members__.get(value, value)
  if value is None or value == jax.lax.DotAlgorithmPreset.DEFAULT:
    return "default"
  if isinstance(value, jax.lax.Precision):
    value = (value, value)
  if isinstance(value, tuple):   # the Triton lowering: TF32 when either side allows it
    tf32 = {jax.lax.Precision.DEFAULT, jax.lax.Precision.HIGH}
    return "default" if set(value) & tf32 else "highest"
  if value == jax.lax.DotAlgorithmPreset.TF32_TF32_F32:
    return "default"
  if value == jax.lax.DotAlgorithmPreset.F32_F32_F32:
    return "highest"
  return "other"


def failures(kind, dtype, precision: str, hp: int, directions: int,
             tiling: _tiling.Tiling, masked: bool = False) -> list[str]:
  """Why this configuration is not verified (empty when its three kernels passed)."""
  rows = _rows_by_key()
  out = []
  for kernel in KERNELS:
    row = rows.get(row_key(kind, dtype, precision, hp, directions, kernel, tiling, masked))
    if row is None:
      out.append(f"{kernel}: not compiled by the check")
    elif not row["passed"]:
      out.append(f"{kernel}: {row['why']}")
  return out


def choose(*, kind: str, units: int, gates: int, dtype, directions, interpret: bool,
           block_b: int | None = None, block_h: int | None = None,
           precision=None, masked: bool = False) -> _tiling.KernelOptions:
  """Kernel options for a (units, dtype) problem: the first tiling of
  `_tiling.candidates` the compile check verified (for block_b 16), else the first."""
  _tiling.check_block(block_b, "block_b")
  _tiling.check_block(block_h, "block_h", dtype)
  tilings = _tiling.candidates(units=units, gates=gates, dtype=dtype, block_h=block_h)
  chosen = _first_verified(kind, units, dtype, precision_class(precision, dtype),
                           len(directions), tilings, masked) or tilings[0]
  return chosen.options(directions=directions, interpret=interpret,
                        block_b=block_b or _tiling.MIN_BLOCK_B, precision=precision,
                        masked=masked)


def _first_verified(kind, units, dtype, precision: str, directions: int, tilings,
                    masked: bool = False):
  for tiling in tilings:
    hp = _tiling.units_pad(units, tiling.block_h)
    if not failures(kind, dtype, precision, hp, directions, tiling, masked):
      return tiling
  return None


def envelope_reason(kind: str, units: int, dtype, *, directions: int = 1, precision=None,
                    gates: int, block_b: int | None = None,
                    block_h: int | None = None, masked: bool = False) -> str | None:
  """Why the compile check has not verified the kernels a call would launch (`masked`:
  the kernels that take masks and resets), or None."""
  name = jnp.dtype(dtype).name
  pclass = precision_class(precision, dtype)
  where = "one launch for both directions" if directions == 2 else "one direction"
  if masked:
    where += ", masked or reset"
  if block_b not in (None, _tiling.MIN_BLOCK_B):
    return (f"block_b={block_b}: the compile check verifies block_b="
            f"{_tiling.MIN_BLOCK_B} only")
  tilings = _tiling.candidates(units=units, gates=gates, dtype=dtype, block_h=block_h)
  if _first_verified(kind, units, dtype, pclass, directions, tilings, masked) is not None:
    return None
  limit = max_units(kind, dtype, directions=directions, precision=precision, gates=gates,
                    masked=masked)
  bound = f"units <= {limit}" if limit else "no units"
  first = tilings[0]
  whys = failures(kind, dtype, pclass, _tiling.units_pad(units, first.block_h), directions,
                  first, masked)
  dots = "" if pclass == "default" else f", {pclass} precision dots"
  return (f"units={units} in {name}{dots} ({where}) is outside the compile-verified "
          f"envelope of the {kind.upper()} kernel ({bound} verified for sm_90; no tiling "
          f"passes, the first: {whys[0]})")


@functools.cache
def _max_units(kind, dtype_name, directions, pclass, gates, masked) -> int:
  best = 0
  for units in LADDER[dtype_name]:
    tilings = _tiling.candidates(units=units, gates=gates, dtype=dtype_name)
    if _first_verified(kind, units, dtype_name, pclass, directions, tilings, masked) is None:
      break
    best = units
  return best


def max_units(kind: str, dtype, *, directions: int = 1, precision=None, gates: int,
              masked: bool = False) -> int:
  """The largest units of the check's ladder up to which every rung is verified (0: none)."""
  return _max_units(kind, jnp.dtype(dtype).name, directions,
                    precision_class(precision, dtype), gates, masked)
