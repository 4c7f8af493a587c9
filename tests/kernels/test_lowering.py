"""Every kernel lowered through Pallas's Triton backend for an abstract H100, on this
CPU-only machine (reference/perf.md sections 3.8 and 6.2): the inference forward, the
residual-saving forward and the backward kernel of the LSTM, the GRU and the
bidirectional LSTM, in float32 and bfloat16, with the recurrent blocks resident (small
units), streamed as one chunk (the largest chunk) and tiled in three chunks of the hidden
dimension (units over a chunk, padded to a multiple of it, not to a power of two).
Interpret mode cannot catch what Triton rejects (non-power-of-two blocks, value slicing,
unsupported primitives); this does. That the PTX compiles within sm_90's shared memory
and registers is the compile check's job (test_compile_check.py); how fast it runs needs
a GPU (bench/gpu_check.py)."""

import dataclasses
import re

import pytest

import jax
import jax.numpy as jnp
import rnnjax as rj
from rnnjax.pallas import _forward, _tiling
from rnnjax.pallas.lstm import SPEC as LSTM

S = jax.ShapeDtypeStruct
B, T, F = 20, 13, 8   # B=20 -> two batch tiles of 16
TRITON = "__gpu$xla.gpu.triton"
H100 = jax.sharding.AbstractDevice(device_kind="NVIDIA H100 80GB HBM3", num_cores=132,
                                   platform="gpu")


def lower_for_h100(fn, *args) -> str:
  mesh = jax.sharding.AbstractMesh((1,), ("x",), abstract_device=H100)
  with jax.sharding.use_abstract_mesh(mesh):
    return jax.jit(fn).trace(*args).lower(lowering_platforms=("cuda",)).as_text()


def kernel_calls(text: str) -> list[tuple[str, int, int]]:
  """(name, grid_x, grid_y) of each Triton custom call."""
  calls = []
  for line in text.splitlines():
    if TRITON in line:
      name = re.search(r'name = "([^"]*)"', line).group(1)
      gx = int(re.search(r"grid_x = (\d+)", line).group(1))
      gy = int(re.search(r"grid_y = (\d+)", line).group(1))
      calls.append((name, gx, gy))
  return calls


def _params(kind, units, dtype):
  g = 4 if kind != "gru" else 3
  bias = S((2, g * units), dtype) if kind == "gru" else S((g * units,), dtype)
  return {"kernel": S((F, g * units), dtype), "recurrent_kernel": S((units, g * units), dtype),
          "bias": bias}


def _call(kind, params, x, lengths):
  kw = dict(seq_lengths=lengths, implementation="pallas", interpret=False)
  if kind == "lstm":
    out, (h, c) = rj.kernels.fused_lstm(params, x, go_backwards=True, **kw)
    return [out, h, c]
  if kind == "gru":
    out, h = rj.kernels.fused_gru(params, x, **kw)
    return [out, h]
  yf, yb, sf, sb = rj.kernels.fused_bidirectional_lstm(params, params, x, **kw)
  return [yf, yb, *sf, *sb]


def _loss(kind):
  return lambda p, x, lengths: sum(a.astype(jnp.float32).sum() for a in _call(kind, p, x, lengths))


CONFIGS = [(kind, dtype, units)
           for kind in ("lstm", "gru", "bidirectional")
           for dtype in (jnp.float32, jnp.bfloat16)
           for units in (20, _tiling.max_block_h(dtype), 2 * _tiling.max_block_h(dtype) + 40)]


@pytest.mark.parametrize("kind, dtype, units", CONFIGS,
                         ids=[f"{k}-{jnp.dtype(d).name}-U{u}" for k, d, u in CONFIGS])
def test_kernels_lower_to_triton_for_h100(kind, dtype, units):
  name = "gru" if kind == "gru" else "lstm"
  directions = 2 if kind == "bidirectional" else 1
  params, x, lengths = _params(kind, units, dtype), S((B, T, F), dtype), S((B,), jnp.int32)
  inference = kernel_calls(lower_for_h100(lambda *a: _call(kind, *a), params, x, lengths))
  training = kernel_calls(lower_for_h100(jax.grad(_loss(kind)), params, x, lengths))
  assert inference == [(f"rnnjax_{name}_fwd", directions, 2)]
  assert training == [(f"rnnjax_{name}_fwd", directions, 2), (f"rnnjax_{name}_bwd", directions, 2)]


def test_resident_and_streamed_configurations_are_both_covered():
  for dtype in (jnp.float32, jnp.bfloat16):
    small = LSTM.options(batch=B, units=20, dtype=dtype, directions=(False,),
                         interpret=False)
    large = LSTM.options(batch=B, units=_tiling.max_block_h(dtype), dtype=dtype,
                         directions=(False,), interpret=False)
    tiled = LSTM.options(batch=B, units=2 * _tiling.max_block_h(dtype) + 40,
                         dtype=dtype, directions=(False,), interpret=False)
    assert small.resident and not large.resident and not tiled.resident
    assert large.block_h == tiled.block_h == _tiling.max_block_h(dtype)
    assert _tiling.units_pad(2 * tiled.block_h + 40, tiled.block_h) == 3 * tiled.block_h


def test_lowering_rejects_what_interpret_mode_accepts():
  """The check has teeth: a hidden chunk that is not a power of two (no padding) fails in
  the Triton lowering, although interpret mode would run it."""
  opts = dataclasses.replace(LSTM.options(batch=16, units=48, dtype=jnp.float32,
                                          directions=(False,), interpret=False),
                             block_h=48)
  args = (S((16, 5, 1, 4, 48), jnp.float32), S((1, 4, 48, 48), jnp.float32),
          S((1, 16, 48), jnp.float32), S((1, 16, 48), jnp.float32), S((16,), jnp.int32))
  with pytest.raises(Exception, match="power of 2|power of two"):
    lower_for_h100(lambda xp, w, h0, c0, lengths: _forward.forward(
        LSTM, xp, w, (), (h0, c0), lengths, opts, save=False), *args)
