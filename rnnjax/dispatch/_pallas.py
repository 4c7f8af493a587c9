"""The gated cells' fast path on a GPU: the fused Pallas kernels of `rnnjax.pallas`
(compiled on the GPU; in Pallas interpret mode when `force_interpret()` makes a CPU stand
in for one). Several calls over the same inputs (Bidirectional's two directions) can share
one launch: grid axis 0 is the direction. Boolean masks and segment resets run on the
kernels that read step flags (`masked`), which the compile check verifies apart."""

import jax.numpy as jnp

from .. import _platform, pallas
from ..engine import RNNResult
from ._call import Call, CallSpec
from ._fused_rules import fused_reasons

# Options every call sharing one launch must agree on (the kernel takes them once).
SHARED_OPTIONS = ("units", "time_major", "return_sequences", "zero_output_for_mask")


def _option(spec: CallSpec, name: str):
  return spec.cell.units if name == "units" else getattr(spec.options, name)


def _masked(spec: CallSpec) -> bool:
  """Whether the call runs the kernels that take masks and resets."""
  return spec.mask or spec.reset


def _per_direction(calls, name: str, fill: bool, time_major: bool):
  """The calls' (B, T) bool `name` arrays ("mask" or "reset") stacked as (B, T, D), `fill`
  for a call without one; None when no call has one."""
  arrays = [getattr(c, name) for c in calls]
  if all(a is None for a in arrays):
    return None
  present = next(a for a in arrays if a is not None)
  arrays = [jnp.full(present.shape, fill) if a is None else a for a in arrays]
  arrays = [jnp.swapaxes(a, 0, 1) if time_major else a for a in arrays]
  return jnp.stack(arrays, axis=2)


def _last_valid(outputs, valid, h0, directions):
  """(B, D, U): per row and direction, the output of the last valid step, or h0 (D, B, U)
  where none is valid (the scan's last_output). outputs (B, T, D, U) in processing order;
  valid (B, T, D) bool in input order."""
  steps = valid.shape[1]
  valid = jnp.stack([jnp.flip(valid[:, :, d], 1) if rev else valid[:, :, d]
                     for d, rev in enumerate(directions)], axis=2)   # processing order
  last = steps - 1 - jnp.argmax(jnp.flip(valid, 1), axis=1)         # (B, D)
  picked = jnp.take_along_axis(outputs, last[:, None, :, None], axis=1)[:, 0]
  start = jnp.swapaxes(h0, 0, 1).astype(outputs.dtype)
  return jnp.where(jnp.any(valid, axis=1)[..., None], picked, start)


def _project(cell, params, x, time_major: bool, dropout):
  """(B, T, G*U) float32 projection of (B, T, F) (or (T, B, F)) inputs, with the cell's
  input dropout (masks (N, B, F) apply to time-major inputs)."""
  if dropout is None or dropout.inputs is None:
    return cell.project(params, jnp.swapaxes(x, 0, 1) if time_major else x)
  x_tm = x if time_major else jnp.swapaxes(x, 0, 1)
  return jnp.swapaxes(cell.project(params, x_tm, dropout=dropout), 0, 1)


