"""The Mosaic GPU kernels lowered for an abstract Hopper GPU on any machine (no GPU
needed): what CI can check of them besides interpret mode."""

import jax
import jax.numpy as jnp

from . import (_gru, _gru_backward, _gru_forward, _lstm, _lstm_backward,
               _lstm_backward_cluster, _lstm_forward)


def _calls(kind: str, steps: int, fwd, bwd, dtype, directions: int) -> dict:
  """{kernel name: (function, argument shapes)} for `kind` under the given plans."""
  s, f32 = jax.ShapeDtypeStruct, jnp.float32
  hp, bp, d = fwd.hp, fwd.bp, directions
  state, seq = s((d, hp, bp), f32), s((d, steps, hp, bp), f32)
  operand = s((d, hp, bp), dtype)
  if kind == "lstm":
    gates, w = s((d, steps, 4, hp, bp), f32), s((d, 4, hp, hp), dtype)
    calls: dict[str, tuple] = {
        "forward": (lambda *a: _lstm_forward.forward(fwd, *a, save=True, interpret=False),
                    (gates, w, operand, state))}
    if bwd is not None:
      module = _lstm_backward_cluster if bwd.cluster > 1 else _lstm_backward
      calls["backward"] = (lambda *a: module.backward(bwd, *a, interpret=False),
                           (seq, gates, seq, state, w, state, state))
    return calls
  slots, res, w = s((d, steps, 3, hp, bp), f32), s((d, steps, 4, hp, bp), f32), \
      s((d, 3, hp, hp), dtype)
  return {"forward": (lambda *a: _gru_forward.forward(fwd, *a, save=True, interpret=False),
                      (slots, w, operand, state, state)),
          "backward": (lambda *a: _gru_backward.backward(bwd, *a, interpret=False),
                       (seq, res, seq, state, w, state))}


def lowered_text(batch: int, steps: int, units: int, *, kind: str = "lstm",
                 dtype=jnp.bfloat16, directions: int = 1,
                 device_kind: str = "NVIDIA H100 80GB HBM3") -> dict[str, str]:
  """The forward and backward kernels of `kind` ("lstm" or "gru") lowered for an
  abstract Hopper GPU: {"forward": text, "backward": text}, StableHLO with the Mosaic GPU
  module (its wgmma instructions included); no "backward" when it does not fit (see
  `plans`). Lowering checks the shared memory against the 227 KiB per block; compiling
  to PTX needs the CUDA plugin (jax-cuda*-plugin)."""
  if kind not in ("lstm", "gru"):
    raise ValueError(f"kind must be 'lstm' or 'gru', got {kind!r}.")
  fwd, bwd = (_lstm if kind == "lstm" else _gru).plans(batch, units, dtype)
  device = jax.sharding.AbstractDevice(device_kind=device_kind, num_cores=132,
                                       platform="gpu")
  mesh = jax.sharding.AbstractMesh((1,), ("x",), abstract_device=device)
  out = {}
  with jax.sharding.use_abstract_mesh(mesh):
    for name, (fn, args) in _calls(kind, steps, fwd, bwd, dtype, directions).items():
      out[name] = jax.jit(fn).trace(*args).lower(lowering_platforms=("cuda",)).as_text()
  return out
