"""The public Mosaic GPU LSTM function (`mosaic_lstm`): the explicit opt-in to the Hopper
kernels, with the arguments of `rnnjax.pallas.fused_lstm` that the kernels support."""

import jax
import jax.numpy as jnp

from ... import _validation
from ...types import Array, ArrayLike, DTypeLike, Params
from .. import _checks, _shapes
from . import _lstm

GATES = 4


def mosaic_lstm(params: Params, inputs: ArrayLike, *,
                initial_state: tuple[ArrayLike, ArrayLike] | None = None,
                go_backwards: bool = False, time_major: bool = False,
                dtype: DTypeLike | None = None, interpret: bool | None = None,
                block_b: int | None = None) -> tuple[Array, tuple[Array, Array]]:
  """A Keras-semantics LSTM (tanh, sigmoid) as the Mosaic GPU (Hopper) kernels, with a
  backward (a `jax.custom_vjp`: reverse mode only).

  Opt-in and unmeasured: nothing dispatches here automatically (see docs/kernels.md).
  W_hh stays resident in one CTA's shared memory, which bounds the units (bfloat16:
  U <= 128 at a batch tile of 64); larger U raises a ValueError naming the bytes.

  Args:
    params: {"kernel": (F, 4U), "recurrent_kernel": (U, 4U), optional "bias": (4U,)}.
    inputs: (B, T, F), or (T, B, F) when time_major.
    initial_state: (h, c), each (B, U); zeros when None.
    go_backwards: read time in reverse; outputs in processing order.
    dtype: bfloat16 or float16 (default: promotion of inputs and kernel, which must be
      one of them); float32 runs in interpret mode only.
    interpret: None: Mosaic GPU interpret mode unless on a GPU; or force it either way.
    block_b: batch columns per CTA, 64 or 128; None: the widest that fits.

  Returns:
    (outputs (B, T, U) (or (T, B, U)) in the compute dtype, (h, c) each (B, U) float32).

  >>> import jax, jax.numpy as jnp, rnnjax as rj
  >>> x = jnp.ones((2, 3, 8), jnp.bfloat16)
  >>> params = rj.LSTM(16).init(jax.random.key(0), x)
  >>> out, (h, c) = rj.kernels.mosaic_lstm(params, x, dtype=jnp.bfloat16, interpret=True)
  >>> out.shape, out.dtype, h.shape
  ((2, 3, 16), dtype(bfloat16), (2, 16))
  """
  features, units = _checks.check_params(params, GATES)
  batch, _ = _checks.check_inputs(inputs, features, time_major=time_major)
  _validation.check_bool(go_backwards, "go_backwards")
  _validation.check_bool(time_major, "time_major")
  h0, c0 = _checks.check_states(initial_state, 2, batch, units)
  cd = _checks.compute_dtype(dtype, inputs, params)
  x = _shapes.batch_major(jnp.asarray(inputs), time_major)
  projected = _shapes.project(x, params["kernel"], params.get("bias"), cd)
  outputs, h, c = _lstm.run(projected[:, :, None], params["recurrent_kernel"][None],
                            h0[None], c0[None], None, dtype=cd, directions=(go_backwards,),
                            interpret=interpret, block_b=block_b)
  return _shapes.batch_major(outputs[:, :, 0], time_major), (h[0], c[0])


def lowered_text(batch: int, steps: int, units: int, *, dtype=jnp.bfloat16,
                 directions: int = 1, device_kind: str = "NVIDIA H100 80GB HBM3") -> dict:
  """The forward and backward kernels lowered for an abstract Hopper GPU on any machine
  (no GPU needed): {"forward": text, "backward": text}, StableHLO with the Mosaic GPU
  module (its wgmma instructions included); no "backward" when it does not fit (see
  `plans`). Lowering checks the shared memory against the 227 KiB per block; compiling
  to PTX needs the CUDA plugin (jax-cuda*-plugin)."""
  from . import _lstm_backward, _lstm_backward_cluster, _lstm_forward   # (only this helper)
  fwd, bwd = _lstm.plans(batch, units, dtype)
  s = jax.ShapeDtypeStruct
  hp, bp, f32 = fwd.hp, fwd.bp, jnp.float32
  state, seq = s((directions, hp, bp), f32), s((directions, steps, hp, bp), f32)
  gates = s((directions, steps, 4, hp, bp), f32)
  w = s((directions, 4, hp, hp), dtype)
  calls: dict[str, tuple] = {
      "forward": (lambda *a: _lstm_forward.forward(fwd, *a, save=True, interpret=False),
                  (gates, w, s((directions, hp, bp), dtype), state))}
  if bwd is not None:
    module = _lstm_backward_cluster if bwd.cluster > 1 else _lstm_backward
    calls["backward"] = (lambda *a: module.backward(bwd, *a, interpret=False),
                         (seq, gates, seq, state, w, state, state))
  device = jax.sharding.AbstractDevice(device_kind=device_kind, num_cores=132,
                                       platform="gpu")
  mesh = jax.sharding.AbstractMesh((1,), ("x",), abstract_device=device)
  out = {}
  with jax.sharding.use_abstract_mesh(mesh):
    for name, (fn, args) in calls.items():
      out[name] = jax.jit(fn).trace(*args).lower(lowering_platforms=("cuda",)).as_text()
  return out
