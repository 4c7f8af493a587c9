"""The compile check: every kernel configuration the dispatch can choose, lowered through
Pallas's Triton backend for an abstract H100 and compiled for sm_90 by Triton (the wheel
of the release line inside jaxlib 0.11.2's XLA, 3.6) and its bundled `ptxas -v`, on a CPU.

The Pallas lowering (tests/kernels/test_lowering.py) stops at the Triton IR; layouts,
software pipelining, shared-memory and register allocation and ptxas happen inside XLA
on the GPU. This module takes the IR that XLA would receive (the module
`lower_jaxpr_to_triton_module` builds, printed as text) and runs the rest of the
pipeline with the `triton` wheel: a kernel passes when its shared memory (Triton's
dynamic allocation plus ptxas's static) is at most SMEM_LIMIT, ptxas spills no register
and uses no stack, and its registers fit the block.

    python -m rnnjax.pallas.compile_check            # walk the grid, print each kernel
    python -m rnnjax.pallas.compile_check --write    # ... and rewrite compile_verified.json

`compile_verified.json` is the committed result table, one row per kernel with the hash
of its IR: the dispatch reads it (`_envelope`), and CI lowers every row again and fails
on one whose IR changed (regenerate the table), and recompiles a sample cold
(tests/kernels/test_compile_check.py). Compile results are also cached by IR hash in
CACHE_DIR (gitignored), so that a regeneration recompiles only what changed.
"""

import argparse
import contextlib
import dataclasses
import hashlib
import io
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp

from . import _backward, _envelope, _forward, _kinds, _tiling
from ._compile_grid import COLUMNS as COLUMNS
from ._compile_grid import MASKED_PROBLEMS as MASKED_PROBLEMS
from ._compile_grid import PRECISIONS as PRECISIONS
from ._compile_grid import PROBLEMS as PROBLEMS
from ._compile_grid import Config as Config
from ._compile_grid import make_row as make_row
from ._compile_grid import row_config as row_config
from ._compile_grid import walk_grid as walk_grid
from ._pallas import F32

SMEM_LIMIT = 232_448          # bytes of shared memory per block on an H100 / H200 (227 KiB)
REGISTER_FILE = 65_536        # 32-bit registers per SM (and per block)
CAPABILITY = 90
TRITON_VERSION = "3.6.0"      # the Triton inside jaxlib 0.11.2's XLA is this release line
CHECK_BATCH, CHECK_STEPS = 32, 16   # two batch tiles; any T compiles alike (a loop bound)
_REPO = pathlib.Path(__file__).resolve().parents[2]
CACHE_DIR = pathlib.Path(os.environ.get("RNNJAX_COMPILE_CACHE") or (
    _REPO / ".compile_cache" if (_REPO / "pyproject.toml").exists()
    else pathlib.Path.home() / ".cache" / "rnnjax-compile-check"))
H100 = jax.sharding.AbstractDevice(device_kind="NVIDIA H100 80GB HBM3", num_cores=132,
                                   platform="gpu")
@dataclasses.dataclass(frozen=True)
class Result:
  """What Triton and ptxas report for one kernel."""

  smem: int = 0           # bytes: Triton's dynamic allocation + ptxas's static
  registers: int = 0
  stack: int = 0          # bytes of stack frame
  spill_stores: int = 0
  spill_loads: int = 0
  seconds: float = 0.0
  error: str = ""

  def failures(self, num_warps: int) -> list[str]:
    """Why this compile result does not pass the check (empty when it does)."""
    if self.error:
      return [f"compile error: {self.error}"]
    out = []
    if self.smem > SMEM_LIMIT:
      out.append(f"shared memory {self.smem:,} B > {SMEM_LIMIT:,} B")
    if self.spill_stores or self.spill_loads:
      out.append(f"register spills ({self.spill_stores} B stored, {self.spill_loads} B loaded)")
    if self.stack:
      out.append(f"{self.stack} B stack frame")
    if self.registers * 32 * num_warps > REGISTER_FILE:
      out.append(f"{self.registers} registers x {32 * num_warps} threads > {REGISTER_FILE}")
    return out


# Lowering -----------------------------------------------------------------------------

@contextlib.contextmanager
def _capture_triton_modules():
  """Collects the text of every Triton module Pallas builds while lowering."""
  from jax._src.pallas.triton import lowering
  original = lowering.lower_jaxpr_to_triton_module
  texts = []

  def capture(*args, **kwargs):
    result = original(*args, **kwargs)
    texts.append(result.module.operation.get_asm(enable_debug_info=False))
    return result

  lowering.lower_jaxpr_to_triton_module = capture
  try:
    yield texts
  finally:
    lowering.lower_jaxpr_to_triton_module = original


def lower_for_h100(fn, *args) -> list[str]:
  """The Triton IR of every Pallas kernel in `jax.jit(fn)(*args)`, lowered for an
  abstract H100 (no GPU needed), in lowering order."""
  mesh = jax.sharding.AbstractMesh((1,), ("x",), abstract_device=H100)
  with _capture_triton_modules() as texts, jax.sharding.use_abstract_mesh(mesh):
    jax.jit(fn).trace(*args).lower(lowering_platforms=("cuda",))
  return list(texts)


