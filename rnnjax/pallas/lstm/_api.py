"""The public fused LSTM: argument checks, the input projection (one XLA matmul), the
layout change, and the recurrence as a `jax.custom_vjp` over the Pallas kernels.

Backward: the reverse-time kernel (`_bwd`) returns dz (the gradient of the projected
inputs) and the initial-state gradients; dW_hh is one time-parallel matmul over all
steps here, and autodiff of the projection gives dx, dkernel and dbias as further
time-parallel matmuls.
"""

import functools

import jax
import jax.numpy as jnp

from .. import _checks, _shapes, _tiling
from .._pallas import F32
from .._tiling import KernelOptions
from . import _bwd, _config, _fwd, _layout, _reference


@functools.partial(jax.custom_vjp, nondiff_argnums=(5,))
def recurrence(xp, w, h0, c0, lengths, opts: KernelOptions):
  """The kernel recurrence on padded layouts (shapes in `_fwd.forward`): (hs, hT, cT)."""
  return tuple(_fwd.forward(xp, w, h0, c0, lengths, opts, save=False))


def _recurrence_fwd(xp, w, h0, c0, lengths, opts):
  hs, hT, cT, gates, cs = _fwd.forward(xp, w, h0, c0, lengths, opts, save=True)
  return (hs, hT, cT), (w, h0, c0, lengths, hs, gates, cs)


def _recurrence_bwd(opts, res, cts):
  w, h0, c0, lengths, hs, gates, cs = res
  dhs, dhT, dcT = cts
  wt = jnp.swapaxes(w, -1, -2)
  dz, dh0, dc0 = _bwd.backward(dhs, dhT.astype(F32), dcT.astype(F32), gates, cs, c0, wt,
                               lengths, opts, dz_dtype=F32)
  h_prev = _shapes.previous_states_in_input_order(hs, h0, opts.directions)
  dw = jnp.einsum("btdi,btdkj->dkij", h_prev, dz, preferred_element_type=F32)
  return dz, dw.astype(w.dtype), dh0, dc0, None


recurrence.defvjp(_recurrence_fwd, _recurrence_bwd)


def run(projected, recurrent_kernels, h0, c0, lengths, *, dtype, directions,
        zero_output_for_mask=False, interpret=False, block_b=None, block_h=None,
        precision=None):
  """The fused recurrence for D directions sharing one launch.

  Args:
    projected: (B, T, D, 4U) = x @ kernel + bias (kept in float32, as the scan keeps it).
    recurrent_kernels: (D, U, 4U) Keras layout.
    h0, c0: (D, B, U) float32.
    lengths: (B,) int or None.
    dtype: compute dtype (float32 or bfloat16) of the kernel's operands and outputs.
    directions: per direction, whether it runs backwards (Keras go_backwards).

  Returns:
    outputs (B, T, D, U) in `dtype`, each direction in its processing order;
    h, c (D, B, U) float32 final states.
  """
  b, steps, d, gu = projected.shape
  u = gu // _config.GATES
  opts = _config.options(batch=b, units=u, dtype=dtype, directions=directions,
                         interpret=interpret, block_b=block_b, block_h=block_h,
                         precision=precision)
  hp, bp = _tiling.units_pad(u, opts.block_h), _tiling.batch_pad(b, opts.block_b)
  xp = _layout.projection_slots(projected.astype(F32), bp, hp)
  w = _layout.recurrent_blocks(recurrent_kernels.astype(dtype), hp)
  padded = _shapes.pad_lengths(lengths, b, steps, bp)
  hs, hT, cT = recurrence(xp, w, _shapes.pad_states(h0, bp, hp),
                          _shapes.pad_states(c0, bp, hp), padded, opts)
  outputs = hs[:b, :, :, :u]
  if zero_output_for_mask and lengths is not None:
    valid = jnp.stack([_shapes.valid_in_processing_order(padded[:b], steps, rev)
                       for rev in directions], axis=2)
    outputs = jnp.where(valid[..., None], outputs, jnp.zeros((), outputs.dtype))
  return outputs, hT[:, :b, :u], cT[:, :b, :u]


