"""What every fused recurrence (the Pallas kernels, the CPU custom-JVP recurrences) needs
from a call: its own time loop (no unroll, no remat), no recurrent dropout in training, no
constants, one input array; the gated ones also Keras's cuDNN activations. Masks and
resets are the backends' own business (the CPU recurrences take them)."""

from .. import _activations
from ._call import CallSpec


def is_activation(value, name: str) -> bool:
  """Whether a cell's activation (a Keras name, a callable or None) is `name`'s."""
  return _activations.get(value) is _activations.get(name)


def loop_reasons(spec: CallSpec) -> list[str]:
  """Every reason a fused recurrence with its own time loop cannot run this call."""
  cell, o = spec.cell, spec.options
  reasons = []
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


def fused_reasons(spec: CallSpec) -> list[str]:
  """Every reason a fused gated recurrence cannot run this call (empty when it can)."""
  cell = spec.cell
  reasons = []
  if not is_activation(cell.activation, "tanh"):
    reasons.append(f"activation={cell.activation!r} (the kernel implements tanh)")
  if not is_activation(cell.recurrent_activation, "sigmoid"):
    reasons.append(f"recurrent_activation={cell.recurrent_activation!r} (the kernel "
                   "implements sigmoid)")
  return reasons + loop_reasons(spec)
