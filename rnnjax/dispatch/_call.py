"""What a layer hands the dispatch: the static description of a call (`CallSpec`, enough to
choose an implementation, also without arrays) and the checked call itself (`Call`).

Axis letters: B batch, T time, F features, U units.
"""

from typing import Any, NamedTuple


class RunOptions(NamedTuple):
  """The sequence-layer options every implementation honours.

  unroll: scan's `unroll` (1 rolled, True fully unrolled, n steps per iteration).
  remat: gradient checkpointing of the scan loop (None, "step", k or "sqrt").
  """

  go_backwards: bool
  time_major: bool
  zero_output_for_mask: bool
  return_sequences: bool
  unroll: Any
  remat: Any


class CallSpec(NamedTuple):
  """The static facts of one layer call that choose its implementation.

  layer_name: the layer's class name, for messages ("LSTM").
  cell: the layer's cell (its type keys the registry; its options decide eligibility).
  options: the layer's RunOptions.
  request: the layer's fast-path switch, "auto" | True | False, or None for a layer
    without one; request_name: the switch's name ("use_fused" or Keras's "use_cudnn").
  request_label: the option that made the request as the user wrote it, for messages
    ("scan='parallel'" on the linear layers, whose values are not the request's), or
    None for `{request_name}={request!r}`.
  compute_dtype, carry_dtype: jnp dtypes, or None when the inputs are not one array.
  training: the call's `training`.
  mask, reset, constants: whether a boolean mask, segment resets or constants are given
    (seq_lengths are not listed: every implementation takes them).
  """

  layer_name: str
  cell: Any
  options: RunOptions
  request: Any
  request_name: str
  compute_dtype: Any
  carry_dtype: Any
  training: bool
  mask: bool
  reset: bool
  constants: bool
  request_label: str | None = None


class Call(NamedTuple):
  """A checked layer call, ready to run.

  params: the cell's params (checked against the layer's init).
  inputs: (B, T, ...) arrays ((T, B, ...) when time_major), or a pytree of them.
  start: the start state tuple, leaves (B, ...) in the carry dtype.
  mask: (B, T) bool (or (T, B)) or None: the user's mask, or seq_lengths as a mask.
  seq_lengths: (B,) int or None, as given.
  reset: (B, T) bool or None; constants: pytree of (B, ...) or None.
  dropout: the cell's dropout masks (drawn once for the call) or None.
  """

  spec: CallSpec
  params: Any
  inputs: Any
  start: tuple
  mask: Any
  seq_lengths: Any
  reset: Any
  constants: Any
  dropout: Any
