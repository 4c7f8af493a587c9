"""The Mosaic GPU LSTM recurrence on projected inputs (`run`, the signature of
`rnnjax.pallas.run_lstm`): layouts, padding, and the kernels as an `_autodiff.Cell` (a
`jax.custom_jvp` whose transpose runs the backward kernel, with dW_hh as one
time-parallel matmul: every JAX transform composes)."""

import dataclasses
from typing import ClassVar

import jax.numpy as jnp

from .. import _interpret
from .._gates import GateSpec
from ..lstm import SPEC
from . import (_autodiff, _layout, _lstm_backward, _lstm_backward_cluster, _lstm_forward,
               _plan, _twin)
from ._common import F32

SUPPORTED_DTYPES = ("bfloat16", "float16")


def plans(batch: int, units: int, dtype, batch_tile: int | None = None):
  """(forward plan, backward plan or None). Each splits W_hh over a cluster of up to 8
  CTAs when it does not fit one (the backward's cluster may be larger than the
  forward's); None when the backward fits no cluster with the forward's padding (the
  forward then runs, its gradient raises). Raises ValueError saying why when not even
  the forward fits."""
  fwd = _plan.plan(batch, units, dtype, units_per_step=4, operand_slots=2,
                   batch_tile=batch_tile, clusters=_plan.CLUSTERS)
  if fwd is None:
    raise ValueError(_plan.fit_reason(batch, units, dtype, operand_slots=2,
                                      clusters=_plan.CLUSTERS))
  bwd = _plan.plan(batch, units, dtype, units_per_step=6, operand_slots=2,
                   batch_tile=fwd.bt, one_warpgroup=True)
  if bwd is None:
    bwd = _lstm_backward_cluster.cluster_plan(batch, units, dtype)
  if bwd is not None and (bwd.hp, bwd.bp) != (fwd.hp, fwd.bp):
    bwd = None   # both kernels must share the padded layout of the residuals
  return fwd, bwd


def unsupported_reason(dtype, *, interpret: bool) -> str | None:
  """Why the Mosaic kernels cannot run in `dtype`, or None. Compiled, wgmma reads h^T
  and dz^T from shared memory in the transposed (MN-major) layout, which Mosaic GPU
  allows for 16-bit operands only ("Only f16 WGMMA supports transposes"); interpret
  mode runs float32 too (tests use it to check the kernels' logic exactly)."""
  name = jnp.dtype(dtype).name
  if name in SUPPORTED_DTYPES or (interpret and name == "float32"):
    return None
  return (f"the Mosaic GPU kernels take dtype bfloat16 or float16 (float32 only in "
          f"interpret mode: its wgmma cannot read the transposed operand), got {name}")


def check_run(dtype, interpret, lengths, block_b, block_h, precision, *, cell: str) -> bool:
  """Checks the arguments the Mosaic kernels do not take (the LSTM's and the GRU's
  `run`); returns the resolved `interpret`. `cell`: "lstm" or "gru", for the message."""
  if lengths is not None:
    raise ValueError("lengths must be None for the Mosaic GPU kernels (no masking yet); "
                     f"use rnnjax.pallas.run_{cell} or the scan for sequences with lengths.")
  for name, value in (("block_h", block_h), ("precision", precision)):
    if value is not None:
      raise ValueError(f"{name} must be None for the Mosaic GPU kernels, got {value!r}.")
  interpret = _interpret.resolve_interpret(interpret)
  reason = unsupported_reason(dtype, interpret=interpret)
  if reason is not None:
    raise ValueError(reason)
  if block_b is not None and block_b not in _plan.BATCH_TILES:
    raise ValueError(f"block_b must be None or one of {_plan.BATCH_TILES}, got {block_b!r}.")
  return interpret


def weight_grad(h0, hs, dz):
  """dW_k[i, j] = sum over steps and batch of h_{t-1}[i] dz_k[j]: one matmul in XLA.
  h0 (D, Hp, Bp), hs (D, T, Hp, Bp), dz (D, T, K, Hp, Bp) -> (D, K, Hp, Hp) float32."""
  h_prev = jnp.concatenate([h0.astype(hs.dtype)[:, None], hs[:, :-1]], axis=1)
  return jnp.einsum("dtib,dtkjb->dkij", h_prev, dz.astype(h_prev.dtype),
                    preferred_element_type=F32)


