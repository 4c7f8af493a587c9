"""The dense cells' (LSTM, GRU, SimpleRNN) recurrences as plain XLA (no Pallas): the CPU
fast path. One custom JVP for all three (`_driver.py`), each cell's math in its own file.

A `jax.custom_jvp` (not a custom VJP), so that every JAX transform composes with it:
forward mode (jvp, jacfwd, linearize), reverse mode (the linear tangent's transpose),
and every higher order (the rule is plain JAX, so autodiff differentiates it again).

The rule runs the primal scan saving the tangent's coefficients, then the tangent
recurrence, linear in the tangents and split in two:
  - the time-parallel part, dx @ kernel + x @ dkernel + dbias + h_prev @ dW + d(recurrent
    bias), as flat (T*B, ...) matmuls and elementwise terms before the loop;
  - the tangent scan carrying only the state's tangents, with ONE matmul per step.
Reverse mode is the transpose of this: a hand-written reverse scan with one matmul per
step (`_tangent.py`), then JAX's transposes of the hoisted matmuls, the gradients of
kernel, biases, W and x as single GEMMs after the loop.

Everything is time-major (T, B, ...) in processing order; `run` computes in float32.
"""

from typing import Any

import jax
import jax.numpy as jnp

from . import _driver
from ._gru_math import GRU
from ._lstm_math import LSTM
from ._simple_math import ACTIVATIONS, simple_math

F32 = jnp.float32
KINDS = ("lstm", "gru", "simple_rnn")


def cell_math(kind: str, activation: str = "tanh") -> Any:
  """The math object of one cell kind ("lstm", "gru" (reset_after=True), "simple_rnn"
  with `activation` in ("tanh", "relu", "linear"))."""
  if kind == "lstm":
    return LSTM
  if kind == "gru":
    return GRU
  if kind == "simple_rnn":
    return simple_math(activation)
  raise ValueError(f"kind must be one of {KINDS}, got {kind!r}.")


def recurrence(math: Any, inputs, w, state0, valid=None, reset=None, *, projection=None,
               recurrent_bias=None):
  """The recurrence of one direction (differentiable in every array, any order).

  Args:
    math: a `cell_math` object (the cell kind).
    inputs: (T, B, GU) projected inputs, or (T, B, F) when `projection` = (kernel (F, GU),
      bias (GU,)) is given (then projected inside the loop).
    w: (U, GU) recurrent kernel; recurrent_bias: (GU,) (the GRU's) or None.
    state0: the initial state tuple, leaves (B, U).
    valid: (T, B) bool or None (False: the step is masked and keeps the state).
    reset: (T, B) bool or None (True: the state is set back to state0 before the step).

  Returns:
    hs (T, B, U) the carried h after each step (a masked step repeats it), the final
    state tuple.
  """
  return _driver.recurrence(math, inputs, projection, w, recurrent_bias, tuple(state0),
                            valid, reset)


def run(math: Any, inputs, recurrent_kernel, state0, valid=None, reset=None, *,
        zero_output_for_mask: bool = False, projection=None, recurrent_bias=None):
  """`recurrence` in float32, with the scan engine's outputs.

  Returns:
    outputs (T, B, U) (zeros at masked steps with `zero_output_for_mask`, else the
    carried h), last_output (B, U) (the output at each row's last valid step, state0's h
    where none is), the final state tuple, all float32.
  """
  cast = lambda a: None if a is None else jnp.asarray(a).astype(F32)   # noqa: E731
  state0 = tuple(cast(s) for s in state0)
  if projection is not None:
    projection = tuple(cast(a) for a in projection)
  hs, state = recurrence(math, cast(inputs), cast(recurrent_kernel), state0, valid, reset,
                         projection=projection, recurrent_bias=cast(recurrent_bias))
  last = state[0]
  if valid is not None and reset is not None:
    last = _driver.last_valid(hs, state0[0], valid)
  if zero_output_for_mask and valid is not None:
    hs = jnp.where(valid[..., None], hs, jnp.zeros((), hs.dtype))
  return hs, last, state


def valid_steps(lengths, steps: int, go_backwards: bool) -> jax.Array | None:
  """(T, B) bool in processing order, or None when `lengths` (B,) is None."""
  if lengths is None:
    return None
  t = jnp.arange(steps)
  if go_backwards:
    t = steps - 1 - t
  return t[:, None] < jnp.asarray(lengths)[None, :]


__all__ = ["ACTIVATIONS", "KINDS", "cell_math", "recurrence", "run", "valid_steps"]
