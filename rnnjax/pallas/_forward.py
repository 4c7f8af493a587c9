"""The forward kernel of any gated cell: the whole time loop in one program per
(direction, batch tile).

Per step s (processing order; input-order time t = s, or T-1-s in reverse), per output
hidden chunk b (only that chunk's G accumulators are live at a time):
  rec_k = sum_a h[a] @ W_k[a, b]  (k < G; bf16/f32 operands, f32 accumulation)
  (new states, saved) = spec.forward_step(xp[t], rec, states, vectors)
  rows whose length <= t keep their states (right padding; in reverse the pads come
  first).
With `opts.masked` the first input is step flags (bB, T) instead of lengths: rows whose
RESET bit is set at t take the initial states before the step (kept in registers, as
chunks), and rows without the VALID bit keep their (reset) states; the h written at a
masked step is that incoming h, as the scan engine outputs it.
States are f32 carries held in registers, as tuples of (bB, block_h) chunks; W stays on
chip across steps when it fits (`opts.resident`). With `opts.prefetch` the projection of
step s+1 is loaded at the start of step s and carried through the loop, so its latency
hides behind the step's products (it costs G x Hp registers per row: the compile check
decides where it fits). Outputs: the h sequence (processing
order) and the final states; with `save`, also the residuals for the backward kernel:
the saved gate values and the sequences of `spec.saved_states`.
"""

import functools

import jax
import jax.numpy as jnp

from . import _pallas
from ._gates import GateSpec
from ._pallas import F32
from ._tiling import KernelOptions


def _kernel(len_ref, xp_ref, w_ref, *refs, spec: GateSpec, opts: KernelOptions, save: bool):
  # len_ref (bB,) lengths, or (bB, T) step flags with opts.masked;
  # xp_ref (bB, T, G, Hp); w_ref (G, Hp, Hp); refs: vectors (Hp,) f32, initial states
  # (bB, Hp), then outputs hs (bB, T, Hp), final states (bB, Hp), and with save the
  # residuals: saved gates (bB, T, R, Hp) and saved state sequences (bB, T, Hp) f32.
  nv, ns = spec.vectors, spec.states
  vec_refs, init_refs, hs_ref = refs[:nv], refs[nv:nv + ns], refs[nv + ns]
  final_refs, res_refs = refs[nv + ns + 1:nv + 2 * ns + 1], refs[nv + 2 * ns + 1:]
  steps = xp_ref.shape[1]
  cols = _pallas.chunks(hs_ref.shape[-1], opts.block_h)
  rev = _pallas.reversed_direction(opts.directions)
  lengths = None if opts.masked else len_ref[...]
  w_at = _pallas.load_blocks(w_ref, spec.gates, cols, opts.resident, opts.interpret)
  vectors = [[v[None, :] for v in _pallas.load_chunks(ref, cols)] for ref in vec_refs]

  def load_step(t):
    """The projection slots of input-order step t: per chunk, the G (bB, block_h) f32."""
    return tuple(tuple(xp_ref[:, t, k, col].astype(F32) for k in range(spec.gates))
                 for col in cols)

  def body(s, carry):
    states, x_now = carry if opts.prefetch else (carry, None)
    t = _pallas.time_index(rev, s, steps)
    w = w_at(s)
    if opts.prefetch:   # the next step's loads go out before this step's products
      x_next = load_step(_pallas.time_index(rev, jnp.minimum(s + 1, steps - 1), steps))
    if opts.masked:
      valid, reset = _pallas.step_flags(len_ref, t)
      states = tuple(tuple(jnp.where(reset, a, b) for a, b in zip(first, st))
                     for first, st in zip(start, states))
    else:
      valid = _pallas.valid_rows(t, lengths)
    operands = tuple(h.astype(w_ref.dtype) for h in states[0])   # cast once per step
    new = [[] for _ in range(spec.states)]
    for b, col in enumerate(cols):
      # One output chunk at a time: only this chunk's G accumulators are live.
      rec = [_pallas.chunk_product(operands, w, k, b, opts.precision)
             for k in range(spec.gates)]
      x = x_now[b] if opts.prefetch else [xp_ref[:, t, k, col].astype(F32)
                                          for k in range(spec.gates)]
      old = tuple(st[b] for st in states)
      stepped, saved = spec.forward_step(x, rec, old, tuple(v[b] for v in vectors))
      kept = [jnp.where(valid, n, o) for n, o in zip(stepped, old)]
      hs_ref[:, s, col] = kept[0].astype(hs_ref.dtype)
      if save:
        gs_ref, *seq_refs = res_refs
        for k, a in enumerate(saved):
          gs_ref[:, s, k, col] = a.astype(gs_ref.dtype)
        for ref, i in zip(seq_refs, spec.saved_states):
          ref[:, s, col] = kept[i]
      for chunks, value in zip(new, kept):
        chunks.append(value)
    new = tuple(tuple(chunks) for chunks in new)
    return (new, x_next) if opts.prefetch else new

  init = tuple(tuple(a.astype(F32) for a in _pallas.load_chunks(ref, cols, slice(None)))
               for ref in init_refs)
  start = init   # the initial states, which a reset restores
  if opts.prefetch:
    init = (init, load_step(_pallas.time_index(rev, 0, steps)))
  final = jax.lax.fori_loop(0, steps, body, init)
  for ref, chunks in zip(final_refs, final[0] if opts.prefetch else final):
    for col, value in zip(cols, chunks):
      ref[:, col] = value


