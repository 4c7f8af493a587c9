"""What every fused recurrence of the gated cells (the Pallas kernels, the CPU custom-VJP
recurrence) needs from a call: Keras's cuDNN activations, no recurrent dropout in
training, its own time loop (no unroll, no remat), right padding given as seq_lengths,
no resets or constants, one input array."""

from .. import _activations
from ._call import CallSpec


def _is_activation(value, name: str) -> bool:
  if isinstance(value, str):
    return value == name
  return value is _activations.get(name)


def fused_reasons(spec: CallSpec) -> list[str]:
  """Every reason a fused gated recurrence cannot run this call (empty when it can)."""
  cell, o = spec.cell, spec.options
  reasons = []
  if not _is_activation(cell.activation, "tanh"):
    reasons.append(f"activation={cell.activation!r} (the kernel implements tanh)")
  if not _is_activation(cell.recurrent_activation, "sigmoid"):
    reasons.append(f"recurrent_activation={cell.recurrent_activation!r} (the kernel "
                   "implements sigmoid)")
  if spec.training and cell.recurrent_dropout > 0:
    reasons.append(f"recurrent_dropout={cell.recurrent_dropout} with training=True (the "
                   "kernel has no recurrent dropout)")
  if o.unroll is not False:
    reasons.append(f"unroll={o.unroll!r}: unroll is a scan-only knob (lax.scan's "
                   "unroll); the kernel has its own time loop")
  if o.remat is not None:
    reasons.append(f"remat={o.remat!r}: gradient checkpointing is a scan-only knob (the "
                   "kernel saves its own compact residuals)")
  if spec.constants:
    reasons.append("constants given (the kernel takes no constants)")
  if spec.compute_dtype is None:
    reasons.append("inputs are not a single array")
  return reasons
