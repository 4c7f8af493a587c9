"""The public fused GRU (Keras reset_after=True), and the recurrence on projected inputs
that the layers' dispatch calls (`run`). The scaffold is `pallas.gated`; the GRU's math
and bias folding are in `_cell`."""

import jax

from ...types import Array, ArrayLike, DTypeLike, Params
from .. import gated
from ._cell import SPEC


def run(projected, recurrent_kernels, recurrent_bias, h0, lengths, *, dtype, directions,
        mask=None, reset=None, zero_output_for_mask=False, interpret=False, block_b=None,
        block_h=None, precision=None):
  """The fused GRU recurrence for D directions sharing one launch.

  Args:
    projected: (B, T, D, 3U) = x @ kernel + input bias (float32 preferred).
    recurrent_kernels: (D, U, 3U) Keras layout; recurrent_bias: (D, 3U) or None.
    h0: (D, B, U) float32; lengths: (B,) int or None.
    dtype: compute dtype of the kernel's operands and outputs.
    directions: per direction, whether it runs backwards.
    mask, reset: (B, T, D) bool or None, input time order: the steps to skip and the
      segment starts (the scan engine's `mask` and `reset`; see `gated.run`).
    zero_output_for_mask, interpret, block_b, block_h, precision: as `fused_lstm`.

  Returns:
    outputs (B, T, D, U) in `dtype`, each direction in its processing order;
    h (D, B, U) float32 final state.
  """
  outputs, (h,) = gated.run(
      SPEC, projected, recurrent_kernels, recurrent_bias, (h0,), lengths, dtype=dtype,
      directions=directions, mask=mask, reset=reset,
      zero_output_for_mask=zero_output_for_mask, interpret=interpret,
      block_b=block_b, block_h=block_h, precision=precision)
  return outputs, h


def fused_gru(params: Params, inputs: ArrayLike, *,
              initial_state: ArrayLike | tuple[ArrayLike] | None = None,
              seq_lengths: ArrayLike | None = None,
              mask: ArrayLike | None = None, reset: ArrayLike | None = None,
              go_backwards: bool = False, zero_output_for_mask: bool = False,
              time_major: bool = False, dtype: DTypeLike | None = None,
              implementation: str = "auto",
              interpret: bool | None = None, block_b: int | None = None,
              block_h: int | None = None, precision: jax.lax.PrecisionLike = None,
              ) -> tuple[Array, Array]:
  """A Keras-semantics GRU (reset_after=True, tanh, sigmoid) as one fused Pallas kernel.

  Args:
    params: {"kernel": (F, 3U), "recurrent_kernel": (U, 3U), optional "bias": (2, 3U)},
      the Keras layout (gates z, r, h; bias row 0 input, row 1 recurrent) that
      `rj.GRU(reset_after=True).init` returns.
    inputs: (B, T, F), or (T, B, F) when time_major.
    initial_state: h (B, U) or (h,); zeros when None.

  The other arguments are those of `fused_lstm`.

  Returns:
    (outputs (B, T, U) (or (T, B, U)) in the compute dtype, h (B, U) float32).

  >>> import jax, jax.numpy as jnp, rnnjax as rj
  >>> x = jnp.ones((2, 5, 3))
  >>> params = rj.GRU(4).init(jax.random.key(0), x)
  >>> out, h = rj.kernels.fused_gru(params, x, implementation="reference")
  >>> out.shape, h.shape
  ((2, 5, 4), (2, 4))
  """
  outputs, (h,) = gated.one_direction(SPEC, **locals())   # locals(): the arguments
  return outputs, h
