"""The fused recurrence of any gated cell on projected inputs: the layout change, padding,
and the recurrence as a `jax.custom_jvp` over the forward and backward kernels.

Why a custom JVP, and how reverse mode still runs the backward kernel:
  - primal: the forward kernel (no residuals);
  - jvp rule: the forward kernel saving its residuals (`_forward_saving`), then the
    tangent as a linear map (`_linear_map`) of the residuals and the input tangents.
    Forward mode evaluates that map in plain JAX (the transpose of `_plain.backward`, a
    forward scan); reverse mode transposes it into the backward kernel (`_backward`),
    the same kernels as a custom VJP would run, with the same residuals.
  - every higher order (Hessians, grad of grad, jvp of grad) differentiates plain JAX:
    `_forward_saving`'s jvp is that of `_plain.forward`, and the map's jvp that of its
    plain-JAX directions. A Pallas kernel's loop is never differentiated.
Backward: the backward kernel returns the gradient of the projection slots and the
initial states' gradients; dW_hh (and the gradient of the cell's vectors) are
time-parallel reductions here, and autodiff of the caller's projection gives dx, dkernel
and dbias as further time-parallel matmuls.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp

from .. import _linear_map
from . import _backward, _forward, _pallas, _plain, _shapes, _tiling
from ._gates import GateSpec
from ._pallas import F32
from ._tiling import KernelOptions


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1))
def _forward_saving(spec: GateSpec, opts: KernelOptions, xp, w, vectors, states, lengths):
  """The forward kernel with its residuals: (hs, final states, residuals)."""
  return _forward.forward(spec, xp, w, vectors, states, lengths, opts, save=True)


@_forward_saving.defjvp
def _forward_saving_jvp(spec, opts, primals, tangents):
  return jax.jvp(functools.partial(_plain.forward, spec, opts=opts), primals, tangents)


def _gradients(spec, opts, backward, res, cts):
  """(dxp, dw, dvectors, dstates) from the residuals and the cotangents of (hs, final),
  with `backward` the backward kernel or its plain-JAX twin."""
  w, states, lengths, hs, (saved, *seqs) = res
  dhs, dfinal = cts
  # The backward step reads the backward state before and after each step: h's sequence
  # is the output; another state's was saved by the forward.
  seq = hs if spec.backward_state == 0 else seqs[0]
  dxp, extra, dstates = backward(
      spec, dhs, tuple(d.astype(F32) for d in dfinal), saved, seq,
      states[spec.backward_state], jnp.swapaxes(w, -1, -2), lengths, opts, dz_dtype=F32)
  dgates, dvectors = spec.recurrent_grads(dxp, extra)
  h_prev = _shapes.previous_states_in_input_order(hs, states[0], opts.directions,
                                                  lengths if opts.masked else None)
  dw = jnp.einsum("btdi,btdkj->dkij", h_prev, dgates, preferred_element_type=F32)
  return dxp, dw.astype(w.dtype), dvectors, dstates


@dataclasses.dataclass(frozen=True)
class _Tangent:
  """The recurrence's tangent as a `_linear_map` rule. Flat operands: residuals (w,
  *states, lengths, hs, *residuals); linear (dxp, dw, *dvectors, *dstates); outputs
  (dhs, *dfinal)."""

  spec: GateSpec
  opts: KernelOptions

  def _residuals(self, flat):
    ns = self.spec.states
    w, states, (lengths, hs, *residuals) = flat[0], flat[1:1 + ns], flat[1 + ns:]
    return w, tuple(states), lengths, hs, tuple(residuals)

  def _transpose(self, backward, res, ct):
    dhs, *dfinal = ct
    dxp, dw, dvectors, dstates = _gradients(self.spec, self.opts, backward,
                                            self._residuals(res), (dhs, tuple(dfinal)))
    return (dxp, dw, *dvectors, *dstates)

  def transpose(self, res, ct):
    return self._transpose(_backward.backward, res, ct)

  def transpose_reference(self, res, ct):
    return self._transpose(_plain.backward, res, ct)

  def forward(self, res, lin):
    # The transpose of a linear map's transpose is the map: the vjp of the plain
    # backward with respect to its (linear) cotangent argument.
    _, states, _, hs, _ = self._residuals(res)
    return _linear_map.transpose_linear(lambda ct: self.transpose_reference(res, ct),
                                        (hs, *states), lin, others=res)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1))
def recurrence(spec: GateSpec, opts: KernelOptions, xp, w, vectors, states, lengths):
  """The kernel recurrence on padded layouts (shapes in `_forward.forward`): (hs, final
  states)."""
  hs, final, _ = _forward.forward(spec, xp, w, vectors, states, lengths, opts, save=False)
  return hs, final


@recurrence.defjvp
def _recurrence_jvp(spec, opts, primals, tangents):
  xp, w, vectors, states, lengths = primals
  dxp, dw, dvectors, dstates, _ = tangents
  hs, final, residuals = _forward_saving(spec, opts, xp, w, vectors, states, lengths)
  dhs, *dfinal = _linear_map.apply(_Tangent(spec, opts),
                                   (w, *states, lengths, hs, *residuals),
                                   (dxp, dw, *dvectors, *dstates))
  return (hs, final), (dhs, tuple(dfinal))


def run(spec: GateSpec, projected, recurrent_kernels, recurrent_bias, states, lengths, *,
        dtype, directions, mask=None, reset=None, zero_output_for_mask=False,
        interpret=False, block_b=None, block_h=None, precision=None):
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
    mask: (B, T, D) bool or None, input time order: False at the steps to skip (the
      scan engine's semantics: the state is kept, the output there is the incoming h).
    reset: (B, T, D) bool or None, input time order: True where the state is set back to
      the initial state just before the step (also at a masked step). With a mask or
      resets the kernels read step flags (`KernelOptions.masked`); lengths still apply.

  Returns:
    outputs (B, T, D, U) in `dtype`, each direction in its processing order; the final
    states (D, B, U) float32, a tuple.
  """
  b, steps, _, gu = projected.shape
  u = gu // spec.gates
  masked = mask is not None or reset is not None
  opts = spec.options(batch=b, units=u, dtype=dtype, directions=directions,
                      interpret=interpret, block_b=block_b, block_h=block_h,
                      precision=precision, masked=masked)
  hp, bp = _tiling.units_pad(u, opts.block_h), _tiling.batch_pad(b, opts.block_b)
  folded, vectors = spec.fold_bias(projected.astype(F32), recurrent_bias)
  xp = _shapes.projection_slots(folded, spec.gates, bp, hp)
  w = _shapes.recurrent_blocks(recurrent_kernels.astype(dtype), spec.gates, hp)
  if masked:
    padded = _shapes.step_flags(mask, reset, lengths, b, steps, bp)
  else:
    padded = _shapes.pad_lengths(lengths, b, steps, bp)
  hs, final = recurrence(spec, opts, xp, w, tuple(_shapes.pad_axis(v, 1, hp) for v in vectors),
                         tuple(_shapes.pad_states(s, bp, hp) for s in states), padded)
  outputs = hs[:b, :, :, :u]
  if zero_output_for_mask and masked:
    valid = _shapes.valid_in_processing_order_of_flags(padded[:b], directions)
    outputs = jnp.where(valid[..., None], outputs, jnp.zeros((), outputs.dtype))
  elif zero_output_for_mask and lengths is not None:
    valid = jnp.stack([_shapes.valid_in_processing_order(padded[:b], steps, rev)
                       for rev in directions], axis=2)
    outputs = jnp.where(valid[..., None], outputs, jnp.zeros((), outputs.dtype))
  return outputs, tuple(s[:, :b, :u] for s in final)
