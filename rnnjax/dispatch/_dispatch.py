"""Which path a layer call takes, the fused kernel or the scan, and why.

`use_fused="auto"` takes the kernel on a GPU when the call is eligible, else the scan; on
a CPU an eligible float32 LSTM call takes the fused path's CPU backend (a custom-VJP
scan recurrence, `_cpu_path`), which trains faster than the engine's autodiffed scan;
`True` takes the kernel or raises a ValueError naming every reason it cannot;
`False` always takes the scan. Keras's `use_cudnn` is honoured when `use_fused` is
"auto" (see `FusedOption` in `layers/_builtin.py`).

A Bidirectional layer whose two directions are LSTM layers that each take the kernel, with
the same units and compute dtype, runs both directions in one launch of the fused
bidirectional kernel (grid axis 0 = direction); otherwise each direction takes its own path.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from .. import _activations
from ..cells import GRUCell, LSTMCell
from ..pallas import _interpret, _tiling
from ..pallas.gru import _config as gru_config
from ..pallas.lstm import _config as lstm_config
from . import _cpu_path


class PathChoice(NamedTuple):
  """path: "fused" or "scan"; reason: why, listing every reason the kernel declines."""

  path: str
  reason: str


def _is_activation(value, name: str) -> bool:
  if isinstance(value, str):
    return value == name
  return value is _activations.get(name)


def _request_name(layer) -> str:
  if layer.use_fused == "auto" and layer.use_cudnn != "auto":
    return "use_cudnn"
  return "use_fused"


def _cell_kind(layer):
  cell = getattr(layer, "cell", None)
  if isinstance(cell, LSTMCell):
    return "LSTM", lstm_config
  if isinstance(cell, GRUCell):
    return "GRU", gru_config
  return None, None


def _compute_dtype(layer, inputs):
  leaves = jax.tree.leaves(inputs)
  if len(leaves) != 1 or not hasattr(leaves[0], "dtype"):
    return None
  return jnp.dtype(layer.cell.compute_dtype(leaves[0]))


def ineligibility(layer, inputs, *, mask=None, seq_lengths=None, training=False,
                  constants=None, reset=None) -> list[str]:
  """Every reason this call cannot take the fused kernel (empty when it can)."""
  kind, config = _cell_kind(layer)
  if kind is None:
    return [f"{type(layer).__name__} has no fused kernel (only the LSTM and GRU layers do)"]
  reasons = []
  cpu = _cpu_path.available(kind)
  if not (_interpret.on_gpu() or _interpret.interpret_forced() or cpu):
    reasons.append(f"no GPU (jax.default_backend() is {jax.default_backend()!r})")
  if not _is_activation(layer.activation, "tanh"):
    reasons.append(f"activation={layer.activation!r} (the kernel implements tanh)")
  if not _is_activation(layer.recurrent_activation, "sigmoid"):
    reasons.append(f"recurrent_activation={layer.recurrent_activation!r} (the kernel "
                   "implements sigmoid)")
  if training and layer.recurrent_dropout > 0:
    reasons.append(f"recurrent_dropout={layer.recurrent_dropout} with training=True (the "
                   "kernel has no recurrent dropout)")
  if layer.unroll is not False:
    reasons.append(f"unroll={layer.unroll!r}: unroll is a scan-only knob (lax.scan's "
                   "unroll); the kernel has its own time loop")
  remat = getattr(layer, "remat", None)
  if remat is not None:
    reasons.append(f"remat={remat!r}: gradient checkpointing is a scan-only knob (the kernel "
                   "saves its own compact residuals)")
  if kind == "GRU" and not layer.reset_after:
    reasons.append("reset_after=False (the GRU kernel implements reset_after=True)")
  if mask is not None:
    reasons.append("mask= given: a boolean mask is data, so it cannot be checked to be "
                   "right-padded before tracing; pass seq_lengths= (B,) for the fused path")
  if reset is not None:
    reasons.append("reset= given (segment resets are scan-only)")
  if constants is not None:
    reasons.append("constants given (the kernel takes no constants)")
  dtype = _compute_dtype(layer, inputs)
  if dtype is None:
    reasons.append("inputs are not a single array")
  else:
    carry = jnp.dtype(layer.carry_dtype) if layer.carry_dtype is not None else dtype
    whys = ((_cpu_path.dtype_reason(dtype, carry),) if cpu else
            (config.unsupported_reason(dtype),
             _tiling.dtype_reason(carry, "carry dtype")))
    for why in whys:
      if why is not None:
        reasons.append(why)
  return reasons


def _where(kind: str | None = None) -> str:
  """Where an eligible call of this cell kind runs its fused kernel."""
  if _cpu_path.available(kind):
    return "as a custom-VJP scan recurrence on the CPU"
  return ("in Pallas interpret mode (forced)" if _interpret.interpret_forced() and
          not _interpret.on_gpu() else "on the GPU")


# Cell kinds whose two directions share one launch (the fused GRU can run D directions
# too, but its one-launch bidirectional path is not wired or tested yet).
ONE_LAUNCH_KINDS = ("LSTM",)


def pair_ineligibility(forward, backward, inputs) -> list[str]:
  """Why two direction layers, each taking the fused kernel, cannot share one launch."""
  kinds = [_cell_kind(layer)[0] for layer in (forward, backward)]
  if any(kind not in ONE_LAUNCH_KINDS for kind in kinds):
    names = " and ".join(type(layer).__name__ for layer in (forward, backward))
    return [f"the one-launch bidirectional kernel needs two LSTM layers, got {names}"]
  if _cpu_path.available(kinds[0]):
    return ["on the CPU each direction runs its own custom-VJP scan recurrence (the "
            "one-launch kernel is the GPU's)"]
  reasons = []
  for name in ("units", "time_major", "return_sequences", "zero_output_for_mask"):
    f, b = getattr(forward, name), getattr(backward, name)
    if f != b:
      reasons.append(f"{name} differs ({f} forward, {b} backward)")
  if forward.go_backwards == backward.go_backwards:
    reasons.append(f"both directions have go_backwards={forward.go_backwards}")
  f, b = _compute_dtype(forward, inputs), _compute_dtype(backward, inputs)
  if f != b:
    reasons.append(f"compute dtypes differ ({f} forward, {b} backward)")
  return reasons


def bidirectional_path(forward, backward, inputs, **call) -> tuple[PathChoice, bool]:
  """The path of a Bidirectional call whose directions are `forward` and `backward`, and
  whether both share one launch of the fused bidirectional kernel. `call`: which_path's
  keyword arguments. Raises as `which_path` does for a direction with use_fused=True."""
  choices = [which_path(layer, inputs, **call) for layer in (forward, backward)]
  per_direction = (f"forward layer: {choices[0].reason}; "
                   f"backward layer: {choices[1].reason}")
  if any(c.path != "fused" for c in choices):
    return PathChoice("scan", "not every direction takes the fused kernel; "
                      + per_direction), False
  pair = pair_ineligibility(forward, backward, inputs)
  if pair:
    return PathChoice("fused", "each direction takes its own fused kernel (two launches), "
                      "not the one-launch bidirectional LSTM kernel: " + "; ".join(pair)
                      ), False
  return PathChoice("fused", "both directions eligible: one-launch fused bidirectional LSTM "
                    f"kernel (grid axis 0 = direction) {_where()}"), True


def which_path(layer, inputs, *, mask=None, seq_lengths=None, initial_state=None,
               training: bool = False, constants=None, reset=None) -> PathChoice:
  """The path `layer.apply(params, inputs, ...)` takes with these arguments, and why.

  Raises the ValueError that `apply` raises when the layer asks for `use_fused=True`
  (or `use_cudnn=True`) and the call is not eligible.

  For an rj.Bidirectional layer: "fused" when every direction runs a fused kernel (the
  reason says whether both share one launch of the bidirectional LSTM kernel), "scan"
  when a direction takes the scan (the reason gives each direction's).

  >>> import jax.numpy as jnp, rnnjax as rj
  >>> choice = rj.kernels.which_path(rj.LSTM(8), jnp.ones((2, 5, 3)),
  ...                                mask=jnp.ones((2, 5), bool))
  >>> choice.path, "pass seq_lengths=" in choice.reason
  ('scan', True)
  """
  del initial_state   # any initial state and any lengths are fine
  directions = getattr(layer, "direction_layers", None)
  if directions is not None:
    return bidirectional_path(*directions, inputs, mask=mask, seq_lengths=seq_lengths,
                              training=training, constants=constants, reset=reset)[0]
  del seq_lengths
  request = getattr(layer, "fused_request", None)
  if request is None:
    return PathChoice("scan", f"{type(layer).__name__} has no fused kernel (only the LSTM and "
                      "GRU layers do)")
  name = _request_name(layer)
  if request is False:
    return PathChoice("scan", f"{name}=False (the scan is requested)")
  reasons = ineligibility(layer, inputs, mask=mask, training=training, constants=constants,
                          reset=reset)
  if reasons and request is True:
    raise ValueError(
        f"{type(layer).__name__}({name}=True) cannot use the fused kernel: "
        + "; ".join(reasons) + f". Set {name}='auto' to fall back to the scan.")
  if reasons:
    return PathChoice("scan", f"{name}='auto' falls back to the scan: " + "; ".join(reasons))
  return PathChoice("fused", f"{name}={request!r} and eligible: fused {type(layer).__name__} "
                    f"kernel {_where(_cell_kind(layer)[0])}")