def fused_lstm(params, inputs, *, initial_state=None, seq_lengths=None,
               go_backwards: bool = False, zero_output_for_mask: bool = False,
               time_major: bool = False, dtype=None, implementation: str = "auto",
               interpret: bool | None = None, block_b: int | None = None,
               block_h: int | None = None, precision=None):
  """A Keras-semantics LSTM (tanh, sigmoid) as one fused Pallas kernel, with a backward.

  Args:
    params: {"kernel": (F, 4U), "recurrent_kernel": (U, 4U), optional "bias": (4U,)}, the
      Keras layout (gates i, f, c, o) that `rj.LSTM.init` returns.
    inputs: (B, T, F), or (T, B, F) when time_major.
    initial_state: (h, c), each (B, U); zeros when None.
    seq_lengths: (B,) int, valid length of each row (right padding): the state is frozen
      after it; the output at a padded step is the previous h, or 0 with
      zero_output_for_mask. With go_backwards the pads are read first and keep the
      initial state (as rnnjax's scan does).
    go_backwards: read time in reverse; outputs are in processing order (output k is the
      output after reading x[T-1-k]).
    dtype: compute dtype, float32 or bfloat16 (default: promotion of inputs and kernel).
    implementation: "pallas" (the kernel; interpret mode off the GPU), "reference" (the
      pure-JAX lax.scan), or "auto" (the kernel on a GPU when supported, else reference).
    interpret: None: interpret mode unless on a GPU; or force it either way.
    block_b: batch rows per kernel program (power of two >= 16); None: heuristic.
    block_h: units per hidden chunk (power of two >= 16, at most 256 for bfloat16, 128
      for float32); units are padded to a multiple. None: one chunk up to that size.
    precision: precision of the kernel's float32 dots (None: TF32 on the GPU).

  Returns:
    (outputs (B, T, U) (or (T, B, U)) in the compute dtype, (h, c) each (B, U) float32).

  >>> import jax, jax.numpy as jnp, rnnjax as rj
  >>> x = jnp.ones((2, 5, 3))
  >>> params = rj.LSTM(4).init(jax.random.key(0), x)
  >>> out, (h, c) = rj.kernels.fused_lstm(params, x, implementation="reference")
  >>> out.shape, h.shape
  ((2, 5, 4), (2, 4))
  """
  features, units = _checks.check_params(params, _config.GATES)
  batch, _ = _checks.check_inputs(inputs, features, time_major=time_major)
  for name, flag in (("go_backwards", go_backwards), ("time_major", time_major),
                     ("zero_output_for_mask", zero_output_for_mask)):
    _checks.check_bool(flag, name)
  h0, c0 = _checks.check_states(initial_state, 2, batch, units)
  lengths = _checks.check_lengths(seq_lengths, batch)
  cd = _checks.compute_dtype(dtype, inputs, params)
  _tiling.check_block(block_b, "block_b")
  _tiling.check_block(block_h, "block_h", cd)
  impl, interpret = _checks.resolve(implementation, _config.unsupported_reason(cd), interpret)
  x = _shapes.batch_major(jnp.asarray(inputs), time_major)
  if impl == "reference":
    outputs, h, c = _reference.lstm(
        x, params["kernel"], params["recurrent_kernel"], params.get("bias"), h0, c0, lengths,
        go_backwards=go_backwards, zero_output_for_mask=zero_output_for_mask, dtype=cd)
  else:
    projected = _shapes.project(x, params["kernel"], params.get("bias"), cd)
    outputs, h, c = run(projected[:, :, None], params["recurrent_kernel"][None], h0[None],
                        c0[None], lengths, dtype=cd, directions=(go_backwards,),
                        zero_output_for_mask=zero_output_for_mask, interpret=interpret,
                        block_b=block_b, block_h=block_h, precision=precision)
    outputs, h, c = outputs[:, :, 0], h[0], c[0]
  return _shapes.batch_major(outputs, time_major), (h, c)
