"""The gate spec (`GateSpec`), what the shared kernel code knows of a gated cell, and
what a cell's backward step returns (`StepGrads`); see `gated` for the scaffold."""

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import jax

from . import _envelope, _tiling


class StepGrads(NamedTuple):
  """A backward step's results for one hidden chunk, each (bB, block_h) float32.

  projection: G gradients of the projection slots (written at input-order time t).
  extra: `GateSpec.extra_grads` further per-step gradients written at time t (GRU: dq).
  products: G operands of the recurrent product: dh <- direct + sum_k products[k] @ W_k^T.
  direct: the term of dh that skips the recurrent product (GRU: dh z), or None.
  carried: the new gradients of states 1, 2, ... (LSTM: dc), before masking.
  """

  projection: tuple
  extra: tuple
  products: tuple
  direct: jax.Array | None
  carried: tuple


def no_recurrent_bias(projected, recurrent_bias):
  """`GateSpec.fold_bias` of a cell without a recurrent bias: nothing to fold, no vectors."""
  if recurrent_bias is not None:
    raise ValueError(f"recurrent_bias must be None for this cell, got shape "
                     f"{tuple(recurrent_bias.shape)}.")
  return projected, ()


def products_are_projection(dxp, extra):
  """`GateSpec.recurrent_grads` of a cell whose recurrent products' operands are the
  projection slots' gradients (every gate adds x @ W_in[k] + h @ W_k): no vectors."""
  return dxp, ()


@dataclasses.dataclass(frozen=True)
class GateSpec:
  """A gated cell for the kernels (hashable: a static argument of the custom JVP).

  name: "lstm" or "gru": the kernels are named rnnjax_{name}_fwd and rnnjax_{name}_bwd.
  gates: G, the gate column blocks of the Keras kernels (the projection slots).
  residual_slots: per-step gate values the forward saves for the backward.
  states: the carried states (B, U); state 0 is h, the output.
  backward_state: the state whose value before and after each step the backward step
    reads (LSTM: 1, c; GRU: 0, h). A state other than h has its sequence saved.
  bias_rows: the Keras bias layout: None for one (G*U,) vector, 2 for (2, G*U) rows
    (input, recurrent).
  vectors: (D, Hp) float32 per-direction vectors the forward kernel reads (GRU: 1, the
    candidate's recurrent bias).
  extra_grads: per-step gradient sequences the backward kernel writes besides the
    projection's (GRU: 1, dq).
  forward_step(x, rec, state, vectors) -> (new_state, saved): per hidden chunk, x and rec
    the G slots of the projection and of h @ W (f32), state the states' chunks, vectors
    the vectors' chunks (1, block_h); new_state before masking, saved the
    `residual_slots` values to keep.
  backward_step(d, saved, now, before) -> StepGrads: d the states' gradients (zero on
    masked rows), saved the residuals, now() and before() load the backward state's
    chunk after and before the step.
  fold_bias(projected, recurrent_bias) -> (projected, vectors): projected (B, T, D, G*U)
    float32, recurrent_bias (D, G*U) or None; vectors (D, U) float32 each.
  recurrent_grads(dxp, extra) -> (dgates, dvectors): from the backward kernel's outputs
    (Bp, T, D, G, Hp) and (Bp, T, D, Hp) each, the recurrent products' operands
    (Bp, T, D, G, Hp) (dW = h_prev^T dgates) and the vectors' gradients (D, Hp).
  reference(x, kernel, recurrent_kernel, bias, state_0, ..., lengths, *, go_backwards,
    zero_output_for_mask, dtype, mask, reset) -> (outputs, final state_0, ...): the
    pure-JAX cell.
  """

  name: str
  gates: int
  residual_slots: int
  states: int
  backward_state: int
  forward_step: Callable
  backward_step: Callable
  reference: Callable
  bias_rows: int | None = None
  vectors: int = 0
  extra_grads: int = 0
  fold_bias: Callable = no_recurrent_bias
  recurrent_grads: Callable = products_are_projection

  @property
  def saved_states(self) -> tuple[int, ...]:
    """States whose sequence the forward saves (h's is the output sequence itself)."""
    return () if self.backward_state == 0 else (self.backward_state,)

  def split_bias(self, params) -> tuple:
    """(input bias (G*U,), recurrent bias (G*U,) or None) of Keras-layout params; (None,
    None) without a bias."""
    bias = params.get("bias")
    if bias is None:
      return None, None
    return (bias, None) if self.bias_rows is None else (bias[0], bias[1])

  def options(self, *, batch, units, dtype, directions, interpret, block_b=None,
              block_h=None, precision=None, masked=False) -> _tiling.KernelOptions:
    """Kernel options for a (batch, units) problem: the first tiling the compile check
    verified (see `_envelope.choose`)."""
    del batch   # one program per batch tile whatever the batch
    return _envelope.choose(kind=self.name, units=units, gates=self.gates, dtype=dtype,
                            directions=directions, interpret=interpret, block_b=block_b,
                            block_h=block_h, precision=precision, masked=masked)

  def envelope_reason(self, units, dtype, *, directions=1, precision=None, block_b=None,
                      block_h=None, masked=False) -> str | None:
    """Why the compile check has not verified the kernels for this problem, or None."""
    return _envelope.envelope_reason(self.name, units, dtype, directions=directions,
                                     precision=precision, gates=self.gates,
                                     block_b=block_b, block_h=block_h, masked=masked)

  def unsupported_reason(self, dtype) -> str | None:
    """Why the kernel cannot run this cell in `dtype`, or None (any units runs: the
    kernel tiles the hidden dimension)."""
    return _tiling.dtype_reason(dtype)
