"""The fused LSTM recurrence as plain XLA (no Pallas): the CPU backend of the fused path.

A `jax.custom_jvp` (not a custom VJP), so that every JAX transform composes with it:
forward mode (jvp, jacfwd, linearize), reverse mode (JAX transposes the linear tangent),
and every higher order (the rule is plain JAX, so autodiff differentiates it again).

The rule runs the primal scan saving the tangent's coefficients (`_lstm_scans.forward`),
then the tangent recurrence, which is linear in the tangents and split in two:
  - the time-parallel part of dz, a = dx @ kernel + x @ dkernel + dbias + h_prev @ dW,
    as flat (T*B, ...) matmuls before the loop;
  - the tangent scan carrying only (dh, dc), with ONE matmul per step (dh @ W).
Reverse mode is JAX's transpose of this: a reverse scan with one dz @ W^T per step, and
the gradients of kernel, bias, W and x as single GEMMs after the loop (the transposes of
the hoisted matmuls) — the structure of a hand-written backward, derived, not written.

Everything is time-major (T, B, ...) in processing order, in one float dtype (`run`
uses float32).
"""

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from . import _lstm_scans
from ._carry import cast_like

F32 = jnp.float32


def _matmul(x, y):
  """(T, B, K) @ (K, N) as one flat (T*B, K) matmul: (T, B, N). A 3-D product would
  make XLA transpose the cotangent before the weight gradient; under explicit sharding
  (B sharded, which a flat reshape cannot keep) it is the 3-D product."""
  spec = getattr(getattr(jax.typeof(x), "sharding", None), "spec", None)
  if spec is not None and any(a is not None for a in spec):
    return jnp.einsum("tbk,kn->tbn", x, y)
  steps, batch, k = x.shape
  return (x.reshape(steps * batch, k) @ y).reshape(steps, batch, y.shape[-1])


def _total(terms):
  """The sum of the terms that are not None; None when all are."""
  terms = [t for t in terms if t is not None]
  if not terms:
    return None
  out = terms[0]
  for t in terms[1:]:
    out = out + t
  return out


def _dense(tangent, like):
  """A tangent as an array: zeros for a symbolic zero."""
  return jnp.zeros_like(like) if isinstance(tangent, SymbolicZero) else tangent


def _given(tangent):
  return None if isinstance(tangent, SymbolicZero) else tangent


def _recurrent_term(h0, hs, dw):
  """h_prev @ dW (T, B, 4U), h_prev the state each step started from; None if dW is 0."""
  if isinstance(dw, SymbolicZero):
    return None
  return _matmul(jnp.concatenate([cast_like(h0[None], hs), hs[:-1]], 0), dw)


@jax.custom_jvp
def recurrence(xs, w, h0, c0, valid):
  """The LSTM recurrence over projected inputs: xs (T, B, 4U), w (U, 4U), h0, c0 (B, U),
  valid (T, B) bool or None. Returns (hs (T, B, U), hT, cT (B, U))."""
  hs, hT, cT, _ = _lstm_scans.forward(xs, w, h0, c0, valid)
  return hs, hT, cT


def _recurrence_jvp(primals, tangents):
  xs, w, h0, c0, valid = primals
  dxs, dw, dh0, dc0, _ = tangents
  hs, hT, cT, coefficients = _lstm_scans.forward(xs, w, h0, c0, valid, save=True)
  a = _total([_given(dxs), _recurrent_term(h0, hs, dw)])
  dout = _lstm_scans.tangent(w, coefficients, a, _dense(dh0, h0), _dense(dc0, c0), valid)
  return (hs, hT, cT), dout


recurrence.defjvp(_recurrence_jvp, symbolic_zeros=True)


@jax.custom_jvp
def projected_recurrence(x, kernel, bias, w, h0, c0, valid):
  """The recurrence with the input projection x_t @ kernel + bias inside the loop.

  x (T, B, F); kernel (F, 4U); bias (4U,); the rest as `recurrence`. Returns (hs, hT, cT).
  The tangent's input part dx @ kernel + x @ dkernel + dbias is hoisted with h_prev @ dW,
  so the gradients dx, dkernel, dbias, dW are time-parallel matmuls over all T*B rows.
  """
  hs, hT, cT, _ = _lstm_scans.forward(x, w, h0, c0, valid, (kernel, bias))
  return hs, hT, cT


def _projected_jvp(primals, tangents):
  x, kernel, bias, w, h0, c0, valid = primals
  dx, dkernel, dbias, dw, dh0, dc0, _ = tangents
  hs, hT, cT, coefficients = _lstm_scans.forward(x, w, h0, c0, valid, (kernel, bias),
                                                 save=True)
  a = _total([None if _given(dx) is None else _matmul(dx, kernel),
              None if _given(dkernel) is None else _matmul(x, dkernel),
              _recurrent_term(h0, hs, dw)])
  if _given(dbias) is not None:
    db = jnp.broadcast_to(dbias[None, None, :], hs.shape[:2] + dbias.shape)
    a = db if a is None else a + db
  dout = _lstm_scans.tangent(w, coefficients, a, _dense(dh0, h0), _dense(dc0, c0), valid)
  return (hs, hT, cT), dout


projected_recurrence.defjvp(_projected_jvp, symbolic_zeros=True)


def valid_steps(lengths, steps: int, go_backwards: bool):
  """(T, B) bool in processing order, or None when `lengths` is None."""
  if lengths is None:
    return None
  t = jnp.arange(steps)
  if go_backwards:
    t = steps - 1 - t
  return t[:, None] < jnp.asarray(lengths)[None, :]


def run(inputs, recurrent_kernel, h0, c0, lengths, *, go_backwards: bool,
        zero_output_for_mask: bool = False, projection=None):
  """The recurrence of one direction on time-major inputs.

  Args:
    inputs: (T, B, 4U) = x @ kernel + bias when `projection` is None, else (T, B, F) x;
      already in processing order (reversed in time when go_backwards).
    recurrent_kernel: (U, 4U) Keras layout.
    projection: None, or (kernel (F, 4U), bias (4U,)) to project inside the loop.
    h0, c0: (B, U).
    lengths: (B,) int or None (right padding, in input time order).

  Returns:
    outputs (T, B, U) float32 in processing order; h, c (B, U) float32 final states.
  """
  steps = inputs.shape[0]
  valid = valid_steps(lengths, steps, go_backwards)
  state = (recurrent_kernel.astype(F32), h0.astype(F32), c0.astype(F32), valid)
  if projection is None:
    hs, h, c = recurrence(inputs.astype(F32), *state)
  else:
    kernel, bias = (a.astype(F32) for a in projection)
    hs, h, c = projected_recurrence(inputs.astype(F32), kernel, bias, *state)
  if zero_output_for_mask and valid is not None:
    hs = jnp.where(valid[..., None], hs, jnp.zeros((), hs.dtype))
  return hs, h, c
