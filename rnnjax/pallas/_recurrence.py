"""The fused recurrence of any gated cell on projected inputs: the layout change, padding,
and the recurrence as a `jax.custom_vjp` over the forward and backward kernels.

Backward: the reverse-time kernel (`_backward`) returns the gradient of the projection
slots and the initial states' gradients; dW_hh (and the gradient of the cell's
vectors) are time-parallel reductions here, and autodiff of the caller's projection
gives dx, dkernel and dbias as further time-parallel matmuls.
"""

import functools

import jax
import jax.numpy as jnp

from . import _backward, _forward, _shapes, _tiling
from ._gates import GateSpec
from ._pallas import F32
from ._tiling import KernelOptions


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def recurrence(spec: GateSpec, opts: KernelOptions, xp, w, vectors, states, lengths):
  """The kernel recurrence on padded layouts (shapes in `_forward.forward`): (hs, final
  states)."""
  hs, final, _ = _forward.forward(spec, xp, w, vectors, states, lengths, opts, save=False)
  return hs, final


def _recurrence_fwd(spec, opts, xp, w, vectors, states, lengths):
  hs, final, residuals = _forward.forward(spec, xp, w, vectors, states, lengths, opts,
                                          save=True)
  return (hs, final), (w, states, lengths, hs, residuals)


def _recurrence_bwd(spec, opts, res, cts):
  w, states, lengths, hs, (saved, *seqs) = res
  dhs, dfinal = cts
  # The backward step reads the backward state before and after each step: h's sequence
  # is the output; another state's was saved by the forward.
  seq = hs if spec.backward_state == 0 else seqs[0]
  dxp, extra, dstates = _backward.backward(
      spec, dhs, tuple(d.astype(F32) for d in dfinal), saved, seq,
      states[spec.backward_state], jnp.swapaxes(w, -1, -2), lengths, opts, dz_dtype=F32)
  dgates, dvectors = spec.recurrent_grads(dxp, extra)
  h_prev = _shapes.previous_states_in_input_order(hs, states[0], opts.directions)
  dw = jnp.einsum("btdi,btdkj->dkij", h_prev, dgates, preferred_element_type=F32)
  return dxp, dw.astype(w.dtype), dvectors, dstates, None


recurrence.defvjp(_recurrence_fwd, _recurrence_bwd)


def run(spec: GateSpec, projected, recurrent_kernels, recurrent_bias, states, lengths, *,
        dtype, directions, zero_output_for_mask=False, interpret=False, block_b=None,
        block_h=None, precision=None):
  """The fused recurrence for D directions sharing one launch.

  Args:
    projected: (B, T, D, G*U) = x @ kernel + input bias (kept in float32, as the scan
      keeps it).
    recurrent_kernels: (D, U, G*U) Keras layout.
    recurrent_bias: (D, G*U) or None (see `GateSpec.fold_bias`).
    states: `spec.states` initial states (D, B, U) float32.
    lengths: (B,) int or None.
    dtype: compute dtype (float32 or bfloat16) of the kernel's operands and outputs.
    directions: per direction, whether it runs backwards (Keras go_backwards).

  Returns:
    outputs (B, T, D, U) in `dtype`, each direction in its processing order; the final
    states (D, B, U) float32, a tuple.
  """
  b, steps, _, gu = projected.shape
  u = gu // spec.gates
  opts = spec.options(batch=b, units=u, dtype=dtype, directions=directions,
                      interpret=interpret, block_b=block_b, block_h=block_h,
                      precision=precision)
  hp, bp = _tiling.units_pad(u, opts.block_h), _tiling.batch_pad(b, opts.block_b)
  folded, vectors = spec.fold_bias(projected.astype(F32), recurrent_bias)
  xp = _shapes.projection_slots(folded, spec.gates, bp, hp)
  w = _shapes.recurrent_blocks(recurrent_kernels.astype(dtype), spec.gates, hp)
  padded = _shapes.pad_lengths(lengths, b, steps, bp)
  hs, final = recurrence(spec, opts, xp, w, tuple(_shapes.pad_axis(v, 1, hp) for v in vectors),
                         tuple(_shapes.pad_states(s, bp, hp) for s in states), padded)
  outputs = hs[:b, :, :, :u]
  if zero_output_for_mask and lengths is not None:
    valid = jnp.stack([_shapes.valid_in_processing_order(padded[:b], steps, rev)
                       for rev in directions], axis=2)
    outputs = jnp.where(valid[..., None], outputs, jnp.zeros((), outputs.dtype))
  return outputs, tuple(s[:, :b, :u] for s in final)