@dataclasses.dataclass(frozen=True)
class Kernels(_autodiff.Cell):
  """The LSTM's kernels under (forward plan, backward plan or None) for `_autodiff`:
  states (h, c); residuals the activated gates (D, T, 4, Hp, Bp) i, f, g, o and the c
  sequence (D, T, Hp, Bp), float32."""

  plans: tuple
  interpret: bool
  spec: ClassVar[GateSpec] = SPEC

  def forward(self, xp, w, vectors, states, *, save):
    del vectors   # the LSTM has none
    h0, c0 = states
    out = _lstm_forward.forward(self.plans[0], xp, jnp.swapaxes(w, -1, -2),
                                h0.astype(w.dtype), c0, save=save, interpret=self.interpret)
    return (out[0], tuple(out[1:3])) + ((tuple(out[3:]),) if save else ())

  def twin_forward(self, xp, w, vectors, states):
    return _twin.forward(SPEC, xp, w, vectors, states)

  def backward(self, fast, w, states, hs, residuals, dhs, dfinal):
    (h0, c0), (gates, cs), (dh, dc) = states, residuals, dfinal
    if not fast:
      dxp, _, (dh0, dc0) = _twin.backward(SPEC, dhs, dfinal, gates, cs, c0, w)
    elif self.plans[1] is None:
      raise ValueError(
          "no gradient: the Mosaic GPU LSTM backward fits no cluster with the forward's "
          f"padding ({self.plans[0]}): "
          + _plan.fit_reason(hs.shape[-1], w.shape[-1], w.dtype, operand_slots=2,
                             clusters=_plan.CLUSTERS)
          + "; the forward alone runs.")
    else:
      cluster = self.plans[1].cluster > 1
      kernel = (_lstm_backward_cluster if cluster else _lstm_backward).backward
      dxp, dh0, dc0 = kernel(self.plans[1], dhs.astype(F32), gates, cs, c0, w,
                             dh.astype(F32), dc.astype(F32), interpret=self.interpret)
    dw = weight_grad(h0, hs, dxp)
    return dxp, dw.astype(w.dtype), (), (dh0, dc0)


def run(projected, recurrent_kernels, h0, c0, lengths, *, dtype, directions,
        zero_output_for_mask=False, interpret=None, block_b=None, block_h=None,
        precision=None):
  """The Mosaic GPU LSTM recurrence for D directions sharing one launch (the signature
  of `rnnjax.pallas.run_lstm`).

  Args:
    projected: (B, T, D, 4U) = x @ kernel + bias, float32.
    recurrent_kernels: (D, U, 4U) Keras layout (gates i, f, c, o).
    h0, c0: (D, B, U) float32.
    lengths: must be None (masking is not built into these kernels yet).
    dtype: bfloat16 or float16 (float32 only in interpret mode).
    directions: per direction, whether it runs backwards (Keras go_backwards).
    zero_output_for_mask: ignored without lengths.
    interpret: None: Mosaic GPU interpret mode unless on a GPU (or forced).
    block_b: the batch tile (64 or 128); None: the widest that fits.
    block_h, precision: not used (the kernels keep all units in one CTA; the matmul
      operands are 16-bit); must be None.

  Returns:
    outputs (B, T, D, U) in `dtype`, each direction in its processing order; h, c
    (D, B, U) float32.
  """
  del zero_output_for_mask   # only meaningful with lengths
  interpret = check_run(dtype, interpret, lengths, block_b, block_h, precision, cell="lstm")
  b, gu = projected.shape[0], projected.shape[-1]
  units = gu // 4
  fwd, bwd = plans(b, units, dtype, block_b)
  xp = _layout.projection(projected.astype(F32), directions, fwd.hp, fwd.bp)
  w = _layout.recurrent(recurrent_kernels.astype(dtype), fwd.hp)
  states = tuple(_layout.state(s, fwd.hp, fwd.bp).astype(F32) for s in (h0, c0))
  hs, (h, c) = _autodiff.recurrence(Kernels((fwd, bwd), interpret), xp, w, (), states)
  return _layout.outputs(hs, b, units), _layout.unstate(h, b, units), \
      _layout.unstate(c, b, units)
