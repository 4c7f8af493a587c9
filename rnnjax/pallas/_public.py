"""The public fused functions' body, for any gate spec and one or more directions over
the same inputs: the argument checks (before tracing), then either the pure-JAX
reference once per direction, or one input projection for all directions (one XLA
matmul) and one kernel launch (`_recurrence.run`, grid axis 0 the direction)."""

import jax.numpy as jnp

from .. import _validation
from . import _checks, _recurrence, _shapes, _tiling
from ._gates import GateSpec


def one_direction(spec: GateSpec, params, inputs, *, go_backwards, **options):
  """A public single-direction function's body (its arguments by name, as `fused_lstm`
  takes them): (outputs, final states)."""
  (outputs,), (final,) = fused(spec, (("params", params),), inputs, directions=(go_backwards,),
                               flags=(("go_backwards", go_backwards),), **options)
  return outputs, final


def both_directions(spec: GateSpec, forward_params, backward_params, inputs, **options):
  """A public bidirectional function's body (as `fused_bidirectional_lstm` takes its
  arguments): ((forward, backward outputs), (forward, backward final states))."""
  named = (("forward_params", forward_params), ("backward_params", backward_params))
  return fused(spec, named, inputs, directions=(False, True), flags=(), **options)


def fused(spec: GateSpec, named_params, inputs, *, directions, flags, initial_state,
          seq_lengths, mask, reset, zero_output_for_mask, time_major, dtype, implementation,
          interpret, block_b, block_h, precision):
  """Checks the arguments of a public fused function and runs it.

  Args:
    named_params: per direction, (argument name, Keras-layout params).
    directions: per direction, whether it reads time in reverse.
    flags: (argument name, value) of further bools to check first (go_backwards).
    initial_state: None, or the `spec.states` states of each direction in turn (B, U).
    Others as `fused_lstm`.

  Returns:
    (outputs per direction (B, T, U) (or (T, B, U)) in the compute dtype, final states
    per direction, a tuple of (B, U) float32 each).
  """
  features, units = _check_all_params(spec, named_params)
  batch, steps = _checks.check_inputs(inputs, features, time_major=time_major)
  for name, flag in (*flags, ("time_major", time_major),
                     ("zero_output_for_mask", zero_output_for_mask)):
    _validation.check_bool(flag, name)
  states = _checks.check_states(initial_state, spec.states * len(directions), batch, units)
  lengths = _validation.check_lengths(seq_lengths, batch)
  mask, reset = (_validation.step_flags(a, name, batch, steps, time_major)
                 for a, name in ((mask, "mask"), (reset, "reset")))
  mask, reset = (None if a is None else _shapes.batch_major(a, time_major)
                 for a in (mask, reset))
  masked = mask is not None or reset is not None
  params = [p for _, p in named_params]
  cd = _checks.compute_dtype(dtype, inputs, params[0])
  _tiling.check_block(block_b, "block_b")
  _tiling.check_block(block_h, "block_h", cd)
  unsupported = spec.unsupported_reason(cd)
  unverified = None
  if implementation == "auto" and unsupported is None:
    unverified = spec.envelope_reason(units, cd, directions=len(directions),
                                      precision=precision, block_b=block_b, block_h=block_h,
                                      masked=masked)
  impl, interpret = _checks.resolve(implementation, unsupported, interpret, unverified)
  x = _shapes.batch_major(jnp.asarray(inputs), time_major)
  if mask is not None:   # NaN or Inf in the padding must reach no gradient
    x = jnp.where(mask[..., None], x, jnp.zeros((), x.dtype))
  per_direction = [states[i * spec.states:(i + 1) * spec.states] for i in range(len(directions))]
  if impl == "reference":
    runs = [spec.reference(x, p["kernel"], p["recurrent_kernel"], p.get("bias"), *s, lengths,
                           go_backwards=rev, zero_output_for_mask=zero_output_for_mask,
                           dtype=cd, mask=mask, reset=reset)
            for p, s, rev in zip(params, per_direction, directions)]
    outputs, finals = [r[0] for r in runs], [tuple(r[1:]) for r in runs]
  else:
    per_dir = lambda a: None if a is None else jnp.stack([a] * len(directions), 2)  # noqa: E731
    outputs, finals = _kernel(spec, params, x, per_direction, lengths, directions, units,
                              dtype=cd, zero_output_for_mask=zero_output_for_mask,
                              mask=per_dir(mask), reset=per_dir(reset),
                              interpret=interpret, block_b=block_b, block_h=block_h,
                              precision=precision)
  return [_shapes.batch_major(y, time_major) for y in outputs], finals


def _check_all_params(spec, named_params) -> tuple[int, int]:
  """(F, U) of every direction's params, which must agree."""
  (first, params), *others = named_params
  dims = _checks.check_params(params, spec.gates, argument=first, bias_rows=spec.bias_rows)
  for name, p in others:
    got = _checks.check_params(p, spec.gates, argument=name, bias_rows=spec.bias_rows)
    if got != dims:
      raise ValueError(f"{name} must have the same (F, U) as {first}, got {got} and {dims}.")
  return dims


def _joined(vectors, join):
  """None when no direction has one; else the directions' vectors joined, zeros standing
  in for a missing one."""
  present = [v for v in vectors if v is not None]
  if not present:
    return None
  return join([jnp.zeros_like(present[0]) if v is None else v for v in vectors])


def _kernel(spec, params, x, states, lengths, directions, units, **options):
  """All directions in one projection and one launch: per-direction outputs and states."""
  d = len(directions)
  input_bias, recurrent_bias = zip(*(spec.split_bias(p) for p in params))
  kernel = jnp.concatenate([p["kernel"] for p in params], axis=1)
  projected = _shapes.project(x, kernel, _joined(input_bias, jnp.concatenate),
                              options["dtype"])
  b, t = projected.shape[:2]
  outputs, final = _recurrence.run(
      spec, projected.reshape(b, t, d, spec.gates * units),
      jnp.stack([p["recurrent_kernel"] for p in params]), _joined(recurrent_bias, jnp.stack),
      tuple(jnp.stack(s) for s in zip(*states)), lengths, directions=directions, **options)
  return ([outputs[:, :, i] for i in range(d)],
          [tuple(s[i] for s in final) for i in range(d)])
