"""The fused path on the CPU: an eligible LSTM layer call runs its recurrence as a
custom-VJP `lax.scan` (`lstm/_xla.py`) instead of the Pallas kernel, which exists for GPUs.

Time-major throughout: the inputs (B, T, F) are transposed once (cheap, F is small) and
projected as one flat (T*B, F) @ (F, 4U) matmul; a batch-major projection followed by a
transpose of the (B, T, 4U) result is slower on the CPU (bench/_cpu_vjp_proto.py).
"""

import jax
import jax.numpy as jnp

from ..engine import RNNResult
from . import _interpret
from .lstm import _xla

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
  steps, batch, features = x_tm.shape
  if dropout is not None and dropout.inputs is not None:   # masks (N, B, F) broadcast over T
    projected = cell.project(params, x_tm, dropout=dropout)    # (T, B, 4U)
  else:
    # A 2-D (T*B, F) matmul: its kernel gradient is one GEMM over (T*B); the 3-D form
    # makes XLA transpose dz first (about 20% of the train step at (64, 28, 28, 64)).
    projected = cell.project(params, x_tm.reshape(steps * batch, features))
    projected = projected.reshape(steps, batch, -1)
  h0, c0 = initial_state
  outputs, h, c = _xla.run(projected, params["recurrent_kernel"], jnp.asarray(h0),
                           jnp.asarray(c0), seq_lengths, go_backwards=layer.go_backwards,
                           zero_output_for_mask=layer.zero_output_for_mask)
  final_state = (h.astype(jnp.asarray(h0).dtype), c.astype(jnp.asarray(c0).dtype))
  sequence = None
  if layer.return_sequences:
    sequence = outputs if layer.time_major else jnp.swapaxes(outputs, 0, 1)
  return RNNResult(sequence, h, final_state)
