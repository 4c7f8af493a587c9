"""The Mosaic GPU GRU (reset_after=True) recurrence on projected inputs (`run`, the
signature of `rnnjax.pallas.run_gru`) and the public `mosaic_gru`: layouts, the Keras bias
folding, and the kernels as an `_autodiff.Cell` (a `jax.custom_jvp` whose transpose runs
the backward kernel: every JAX transform composes). One CTA per direction and batch tile
(W_hh resident: units <= 128 in bfloat16); no cluster split."""

import dataclasses
from typing import ClassVar

import jax.numpy as jnp

from ... import _validation
from ...types import Array, ArrayLike, DTypeLike, Params
from .. import _checks, _shapes
from .._gates import GateSpec
from ..gru import SPEC
from . import _autodiff, _gru_backward, _gru_forward, _layout, _lstm, _plan, _twin
from ._common import F32

GATES = 3


def plans(batch: int, units: int, dtype, batch_tile: int | None = None):
  """(forward plan, backward plan); raises ValueError when W_hh does not fit one CTA."""
  fwd = _plan.plan(batch, units, dtype, units_per_step=3, operand_slots=2,
                   batch_tile=batch_tile, gates=GATES)
  bwd = None if fwd is None else _plan.plan(batch, units, dtype, units_per_step=6,
                                            operand_slots=2, batch_tile=fwd.bt,
                                            one_warpgroup=True, gates=GATES)
  if fwd is None or bwd is None:
    raise ValueError(_plan.fit_reason(batch, units, dtype, operand_slots=2, gates=GATES))
  return fwd, bwd


@dataclasses.dataclass(frozen=True)
class Kernels(_autodiff.Cell):
  """The GRU's kernels under (forward plan, backward plan) for `_autodiff`: state h; the
  vector b_h (D, Hp), the candidate's recurrent bias; residuals z, r, n, hb
  (D, T, 4, Hp, Bp) and the float32 h sequence (D, T, Hp, Bp)."""

  plans: tuple
  interpret: bool
  spec: ClassVar[GateSpec] = SPEC

  def forward(self, xp, w, vectors, states, *, save):
    ((bh,), (h0,)), bp = (vectors, states), xp.shape[-1]
    # The kernel adds b_h to a (rows, Bt) wgmma result, whose layout a broadcast column
    # does not have: it reads a (D, Hp, Bp) array.
    bh = jnp.broadcast_to(bh[:, :, None], bh.shape + (bp,))
    out = _gru_forward.forward(self.plans[0], xp, jnp.swapaxes(w, -1, -2),
                               h0.astype(w.dtype), h0, bh, save=save,
                               interpret=self.interpret)
    return (out[0], (out[1],)) + ((tuple(out[2:]),) if save else ())

  def twin_forward(self, xp, w, vectors, states):
    hs, finals, (saved,) = _twin.forward(SPEC, xp, w, vectors, states)
    # The kernel saves the h sequence in float32 too (the twin's is the output's, cast).
    return hs, finals, (saved, hs.astype(F32))

  def backward(self, fast, w, states, hs, residuals, dhs, dfinal):
    (h0,), (res, hs32), (dh,) = states, residuals, dfinal
    if fast:
      dxp, dhh, dh0 = _gru_backward.backward(self.plans[1], dhs.astype(F32), res, hs32, h0,
                                             w, dh.astype(F32), interpret=self.interpret)
    else:
      dxp, (dhh,), (dh0,) = _twin.backward(SPEC, dhs, dfinal, res, hs32, h0, w)
    dw = _lstm.weight_grad(h0, hs, jnp.concatenate([dxp[:, :, :2], dhh[:, :, None]], axis=2))
    return dxp, dw.astype(w.dtype), (jnp.sum(dhh, axis=(1, 3)),), (dh0,)


