"""The fused path of the LSTM and GRU layers: the same `RNNResult` the scan engine
returns, so `RecurrentLayer.apply` packages both paths the same way."""

import jax.numpy as jnp

from ..cells import GRUCell, LSTMCell
from ..engine import RNNResult
from . import _cpu_path, _interpret
from .gru import _api as gru_api
from .lstm import _api as lstm_api


def _project(cell, params, x, time_major: bool, dropout):
  """(B, T, G*U) float32 projection of (B, T, F) (or (T, B, F)) inputs, with the cell's
  input dropout (masks are (N, B, F); the cell applies them to time-major inputs)."""
  if dropout is None or dropout.inputs is None:
    return cell.project(params, jnp.swapaxes(x, 0, 1) if time_major else x)
  x_tm = x if time_major else jnp.swapaxes(x, 0, 1)
  return jnp.swapaxes(cell.project(params, x_tm, dropout=dropout), 0, 1)


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
  if dropout is not None and dropout.recurrent is not None:
    raise ValueError("the fused kernel has no recurrent dropout; use the scan path.")
  cell = layer.cell
  x = jnp.asarray(inputs)
  cd = jnp.dtype(cell.compute_dtype(x))
  if (interpret is None and isinstance(cell, LSTMCell) and _cpu_path.available("LSTM")
      and _cpu_path.dtype_reason(cd, jnp.asarray(initial_state[0]).dtype) is None):
    return _cpu_path.layer_apply(layer, params, inputs, initial_state, seq_lengths,
                                 dropout=dropout)
  projected = _project(cell, params, x, layer.time_major, dropout)[:, :, None]
  interpret = _interpret.resolve_interpret(interpret)
  lengths = None if seq_lengths is None else jnp.asarray(seq_lengths)
  states = [jnp.asarray(s).astype(jnp.float32)[None] for s in initial_state]
  common = dict(dtype=cd, directions=(layer.go_backwards,),
                zero_output_for_mask=layer.zero_output_for_mask, interpret=interpret)
  if isinstance(cell, LSTMCell):
    outputs, h, c = lstm_api.run(projected, params["recurrent_kernel"][None], *states,
                                 lengths, **common)
    final = (h[0], c[0])
  elif isinstance(cell, GRUCell):
    rec_bias = params["bias"][1][None] if cell.use_bias else None
    outputs, h = gru_api.run(projected, params["recurrent_kernel"][None], rec_bias,
                             *states, lengths, **common)
    final = (h[0],)
  else:
    raise TypeError(f"layer must be an rj.LSTM or rj.GRU layer, got {type(layer).__name__}.")
  final_state = tuple(s.astype(jnp.asarray(init).dtype) for s, init in zip(final, initial_state))
  sequence = None
  if layer.return_sequences:
    sequence = outputs[:, :, 0]
    sequence = jnp.swapaxes(sequence, 0, 1) if layer.time_major else sequence
  return RNNResult(sequence, final[0].astype(cd), final_state)
