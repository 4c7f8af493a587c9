"""The fused path of the LSTM and GRU layers: the same `RNNResult` the scan engine
returns, so `RecurrentLayer.apply` packages both paths the same way. Several layers over
the same inputs (Bidirectional's two directions) share one kernel launch."""

import jax.numpy as jnp

from ..cells import GRUCell, LSTMCell
from ..engine import RNNResult
from ..pallas import _interpret
from ..pallas.gru import _api as gru_api
from ..pallas.lstm import _api as lstm_api
from . import _cpu_path

# Options every layer sharing one launch must agree on (the kernel takes them once).
SHARED_OPTIONS = ("time_major", "zero_output_for_mask", "return_sequences", "units")


def _project(cell, params, x, time_major: bool, dropout):
  """(B, T, G*U) float32 projection of (B, T, F) (or (T, B, F)) inputs, with the cell's
  input dropout (masks are (N, B, F); the cell applies them to time-major inputs)."""
  if dropout is None or dropout.inputs is None:
    return cell.project(params, jnp.swapaxes(x, 0, 1) if time_major else x)
  x_tm = x if time_major else jnp.swapaxes(x, 0, 1)
  return jnp.swapaxes(cell.project(params, x_tm, dropout=dropout), 0, 1)


def _check_shared(layers, cells, x):
  kinds = {type(c) for c in cells}
  if len(kinds) != 1 or not issubclass(kinds.pop(), (LSTMCell, GRUCell)):
    raise TypeError("layers must all be rj.LSTM or all rj.GRU layers, got "
                    f"{[type(l).__name__ for l in layers]}.")
  for name in SHARED_OPTIONS:
    values = [getattr(l, name) for l in layers]
    if len(set(values)) != 1:
      raise ValueError(f"layers sharing one kernel launch must have the same {name}, got "
                       f"{values}.")
  dtypes = [jnp.dtype(c.compute_dtype(x)) for c in cells]
  if len(set(dtypes)) != 1:
    raise ValueError(f"layers sharing one kernel launch must have the same compute dtype, "
                     f"got {[str(d) for d in dtypes]}.")
  return dtypes[0]


def _gru_recurrent_bias(cells, params, units):
  """(D, 3U) recurrent biases, zeros for a direction without bias; None when none has one."""
  if not any(c.use_bias for c in cells):
    return None
  return jnp.stack([p["bias"][1] if c.use_bias else jnp.zeros((3 * units,), p["kernel"].dtype)
                    for c, p in zip(cells, params)])


def fused_layers_apply(layers, params, inputs, initial_states, seq_lengths=None, *,
                       dropouts=None, interpret=None) -> tuple[RNNResult, ...]:
  """Runs D eligible LSTM (or D GRU) layer calls over the same inputs in one kernel launch
  (grid axis 0 = direction, each direction reading time its layer's way).

  Args:
    layers: D rj.LSTM or D rj.GRU layers with the same units, compute dtype, time_major,
      zero_output_for_mask and return_sequences (eligibility is `which_path`'s job).
    params: D params dicts, Keras layout.
    inputs: (B, T, F), or (T, B, F) when time_major.
    initial_states: D start-state tuples, (h, c) or (h,), each (B, U) in the layer's carry
      dtype.
    seq_lengths: (B,) int or None.
    dropouts: None or D DropoutMasks-or-None (input dropout only), one per layer.
    interpret: None: Pallas interpret mode unless on a GPU.

  Returns:
    One RNNResult per layer: outputs (B, T, U) or (T, B, U) (processing order) if
    return_sequences else None, last_output (B, U), final_state in the layer's carry dtype.
  """
  layers = tuple(layers)
  dropouts = (None,) * len(layers) if dropouts is None else tuple(dropouts)
  if any(d is not None and d.recurrent is not None for d in dropouts):
    raise ValueError("the fused kernel has no recurrent dropout; use the scan path.")
  cells = [l.cell for l in layers]
  x = jnp.asarray(inputs)
  cd = _check_shared(layers, cells, x)
  lead = layers[0]
  projected = jnp.stack([_project(c, p, x, l.time_major, d)
                         for l, c, p, d in zip(layers, cells, params, dropouts)], axis=2)
  rec = jnp.stack([p["recurrent_kernel"] for p in params])
  lengths = None if seq_lengths is None else jnp.asarray(seq_lengths)
  n_states = len(initial_states[0])
  states = [jnp.stack([jnp.asarray(s[k]).astype(jnp.float32) for s in initial_states])
            for k in range(n_states)]
  common = dict(dtype=cd, directions=tuple(l.go_backwards for l in layers),
                zero_output_for_mask=lead.zero_output_for_mask,
                interpret=_interpret.resolve_interpret(interpret))
  if isinstance(cells[0], LSTMCell):
    outputs, *final = lstm_api.run(projected, rec, *states, lengths, **common)
  else:
    outputs, *final = gru_api.run(projected, rec, _gru_recurrent_bias(cells, params, lead.units),
                                  *states, lengths, **common)
  results = []
  for d, init in enumerate(initial_states):
    state = tuple(s[d] for s in final)
    sequence = None
    if lead.return_sequences:
      sequence = outputs[:, :, d]
      sequence = jnp.swapaxes(sequence, 0, 1) if lead.time_major else sequence
    results.append(RNNResult(sequence, state[0].astype(cd),
                             tuple(s.astype(jnp.asarray(i).dtype) for s, i in zip(state, init))))
  return tuple(results)


def fused_layer_apply(layer, params, inputs, initial_state, seq_lengths=None, *,
                      training: bool = False, dropout=None, interpret=None) -> RNNResult:
  """Runs an eligible LSTM or GRU layer call through the fused kernel.

  Args:
    layer: an rj.LSTM or rj.GRU layer (eligibility is `which_path`'s job).
    params: the layer's params, Keras layout.
    inputs: (B, T, F), or (T, B, F) when layer.time_major.
    initial_state: the start state tuple, (h, c) or (h,), each (B, U) in the carry dtype.
    seq_lengths: (B,) int or None.
    training: unused by the kernel (input dropout comes in `dropout`).
    dropout: the cell's DropoutMasks (input dropout only) or None.
    interpret: None: the kernel on a GPU; on a CPU the custom-VJP scan for an LSTM
      (`_cpu_path`), Pallas interpret mode otherwise. A bool forces the Pallas kernel.

  Returns:
    RNNResult(outputs (B, T, U) or (T, B, U) if return_sequences else None,
    last_output (B, U), final_state in the carry dtype).
  """
  del training
  if not isinstance(getattr(layer, "cell", None), (LSTMCell, GRUCell)):
    raise TypeError(f"layer must be an rj.LSTM or rj.GRU layer, got {type(layer).__name__}.")
  if (interpret is None and isinstance(layer.cell, LSTMCell) and _cpu_path.available("LSTM")
      and _cpu_path.dtype_reason(layer.cell.compute_dtype(jnp.asarray(inputs)),
                                 jnp.asarray(initial_state[0]).dtype) is None):
    return _cpu_path.layer_apply(layer, params, inputs, initial_state, seq_lengths,
                                 dropout=dropout)
  return fused_layers_apply((layer,), (params,), inputs, (initial_state,), seq_lengths,
                            dropouts=(dropout,), interpret=interpret)[0]
