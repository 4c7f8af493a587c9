"""The backward kernel of any gated cell: the reverse-time recurrence of the gradient.

Per processing step s, from the last to the first (t its input-order time):
  dh += dhs[s];  masked rows pass their state gradients through unchanged and see zeros
  grads = spec.backward_step(d, saved[s], now, before), per hidden chunk
  dh <- grads.direct + sum_k grads.products[k] @ W_k^T;  other states <- grads.carried
With `opts.masked` (step flags instead of lengths): validity from the VALID bit, and at
a row whose RESET bit is set the states' gradients after the step (the gradient of the
reset states) go to the initial states' gradients (accumulated in registers) and the
carry restarts from zero; the state before such a step is the initial one.
grads.projection (the gradient of the projection slots) and grads.extra are written at
input-order time t. Only the one recurrent product per step is sequential: every
weight gradient is a time-parallel matmul outside the kernel (see `_recurrence`).
"""

import functools

import jax
import jax.numpy as jnp

from . import _pallas
from ._gates import GateSpec
from ._pallas import F32
from ._tiling import KernelOptions


def _kernel(len_ref, dhs_ref, *refs, spec: GateSpec, opts: KernelOptions):
  # len_ref (bB,) lengths, or (bB, T) step flags with opts.masked;
  # dhs_ref (bB, T, Hp); refs: final states' gradients (bB, Hp) f32, saved gates
  # (bB, T, R, Hp), the backward state's sequence (bB, T, Hp) and initial value (bB, Hp),
  # W_k^T (G, Hp, Hp); then outputs dxp (bB, T, G, Hp), extra gradients (bB, T, Hp) and
  # the initial states' gradients (bB, Hp).
  ns, ne = spec.states, spec.extra_grads
  dfinal_refs, (gs_ref, seq_ref, seq0_ref, wt_ref, dxp_ref) = refs[:ns], refs[ns:ns + 5]
  extra_refs, dinit_refs = refs[ns + 5:ns + 5 + ne], refs[ns + 5 + ne:]
  steps = dhs_ref.shape[1]
  cols = _pallas.chunks(dhs_ref.shape[-1], opts.block_h)
  rev = _pallas.reversed_direction(opts.directions)
  lengths = None if opts.masked else len_ref[...]
  wt_at = _pallas.load_blocks(wt_ref, spec.gates, cols, opts.resident, opts.interpret)
  seq0 = _pallas.load_chunks(seq0_ref, cols, slice(None))

  def body(j, carry):
    if opts.masked:
      carry, acc = carry[:ns], carry[ns:]
    s = steps - 1 - j
    wt = wt_at(j)
    t = _pallas.time_index(rev, s, steps)
    if opts.masked:
      valid, reset = _pallas.step_flags(len_ref, t)
    else:
      valid = _pallas.valid_rows(t, lengths)

    def before(b, col):
      prev = jnp.where(s > 0, seq_ref[:, jnp.maximum(s - 1, 0), col].astype(F32), seq0[b])
      return jnp.where(reset, seq0[b], prev) if opts.masked else prev

    products, direct = [[] for _ in range(spec.gates)], []
    new = [[] for _ in range(ns)]
    for b, col in enumerate(cols):
      # dh takes this step's output cotangent; the other states' gradients carry over.
      old = (carry[0][b] + dhs_ref[:, s, col].astype(F32),) + tuple(d[b] for d in carry[1:])
      saved = tuple(gs_ref[:, s, k, col].astype(F32) for k in range(spec.residual_slots))
      # The backward state is loaded on demand: a load the cell does not use would stay
      # in the kernel (Pallas keeps ref reads).
      grads = spec.backward_step(
          tuple(jnp.where(valid, d, 0.0) for d in old), saved,
          lambda: seq_ref[:, s, col].astype(F32),
          lambda: before(b, col))
      for k, g in enumerate(grads.projection):
        dxp_ref[:, t, k, col] = g.astype(dxp_ref.dtype)
      for ref, g in zip(extra_refs, grads.extra):
        ref[:, t, col] = g.astype(ref.dtype)
      for k, g in enumerate(grads.products):
        products[k].append(g)
      direct.append(grads.direct)
      new[0].append(old[0])
      for chunks, d, o in zip(new[1:], grads.carried, old[1:]):
        chunks.append(jnp.where(valid, d, o))
    operands = [tuple(g.astype(wt_ref.dtype) for g in p) for p in products]
    dh = []
    for b in range(len(cols)):   # one output chunk at a time (see `_forward`)
      rec = direct[b]
      for k in range(spec.gates):
        p = _pallas.chunk_product(operands[k], wt, k, b, opts.precision)
        rec = p if rec is None else rec + p
      dh.append(jnp.where(valid, rec, new[0][b]))
    dh = tuple(dh)
    out = (dh,) + tuple(tuple(chunks) for chunks in new[1:])
    if not opts.masked:
      return out
    # A reset step started from the initial states: their gradient takes the carry.
    acc = tuple(tuple(a + jnp.where(reset, g, 0.0) for a, g in zip(sa, so))
                for sa, so in zip(acc, out))
    return tuple(tuple(jnp.where(reset, 0.0, g) for g in so) for so in out) + acc

  dfinal = tuple(_pallas.load_chunks(ref, cols, slice(None)) for ref in dfinal_refs)
  if opts.masked:
    dfinal += tuple(tuple(jnp.zeros_like(a) for a in chunks) for chunks in dfinal)
  dinit = jax.lax.fori_loop(0, steps, body, dfinal)
  if opts.masked:
    dinit = tuple(tuple(a + b for a, b in zip(sc, sa))
                  for sc, sa in zip(dinit[:ns], dinit[ns:]))
  for ref, chunks in zip(dinit_refs, dinit):
    for col, value in zip(cols, chunks):
      ref[:, col] = value


