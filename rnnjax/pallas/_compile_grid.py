"""The compile check's grid (see `compile_check`): one kernel configuration (`Config`),
the walk over the configurations the dispatch can choose (`walk_grid`), and the result
table's rows (`COLUMNS`, `make_row`, `row_config`)."""

import dataclasses

import jax

from . import _envelope, _kinds, _tiling

PRECISIONS = {"default": None, "highest": jax.lax.Precision.HIGHEST}
# (compute dtype, precision class) pairs the check covers: IEEE float32 dots are what a
# float32 call gets under jax.default_matmul_precision("highest").
PROBLEMS = (("bfloat16", "default"), ("float32", "default"), ("float32", "highest"))
# The kernels that take masks and resets (`KernelOptions.masked`) are checked for these;
# a masked call in IEEE float32 takes the scan.
MASKED_PROBLEMS = (("bfloat16", "default"), ("float32", "default"))


@dataclasses.dataclass(frozen=True)
class Config:
  """One kernel of one launch configuration."""

  kind: str          # "lstm" | "gru"
  dtype: str         # "bfloat16" | "float32"
  precision: str     # "default" (TF32 for float32 dots) | "highest" (IEEE float32)
  hp: int            # padded units
  directions: int    # 1, or 2 (one launch for both directions)
  kernel: str        # one of _envelope.KERNELS
  tiling: _tiling.Tiling
  masked: bool = False   # step flags (masks, resets) instead of lengths

  @property
  def label(self) -> str:
    t = self.tiling
    p = "" if self.precision == "default" else f" {self.precision}"
    m = " masked" if self.masked else ""
    return (f"{self.kind} {self.dtype}{p} Hp={self.hp} D={self.directions}{m} {self.kernel} "
            f"[bh{t.block_h} w{t.num_warps} s{t.num_stages} "
            f"{'resident' if t.resident else 'streamed'}{' prefetch' if t.prefetch else ''}]")

  def options(self) -> _tiling.KernelOptions:
    dirs = (False,) if self.directions == 1 else (False, True)
    return self.tiling.options(directions=dirs, interpret=False,
                               precision=PRECISIONS[self.precision], masked=self.masked)


COLUMNS = ("kind", "dtype", "precision", "hp", "directions", "kernel", "block_h", "num_warps",
           "num_stages", "resident", "prefetch", "masked", "ir_hash", "smem", "registers",
           "stack", "spill_stores", "spill_loads", "compile_s", "passed", "why")


def make_row(config: Config, key: str, result) -> dict:
  """The table row of one kernel from its compile `result` (`compile_check.Result`)."""
  t = config.tiling
  why = "; ".join(result.failures(t.num_warps))
  return dict(kind=config.kind, dtype=config.dtype, precision=config.precision, hp=config.hp,
              directions=config.directions, kernel=config.kernel, block_h=t.block_h,
              num_warps=t.num_warps, num_stages=t.num_stages, resident=t.resident,
              prefetch=t.prefetch, masked=config.masked, ir_hash=key, smem=result.smem,
              registers=result.registers, stack=result.stack,
              spill_stores=result.spill_stores, spill_loads=result.spill_loads,
              compile_s=result.seconds, passed=not why, why=why)


def row_config(row: dict) -> Config:
  tiling = _tiling.Tiling(row["block_h"], row["num_warps"], row["num_stages"],
                          row["resident"], row["prefetch"])
  return Config(row["kind"], row["dtype"], row["precision"], row["hp"], row["directions"],
                row["kernel"], tiling, row.get("masked", False))


def walk_grid(row_of, *, kinds=("lstm", "gru"), problems=PROBLEMS,
              masked_problems=MASKED_PROBLEMS, log=None) -> list[dict]:
  """The configurations the dispatch can choose, walked as the check does: per kind and
  (dtype, precision), up the units ladder; at each rung, one direction then both in one
  launch, each tiling of `_tiling.candidates` in turn until one passes all three kernels
  (the rest are never chosen); the walk stops at the first rung where no tiling passes
  for one direction (larger units only need more registers and shared memory). Then the
  same walk for the masked kernels over `masked_problems`.
  `row_of(config) -> row` compiles one kernel (or looks it up)."""
  rows: dict = {}
  for masked, group in ((False, problems), (True, masked_problems)):
    for kind in kinds:
      for dtype, precision in group:
        _walk_ladder(rows, row_of, kind, dtype, precision, masked, log)
  return list(rows.values())


def _walk_ladder(rows, row_of, kind, dtype, precision, masked, log) -> None:
  gates = _kinds.SPECS[kind].gates
  for units in _envelope.LADDER[dtype]:
    verified = False
    for directions in (1, 2):
      for tiling in _tiling.candidates(units=units, gates=gates, dtype=dtype):
        hp = _tiling.units_pad(units, tiling.block_h)
        ok = True
        for kernel in _envelope.KERNELS:
          config = Config(kind, dtype, precision, hp, directions, kernel, tiling, masked)
          if config not in rows:
            rows[config] = row_of(config)
            if log:
              log(config, rows[config])
          ok = ok and rows[config]["passed"]
        if ok:
          verified = verified or directions == 1
          break
      if not verified:
        return   # both directions in one launch need more than one does
    if not verified:
      return
