"""The tangent recurrence of `_driver.py`: its scan (forward mode) and, as its transpose
(reverse mode), a hand-written reverse scan, joined as one linear map
(`rnnjax._linear_map`).

Forward mode runs `scan`, one dh @ W per step; reverse mode runs `reverse`, one
dz @ W^T per step, with each cell's transposed step written out (`cell.transpose`)
instead of derived by JAX (for the LSTM and the GRU on the CPU, the same reverse scan as
one native call where built: `_native.reverse`); every higher order differentiates the plain scans
(`_linear_map` takes the jvp of `forward` and of `transpose_reference`, JAX's transpose
of `scan`).

Each cell's `transpose(loop_t, g) -> (g_a, g_hw, g_state)`: from the cotangents g of its
tangent step's new state, those of a_t (the hoisted part; None when the cell has none),
of dhw = dh @ W and of the old state (a tuple, None entries are zeros).
"""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from .. import _linear_map
from . import _native
from ._carry import matched
from ._flags import select


def scan(cell, w, loop, a, dstate0, valid, keep):
  """The tangent scan, linear in (a, dstate0).

  Args:
    w: (U, GU) recurrent kernel (a primal: dW enters through `a`).
    loop: `cell.loop(coefficients)`, time-stacked; a: `cell.hoist(...)` or None.
    dstate0: the initial state's tangents (B, U) each.
    valid: (T, B) bool or None; keep: (T, B) bool or None (`keep_flags` of the resets).

  Returns:
    dhs (T, B, U), the final state's tangents.
  """
  units = w.shape[0]

  def wide(flags):
    # (T, B, U) before the loop: the body then holds only linear operations on the
    # tangents, so JAX's transpose splits off no loop of its own to broadcast the flags.
    return None if flags is None else jnp.broadcast_to(flags[..., None], flags.shape + (units,))

  def step(dstate, inp):
    a_t, coefficients, v, k = inp
    new = cell.tangent(coefficients, a_t, dstate[0] @ w, dstate)
    if v is not None:
      new = select(v, new, dstate)
    dh = new[0]
    if k is not None:
      new = select(k, new, dstate0)
    return new, dh

  xs = (a, loop, wide(valid), wide(keep))
  dstate, dhs = jax.lax.scan(step, matched(step, tuple(dstate0), xs), xs)
  return dhs, dstate


def _zero_where(flags, g):
  """g (B, U) with rows zeroed where flags (B,) are False."""
  return jnp.where(flags[:, None], g, jnp.zeros((), g.dtype))


def _zero_unless(flags, g):
  """g (B, U) with rows zeroed where flags (B,) are True."""
  return jnp.where(flags[:, None], jnp.zeros((), g.dtype), g)


def reverse(cell, w, loop, ct_hs, ct_final, valid, keep, with_a: bool):
  """The transpose of `scan`, as one reverse scan.

  Args:
    w: (U, GU); loop: `cell.loop(coefficients)`, time-stacked.
    ct_hs: (T, B, U) the cotangent of dhs; ct_final: the final state's, (B, U) each.
    valid: (T, B) bool or None; keep: (T, B) bool or None (`keep_flags` of the resets:
      False where the next step resets).
    with_a: whether to return the hoisted part's cotangent.

  Returns:
    The cotangent of a (T, B, ·) (None without `with_a`) and of the initial state tuple.
  """
  wt = w.T

  def step(carry, inp):
    g, g0 = carry
    ct_h, loop_t, v, k = inp
    if k is not None:   # where the next step resets, the state came from state0
      g0 = tuple(a + _zero_unless(k, b) for a, b in zip(g0, g))
      g = tuple(_zero_where(k, b) for b in g)
    g = (g[0] + ct_h,) + g[1:]
    held = None
    if v is not None:   # a masked step passed the state through
      held = tuple(_zero_unless(v, b) for b in g)
      g = tuple(_zero_where(v, b) for b in g)
    g_a, g_hw, g_state = cell.transpose(loop_t, g)
    prev = [jnp.zeros_like(b) if s is None else s for b, s in zip(g, g_state)]
    prev[0] = prev[0] + g_hw @ wt
    if held is not None:
      prev = [p + h for p, h in zip(prev, held)]
    return (tuple(prev), g0), (g_a if with_a else None)

  g0 = tuple(jnp.zeros_like(c) for c in ct_final) if keep is not None else None
  xs = (ct_hs, loop, valid, keep)
  init = matched(step, (tuple(ct_final), g0), xs)
  (g, g0), ct_a = jax.lax.scan(step, init, xs, reverse=True)
  if g0 is not None:
    g = tuple(a + b for a, b in zip(g, g0))
  return ct_a, g


@dataclasses.dataclass(frozen=True)
class TangentMap:
  """`scan` as a `_linear_map` rule. Flat operands: residuals (w, *loop leaves,
  [valid], [keep]); linear ([a], *dstate0); outputs (dhs, *dstate)."""

  cell: Any
  loop_tree: Any          # the treedef of cell.loop(coefficients)
  a_width: int | None     # a's last axis, None when there is no hoisted part
  masked: bool
  resets: bool

  def residuals(self, w, loop, valid, keep) -> tuple:
    return (w, *jax.tree.leaves(loop),
            *([valid] if self.masked else []), *([keep] if self.resets else []))

  def _split(self, res):
    n = self.loop_tree.num_leaves
    w, loop, rest = res[0], jax.tree.unflatten(self.loop_tree, res[1:1 + n]), list(res[1 + n:])
    valid = rest.pop(0) if self.masked else None
    keep = rest.pop(0) if self.resets else None
    return w, loop, valid, keep

  def forward(self, res, lin):
    w, loop, valid, keep = self._split(res)
    a, dstate0 = (lin[0], lin[1:]) if self.a_width is not None else (None, lin)
    dhs, dstate = scan(self.cell, w, loop, a, tuple(dstate0), valid, keep)
    return (dhs, *dstate)

  def transpose(self, res, ct):
    w, loop, valid, keep = self._split(res)
    with_a = self.a_width is not None

    args = (self.cell, w, loop, ct[0], ct[1:], valid, keep, with_a)
    native = _native.reverse(*args)
    ct_a, ct0 = (reverse(*args) if native is None
                 else jax.lax.platform_dependent(cpu=native, default=lambda: reverse(*args)))
    return ((ct_a,) if with_a else ()) + tuple(ct0)

  def transpose_reference(self, res, ct):
    dhs, final = ct[0], ct[1:]
    like = tuple(final)
    if self.a_width is not None:
      like = (jnp.zeros(dhs.shape[:2] + (self.a_width,), dhs.dtype),) + like
    return _linear_map.transpose_linear(lambda lin: self.forward(res, lin), like, ct,
                                        others=res)


def apply(cell, w, loop, a, dstate0, valid, keep):
  """`scan(...)` (same arguments and results) as the linear map: reverse mode runs
  `reverse`."""
  rule = TangentMap(cell, jax.tree.structure(loop), None if a is None else a.shape[-1],
                    valid is not None, keep is not None)
  lin = ((a,) if a is not None else ()) + tuple(dstate0)
  dhs, *dstate = _linear_map.apply(rule, rule.residuals(w, loop, valid, keep), lin)
  return dhs, tuple(dstate)