def kernel_args(config: Config, batch: int = CHECK_BATCH, steps: int = CHECK_STEPS):
  """Abstract arguments of the kernel's launcher (`_forward.forward` / `_backward.backward`)."""
  spec = _kinds.SPECS[config.kind]
  s = jax.ShapeDtypeStruct
  d, hp, dt = config.directions, config.hp, jnp.dtype(config.dtype)
  state, lengths = s((d, batch, hp), F32), s((batch,), jnp.int32)
  if config.masked:   # step flags instead of lengths
    lengths = s((batch, steps, d), jnp.int32)
  w = s((d, spec.gates, hp, hp), dt)
  if config.kernel != "bwd":
    xp = s((batch, steps, d, spec.gates, hp), F32)
    vectors = (s((d, hp), F32),) * spec.vectors
    return spec, (xp, w, vectors, (state,) * spec.states, lengths)
  dhs = s((batch, steps, d, hp), dt)
  saved = s((batch, steps, d, spec.residual_slots, hp), dt)
  seq = s((batch, steps, d, hp), dt if spec.backward_state == 0 else F32)
  return spec, (dhs, (state,) * spec.states, saved, seq, state, w, lengths)


def lower_config(config: Config, batch: int = CHECK_BATCH, steps: int = CHECK_STEPS) -> str:
  """The Triton IR of one configuration's kernel (for `batch` rows and `steps` steps)."""
  spec, args = kernel_args(config, batch, steps)
  opts = config.options()
  def fn(*a):   # the kernel's array arguments, then its static options
    if config.kernel == "bwd":
      return _backward.backward(spec, *a[:7], opts, dz_dtype=F32)
    return _forward.forward(spec, *a[:5], opts, save=config.kernel == "fwd_res")
  (text,) = lower_for_h100(fn, *args)
  return text


def ir_hash(text: str, num_warps: int, num_stages: int) -> str:
  """The key of a compile result: the IR and everything else the compile depends on."""
  key = f"{text}\n{num_warps=} {num_stages=} sm_{CAPABILITY} triton {TRITON_VERSION}"
  return hashlib.sha256(key.encode()).hexdigest()[:16]


def dot_precisions(text: str) -> list[tuple[str, str]]:
  """(operand element type, input precision) of every tt.dot in a Triton IR text, e.g.
  ("f32", "tf32"): the printer omits Triton's default, IEEE ("ieee")."""
  out = []
  for line in re.findall(r"tt\.dot [^\n]*", text):
    precision = re.search(r"inputPrecision = (\w+)", line)
    operand = re.search(r": tensor<[\dx]+x(\w+)>", line)
    out.append((operand.group(1) if operand else "?",
                precision.group(1) if precision else "ieee"))
  return out


# Compiling ----------------------------------------------------------------------------

def triton_available() -> str | None:
  """None when the matching triton wheel is importable, else why not."""
  try:
    import triton
  except ImportError:
    return f"triton is not installed (pip install triton=={TRITON_VERSION})"
  if triton.__version__ != TRITON_VERSION:
    return f"triton {triton.__version__} is installed, the check needs {TRITON_VERSION}"
  return None


def _parse_ptxas(log: str, shared: int) -> Result:
  def num(pattern):
    m = re.search(pattern, log)
    return int(m.group(1)) if m else 0
  return Result(smem=shared + num(r"(\d+) bytes smem"), registers=num(r"Used (\d+) registers"),
                stack=num(r"(\d+) bytes stack frame"),
                spill_stores=num(r"(\d+) bytes spill stores"),
                spill_loads=num(r"(\d+) bytes spill loads"))


def compile_ir(text: str, num_warps: int, num_stages: int) -> Result:
  """Compiles one Triton IR text for sm_90 (Triton's passes, LLVM, ptxas -v)."""
  import triton
  from triton import knobs
  from triton.backends.compiler import GPUTarget
  start = time.perf_counter()
  with tempfile.TemporaryDirectory() as tmp:
    path = pathlib.Path(tmp) / "kernel.ttir"
    path.write_text(text)
    log = io.StringIO()
    try:
      with knobs.cache.scope(), knobs.nvidia.scope(), contextlib.redirect_stdout(log):
        knobs.cache.dir = str(pathlib.Path(tmp) / "cache")
        knobs.nvidia.dump_ptxas_log = True
        compiled = triton.compile(str(path), target=GPUTarget("cuda", CAPABILITY, 32),
                                  options={"num_warps": num_warps, "num_stages": num_stages})
    except Exception as e:   # noqa: BLE001 - any compile failure is a result
      msg = " ".join(str(e).split())
      return Result(error=f"{type(e).__name__}: {msg[:300]}",
                    seconds=time.perf_counter() - start)
  result = _parse_ptxas(log.getvalue(), compiled.metadata.shared)
  return dataclasses.replace(result, seconds=round(time.perf_counter() - start, 2))


