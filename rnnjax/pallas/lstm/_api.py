"""The public fused LSTM functions: one direction (`fused_lstm`), both directions in one
launch (`fused_bidirectional_lstm`), and the recurrence on projected inputs that the
layers' dispatch calls (`run`). The scaffold is `pallas.gated`; the LSTM's math is in
`_cell`."""

import jax

from ...types import Array, ArrayLike, DTypeLike, Params
from .. import gated
from ._cell import SPEC


def run(projected, recurrent_kernels, h0, c0, lengths, *, dtype, directions,
        mask=None, reset=None, zero_output_for_mask=False, interpret=False, block_b=None,
        block_h=None, precision=None):
  """The fused LSTM recurrence for D directions sharing one launch.

  Args:
    projected: (B, T, D, 4U) = x @ kernel + bias (kept in float32, as the scan keeps it).
    recurrent_kernels: (D, U, 4U) Keras layout.
    h0, c0: (D, B, U) float32.
    lengths: (B,) int or None.
    dtype: compute dtype (float32 or bfloat16) of the kernel's operands and outputs.
    directions: per direction, whether it runs backwards (Keras go_backwards).
    mask, reset: (B, T, D) bool or None, input time order: the steps to skip and the
      segment starts (the scan engine's `mask` and `reset`; see `gated.run`).
    zero_output_for_mask, interpret, block_b, block_h, precision: as `fused_lstm`.

  Returns:
    outputs (B, T, D, U) in `dtype`, each direction in its processing order;
    h, c (D, B, U) float32 final states.
  """
  outputs, (h, c) = gated.run(
      SPEC, projected, recurrent_kernels, None, (h0, c0), lengths, dtype=dtype,
      directions=directions, mask=mask, reset=reset,
      zero_output_for_mask=zero_output_for_mask, interpret=interpret,
      block_b=block_b, block_h=block_h, precision=precision)
  return outputs, h, c


def fused_lstm(params: Params, inputs: ArrayLike, *,
               initial_state: tuple[ArrayLike, ArrayLike] | None = None,
               seq_lengths: ArrayLike | None = None,
               mask: ArrayLike | None = None, reset: ArrayLike | None = None,
               go_backwards: bool = False, zero_output_for_mask: bool = False,
               time_major: bool = False, dtype: DTypeLike | None = None,
               implementation: str = "auto",
               interpret: bool | None = None, block_b: int | None = None,
               block_h: int | None = None, precision: jax.lax.PrecisionLike = None,
               ) -> tuple[Array, tuple[Array, Array]]:
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
    mask: (B, T) (or (T, B)) bool, False at the steps to skip, anywhere (holes, left
      padding, fully masked rows): the state is kept there and the output is the incoming
      h (0 with zero_output_for_mask); masked inputs are zeroed first. Combines with
      seq_lengths.
    reset: (B, T) (or (T, B)) bool, True where the state is set back to initial_state
      just before that step (also at a masked step): episode boundaries.
    go_backwards: read time in reverse; outputs are in processing order (output k is the
      output after reading x[T-1-k]).
    dtype: compute dtype, float32 or bfloat16 (default: promotion of inputs and kernel).
    implementation: "pallas" (the kernel; interpret mode off the GPU), "reference" (the
      pure-JAX lax.scan), or "auto" (the kernel on a GPU when supported and inside the
      compile-verified envelope, `rnnjax.pallas.compile_envelope`; else the reference).
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
  outputs, state = gated.one_direction(SPEC, **locals())   # locals(): the arguments
  return outputs, state


def fused_bidirectional_lstm(forward_params: Params, backward_params: Params,
                             inputs: ArrayLike, *,
                             initial_state: tuple[ArrayLike, ...] | None = None,
                             seq_lengths: ArrayLike | None = None,
                             mask: ArrayLike | None = None, reset: ArrayLike | None = None,
                             zero_output_for_mask: bool = False,
                             time_major: bool = False, dtype: DTypeLike | None = None,
                             implementation: str = "auto", interpret: bool | None = None,
                             block_b: int | None = None, block_h: int | None = None,
                             precision: jax.lax.PrecisionLike = None,
                             ) -> tuple[Array, Array, tuple[Array, Array], tuple[Array, Array]]:
  """Forward and backward LSTM over the same inputs, fused into one kernel call: grid
  axis 0 is the direction, so the two recurrences run side by side on the GPU, and one
  matmul projects the inputs for both.

  Equivalent to `fused_lstm(forward_params, inputs)` and
  `fused_lstm(backward_params, inputs, go_backwards=True)` with the same `seq_lengths`;
  merging the two (Keras Bidirectional's merge_mode, re-reversing the backward
  sequence) is left to the caller.

  Args:
    forward_params: Keras-layout LSTM params (see `fused_lstm`) of the forward direction.
    backward_params: the backward direction's, with the same F and U.
    inputs: (B, T, F), or (T, B, F) when time_major.
    initial_state: None or (h_f, c_f, h_b, c_b), each (B, U) (Keras Bidirectional order).

  `seq_lengths`, `mask`, `reset` (the same arrays for both directions, input time
  order), `zero_output_for_mask`, `dtype`, `implementation`, `interpret`,
  `block_b`, `block_h` and `precision` are as in `fused_lstm`.

  Returns:
    (forward_outputs, backward_outputs, (h_f, c_f), (h_b, c_b)): outputs (B, T, U) (or
    (T, B, U)) in the compute dtype, backward_outputs in processing order (index k is the
    output after reading x[T-1-k], as `LSTM(go_backwards=True)` returns it); states
    (B, U) float32.

  >>> import jax, jax.numpy as jnp, rnnjax as rj
  >>> x = jnp.ones((2, 5, 3))
  >>> pf = rj.LSTM(4).init(jax.random.key(0), x)
  >>> pb = rj.LSTM(4).init(jax.random.key(1), x)
  >>> yf, yb, (hf, cf), (hb, cb) = rj.kernels.fused_bidirectional_lstm(
  ...     pf, pb, x, implementation="reference")
  >>> yf.shape, yb.shape, hb.shape
  ((2, 5, 4), (2, 5, 4), (2, 4))
  """
  (yf, yb), (sf, sb) = gated.both_directions(SPEC, **locals())   # the arguments
  return yf, yb, sf, sb
