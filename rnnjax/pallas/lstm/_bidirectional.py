"""Both directions of a bidirectional LSTM in one kernel launch: grid axis 0 is the
direction, so the forward and backward recurrences run side by side on the GPU, and one
matmul projects the inputs for both."""

import jax.numpy as jnp

from .. import _checks, _shapes, _tiling
from . import _api, _config, _reference


def _bias(params, units):
  bias = params.get("bias")
  return jnp.zeros((4 * units,), params["kernel"].dtype) if bias is None else bias


def fused_bidirectional_lstm(forward_params, backward_params, inputs, *, initial_state=None,
                             seq_lengths=None, zero_output_for_mask: bool = False,
                             time_major: bool = False, dtype=None,
                             implementation: str = "auto", interpret: bool | None = None,
                             block_b: int | None = None, block_h: int | None = None,
                             precision=None):
  """Forward and backward LSTM over the same inputs, fused into one kernel call.

  Equivalent to `fused_lstm(forward_params, inputs)` and
  `fused_lstm(backward_params, inputs, go_backwards=True)` with the same `seq_lengths`;
  merging the two (Keras Bidirectional's merge_mode, re-reversing the backward
  sequence) is left to the caller.

  Args:
    forward_params, backward_params: Keras-layout LSTM params (see `fused_lstm`), same
      F and U.
    inputs: (B, T, F), or (T, B, F) when time_major.
    initial_state: None or (h_f, c_f, h_b, c_b), each (B, U) (Keras Bidirectional order).
    seq_lengths, zero_output_for_mask, dtype, implementation, interpret, block_b,
      block_h, precision: as `fused_lstm`.

  Returns:
    (forward_outputs, backward_outputs, (h_f, c_f), (h_b, c_b)): outputs (B, T, U) (or
    (T, B, U)) in the compute dtype, backward_outputs in processing order (index k is the
    output after reading x[T-1-k], as `LSTM(go_backwards=True)` returns it); states
    (B, U) float32.

  >>> import jax, jax.numpy as jnp, rnnjax as rj
  >>> x = jnp.ones((2, 5, 3))
  >>> pf = rj.LSTM(4).init(jax.random.key(0), x)
  >>> pb = rj.LSTM(4).init(jax.random.key(1), x)
  >>> yf, yb, (hf, cf), (hb, cb) = rj.kernels.fused_bidirectional_lstm(
  ...     pf, pb, x, implementation="reference")
  >>> yf.shape, yb.shape, hb.shape
  ((2, 5, 4), (2, 5, 4), (2, 4))
  """
  features, units = _checks.check_params(forward_params, _config.GATES,
                                         argument="forward_params")
  bwd = _checks.check_params(backward_params, _config.GATES, argument="backward_params")
  if bwd != (features, units):
    raise ValueError(
        f"backward_params must have the same (F, U) as forward_params, got {bwd} and "
        f"{(features, units)}.")
  batch, _ = _checks.check_inputs(inputs, features, time_major=time_major)
  _checks.check_bool(time_major, "time_major")
  _checks.check_bool(zero_output_for_mask, "zero_output_for_mask")
  h_f, c_f, h_b, c_b = _checks.check_states(initial_state, 4, batch, units)
  lengths = _checks.check_lengths(seq_lengths, batch)
  cd = _checks.compute_dtype(dtype, inputs, forward_params)
  _tiling.check_block(block_b, "block_b")
  _tiling.check_block(block_h, "block_h", cd)
  impl, interpret = _checks.resolve(implementation, _config.unsupported_reason(cd), interpret)
  x = _shapes.batch_major(jnp.asarray(inputs), time_major)
  if impl == "reference":
    runs = [_reference.lstm(x, p["kernel"], p["recurrent_kernel"], p.get("bias"), h, c,
                            lengths, go_backwards=rev, zero_output_for_mask=zero_output_for_mask,
                            dtype=cd)
            for p, h, c, rev in ((forward_params, h_f, c_f, False),
                                 (backward_params, h_b, c_b, True))]
    (yf, hf, cf), (yb, hb, cb) = runs
  else:
    kernel = jnp.concatenate([forward_params["kernel"], backward_params["kernel"]], axis=1)
    bias = jnp.concatenate([_bias(forward_params, units), _bias(backward_params, units)])
    projected = _shapes.project(x, kernel, bias, cd)
    b, t = projected.shape[:2]
    rec = jnp.stack([forward_params["recurrent_kernel"], backward_params["recurrent_kernel"]])
    outputs, h, c = _api.run(
        projected.reshape(b, t, 2, 4 * units), rec, jnp.stack([h_f, h_b]),
        jnp.stack([c_f, c_b]), lengths, dtype=cd, directions=(False, True),
        zero_output_for_mask=zero_output_for_mask, interpret=interpret, block_b=block_b,
        block_h=block_h, precision=precision)
    yf, yb = outputs[:, :, 0], outputs[:, :, 1]
    hf, hb, cf, cb = h[0], h[1], c[0], c[1]
  return (_shapes.batch_major(yf, time_major), _shapes.batch_major(yb, time_major),
          (hf, cf), (hb, cb))
