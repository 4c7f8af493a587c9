"""The generic custom-JVP recurrence of the dense cells (LSTM, GRU, SimpleRNN) in plain XLA:
the two scans and the hoisted tangent terms; each cell's math is a small object of its
own (`_lstm_math`, `_gru_math`, `_simple_math`) with

  gates: G (the recurrent kernel is (U, G*U)); states: 1 (h,) or 2 (h, c);
  step(z, hw, state, save) -> (new state, coefficients or None): z (B, GU) the projected
    input, hw (B, GU) = h @ W (+ the recurrent bias);
  hoist(coefficients, a_x, a_h) -> a: the time-parallel part of the tangent, from
    a_x (T, B, GU) (the projected input's tangent) and a_h (T, B, GU) (h_prev @ dW + the
    recurrent bias's tangent), either None when zero;
  loop(coefficients) -> what the tangent step reads per step;
  tangent(loop_t, a_t, dhw, dstate) -> new dstate, LINEAR in (a_t, dhw, dstate);
  transpose(loop_t, g) -> its transpose (`_tangent.py`).

So the tangent scan (`_tangent.py`) does ONE matmul per step (dh @ W) plus multiply-adds,
and its transpose (the reverse-mode backward, a hand-written reverse scan) one dz @ W^T
per step, with the gradients of kernel, biases, W and x as single GEMMs after the loop
(JAX's transposes of the hoisted terms).

Masks and resets follow the scan engine (`engine/_scan.py`): at a reset step the state
is set back to the initial state first (also when that step is masked); at a masked step
the (reset) state is kept. The tangent does the same to the tangents: the reset tangent
is the initial state's, `where(reset, h0, h)` being linear in (h0, h).

Everything is time-major (T, B, ...) in processing order, in one float dtype.
"""

import functools

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from . import _native, _tangent
from ._carry import cast_like, matched
from ._flags import keep_flags, select


def _matmul(x, y):
  """(T, B, K) @ (K, N) as one flat (T*B, K) matmul: (T, B, N). A 3-D product would
  make XLA transpose the cotangent before the weight gradient; under explicit sharding
  (B sharded, which a flat reshape cannot keep) it is the 3-D product."""
  spec = getattr(getattr(jax.typeof(x), "sharding", None), "spec", None)
  if spec is not None and any(a is not None for a in spec):
    return jnp.einsum("tbk,kn->tbn", x, y)
  steps, batch, k = x.shape
  return (x.reshape(steps * batch, k) @ y).reshape(steps, batch, y.shape[-1])


def total(terms):
  """The sum of the terms that are not None; None when all are."""
  terms = [t for t in terms if t is not None]
  if not terms:
    return None
  out = terms[0]
  for t in terms[1:]:
    out = out + t
  return out


class SummedHoist:
  """`hoist` and `loop` of a cell whose tangent adds the time-parallel part to dhw as it
  is (the LSTM, SimpleRNN): a = a_x + a_h, and the tangent step reads the coefficients."""

  def hoist(self, coefficients, a_x, a_h):
    del coefficients
    return total([a_x, a_h])

  def loop(self, coefficients):
    return coefficients


def _given(tangent):
  return None if tangent is None or isinstance(tangent, SymbolicZero) else tangent


def forward(cell, inputs, projection, w, b_rec, state0, valid, reset, save: bool = False):
  """The primal scan.

  Args:
    cell: the cell's math object.
    inputs: (T, B, GU) projected inputs, or (T, B, F) when `projection` = (kernel (F, GU),
      bias (GU,)) is given (then x_t @ kernel + bias runs inside the loop).
    w: (U, GU) recurrent kernel; b_rec: (GU,) recurrent bias or None.
    state0: the initial state tuple, leaves (B, U).
    valid, reset: (T, B) bool or None.
    save: also return the tangent's coefficients (time-stacked).

  Returns:
    hs (T, B, U) (the carried h: masked steps repeat it), the final state tuple, and the
    coefficients (or None).
  """
  # A reset applies at the end of the step before it (`keep_flags`), fused with that
  # step's math. At the start of its step instead (the select feeding the matmul, the
  # output being the carry), the inference forward with 3% resets at (128,128,64,256) was
  # 0.98-1.00x the reset-free run on a quiet machine but 1.09-1.16x under load (against
  # 1.02-1.06x here), and the saving forward 4% slower: not kept.
  def step(state, inp):
    x_t, v, keep = inp
    if projection is not None:
      x_t = x_t @ projection[0] + projection[1][None, :]
    hw = state[0] @ w
    if b_rec is not None:
      hw = hw + b_rec[None, :]
    new, coefficients = cell.step(x_t, hw, state, save)
    if v is not None:
      new = select(v, new, state)
    h = new[0]
    if keep is not None:
      new = select(keep, new, state0)
    return new, (h, coefficients)

  xs = (inputs, valid, keep_flags(reset))
  state, (hs, coefficients) = jax.lax.scan(step, matched(step, tuple(state0), xs), xs)
  return hs, state, coefficients