def forward(spec: GateSpec, xp, w, vectors, states, lengths, opts: KernelOptions, *,
            save: bool):
  """Runs the forward kernel.

  Args:
    xp: (Bp, T, D, G, Hp) float32 projection slots, input time order.
    w: (D, G, Hp, Hp) recurrent blocks in the compute dtype (bfloat16 or float32).
    vectors: `spec.vectors` arrays (D, Hp) float32.
    states: `spec.states` initial states (D, Bp, Hp) float32.
    lengths: (Bp,) int32, or with `opts.masked` step flags (Bp, T, D) int32.
    save: also return the residuals.

  Returns:
    hs (Bp, T, D, Hp) in w's dtype, processing order; the final states (D, Bp, Hp)
    float32, a tuple; the residuals, a tuple: with save, the saved gates
    (Bp, T, D, R, Hp) in w's dtype and the sequences of `spec.saved_states`
    (Bp, T, D, Hp) float32, else empty.
  """
  bp, steps, d, _, hp = xp.shape
  bb = opts.block_b
  sds = jax.ShapeDtypeStruct
  state, seq = _pallas.state_spec(bb, hp), _pallas.seq_spec(bb, steps, hp)
  out_shape = [sds((bp, steps, d, hp), w.dtype)] + [sds((d, bp, hp), F32)] * spec.states
  out_specs = [seq] + [state] * spec.states
  if save:
    slots = spec.residual_slots
    out_shape += [sds((bp, steps, d, slots, hp), w.dtype)]
    out_shape += [sds((bp, steps, d, hp), F32)] * len(spec.saved_states)
    out_specs += [_pallas.gate_seq_spec(bb, steps, slots, hp)] + [seq] * len(spec.saved_states)
  in_specs = ([_pallas.steps_spec(opts, bb, steps),
               _pallas.gate_seq_spec(bb, steps, spec.gates, hp),
               _pallas.weight_spec(spec.gates, hp)]
              + [_pallas.vector_spec(hp)] * spec.vectors + [state] * spec.states)
  kernel = functools.partial(_kernel, spec=spec, opts=opts, save=save)
  hs, *rest = _pallas.call(kernel, opts, batch=bp, in_specs=in_specs, out_specs=out_specs,
                           out_shape=out_shape, name=f"rnnjax_{spec.name}_fwd")(
                               lengths, xp, w, *vectors, *states)
  return hs, tuple(rest[:spec.states]), tuple(rest[spec.states:])
