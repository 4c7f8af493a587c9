"""The linear-recurrence cells' parallel path (MinGRU, MinLSTM, LRU with
`scan="parallel"`, or "auto" off the CPU): the cell's affine elements scanned with
`rnnjax.recurrences.linear_scan` (an associative scan over time), with the engine's
semantics for masks, resets, go_backwards, zero_output_for_mask and the last valid
output, so that it gives the sequential loop's numbers.

With the cell's `sequence_axis` set, the call runs inside `jax.shard_map` on this
device's chunk of a time-sharded sequence: the scans combine chunk summaries across the
devices, `seq_lengths` count from the start of the whole sequence, and with go_backwards
the output chunks are sent to the device that holds their place in processing order.

The `auto` rule: the parallel scan on GPUs and TPUs; on the CPU the sequential loop,
which trained faster at every size measured (bench/results/linear.md).
"""

from typing import Any

import jax
import jax.numpy as jnp

from .. import recurrences
from ..engine import RNNResult
from ..types import Array, ArrayLike
from ._call import Call, CallSpec

CPU_AUTO_REASON = ("on the CPU the sequential loop trains faster than the associative scan "
                   "(measured in bench/results/linear.md); scan='parallel' forces it")


def _time_first(x: Array, time_major: bool, reverse: bool) -> Array:
  """(B, T, ...) (or (T, B, ...)) -> (T, B, ...) in processing order."""
  x = x if time_major else jnp.swapaxes(x, 0, 1)
  return jnp.flip(x, 0) if reverse else x


def _global_mask(seq_lengths: ArrayLike, steps: int, axis: str) -> Array:
  """(T, B) mask of this device's chunk from lengths counted over the whole sequence."""
  t = jax.lax.axis_index(axis) * steps + jnp.arange(steps)
  return t[:, None] < jnp.asarray(seq_lengths)[None, :]


def _varying(tree: Any, axis: str) -> Any:
  """The params marked as varying over `axis` up front, so that their gradients are
  summed over the devices once, at their own size (not after a broadcast to a chunk)."""
  return jax.tree.map(lambda leaf: recurrences.varying(leaf, axis), tree)


def _reverse_devices(x: Array, axis: str) -> Array:
  """Chunk p goes to device P - 1 - p (a collective permute, no gather)."""
  size = jax.lax.axis_size(axis)
  return jax.lax.ppermute(x, axis, [(p, size - 1 - p) for p in range(size)])


class ParallelScan:
  """`rnnjax.recurrences.linear_scan` for the linear-recurrence cells, on one platform."""

  name = "parallel_scan"
  together_reason = "each direction runs its own parallel scan"

  def __init__(self, platform: str) -> None:
    self.platform = platform

  @property
  def where(self) -> str:
    return (f"as a parallel associative scan over time on the "
            f"{self.platform.upper()}")

  def declines(self, spec: CallSpec) -> list[str]:
    o, reasons = spec.options, []
    if o.unroll is not False:
      reasons.append(f"unroll={o.unroll!r}: unroll is a knob of the sequential loop "
                     "(lax.scan's unroll)")
    if o.remat is not None:
      reasons.append(f"remat={o.remat!r}: gradient checkpointing is a knob of the sequential "
                     "loop")
    if spec.constants:
      reasons.append("constants given (the linear cells take none)")
    if spec.compute_dtype is None:
      reasons.append("inputs are not a single array")
    if (spec.request == "auto" and self.platform == "cpu"
        and getattr(spec.cell, "sequence_axis", None) is None):
      reasons.append(CPU_AUTO_REASON)
    return reasons

  def run(self, call: Call) -> RNNResult:
    spec, cell, params, start = call.spec, call.spec.cell, call.params, call.start
    o, axis = spec.options, cell.sequence_axis
    if axis is not None:
      params = _varying(params, axis)
    back = o.go_backwards
    x = _time_first(jnp.asarray(call.inputs), o.time_major, back)  # (T, B, F), processing order
    mask: Array | None = None   # (T, B) in processing order
    if axis is not None and call.seq_lengths is not None:
      mask = _global_mask(call.seq_lengths, x.shape[0], axis)
      mask = jnp.flip(mask, 0) if back else mask
    elif call.mask is not None:
      mask = _time_first(call.mask, o.time_major, back)
    reset = None if call.reset is None else _time_first(call.reset, o.time_major, back)
    if mask is not None:
      # Padding never reaches the arithmetic (NaN there stays out of the gradients).
      x = jnp.where(mask[..., None], x, jnp.zeros_like(x))
    projected = cell.project(params, x, dropout=call.dropout)
    a, b = cell.coefficients(params, projected)
    h0 = cell.carrier(start).astype(b.dtype)
    scan = dict(axis_name=axis, reverse_devices=back)
    hs, h_last = recurrences.linear_scan(a, b, h0, valid=mask, reset=reset,
                                         log_space=cell.log_space, **scan)
    y = cell.readout(params, projected, hs)                                     # (T, B, U)
    first = start[0]
    # The engine's masked-step rule: a cell whose first state has the output's shape
    # outputs that state (here: h itself); others hold the last valid output.
    keras_rule = tuple(first.shape) == tuple(y.shape[1:])
    if mask is None and axis is None:
      sequence, last = y, y[-1]
    else:
      valid = jnp.ones(y.shape[:2], bool) if mask is None else mask
      before = first.astype(y.dtype) if keras_rule else jnp.zeros(y.shape[1:], y.dtype)
      held, last = recurrences.latch(y, valid, before, **scan)
      sequence = y if mask is None or keras_rule else held
      if mask is not None and o.zero_output_for_mask:
        sequence = jnp.where(mask[..., None], y, jnp.zeros_like(y))
    out_dtype = cell.output_dtype(jnp.asarray(call.inputs))
    outputs = None
    if o.return_sequences:
      outputs = sequence.astype(out_dtype)
      if axis is not None and back:
        outputs = _reverse_devices(outputs, axis)
      outputs = outputs if o.time_major else jnp.swapaxes(outputs, 0, 1)
    final = tuple(s.astype(i.dtype) for s, i in zip(cell.states_of(h_last), start))
    return RNNResult(outputs, last.astype(out_dtype), final)


PARALLEL_SCANS = {p: ParallelScan(p) for p in ("cpu", "gpu", "tpu")}