class _PallasGated:
  """A fused Pallas recurrence of one gated cell kind; subclasses set `kind` and `_run`."""

  platform = "gpu"
  kind = ""

  def _run(self, calls, projected, rec, states, lengths, **kw):
    """(outputs, *final states) of the kind's fused recurrence (see pallas.run_lstm)."""
    raise NotImplementedError

  @property
  def where(self) -> str:
    return ("in Pallas interpret mode (forced)" if pallas.interpret_forced() and
            not _platform.on_gpu() else "on the GPU")

  def declines(self, spec: CallSpec) -> list[str]:
    reasons = fused_reasons(spec) + self._cell_reasons(spec.cell)
    if spec.compute_dtype is not None:
      unsupported = pallas.unsupported_reason(self.kind, spec.compute_dtype)
      for why in (unsupported, pallas.dtype_reason(spec.carry_dtype, "carry dtype")):
        if why is not None:
          reasons.append(why)
      if unsupported is None:   # only configurations the compile check passed
        why = pallas.compile_envelope_reason(self.kind, spec.cell.units, spec.compute_dtype,
                                             masked=_masked(spec))
        if why is not None:
          reasons.append(why)
    return reasons

  def _cell_reasons(self, cell) -> list[str]:
    del cell
    return []

  def together_declines(self, specs) -> list[str]:
    """Why these calls (one per direction, each eligible) cannot share one launch."""
    forward, backward = specs
    reasons = []
    for name in SHARED_OPTIONS:
      f, b = _option(forward, name), _option(backward, name)
      if f != b:
        reasons.append(f"{name} differs ({f} forward, {b} backward)")
    if forward.options.go_backwards == backward.options.go_backwards:
      reasons.append(f"both directions have go_backwards={forward.options.go_backwards}")
    if forward.compute_dtype != backward.compute_dtype:
      reasons.append(f"compute dtypes differ ({forward.compute_dtype} forward, "
                     f"{backward.compute_dtype} backward)")
    if not reasons:
      why = pallas.compile_envelope_reason(self.kind, forward.cell.units,
                                           forward.compute_dtype, directions=2,
                                           masked=_masked(forward) or _masked(backward))
      if why is not None:
        reasons.append(why)
    return reasons

  def run(self, call: Call) -> RNNResult:
    return self.run_together((call,))[0]

  def run_together(self, calls) -> tuple:
    """Runs D eligible calls over the same inputs in one launch; one RNNResult each:
    outputs (B, T, U) (or (T, B, U)) in processing order if return_sequences else None,
    last_output (B, U), final_state in each call's carry dtype."""
    lead = calls[0].spec
    x = jnp.asarray(calls[0].inputs)
    cd = lead.compute_dtype
    projected = jnp.stack([_project(c.spec.cell, c.params, x, c.spec.options.time_major,
                                    c.dropout) for c in calls], axis=2)
    rec = jnp.stack([c.params["recurrent_kernel"] for c in calls])
    n_states = len(calls[0].start)
    states = [jnp.stack([jnp.asarray(c.start[k]).astype(jnp.float32) for c in calls])
              for k in range(n_states)]
    time_major = lead.options.time_major
    mask = _per_direction(calls, "mask", True, time_major)
    reset = _per_direction(calls, "reset", False, time_major)
    masked = any(_masked(c.spec) for c in calls)
    directions = tuple(c.spec.options.go_backwards for c in calls)
    flags = dict(mask=mask, reset=reset) if masked else {}
    outputs, *final = self._run(
        calls, projected, rec, states, None if masked else calls[0].seq_lengths, dtype=cd,
        directions=directions, zero_output_for_mask=lead.options.zero_output_for_mask,
        interpret=pallas.resolve_interpret(None), **flags)
    last = None
    if reset is not None:   # a reset after the last valid step changes the final state
      valid = jnp.ones(reset.shape, bool) if mask is None else mask
      last = _last_valid(outputs, valid, states[0], directions)
    results = []
    for d, call in enumerate(calls):
      state = tuple(s[d] for s in final)
      sequence = None
      if lead.options.return_sequences:
        sequence = outputs[:, :, d]
        sequence = jnp.swapaxes(sequence, 0, 1) if lead.options.time_major else sequence
      last_output = state[0] if last is None else last[:, d]
      results.append(RNNResult(sequence, last_output.astype(cd), tuple(
          s.astype(jnp.asarray(i).dtype) for s, i in zip(state, call.start))))
    return tuple(results)


class PallasLSTM(_PallasGated):
  name = "pallas_lstm"
  kind = "lstm"

  def _run(self, calls, projected, rec, states, lengths, **kw):
    del calls
    return pallas.run_lstm(projected, rec, *states, lengths, **kw)


class PallasGRU(_PallasGated):
  name = "pallas_gru"
  kind = "gru"

  def _cell_reasons(self, cell) -> list[str]:
    if not cell.reset_after:
      return ["reset_after=False (the GRU kernel implements reset_after=True)"]
    return []

  def _run(self, calls, projected, rec, states, lengths, **kw):
    return pallas.run_gru(projected, rec, _recurrent_bias(calls), *states, lengths, **kw)


def _recurrent_bias(calls):
  """(D, 3U) recurrent biases, zeros for a direction without bias; None when none has one."""
  cells = [c.spec.cell for c in calls]
  if not any(c.use_bias for c in cells):
    return None
  units = cells[0].units
  return jnp.stack([c.params["bias"][1] if cell.use_bias
                    else jnp.zeros((3 * units,), c.params["kernel"].dtype)
                    for cell, c in zip(cells, calls)])


PALLAS_LSTM = PallasLSTM()
PALLAS_GRU = PallasGRU()