def cached_compile(text: str, num_warps: int, num_stages: int, *, cache: bool = True) -> Result:
  """compile_ir, with results cached under CACHE_DIR by IR hash."""
  key = ir_hash(text, num_warps, num_stages)
  path = CACHE_DIR / f"{key}.json"
  if cache and path.exists():
    return Result(**json.loads(path.read_text()))
  result = compile_ir(text, num_warps, num_stages)
  if cache:
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dataclasses.asdict(result)))
  return result


def ptxas_version() -> str:
  from triton.backends.nvidia.compiler import get_ptxas
  out = subprocess.run([get_ptxas(CAPABILITY).path, "--version"], capture_output=True,
                       text=True, check=True).stdout
  found = re.search(r"release ([\d.]+)", out)
  if found is None:
    raise RuntimeError(f"ptxas --version printed no release number: {out!r}")
  return found.group(1)


# The grid and the table -----------------------------------------------------------------

def lower_and_compile(config: Config, *, cache: bool = True) -> dict:
  """The table row of one kernel: lowered here, compiled (or read from the cache)."""
  text = lower_config(config)
  t = config.tiling
  result = cached_compile(text, t.num_warps, t.num_stages, cache=cache)
  return make_row(config, ir_hash(text, t.num_warps, t.num_stages), result)


def write_table(rows, path=None) -> None:
  """Writes the result table (one row per line, for readable diffs)."""
  path = pathlib.Path(path or _envelope.TABLE_PATH)
  meta = {"generated_by": "python -m rnnjax.pallas.compile_check --write",
          "triton": TRITON_VERSION, "ptxas": ptxas_version(), "target": f"sm_{CAPABILITY}a",
          "smem_limit": SMEM_LIMIT, "jax": jax.__version__,
          "check_shape": {"batch": CHECK_BATCH, "steps": CHECK_STEPS}}
  lines = ["{", f'  "meta": {json.dumps(meta)},', f'  "columns": {json.dumps(COLUMNS)},',
           '  "rows": [']
  body = [json.dumps([r[c] for c in COLUMNS]) for r in rows]
  lines += ["    " + b + ("," if i < len(body) - 1 else "") for i, b in enumerate(body)]
  lines += ["  ]", "}"]
  path.write_text("\n".join(lines) + "\n")


def markdown(rows) -> str:
  """The results as a markdown table (config -> shared memory, registers, spills, verdict)."""
  out = ["| config | smem (B) | registers | stack / spills (B) | compile (s) | result |",
         "|---|---|---|---|---|---|"]
  for r in rows:
    verdict = "pass" if r["passed"] else f"FAIL: {r['why']}"
    out.append(f"| {row_config(r).label} | {r['smem']:,} | {r['registers']} | "
               f"{r['stack']} / {r['spill_stores']}+{r['spill_loads']} | {r['compile_s']} | "
               f"{verdict} |")
  return "\n".join(out)


def stale_rows(rows) -> list[str]:
  """The table rows whose kernel no longer lowers to the IR that was compiled."""
  out = []
  for r in rows:
    config = row_config(r)
    t = config.tiling
    if ir_hash(lower_config(config), t.num_warps, t.num_stages) != r["ir_hash"]:
      out.append(config.label)
  return out


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m rnnjax.pallas.compile_check",
                                   description=__doc__.split("\n\n")[0])
  parser.add_argument("--write", action="store_true", help=f"rewrite {_envelope.TABLE_PATH.name}")
  parser.add_argument("--no-cache", action="store_true", help="recompile every kernel")
  parser.add_argument("--kinds", nargs="*", default=["lstm", "gru"], choices=["lstm", "gru"])
  parser.add_argument("--markdown", action="store_true", help="print the table as markdown")
  parser.add_argument("--keep-rows", action="store_true",
                      help="reuse the committed rows as they are, compile only new "
                      "configurations (tests/kernels/test_compile_check.py checks that "
                      "every row still lowers to its IR)")
  args = parser.parse_args(argv)
  why = triton_available()
  if why:
    print(why, file=sys.stderr)
    return 2

  def log(config, row):
    verdict = "pass" if row["passed"] else "FAIL: " + row["why"]
    print(f"{config.label:70s} smem {row['smem']:>9,} regs {row['registers']:3d} "
          f"{row['compile_s']:6.1f}s {verdict}", flush=True)

  start = time.perf_counter()
  kept = {row_config(r): r for r in _envelope.table()["rows"]} if args.keep_rows else {}
  rows = walk_grid(lambda c: kept.get(c) or lower_and_compile(c, cache=not args.no_cache),
                   kinds=tuple(args.kinds), log=log)
  print(f"{len(rows)} kernels, {sum(r['passed'] for r in rows)} pass, "
        f"{time.perf_counter() - start:.0f} s", flush=True)
  if args.markdown:
    print(markdown(rows))
  if args.write:
    write_table(rows)
    print(f"wrote {_envelope.TABLE_PATH}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