def _previous_h(h0, hs, reset):
  """(T, B, U) the h each step started from (after its reset)."""
  prev = jnp.concatenate([cast_like(h0[None], hs), hs[:-1]], 0)
  if reset is not None:
    prev = jnp.where(reset[..., None], cast_like(h0[None], hs), prev)
  return prev


def _spread(bias_tangent, steps_batch):
  """A (GU,) bias tangent over every step and row: (T, B, GU); None if it is zero."""
  db = _given(bias_tangent)
  return None if db is None else jnp.broadcast_to(db[None, None, :], steps_batch + db.shape)


def _fast_forward(cell, inputs, projection, w, b_rec, state0, valid, reset, save):
  """`forward`, as one native call on the CPU where `_native` takes the arguments."""
  def scan():
    return forward(cell, inputs, projection, w, b_rec, state0, valid, reset, save)

  native = _native.forward(cell, inputs, projection, w, b_rec, state0, valid, reset, save)
  if native is None:
    return scan()
  return jax.lax.platform_dependent(cpu=native, default=scan)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _saving_forward(cell, inputs, projection, w, b_rec, state0, valid, reset):
  """`forward(..., save=True)` for the rule: native where it can be; differentiated (the
  rule's own derivative, second order and up) as the scan."""
  return _fast_forward(cell, inputs, projection, w, b_rec, state0, valid, reset, True)


@_saving_forward.defjvp
def _saving_forward_jvp(cell, primals, tangents):
  return jax.jvp(lambda *a: forward(cell, *a, save=True), primals, tangents)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def recurrence(cell, inputs, projection, w, b_rec, state0, valid, reset):
  """The recurrence of `cell` (see the module docstring; arguments as `forward`).
  Returns (hs (T, B, U), final state tuple). Undifferentiated, the LSTM's and the GRU's
  run as one native call on the CPU where it is built (`_native.py`)."""
  hs, state, _ = _fast_forward(cell, inputs, projection, w, b_rec, state0, valid, reset,
                               False)
  return hs, state


def _recurrence_jvp(cell, primals, tangents):
  inputs, projection, w, b_rec, state0, valid, reset = primals
  d_inputs, d_projection, dw, db_rec, dstate0, _, _ = tangents
  hs, state, coefficients = _saving_forward(cell, inputs, projection, w, b_rec, state0,
                                            valid, reset)
  steps_batch = hs.shape[:2]
  d_inputs = _given(d_inputs)
  if projection is None:
    a_x = d_inputs
  else:
    kernel, _ = projection
    d_kernel, d_bias = d_projection
    a_x = total([None if d_inputs is None else _matmul(d_inputs, kernel),
                 None if _given(d_kernel) is None else _matmul(inputs, d_kernel),
                 _spread(d_bias, steps_batch)])
  dw = _given(dw)
  a_h = total([None if dw is None else _matmul(_previous_h(state0[0], hs, reset), dw),
               None if b_rec is None else _spread(db_rec, steps_batch)])
  a = cell.hoist(coefficients, a_x, a_h)
  dstate0 = tuple(jnp.zeros_like(s) if _given(d) is None else d
                  for s, d in zip(state0, dstate0))
  dhs, dstate = _tangent.apply(cell, w, cell.loop(coefficients), a, dstate0, valid,
                               keep_flags(reset))
  return (hs, state), (dhs, dstate)


recurrence.defjvp(_recurrence_jvp, symbolic_zeros=True)


def last_valid(hs, h0, valid):
  """(B, U) the output of each row's last valid step, h0 where no step is valid.

  hs: (T, B, U) the carried h; valid: (T, B) bool. Only needed when masks and resets
  meet: a reset at a masked step after the last valid one changes the final state but
  not the last output."""
  later = jnp.cumsum(valid[::-1].astype(jnp.int32), 0)[::-1]   # valid steps at or after t
  is_last = valid & (later == 1)
  last = jnp.sum(jnp.where(is_last[..., None], hs, jnp.zeros((), hs.dtype)), 0)
  return jnp.where((later[0] > 0)[:, None], last, cast_like(h0, last))
