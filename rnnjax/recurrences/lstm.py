"""The LSTM recurrence (`dense.py` with the LSTM's math) under its historical names:
`recurrence` over projected inputs, `projected_recurrence` with the input projection
inside the loop, `run` with right padding given as lengths. Time-major (T, B, ...)."""

from . import dense
from ._lstm_math import LSTM
from .dense import valid_steps as valid_steps


def recurrence(xs, w, h0, c0, valid, reset=None):
  """xs (T, B, 4U) projected inputs, w (U, 4U), h0, c0 (B, U), valid, reset (T, B) bool
  or None. Returns (hs (T, B, U), hT, cT (B, U))."""
  hs, (h, c) = dense.recurrence(LSTM, xs, w, (h0, c0), valid, reset)
  return hs, h, c


def projected_recurrence(x, kernel, bias, w, h0, c0, valid, reset=None):
  """`recurrence` with x (T, B, F) projected inside the loop by kernel (F, 4U), bias (4U,)."""
  hs, (h, c) = dense.recurrence(LSTM, x, w, (h0, c0), valid, reset,
                                projection=(kernel, bias))
  return hs, h, c


def run(inputs, recurrent_kernel, h0, c0, lengths, *, go_backwards: bool,
        zero_output_for_mask: bool = False, projection=None):
  """One direction on time-major inputs ((T, B, 4U), or (T, B, F) with `projection`) in
  processing order; lengths (B,) int or None (right padding, in input time order).
  Returns outputs (T, B, U), h, c (B, U), float32."""
  valid = valid_steps(lengths, inputs.shape[0], go_backwards)
  outputs, _, (h, c) = dense.run(LSTM, inputs, recurrent_kernel, (h0, c0), valid,
                                 zero_output_for_mask=zero_output_for_mask,
                                 projection=projection)
  return outputs, h, c
