"""The public fused GRU (Keras reset_after=True): checks, the input projection (one XLA
matmul, with the z and r recurrent biases folded in), the layout change, and the
recurrence as a `jax.custom_vjp` over the Pallas kernels. The backward kernel returns
the projection slots' gradient and dq; dW_hh and the candidate bias gradient are
time-parallel reductions here."""

import functools

import jax
import jax.numpy as jnp

from .. import _checks, _shapes, _tiling
from .._pallas import F32
from .._tiling import KernelOptions
from . import _bwd, _config, _fwd, _layout, _reference


@functools.partial(jax.custom_vjp, nondiff_argnums=(5,))
def recurrence(xp, w, bh, h0, lengths, opts: KernelOptions):
  """The kernel recurrence on padded layouts (shapes in `_fwd.forward`): (hs, hT)."""
  return tuple(_fwd.forward(xp, w, bh, h0, lengths, opts, save=False))


def _recurrence_fwd(xp, w, bh, h0, lengths, opts):
  hs, hT, gates = _fwd.forward(xp, w, bh, h0, lengths, opts, save=True)
  return (hs, hT), (w, h0, lengths, hs, gates)


def _recurrence_bwd(opts, res, cts):
  w, h0, lengths, hs, gates = res
  dhs, dhT = cts
  wt = jnp.swapaxes(w, -1, -2)
  dxp, dq, dh0 = _bwd.backward(dhs, dhT.astype(F32), gates, hs, h0, wt, lengths, opts,
                               dz_dtype=F32)
  h_prev = _shapes.previous_states_in_input_order(hs, h0, opts.directions)
  dgates = jnp.stack([dxp[:, :, :, 0], dxp[:, :, :, 1], dq], axis=3)   # (Bp, T, D, 3, Hp)
  dw = jnp.einsum("btdi,btdkj->dkij", h_prev, dgates, preferred_element_type=F32)
  dbh = jnp.sum(dq, axis=(0, 1))
  return dxp, dw.astype(w.dtype), dbh, dh0, None


recurrence.defvjp(_recurrence_fwd, _recurrence_bwd)


def run(projected, recurrent_kernels, recurrent_bias, h0, lengths, *, dtype, directions,
        zero_output_for_mask=False, interpret=False, block_b=None, block_h=None,
        precision=None):
  """The fused recurrence for D directions sharing one launch.

  Args:
    projected: (B, T, D, 3U) = x @ kernel + input bias (float32 preferred).
    recurrent_kernels: (D, U, 3U) Keras layout; recurrent_bias: (D, 3U) or None.
    h0: (D, B, U) float32; lengths: (B,) int or None.
    dtype: compute dtype of the kernel's operands and outputs.
    directions: per direction, whether it runs backwards.

  Returns:
    outputs (B, T, D, U) in `dtype`, each direction in its processing order;
    h (D, B, U) float32 final state.
  """
  b, steps, d, gu = projected.shape
  u = gu // _config.GATES
  opts = _config.options(batch=b, units=u, dtype=dtype, directions=directions,
                         interpret=interpret, block_b=block_b, block_h=block_h,
                         precision=precision)
  hp, bp = _tiling.units_pad(u, opts.block_h), _tiling.batch_pad(b, opts.block_b)
  folded, bh = _layout.fold_recurrent_bias(projected.astype(F32), recurrent_bias)
  xp = _layout.projection_slots(folded, bp, hp)
  w = _layout.recurrent_blocks(recurrent_kernels.astype(dtype), hp)
  padded = _shapes.pad_lengths(lengths, b, steps, bp)
  hs, hT = recurrence(xp, w, _shapes.pad_axis(bh, 1, hp), _shapes.pad_states(h0, bp, hp),
                      padded, opts)
  outputs = hs[:b, :, :, :u]
  if zero_output_for_mask and lengths is not None:
    valid = jnp.stack([_shapes.valid_in_processing_order(padded[:b], steps, rev)
                       for rev in directions], axis=2)
    outputs = jnp.where(valid[..., None], outputs, jnp.zeros((), outputs.dtype))
  return outputs, hT[:, :b, :u]


def fused_gru(params, inputs, *, initial_state=None, seq_lengths=None,
              go_backwards: bool = False, zero_output_for_mask: bool = False,
              time_major: bool = False, dtype=None, implementation: str = "auto",
              interpret: bool | None = None, block_b: int | None = None,
               block_h: int | None = None, precision=None):
  """A Keras-semantics GRU (reset_after=True, tanh, sigmoid) as one fused Pallas kernel.

  Args:
    params: {"kernel": (F, 3U), "recurrent_kernel": (U, 3U), optional "bias": (2, 3U)},
      the Keras layout (gates z, r, h; bias row 0 input, row 1 recurrent) that
      `rj.GRU(reset_after=True).init` returns.
    inputs: (B, T, F), or (T, B, F) when time_major.
    initial_state: h (B, U) or (h,); zeros when None.
    Other arguments as `fused_lstm`.

  Returns:
    (outputs (B, T, U) (or (T, B, U)) in the compute dtype, h (B, U) float32).

  >>> import jax, jax.numpy as jnp, rnnjax as rj
  >>> x = jnp.ones((2, 5, 3))
  >>> params = rj.GRU(4).init(jax.random.key(0), x)
  >>> out, h = rj.kernels.fused_gru(params, x, implementation="reference")
  >>> out.shape, h.shape
  ((2, 5, 4), (2, 4))
  """
  features, units = _checks.check_params(params, _config.GATES, bias_rows=2)
  batch, _ = _checks.check_inputs(inputs, features, time_major=time_major)
  for name, flag in (("go_backwards", go_backwards), ("time_major", time_major),
                     ("zero_output_for_mask", zero_output_for_mask)):
    _checks.check_bool(flag, name)
  (h0,) = _checks.check_states(initial_state, 1, batch, units)
  lengths = _checks.check_lengths(seq_lengths, batch)
  cd = _checks.compute_dtype(dtype, inputs, params)
  _tiling.check_block(block_b, "block_b")
  _tiling.check_block(block_h, "block_h", cd)
  impl, interpret = _checks.resolve(implementation, _config.unsupported_reason(cd), interpret)
  x = _shapes.batch_major(jnp.asarray(inputs), time_major)
  bias = params.get("bias")
  if impl == "reference":
    outputs, h = _reference.gru(
        x, params["kernel"], params["recurrent_kernel"], bias, h0, lengths,
        go_backwards=go_backwards, zero_output_for_mask=zero_output_for_mask, dtype=cd)
  else:
    projected = _shapes.project(x, params["kernel"], None if bias is None else bias[0], cd)
    outputs, h = run(projected[:, :, None], params["recurrent_kernel"][None],
                     None if bias is None else bias[1][None], h0[None], lengths, dtype=cd,
                     directions=(go_backwards,), zero_output_for_mask=zero_output_for_mask,
                     interpret=interpret, block_b=block_b, block_h=block_h, precision=precision)
    outputs, h = outputs[:, :, 0], h[0]
  return _shapes.batch_major(outputs, time_major), h
