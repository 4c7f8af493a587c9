"""The Mosaic recurrences as a `jax.custom_jvp` over their kernels, with the structure of
the Triton kernels' (`pallas._recurrence`, whose docstring says why):
  - primal: the forward kernel (no residuals);
  - jvp rule: the forward kernel saving its residuals (`_forward_saving`, whose own jvp
    is that of the plain-JAX twin, `_twin.forward`), then the tangent as a linear map
    (`rnnjax._linear_map`) of the residuals and the input tangents. Its `transpose` is
    the Mosaic backward kernel (and dW as one time-parallel matmul); its plain-JAX
    directions are the twin's backward (`_twin.backward`) and that one's transpose.
So reverse mode runs the Mosaic backward kernel on the Mosaic forward's residuals, as the
former `jax.custom_vjp` did; forward mode (jvp, linearize, jacfwd) runs the forward
kernel and a plain-JAX tangent; every higher order (Hessians, grad of grad) differentiates
the twins, never a kernel's loop; vmap batches the kernels (Pallas adds a grid axis) and
the map's levels.

A cell (`Cell`) supplies its kernels and twins on the Mosaic layouts (`_twin`): xp
(D, T, G, Hp, Bp) float32, w (D, G, Hp, Hp) [dir, gate, in, out] compute dtype, vectors
(D, Hp) float32, states (D, Hp, Bp) float32.
"""

import dataclasses
import functools
from typing import ClassVar

import jax
import jax.numpy as jnp

from ... import _linear_map
from .._gates import GateSpec


class Cell:
  """A cell's Mosaic kernels under fixed plans: a hashable object (a static argument)
  with `spec` (the cell's `GateSpec`: states, vectors) and, on Mosaic layouts,

    forward(xp, w, vectors, states, *, save) -> (hs, finals), or with `save`
      (hs, finals, residuals): the forward kernel (hs (D, T, Hp, Bp) compute dtype,
      finals (D, Hp, Bp) float32 each, residuals a tuple of arrays);
    twin_forward(xp, w, vectors, states) -> (hs, finals, residuals): the same in plain
      JAX (the function differentiated in its place);
    backward(fast, w, states, hs, residuals, dhs, dfinal) -> (dxp, dw, dvectors,
      dstates): the gradients of the inputs from the outputs' cotangents, with the
      backward kernel (`fast`) or its plain-JAX twin.
  """

  spec: ClassVar[GateSpec]

  def forward(self, xp, w, vectors, states, *, save: bool):
    raise NotImplementedError

  def twin_forward(self, xp, w, vectors, states):
    raise NotImplementedError

  def backward(self, fast: bool, w, states, hs, residuals, dhs, dfinal):
    raise NotImplementedError


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _forward_saving(cell: Cell, xp, w, vectors, states):
  """The forward kernel with its residuals: (hs, finals, residuals)."""
  return cell.forward(xp, w, vectors, states, save=True)


@_forward_saving.defjvp
def _forward_saving_jvp(cell, primals, tangents):
  return jax.jvp(cell.twin_forward, primals, tangents)


@dataclasses.dataclass(frozen=True)
class _Tangent:
  """The recurrence's tangent as a `_linear_map` rule. Flat operands: residuals (w,
  *states, hs, *residuals); linear (dxp, dw, *dvectors, *dstates); outputs
  (dhs, *dfinal)."""

  cell: Cell

  def _split(self, res):
    ns = self.cell.spec.states
    w, states, (hs, *residuals) = res[0], tuple(res[1:1 + ns]), res[1 + ns:]
    return w, states, hs, tuple(residuals)

  def _transpose(self, fast, res, ct):
    w, states, hs, residuals = self._split(res)
    dhs, *dfinal = ct
    dxp, dw, dvectors, dstates = self.cell.backward(fast, w, states, hs, residuals, dhs,
                                                    tuple(dfinal))
    return (dxp, dw, *dvectors, *dstates)

  def transpose(self, res, ct):
    return self._transpose(True, res, ct)

  def transpose_reference(self, res, ct):
    return self._transpose(False, res, ct)

  def forward(self, res, lin):
    # The transpose of the plain backward (linear in its cotangents) is the map.
    _, states, hs, _ = self._split(res)
    return _linear_map.transpose_linear(lambda ct: self.transpose_reference(res, ct),
                                        (hs, *states), lin, others=res)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def recurrence(cell: Cell, xp, w, vectors, states):
  """The Mosaic recurrence on kernel layouts: (hs, finals), each as `Cell.forward`."""
  return cell.forward(xp, w, vectors, states, save=False)


@recurrence.defjvp
def _recurrence_jvp(cell, primals, tangents):
  xp, w, vectors, states = primals
  dxp, dw, dvectors, dstates = tangents
  hs, finals, residuals = _forward_saving(cell, xp, w, vectors, states)
  dhs, *dfinals = _linear_map.apply(_Tangent(cell), (w, *states, hs, *residuals),
                                    (dxp, dw, *dvectors, *dstates))
  return (hs, finals), (dhs, tuple(dfinals))
