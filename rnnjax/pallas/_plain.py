"""The forward and backward kernels' recurrences in plain JAX (`lax.scan`), on the kernel
layouts and with the kernels' contracts (`_forward.forward(save=True)`,
`_backward.backward`), built from the same `GateSpec` steps. They are what autodiff sees
of the kernels: forward mode's tangent is the transpose of `backward`, and every higher
order differentiates these scans (a Pallas kernel's loop cannot be differentiated).

Per direction, time-major (T, Bp, ...) in processing order inside the scans; the kernels'
dot (`_pallas.dot`: operands in the weights' dtype, float32 accumulation).
"""

import jax
import jax.numpy as jnp

from .. import recurrences
from . import _pallas
from ._gates import GateSpec
from ._pallas import F32
from ._tiling import KernelOptions


def _time_major(x, d, rev):
  """(Bp, T, D, ...) -> direction d's (T, Bp, ...) in processing order."""
  x = jnp.swapaxes(x[:, :, d], 0, 1)
  return jnp.flip(x, 0) if rev else x


def _batch_major(x, rev):
  """(T, Bp, ...) in processing order -> (Bp, T, ...) in input order."""
  return jnp.swapaxes(jnp.flip(x, 0) if rev else x, 0, 1)


def _valid(lengths, steps, rev):
  """(T, Bp, 1) bool in processing order."""
  t = jnp.arange(steps)
  t = steps - 1 - t if rev else t
  return (t[:, None] < lengths[None, :])[..., None]


def _step_flags(lengths, d, steps, opts):
  """Direction d's ((T, Bp, 1) valid, (T, Bp, 1) reset) in processing order: from the
  step flags (Bp, T, D) with `opts.masked` (see `_pallas.VALID`), else from lengths (Bp,)
  (reset None)."""
  rev = opts.directions[d]
  if not opts.masked:
    return _valid(lengths, steps, rev), None
  flags = _time_major(lengths, d, rev)[..., None]
  return (flags & _pallas.VALID) != 0, (flags & _pallas.RESET) != 0


def forward(spec: GateSpec, xp, w, vectors, states, lengths, opts: KernelOptions):
  """`_forward.forward(..., save=True)` in plain JAX: (hs, final states, residuals)."""
  steps = xp.shape[1]
  hs, finals, saved, seqs = [], [], [], []
  for d, rev in enumerate(opts.directions):
    vec = tuple(v[d][None, :] for v in vectors)

    def step(state, inp, d=d, vec=vec):
      x_t, (valid, reset) = inp
      if reset is not None:
        state = tuple(jnp.where(reset, a[d], o) for a, o in zip(states, state))
      rec = [_pallas.dot(state[0], w[d, k], opts.precision) for k in range(spec.gates)]
      new, keep = spec.forward_step([x_t[:, k].astype(F32) for k in range(spec.gates)], rec,
                                    state, vec)
      kept = tuple(jnp.where(valid, n, o) for n, o in zip(new, state))
      return kept, (kept[0].astype(w.dtype), jnp.stack([a.astype(w.dtype) for a in keep], 1),
                    tuple(kept[i] for i in spec.saved_states))

    xs = (_time_major(xp, d, rev), _step_flags(lengths, d, steps, opts))
    init = recurrences.matched_carry(step, tuple(st[d] for st in states), xs)
    final, (h, g, s) = jax.lax.scan(step, init, xs)
    # the kernels write the sequences in processing order, at step s
    hs.append(jnp.swapaxes(h, 0, 1))
    saved.append(jnp.swapaxes(g, 0, 1))
    seqs.append([jnp.swapaxes(a, 0, 1) for a in s])
    finals.append(final)
  stack = lambda xs: jnp.stack(xs, axis=2)   # noqa: E731
  residuals = (stack(saved),) + tuple(stack(list(a)) for a in zip(*seqs))
  return stack(hs), tuple(jnp.stack(f) for f in zip(*finals)), residuals


def backward(spec: GateSpec, dhs, dfinal, saved, seq, seq0, wt, lengths,
             opts: KernelOptions, *, dz_dtype):
  """`_backward.backward` in plain JAX: (dxp, extra gradients, initial states' gradients)."""
  steps = dhs.shape[1]
  dxps, extras, dinits = [], [], []
  for d, rev in enumerate(opts.directions):
    now = jnp.swapaxes(seq[:, :, d], 0, 1)                          # processing order
    before = jnp.concatenate([seq0[d][None].astype(now.dtype), now[:-1]], 0)
    valid, reset = _step_flags(lengths, d, steps, opts)
    if reset is not None:
      before = jnp.where(reset, seq0[d][None].astype(now.dtype), before)

    def step(carry, inp, d=d):
      dh_s, keep, c_now, c_before, valid, reset = inp
      carry, acc = carry[:spec.states], carry[spec.states:]   # acc: empty unless masked
      old = (carry[0] + dh_s.astype(F32),) + tuple(carry[1:])
      grads = spec.backward_step(
          tuple(jnp.where(valid, a, 0.0) for a in old),
          tuple(keep[:, k].astype(F32) for k in range(spec.residual_slots)),
          lambda: c_now.astype(F32), lambda: c_before.astype(F32))
      rec = grads.direct
      for k, g in enumerate(grads.products):
        p = _pallas.dot(g, wt[d, k], opts.precision)
        rec = p if rec is None else rec + p
      new = (jnp.where(valid, rec, old[0]),) + tuple(
          jnp.where(valid, c, o) for c, o in zip(grads.carried, old[1:]))
      # a reset step started from the initial states: their gradient takes the carry
      if reset is not None:
        acc = tuple(a + jnp.where(reset, g, 0.0) for a, g in zip(acc, new))
        new = tuple(jnp.where(reset, 0.0, g) for g in new)
      return new + acc, (jnp.stack(grads.projection, 1).astype(dz_dtype),
                   tuple(e.astype(dz_dtype) for e in grads.extra))

    xs = (jnp.swapaxes(dhs[:, :, d], 0, 1), jnp.swapaxes(saved[:, :, d], 0, 1), now, before,
          valid, reset)
    start = tuple(a[d] for a in dfinal)
    if reset is not None:
      start += tuple(jnp.zeros_like(a) for a in start)
    init = recurrences.matched_carry(step, start, xs)
    carry, (dxp, extra) = jax.lax.scan(step, init, xs, reverse=True)
    dinit = carry[:spec.states]
    if reset is not None:
      dinit = tuple(a + b for a, b in zip(dinit, carry[spec.states:]))
    # the kernel writes these at input-order time t
    dxps.append(_batch_major(dxp, rev))
    extras.append([_batch_major(e, rev) for e in extra])
    dinits.append(dinit)
  return (jnp.stack(dxps, 2), tuple(jnp.stack(list(e), 2) for e in zip(*extras)),
          tuple(jnp.stack(a) for a in zip(*dinits)))
