"""The LSTM's fast path on the CPU: the XLA recurrence of `rnnjax.recurrences`, a custom
JVP whose linear tangent JAX transposes into a backward that trains faster than autodiff
of the scan (one matmul per backward step; weight gradients as single GEMMs after the
loop), and which composes with every transform (forward mode, higher orders).

Time-major throughout: the inputs (B, T, F) are transposed once (cheap, F is small). The
input projection x_t @ kernel + bias runs inside the forward loop, as the engine does on
the CPU, and its gradients are flat (T*B, ...) matmuls after the reverse loop. With input
dropout the projection is hoisted, since the masks apply to the whole sequence.
"""

import jax.numpy as jnp

from .. import recurrences
from ..engine import RNNResult
from ._call import Call, CallSpec
from ._fused_rules import fused_reasons

F32 = jnp.dtype(jnp.float32)


class CpuLSTM:
  """rnnjax.recurrences.run_lstm for eligible float32 LSTM calls on a CPU."""

  name = "cpu_lstm"
  platform = "cpu"
  # These reported texts still say "custom-VJP" (the recurrence is a custom JVP now):
  # tests and docs quote them verbatim, so renaming them is a change of its own.
  where = "as a custom-VJP scan recurrence on the CPU"
  together_reason = ("on the CPU each direction runs its own custom-VJP scan recurrence "
                     "(the one-launch kernel is the GPU's)")

  def declines(self, spec: CallSpec) -> list[str]:
    reasons = fused_reasons(spec)
    if spec.compute_dtype is not None:
      for what, dt in (("compute dtype", spec.compute_dtype), ("carry dtype", spec.carry_dtype)):
        if jnp.dtype(dt) != F32:
          reasons.append(f"{what} {jnp.dtype(dt).name} (the CPU custom-VJP recurrence "
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
    h0, c0 = (jnp.asarray(s) for s in call.start)
    outputs, h, c = recurrences.run_lstm(
        inputs_tm, params["recurrent_kernel"], h0, c0, call.seq_lengths,
        go_backwards=o.go_backwards, zero_output_for_mask=o.zero_output_for_mask,
        projection=projection)
    sequence = None
    if o.return_sequences:
      sequence = outputs if o.time_major else jnp.swapaxes(outputs, 0, 1)
    return RNNResult(sequence, h, (h.astype(h0.dtype), c.astype(c0.dtype)))


CPU_LSTM = CpuLSTM()