def backward(spec: GateSpec, dhs, dfinal, saved, seq, seq0, wt, lengths,
             opts: KernelOptions, *, dz_dtype):
  """Runs the backward kernel.

  Args:
    dhs: (Bp, T, D, Hp) cotangent of the h sequence (processing order).
    dfinal: `spec.states` float32 cotangents (D, Bp, Hp) of the final states.
    saved: (Bp, T, D, R, Hp) the forward's saved gates.
    seq, seq0: the backward state's sequence (Bp, T, D, Hp) (processing order) and its
      initial value (D, Bp, Hp) float32.
    wt: (D, G, Hp, Hp) transposed recurrent blocks W_k^T.
    lengths: (Bp,) int32, or with `opts.masked` step flags (Bp, T, D) int32.

  Returns:
    dxp (Bp, T, D, G, Hp) and the `spec.extra_grads` gradients (Bp, T, D, Hp), a tuple,
    in `dz_dtype`, input time order; the initial states' gradients (D, Bp, Hp) float32,
    a tuple.
  """
  bp, steps, d, hp = dhs.shape
  bb = opts.block_b
  sds = jax.ShapeDtypeStruct
  seq_spec, state = _pallas.seq_spec(bb, steps, hp), _pallas.state_spec(bb, hp)
  ns, ne = spec.states, spec.extra_grads
  in_specs = ([_pallas.steps_spec(opts, bb, steps), seq_spec] + [state] * ns
              + [_pallas.gate_seq_spec(bb, steps, spec.residual_slots, hp), seq_spec, state,
                 _pallas.weight_spec(spec.gates, hp)])
  out_specs = [_pallas.gate_seq_spec(bb, steps, spec.gates, hp)] + [seq_spec] * ne + [state] * ns
  out_shape = ([sds((bp, steps, d, spec.gates, hp), dz_dtype)]
               + [sds((bp, steps, d, hp), dz_dtype)] * ne + [sds((d, bp, hp), F32)] * ns)
  kernel = functools.partial(_kernel, spec=spec, opts=opts)
  dxp, *rest = _pallas.call(kernel, opts, batch=bp, in_specs=in_specs, out_specs=out_specs,
                            out_shape=out_shape, name=f"rnnjax_{spec.name}_bwd")(
                                lengths, dhs, *dfinal, saved, seq, seq0, wt)
  return dxp, tuple(rest[:ne]), tuple(rest[ne:])
