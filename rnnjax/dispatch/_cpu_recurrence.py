"""The dense cells' fast paths on the CPU (LSTM, GRU, SimpleRNN): the XLA recurrences of
`rnnjax.recurrences.dense`, one custom JVP whose linear tangent has a hand-written
transpose: a backward that trains faster than autodiff of the scan (one matmul per
backward step; weight gradients as single GEMMs after the loop), and which composes with
every transform (forward mode, higher orders). Boolean masks, seq_lengths and resets run
on it with the scan engine's semantics.

Time-major throughout: the inputs (B, T, F) are transposed once (cheap, F is small). The
input projection x_t @ kernel + bias runs inside the forward loop, as the engine does on
the CPU, and its gradients are flat (T*B, ...) matmuls after the reverse loop. With input
dropout the projection is hoisted, since the masks apply to the whole sequence. Masked
inputs arrive zeroed (`SequenceLayer.prepare`), so padding garbage reaches no gradient.
"""

import jax.numpy as jnp

from .. import recurrences
from ..engine import RNNResult
from ._call import Call, CallSpec
from ._fused_rules import fused_reasons, is_activation, loop_reasons

F32 = jnp.dtype(jnp.float32)


def _processing_order(flags, time_major: bool, go_backwards: bool):
  """(B, T) bool (or (T, B) if time_major) -> (T, B) in processing order; None stays."""
  if flags is None:
    return None
  flags = jnp.asarray(flags, bool)
  flags = flags if time_major else flags.T
  return jnp.flip(flags, 0) if go_backwards else flags


class _CpuRecurrence:
  """One dense cell kind's CPU recurrence; subclasses set `name` and the cell's parts."""

  platform = "cpu"
  name = ""
  where = "as a custom-JVP scan recurrence on the CPU"
  together_reason = ("on the CPU each direction runs its own custom-JVP scan recurrence "
                     "(the one-launch kernel is the GPU's)")

  def _cell_reasons(self, spec: CallSpec) -> list[str]:
    return fused_reasons(spec)

  def _math(self, cell):
    raise NotImplementedError

  def _recurrent_bias(self, cell, params):
    del cell, params
    return None

  def declines(self, spec: CallSpec) -> list[str]:
    reasons = self._cell_reasons(spec)
    if spec.compute_dtype is not None:
      for what, dt in (("compute dtype", spec.compute_dtype), ("carry dtype", spec.carry_dtype)):
        if jnp.dtype(dt) != F32:
          reasons.append(f"{what} {jnp.dtype(dt).name} (the CPU custom-JVP recurrence "
                         "supports float32 only)")
          break
    return reasons

  def run(self, call: Call) -> RNNResult:
    cell, o, params = call.spec.cell, call.spec.options, call.params
    x = jnp.asarray(call.inputs)
    x_tm = x if o.time_major else jnp.swapaxes(x, 0, 1)        # (T, B, F)
    if o.go_backwards:
      x_tm = jnp.flip(x_tm, 0)
    dropout = call.dropout
    if dropout is not None and dropout.inputs is not None:
      # masks (N, B, F) broadcast over T: project once, before the loop.
      inputs_tm, projection = cell.project(params, x_tm, dropout=dropout), None
    else:
      bias = cell.input_bias(params)
      if bias is None:
        bias = jnp.zeros((params["kernel"].shape[1],), F32)
      inputs_tm, projection = x_tm, (params["kernel"], bias)
    valid = _processing_order(call.mask, o.time_major, o.go_backwards)
    reset = _processing_order(call.reset, o.time_major, o.go_backwards)
    start = tuple(jnp.asarray(s) for s in call.start)
    outputs, last, state = recurrences.run_dense(
        self._math(cell), inputs_tm, params["recurrent_kernel"], start, valid, reset,
        zero_output_for_mask=o.zero_output_for_mask, projection=projection,
        recurrent_bias=self._recurrent_bias(cell, params))
    sequence = None
    if o.return_sequences:
      sequence = outputs if o.time_major else jnp.swapaxes(outputs, 0, 1)
    return RNNResult(sequence, last, tuple(s.astype(s0.dtype) for s, s0 in zip(state, start)))


class CpuLSTM(_CpuRecurrence):
  name = "cpu_lstm"

  def _math(self, cell):
    return recurrences.cell_math("lstm")


class CpuGRU(_CpuRecurrence):
  name = "cpu_gru"

  def _cell_reasons(self, spec: CallSpec) -> list[str]:
    reasons = fused_reasons(spec)
    if not spec.cell.reset_after:
      reasons.append("reset_after=False (the CPU recurrence implements reset_after=True, "
                     "as cuDNN does)")
    return reasons

  def _math(self, cell):
    return recurrences.cell_math("gru")

  def _recurrent_bias(self, cell, params):
    return params["bias"][1] if cell.use_bias else None


_SIMPLE_ACTIVATIONS = ("tanh", "relu", "linear")


def _simple_activation(cell) -> str | None:
  return next((n for n in _SIMPLE_ACTIVATIONS if is_activation(cell.activation, n)), None)


class CpuSimpleRNN(_CpuRecurrence):
  name = "cpu_simple_rnn"

  def _cell_reasons(self, spec: CallSpec) -> list[str]:
    reasons = []
    if _simple_activation(spec.cell) is None:
      reasons.append(f"activation={spec.cell.activation!r} (the CPU recurrence implements "
                     "tanh, relu and linear)")
    return reasons + loop_reasons(spec)

  def _math(self, cell):
    return recurrences.cell_math("simple_rnn", _simple_activation(cell))


CPU_LSTM = CpuLSTM()
CPU_GRU = CpuGRU()
CPU_SIMPLE_RNN = CpuSimpleRNN()
