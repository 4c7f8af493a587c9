"""The one time loop of rnnjax: every layer runs its cell through `rnn()`.

Masks, resets and reversal are data flowing into a single scan body, not
separate branches. The cell's time-parallel work (`project`, e.g. `x @ kernel`)
runs once over the whole sequence before the loop; only `step` runs inside it.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from .. import _platform
from . import _remat, _sharding
from ._order import from_scan_order, to_scan_order


class RNNResult(NamedTuple):
  """What `rnn` returns.

  outputs: per-step outputs in processing order, (B, T, ...) (or (T, B, ...) when
    time_major), None unless return_sequences.
  last_output: the output of the last valid (unmasked) step, (B, ...).
  final_state: the state after the last valid step, same structure as the initial state.
  """

  outputs: object
  last_output: object
  final_state: tuple


def as_tuples(tree):
  """Lists (and tuples) of states, at any depth, as plain tuples: one carry structure."""
  if isinstance(tree, (list, tuple)) and not hasattr(tree, "_fields"):
    return tuple(as_tuples(t) for t in tree)
  return tree


def _bcast(flags: jax.Array, like: jax.Array) -> jax.Array:
  """(B,) flags shaped to broadcast against a (B, ...) leaf."""
  return flags.reshape(flags.shape + (1,) * (like.ndim - 1))


def _select(flags, if_true, if_false):
  """Per batch row: `if_true` where flags else `if_false`, over matching pytrees."""
  return jax.tree.map(lambda a, b: jnp.where(_bcast(flags, a), a, b), if_true, if_false)


def _keras_previous_output(states):
  """What Keras outputs at a masked step: the first state (of the last cell when stacked)."""
  first = states[0]
  if isinstance(first, (tuple, list)):
    first = states[-1][0]
  return first


def _restructure(new, old):
  """`new`'s leaves in `old`'s structure and dtypes (cells may return lists for tuples)."""
  new_leaves, old_leaves = jax.tree.leaves(new), jax.tree.leaves(old)
  treedef = jax.tree.structure(old)
  if len(new_leaves) != len(old_leaves) or any(
      n.shape != o.shape for n, o in zip(new_leaves, old_leaves)):
    raise ValueError(
        "The cell returned new states of shapes "
        f"{[n.shape for n in new_leaves]}, expected the incoming state shapes "
        f"{[o.shape for o in old_leaves]}."
    )
  return jax.tree.unflatten(treedef, [n.astype(o.dtype) for n, o in zip(new_leaves, old_leaves)])


def zero_masked(inputs, mask, *, time_major: bool = False):
  """`inputs` (a pytree of (B, T, ...) arrays, or (T, B, ...)) with zeros at the steps
  where `mask` (B, T) (or (T, B)) is False.

  A masked step's output and state never depend on its inputs, so results are unchanged;
  but a NaN or Inf left in the padding would give 0 * NaN = NaN in every weight gradient
  (the step is still computed, then discarded). `where` passes no gradient to the
  discarded values, so padding garbage reaches neither the values nor the gradients.
  """
  def clean(x):
    m = mask.reshape(mask.shape + (1,) * (x.ndim - 2))
    return jnp.where(m, x, jnp.zeros_like(x))

  return jax.tree.map(clean, inputs)


def _same_shapes(a, b) -> bool:
  sa, sb = jax.tree.structure(a), jax.tree.structure(b)
  return sa == sb and all(x.shape == y.shape for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def rnn(cell, params, inputs, initial_state: tuple, *, mask=None, reset=None,
        go_backwards: bool = False, unroll: int | bool = 1, time_major: bool = False,
        zero_output_for_mask: bool = False, return_sequences: bool = True,
        training: bool = False, constants=None, dropout=None, remat=None) -> RNNResult:
  """Runs `cell` over the time axis of `inputs` with one `jax.lax.scan`.

  Args:
    cell: an rnnjax Cell (`project` before the loop, `step` inside it).
    params: the cell's parameters.
    inputs: a pytree of (B, T, ...) arrays, or (T, B, ...) when `time_major`.
    initial_state: the cell's state tuple, leaves (B, ...); their dtypes are the carry dtypes.
    mask: (B, T) bool (or (T, B)), False at steps to skip: the state keeps its
      value there and the output follows Keras's scan path (the incoming `h`, or
      zeros with `zero_output_for_mask`; so a masked first step outputs `h0`).
    reset: (B, T) bool (or (T, B)), True where a new segment starts: the state is
      set back to `initial_state` just before that step.
    go_backwards: process time in reverse; outputs come back in processing order.
    unroll: scan's `unroll` (True unrolls fully); results do not depend on it.
    training: passed to the cell.
    constants: passed to the cell.
    dropout: the cell's dropout masks, passed to `project` and `step`.
    remat: gradient checkpointing of the loop (None, "step", k, "sqrt"; see _remat.py).

  Returns:
    RNNResult(outputs, last_output, final_state).
  """
  initial_state = as_tuples(initial_state)
  if mask is not None:
    inputs = zero_masked(inputs, mask, time_major=time_major)
  xs = to_scan_order(inputs, time_major=time_major, reverse=go_backwards)
  mask_t = None if mask is None else to_scan_order(mask, time_major=time_major, reverse=go_backwards)
  reset_t = None if reset is None else to_scan_order(reset, time_major=time_major, reverse=go_backwards)

  dropout_kw = {} if dropout is None else {"dropout": dropout}
  # The cell's time-parallel `project` runs once over the whole sequence on accelerators;
  # on a CPU it runs inside the loop, where the (T, B, G) projected tensor would be
  # memory-bound and the per-step matmul overlaps with the gate math (bench/README.md).
  hoist = not _platform.on_cpu()
  projected = cell.project(params, xs, **dropout_kw) if hoist else xs

  def step(state, x_t):
    if not hoist:
      x_t = cell.project(params, x_t, **dropout_kw)
    return cell.step(params, x_t, state, training=training, constants=constants, **dropout_kw)

  x0 = jax.tree.map(lambda a: a[0], projected)
  # Explicit sharding: start from the carry sharding that one step produces (_sharding.py).
  initial_state = _sharding.match_sharding(
      initial_state, jax.eval_shape(lambda x, s: step(s, x)[1], x0, initial_state))
  out_struct = jax.eval_shape(lambda x, s: step(s, x)[0], x0, initial_state)
  previous = _keras_previous_output(initial_state)
  # Keras's masked-step output is the incoming first state; cells whose output has
  # another shape fall back to the previous valid output.
  keras_rule = _same_shapes(previous, out_struct)
  track_last = (not return_sequences) or mask is not None
  if keras_rule:
    last0 = jax.tree.map(lambda p, o: p.astype(o.dtype), previous, out_struct)
  else:
    last0 = _sharding.match_sharding(
        jax.tree.map(lambda o: jnp.zeros(o.shape, o.dtype), out_struct), out_struct)

  def body(carry, inp):
    state, last = carry
    x_t, m_t, r_t = inp
    if r_t is not None:
      state = _select(r_t, initial_state, state)
    out, new_state = step(state, x_t)
    new_state = _restructure(new_state, state)
    if m_t is None:
      y, last = out, (out if track_last else None)
    else:
      new_state = _select(m_t, new_state, state)
      if zero_output_for_mask:
        held = jax.tree.map(jnp.zeros_like, out)
      elif keras_rule:
        held = jax.tree.map(lambda p, o: p.astype(o.dtype), _keras_previous_output(state), out)
      else:
        held = last
      y = _select(m_t, out, held)
      if track_last:
        last = _select(m_t, out, last)
    return (new_state, last), (y if return_sequences else None)

  carry0 = (initial_state, last0 if track_last else None)
  steps = jax.tree.leaves(xs)[0].shape[0]
  (final_state, last), ys = _remat.scan(body, carry0, (projected, mask_t, reset_t), length=steps,
                                        unroll=unroll, remat=remat)

  outputs = None
  if return_sequences:
    outputs = from_scan_order(ys, time_major=time_major)
    if not track_last:
      last = jax.tree.map(lambda y: y[-1], ys) if _length(ys) else last0
  return RNNResult(outputs, last, final_state)


def _length(tree) -> int:
  return jax.tree.leaves(tree)[0].shape[0]
