"""The fused path on the CPU: an eligible LSTM layer call runs its recurrence as a
custom-VJP `lax.scan` (`lstm/_xla.py`) instead of the Pallas kernel, which exists for GPUs.

Time-major throughout: the inputs (B, T, F) are transposed once (cheap, F is small). The
input projection x_t @ kernel + bias runs inside the forward loop, as the engine does on
the CPU, and its gradients (dx, dkernel, dbias) are flat (T*B, ...) matmuls after the
reverse loop. A hoisted projection, batch-major (then transposing the (B, T, 4U) result)
or time-major, measured slower (bench/_cpu_vjp_proto.py, docs/cpu_perf.md); it is kept
for input dropout, whose masks are applied to the whole sequence.
"""

import jax
import jax.numpy as jnp

from ..engine import RNNResult
from ..pallas import _interpret
from ..recurrences import lstm as _xla

F32 = jnp.dtype(jnp.float32)


def available(kind: str | None) -> bool:
  """Whether a call of this layer kind ("LSTM", "GRU", None) can take the CPU fused path:
  an LSTM on a CPU backend, with the Pallas interpret mode not forced."""
  return (kind == "LSTM" and jax.default_backend() == "cpu"
          and not _interpret.interpret_forced())


def dtype_reason(compute, carry) -> str | None:
  """Why the CPU path cannot run these dtypes, or None (it runs float32 only)."""
  for what, dt in (("compute dtype", compute), ("carry dtype", carry)):
    if jnp.dtype(dt) != F32:
      return (f"{what} {jnp.dtype(dt).name} (the CPU custom-VJP recurrence supports "
              "float32 only)")
  return None


def layer_apply(layer, params, inputs, initial_state, seq_lengths=None, *,
                dropout=None) -> RNNResult:
  """An eligible LSTM layer call (see `kernels.fused_layer_apply`) on the CPU.

  inputs (B, T, F) (or (T, B, F) when layer.time_major); initial_state (h, c) each (B, U);
  seq_lengths (B,) int or None; dropout: the cell's masks (input dropout only) or None.
  """
  cell = layer.cell
  x = jnp.asarray(inputs)
  x_tm = x if layer.time_major else jnp.swapaxes(x, 0, 1)        # (T, B, F)
  if layer.go_backwards:
    x_tm = jnp.flip(x_tm, 0)
  if dropout is not None and dropout.inputs is not None:
    # masks (N, B, F) broadcast over T: project once, before the loop (hoisted).
    inputs_tm, projection = cell.project(params, x_tm, dropout=dropout), None   # (T, B, 4U)
  else:
    # x_t @ kernel + bias inside the loop; its gradients are big matmuls after it.
    bias = cell.input_bias(params)
    if bias is None:
      bias = jnp.zeros((params["kernel"].shape[1],), F32)
    inputs_tm, projection = x_tm, (params["kernel"], bias)
  h0, c0 = initial_state
  outputs, h, c = _xla.run(inputs_tm, params["recurrent_kernel"], jnp.asarray(h0),
                           jnp.asarray(c0), seq_lengths, go_backwards=layer.go_backwards,
                           zero_output_for_mask=layer.zero_output_for_mask,
                           projection=projection)
  final_state = (h.astype(jnp.asarray(h0).dtype), c.astype(jnp.asarray(c0).dtype))
  sequence = None
  if layer.return_sequences:
    sequence = outputs if layer.time_major else jnp.swapaxes(outputs, 0, 1)
  return RNNResult(sequence, h, final_state)
