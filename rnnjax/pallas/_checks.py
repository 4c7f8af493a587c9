"""The kernel-specific argument checks of the public kernel functions, run before
tracing (the generic ones are `rnnjax._validation`'s). Messages name the argument, what
it got and what was expected."""

import jax.numpy as jnp

from .. import _platform
from .._validation import describe
from . import _interpret

IMPLEMENTATIONS = ("auto", "pallas", "reference")


def check_params(params, gates: int, *, argument: str = "params", bias_rows: int | None = None):
  """(features, units) of Keras-layout params {kernel (F, G*U), recurrent_kernel (U, G*U),
  optional bias (G*U,) or (bias_rows, G*U)}."""
  if not isinstance(params, dict) or "kernel" not in params or "recurrent_kernel" not in params:
    got = (f"a dict with keys {sorted(params)}" if isinstance(params, dict)
           else describe(params))
    raise TypeError(
        f"{argument} must be a dict with keys kernel, recurrent_kernel and optionally bias "
        f"(the layer's params), got {got}.")
  kernel, rec = params["kernel"], params["recurrent_kernel"]
  for name, a in (("kernel", kernel), ("recurrent_kernel", rec)):
    if not hasattr(a, "shape") or a.ndim != 2:
      raise ValueError(f"{argument}['{name}'] must be a 2-D array, got {describe(a)}.")
  units = rec.shape[0]
  if units == 0 or tuple(rec.shape) != (units, gates * units):
    raise ValueError(
        f"{argument}['recurrent_kernel'] must have shape (U, {gates}U), got {tuple(rec.shape)}.")
  if kernel.shape[1] != gates * units:
    raise ValueError(
        f"{argument}['kernel'] must have shape (F, {gates}U) = (F, {gates * units}), got "
        f"{tuple(kernel.shape)}.")
  bias = params.get("bias")
  if bias is not None:
    want = (gates * units,) if bias_rows is None else (bias_rows, gates * units)
    if tuple(getattr(bias, "shape", ())) != want:
      raise ValueError(f"{argument}['bias'] must have shape {want}, got {describe(bias)}.")
  return kernel.shape[0], units


def check_inputs(inputs, features: int, *, time_major: bool):
  """(batch, steps) of inputs (B, T, F), or (T, B, F) when time_major."""
  layout = "(T, B, F)" if time_major else "(B, T, F)"
  if not hasattr(inputs, "shape") or not hasattr(inputs, "dtype"):
    raise TypeError(f"inputs must be an array of shape {layout}, got {describe(inputs)}.")
  if inputs.ndim != 3 or inputs.shape[2] != features:
    raise ValueError(
        f"inputs must have shape {layout} with F = {features} (the kernel's rows), got shape "
        f"{tuple(inputs.shape)}.")
  if not jnp.issubdtype(inputs.dtype, jnp.floating):
    raise TypeError(f"inputs must be a floating-point array, got dtype {inputs.dtype}.")
  batch, steps = (inputs.shape[1], inputs.shape[0]) if time_major else inputs.shape[:2]
  if steps == 0 or batch == 0:
    raise ValueError(f"inputs must have at least one row and one time step, got shape "
                     f"{tuple(inputs.shape)}.")
  return batch, steps


def check_states(states, count: int, batch: int, units: int, *, argument="initial_state"):
  """A tuple of `count` (B, U) float32 arrays (zeros when None); a bare array stands for a
  one-state tuple."""
  if states is None:
    return tuple(jnp.zeros((batch, units), jnp.float32) for _ in range(count))
  if hasattr(states, "shape") and count == 1:
    states = (states,)
  if not isinstance(states, (tuple, list)) or len(states) != count:
    raise ValueError(
        f"{argument} must be a tuple of {count} arrays of shape (B, U) = ({batch}, {units}), "
        f"got {describe(states) if not isinstance(states, (tuple, list)) else len(states)}"
        + (" arrays." if isinstance(states, (tuple, list)) else "."))
  out = []
  for s in states:
    if tuple(getattr(s, "shape", ())) != (batch, units):
      raise ValueError(
          f"{argument} must hold arrays of shape (B, U) = ({batch}, {units}), got "
          f"{describe(s)}.")
    out.append(jnp.asarray(s).astype(jnp.float32))
  return tuple(out)


def compute_dtype(dtype, inputs, params) -> jnp.dtype:
  """`dtype`, or the promotion of the inputs' and the kernel's dtypes (as the cells do)."""
  if dtype is None:
    return jnp.dtype(jnp.result_type(inputs.dtype, params["kernel"].dtype))
  try:
    return jnp.dtype(dtype)
  except TypeError:
    raise TypeError(f"dtype must be None or a dtype, got {dtype!r}.") from None


def resolve(implementation, unsupported: str | None, interpret,
            unverified: str | None = None) -> tuple[str, bool]:
  """("pallas" | "reference", interpret) for an `implementation` request. `unverified`:
  why the compile check has not verified the kernel ("auto" then takes the reference;
  an explicit "pallas" runs it anyway)."""
  if implementation not in IMPLEMENTATIONS:
    raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}.")
  interpret = _interpret.resolve_interpret(interpret)
  if implementation == "pallas" and unsupported is not None:
    raise ValueError(f"implementation='pallas' cannot run this call: {unsupported}.")
  if implementation == "auto":
    usable = (unsupported is None and unverified is None
              and (_platform.on_gpu() or _interpret.interpret_forced()))
    implementation = "pallas" if usable else "reference"
  return implementation, interpret
