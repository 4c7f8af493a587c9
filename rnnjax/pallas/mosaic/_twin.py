"""The Mosaic kernels' plain-JAX twins: the Triton kernels' twins (`pallas._plain`, one
`lax.scan` per direction built from the cell's `GateSpec` steps) on the Mosaic layouts.
They are what autodiff sees of the Mosaic kernels (see `_autodiff`); no new math here,
only layout changes.

Mosaic layouts (processing order, units on rows, batch on columns): slots
(D, T, G, Hp, Bp), sequences (D, T, Hp, Bp), states (D, Hp, Bp), W (D, G, Hp, Hp)
[dir, gate, in, out]. `_plain` takes (Bp, T, D, G, Hp), (Bp, T, D, Hp), (D, Bp, Hp) and
the same W. The Mosaic projection is already in processing order, so the twins run every
direction forwards in time, every row for all T steps (the kernels do not mask).
"""

import jax.numpy as jnp

from .. import _plain
from .._gates import GateSpec
from .._tiling import KernelOptions
from ._common import F32


def _options(directions: int) -> KernelOptions:
  # `_plain` reads only `directions` and `precision`; the tiling fields are placeholders.
  return KernelOptions(directions=(False,) * directions, block_b=16, block_h=16,
                       resident=True, num_warps=4, num_stages=1, interpret=True)


def _slots_in(x):    # (D, T, G, Hp, Bp) -> (Bp, T, D, G, Hp)
  return jnp.transpose(x, (4, 1, 0, 2, 3))


def _slots_out(x):   # (Bp, T, D, G, Hp) -> (D, T, G, Hp, Bp)
  return jnp.transpose(x, (2, 1, 3, 4, 0))


def _seq_in(x):      # (D, T, Hp, Bp) -> (Bp, T, D, Hp)
  return jnp.transpose(x, (3, 1, 0, 2))


def _seq_out(x):     # (Bp, T, D, Hp) -> (D, T, Hp, Bp)
  return jnp.transpose(x, (2, 1, 3, 0))


def _state(x):       # (D, Hp, Bp) <-> (D, Bp, Hp)
  return jnp.swapaxes(x, 1, 2)


def _lengths(xp):
  return jnp.full((xp.shape[-1],), xp.shape[1], jnp.int32)


def forward(spec: GateSpec, xp, w, vectors, states):
  """The forward kernels' recurrence with residuals, on Mosaic layouts.

  Args:
    xp: (D, T, G, Hp, Bp) float32; w: (D, G, Hp, Hp) compute dtype [dir, gate, in, out];
    vectors: `spec.vectors` arrays (D, Hp) float32; states: `spec.states` (D, Hp, Bp)
    float32.

  Returns:
    hs (D, T, Hp, Bp) in w's dtype, the final states (D, Hp, Bp) float32, and the
    residuals: the saved gate values (D, T, R, Hp, Bp) float32, then the sequences of
    `spec.saved_states` (D, T, Hp, Bp) float32.
  """
  hs, finals, (saved, *seqs) = _plain.forward(
      spec, _slots_in(xp), w, tuple(vectors), tuple(_state(s) for s in states),
      _lengths(xp), _options(xp.shape[0]))
  return (_seq_out(hs), tuple(_state(f) for f in finals),
          (_slots_out(saved).astype(F32),) + tuple(_seq_out(s).astype(F32) for s in seqs))


def backward(spec: GateSpec, dhs, dfinal, saved, seq, seq0, w):
  """The backward kernels' recurrence on Mosaic layouts.

  Args:
    dhs: (D, T, Hp, Bp) cotangent of the outputs; dfinal: the final states' cotangents
      (D, Hp, Bp); saved: (D, T, R, Hp, Bp); seq: (D, T, Hp, Bp) the backward state's
      sequence (`spec.backward_state`) and seq0 (D, Hp, Bp) its initial value; w:
      (D, G, Hp, Hp) [dir, gate, in, out].

  Returns:
    dxp (D, T, G, Hp, Bp), the extra gradients (D, T, Hp, Bp) each and the initial
    states' gradients (D, Hp, Bp), float32.
  """
  dxp, extra, dinit = _plain.backward(
      spec, _seq_in(dhs), tuple(_state(d).astype(F32) for d in dfinal), _slots_in(saved),
      _seq_in(seq), _state(seq0), jnp.swapaxes(w, -1, -2), _lengths(saved),
      _options(dhs.shape[0]), dz_dtype=F32)
  return (_slots_out(dxp), tuple(_seq_out(e) for e in extra),
          tuple(_state(d) for d in dinit))