def run(projected, recurrent_kernels, recurrent_bias, h0, lengths, *, dtype, directions,
        zero_output_for_mask=False, interpret=None, block_b=None, block_h=None,
        precision=None):
  """The Mosaic GPU GRU recurrence for D directions in one launch (the arguments of
  `rnnjax.pallas.run_gru`).

  Args:
    projected: (B, T, D, 3U) = x @ kernel + input bias (float32).
    recurrent_kernels: (D, U, 3U) Keras layout (gates z, r, h).
    recurrent_bias: (D, 3U) or None: the Keras bias's second row (z and r parts are
      folded into the projection here, the candidate's stays inside r * (...)).
    h0: (D, B, U) float32.
    lengths: must be None (no masking yet).

  The other arguments are as in `rnnjax.pallas.mosaic.run_lstm`.

  Returns:
    outputs (B, T, D, U) in `dtype` (processing order); h (D, B, U) float32.
  """
  del zero_output_for_mask
  interpret = _lstm.check_run(dtype, interpret, lengths, block_b, block_h, precision,
                              cell="gru")
  b, u = projected.shape[0], projected.shape[-1] // GATES
  fwd, bwd = plans(b, u, dtype, block_b)
  d = recurrent_kernels.shape[0]
  rb = jnp.zeros((d, GATES * u), F32) if recurrent_bias is None else recurrent_bias.astype(F32)
  folded = projected.astype(F32) + jnp.concatenate(
      [rb[:, :2 * u], jnp.zeros((d, u), F32)], axis=1)[None, None]
  xp = _layout.projection(folded, directions, fwd.hp, fwd.bp, gates=GATES)
  w = _layout.recurrent(recurrent_kernels.astype(dtype), fwd.hp, gates=GATES)
  bh = jnp.pad(rb[:, 2 * u:], ((0, 0), (0, fwd.hp - u)))   # the candidate's, (D, Hp)
  hs, (h,) = _autodiff.recurrence(Kernels((fwd, bwd), interpret), xp, w, (bh,),
                                  (_layout.state(h0, fwd.hp, fwd.bp).astype(F32),))
  return _layout.outputs(hs, b, u), _layout.unstate(h, b, u)


def mosaic_gru(params: Params, inputs: ArrayLike, *, initial_state: ArrayLike | None = None,
               go_backwards: bool = False, time_major: bool = False,
               dtype: DTypeLike | None = None, interpret: bool | None = None,
               block_b: int | None = None) -> tuple[Array, Array]:
  """A Keras-semantics GRU (reset_after=True, tanh, sigmoid) as the Mosaic GPU (Hopper)
  kernels, with a backward (reverse mode runs the backward kernel; every transform
  composes). Opt-in and unmeasured, as `mosaic_lstm`;
  W_hh stays in one CTA (bfloat16: U <= 128).

  Args:
    params: {"kernel": (F, 3U), "recurrent_kernel": (U, 3U), optional "bias": (2, 3U)}.
    inputs: (B, T, F), or (T, B, F) when time_major.
    initial_state: h (B, U); zeros when None.

  `go_backwards`, `time_major`, `dtype`, `interpret` and `block_b` are as in
  `mosaic_lstm`.

  Returns:
    (outputs (B, T, U) (or (T, B, U)) in the compute dtype, h (B, U) float32).

  >>> import jax, jax.numpy as jnp, rnnjax as rj
  >>> x = jnp.ones((2, 3, 8), jnp.bfloat16)
  >>> params = rj.GRU(16).init(jax.random.key(0), x)
  >>> out, h = rj.kernels.mosaic_gru(params, x, dtype=jnp.bfloat16, interpret=True)
  >>> out.shape, out.dtype, h.shape
  ((2, 3, 16), dtype(bfloat16), (2, 16))
  """
  features, units = _checks.check_params(params, GATES, bias_rows=2)
  batch, _ = _checks.check_inputs(inputs, features, time_major=time_major)
  _validation.check_bool(go_backwards, "go_backwards")
  _validation.check_bool(time_major, "time_major")
  (h0,) = _checks.check_states(initial_state, 1, batch, units)
  cd = _checks.compute_dtype(dtype, inputs, params)
  x = _shapes.batch_major(jnp.asarray(inputs), time_major)
  bias = params.get("bias")
  projected = _shapes.project(x, params["kernel"], None if bias is None else bias[0], cd)
  outputs, h = run(projected[:, :, None], params["recurrent_kernel"][None],
                   None if bias is None else bias[1][None], h0[None], None, dtype=cd,
                   directions=(go_backwards,), interpret=interpret, block_b=block_b)
  return _shapes.batch_major(outputs[:, :, 0], time_major), h[0]
