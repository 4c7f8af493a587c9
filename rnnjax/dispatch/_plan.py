"""The one decision: which implementation runs a layer call, and why. `run` executes it,
`which_path` reports it; both read `plan`, so they cannot disagree.

The vocabulary: a layer's `use_fused` ("auto" | True | False; Keras's `use_cudnn` is its
alias) asks for a fast path; `PathChoice.path` is "fused" (a registered fast
implementation: the Pallas kernel, the CPU recurrence) or "scan" (the engine).
"""

from typing import Any, NamedTuple

from .. import _platform
from ..engine import RNNResult
from . import _registry
from ..types import ArrayLike, Inputs, Params, PyTree, State
from ._call import Call, CallSpec


class PathChoice(NamedTuple):
  """path: "fused" or "scan"; reason: why, listing every reason a fast path declines."""

  path: str
  reason: str


class Plan(NamedTuple):
  """The implementation chosen for one call (`_registry`) and the PathChoice saying why."""

  implementation: Any   # a registered implementation (see _registry), or the scan
  choice: PathChoice


def _no_fast_path(spec: CallSpec) -> str:
  return (f"{spec.layer_name} has no fused kernel (only the SimpleRNN, GRU and LSTM layers "
          "do)")


def _reasons(spec: CallSpec):
  """(the first fast implementation that takes the call or None, every reason against)."""
  impls = _registry.implementations(spec.cell)
  here = [i for i in impls if i.platform == _registry.platform()]
  if not here:
    if not any(i.platform == "gpu" for i in impls):
      on = " and ".join(sorted({str(i.platform).upper() for i in impls}))
      return None, [f"{spec.layer_name} has no fused kernel on the "
                    f"{_registry.platform().upper()} (its fast path runs on the {on})"]
    reasons = [f"no GPU (jax.default_backend() is {_platform.backend()!r})"]
    return None, reasons + (impls[-1].declines(spec) if impls else [])
  reasons = []
  for impl in here:
    whys = impl.declines(spec)
    if not whys:
      return impl, []
    reasons += [w for w in whys if w not in reasons]
  return None, reasons


def plan(spec: CallSpec) -> Plan:
  """The implementation of one call. Raises the ValueError that `use_fused=True` (or
  `use_cudnn=True`) asks for when no fast path can take the call."""
  scan = _registry.scan()
  if spec.request is None or not _registry.implementations(spec.cell):
    return Plan(scan, PathChoice("scan", _no_fast_path(spec)))
  name = spec.request_name
  asked = spec.request_label or f"{name}={spec.request!r}"
  if spec.request is False:
    return Plan(scan, PathChoice("scan", f"{asked} (the scan is requested)"))
  impl, reasons = _reasons(spec)
  if impl is None and spec.request is True:
    # The hint only where the switch itself asked (not sequence_axis, which has no scan).
    own = asked.startswith(f"{name}=")
    fallback = f" Set {name}='auto' to fall back to the scan." if own else ""
    raise ValueError(f"{spec.layer_name}({asked}) cannot use the fused kernel: "
                     + "; ".join(reasons) + "." + fallback)
  if impl is None:
    return Plan(scan, PathChoice("scan", f"{asked} falls back to the scan: "
                                 + "; ".join(reasons)))
  return Plan(impl, PathChoice("fused", f"{asked} and eligible: fused "
                               f"{spec.layer_name} kernel {impl.where}"))


def plan_together(specs) -> tuple[tuple[Plan, ...], PathChoice, bool]:
  """The plans of calls over the same inputs (Bidirectional's forward and backward), the
  PathChoice of the whole, and whether they share one launch."""
  plans = tuple(plan(s) for s in specs)
  per_direction = (f"forward layer: {plans[0].choice.reason}; "
                   f"backward layer: {plans[1].choice.reason}")
  if any(p.choice.path != "fused" for p in plans):
    return plans, PathChoice("scan", "not every direction takes the fused kernel; "
                             + per_direction), False
  impl = plans[0].implementation
  kind = specs[0].layer_name
  if any(p.implementation is not impl for p in plans):
    names = " and ".join(s.layer_name for s in specs)
    reasons = [f"the directions run different kernels ({names})"]
  elif hasattr(impl, "together_declines"):
    reasons = impl.together_declines(specs)
  else:
    reasons = [impl.together_reason]
  if reasons:
    return plans, PathChoice(
        "fused", "each direction takes its own fused kernel (two launches), not the "
        f"one-launch bidirectional {kind} kernel: " + "; ".join(reasons)), False
  return plans, PathChoice(
      "fused", f"both directions eligible: one-launch fused bidirectional {kind} kernel "
      f"(grid axis 0 = direction) {impl.where}"), True


def run(call: Call) -> RNNResult:
  """Runs a prepared layer call on its implementation."""
  return plan(call.spec).implementation.run(call)


def run_together(calls) -> tuple[RNNResult, ...]:
  """Runs calls over the same inputs (Bidirectional's directions): in one launch when the
  plan allows it, else each on its own implementation."""
  plans, _, together = plan_together([c.spec for c in calls])
  if together:
    return plans[0].implementation.run_together(tuple(calls))
  return tuple(p.implementation.run(c) for p, c in zip(plans, calls))


def which_path(layer: Any, inputs: Inputs, *, mask: ArrayLike | None = None,
               seq_lengths: ArrayLike | None = None, initial_state: State = None,
               training: bool = False, constants: PyTree = None,
               reset: ArrayLike | None = None) -> PathChoice:
  """The path `layer.apply(params, inputs, ...)` takes with these arguments, and why.

  Raises the ValueError that `apply` raises when the layer asks for `use_fused=True`
  (or `use_cudnn=True`) and the call is not eligible. For an rj.Bidirectional layer:
  "fused" when every direction runs a fused kernel (the reason says whether both share
  one launch), "scan" when a direction takes the scan (the reason gives each direction's).

  >>> import jax.numpy as jnp, rnnjax as rj
  >>> choice = rj.kernels.which_path(rj.LSTM(8, unroll=2), jnp.ones((2, 5, 3)),
  ...                                mask=jnp.ones((2, 5), bool))
  >>> choice.path, "unroll=2: unroll is a scan-only knob" in choice.reason
  ('scan', True)
  """
  specs = layer.call_specs(inputs, mask=mask, seq_lengths=seq_lengths,
                           initial_state=initial_state, training=training,
                           constants=constants, reset=reset)
  if len(specs) == 1:
    return plan(specs[0]).choice
  return plan_together(specs)[1]


def fused_layer_apply(layer: Any, params: Params, inputs: Inputs, initial_state: State = None,
                      seq_lengths: ArrayLike | None = None) -> RNNResult:
  """`layer`'s call on its fast path, whatever its `use_fused` (as `use_fused=True` would
  choose), as the RNNResult the scan engine returns: outputs (B, T, U) if
  return_sequences else None, last_output (B, U), final_state. Raises a ValueError naming
  every reason when no fast path takes the call.

  >>> import jax, jax.numpy as jnp, rnnjax as rj
  >>> layer, x = rj.LSTM(4), jnp.ones((2, 5, 3))
  >>> result = rj.kernels.fused_layer_apply(layer, layer.init(jax.random.key(0), x), x)
  >>> result.last_output.shape
  (2, 4)
  """
  call = layer.prepare(params, inputs, initial_state, seq_lengths=seq_lengths)
  impl, reasons = _reasons(call.spec)
  if impl is None:
    raise ValueError(f"{call.spec.layer_name} cannot use a fused kernel: "
                     + "; ".join(reasons or [_no_fast_path(call.spec)]) + ".")
  return impl.run(call)
