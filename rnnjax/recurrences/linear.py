"""Linear recurrences `h_t = a_t * h_{t-1} + b_t` (elementwise; real or complex) as a
parallel prefix scan over time: an associative scan (`associative_scan` below, the
odd-even recursion of `jax.lax.associative_scan`) over the affine elements
(a_t, b_t), composed as (a1, b1) then (a2, b2) = (a1 a2, a2 b1 + b2).

Masks and resets are folded into the elements, so they stay parallel:
  a masked step keeps the state:            (1, 0)
  a reset step restarts from h0:            (0, a_t h0 + b_t)
  a masked step that is also a reset:       (0, h0)
(the engine's order: the reset sets the state back to h0 before the step, the mask then
keeps the state it was given). In log space (b > 0, elements given as logarithms) h0 may
have any sign, so a reset's h0 term rides in a third component c with h = (A + C) h0 + B.

Sequence parallelism: called inside `jax.shard_map` with the time axis split over the
mesh axis `axis_name`, each device scans its chunk, the chunk summaries (one element per
device, (P, B, N) in all) are all-gathered and scanned, and each device composes the
summary of the devices before it (in processing order) with its own prefixes. No device
sees another's chunk.

Arrays are time-major, (T, B, N), in processing order; h0 is (B, N).
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

Array = jax.Array
Element = tuple[jax.Array, ...]
"""An affine element (a, b) or (a, b, c): arrays of one shape, (T, ...) or (...)."""


def logaddexp(x: Array, y: Array) -> Array:
  """log(exp(x) + exp(y)) with zero (not NaN) gradients at -inf operands (log 0)."""
  m = jax.lax.stop_gradient(jnp.maximum(x, y))
  m = jnp.where(jnp.isfinite(m), m, jnp.zeros_like(m))
  s = jnp.exp(x - m) + jnp.exp(y - m)
  positive = s > 0
  return jnp.where(positive, m + jnp.log(jnp.where(positive, s, jnp.ones_like(s))),
                   jnp.full_like(s, -jnp.inf))


def compose(first: Element, second: Element, log_space: bool = False) -> Element:
  """`first` then `second`: elements (a, *vs), each v composing like b (a2 v1 + v2)."""
  a1, *v1 = first
  a2, *v2 = second
  if log_space:
    return (a1 + a2, *(logaddexp(v + a2, w) for v, w in zip(v1, v2)))
  return (a1 * a2, *(a2 * v + w for v, w in zip(v1, v2)))


def identity_like(element: Element, log_space: bool = False) -> Element:
  """The neutral element: a = 1, v = 0 (log: 0 and -inf)."""
  a, *vs = element
  if log_space:
    return (jnp.zeros_like(a), *(jnp.full_like(v, -jnp.inf) for v in vs))
  return (jnp.ones_like(a), *(jnp.zeros_like(v) for v in vs))


def fold(a: Array, b: Array, h0: Array, *, valid: Array | None = None,
         reset: Array | None = None, log_space: bool = False) -> Element:
  """The elements of `h_t = a_t h_{t-1} + b_t` with masks and resets folded in.

  a, b: (T, B, N) (logarithms in log space); h0: (B, N); valid, reset: (T, B) bool or
  None. Returns (a, b) or, in log space with resets, (a, b, c).
  """
  r = None if reset is None else reset[..., None]
  m = None if valid is None else valid[..., None]
  if log_space:
    neg, zero = jnp.full_like(a, -jnp.inf), jnp.zeros_like(a)
    c = None
    if r is not None:
      a, c = jnp.where(r, neg, a), jnp.where(r, a, neg)
    if m is not None:
      a = jnp.where(m, a, zero if r is None else jnp.where(r, neg, zero))
      b = jnp.where(m, b, neg)
      if c is not None and r is not None:   # c exists only with resets
        c = jnp.where(m, c, jnp.where(r, zero, neg))
    return (a, b) if c is None else (a, b, c)
  if r is not None:
    b = jnp.where(r, a * h0[None] + b, b)
    a = jnp.where(r, jnp.zeros_like(a), a)
  if m is not None:
    keep_a, keep_b = jnp.ones_like(a), jnp.zeros_like(b)
    if r is not None:
      keep_a = jnp.where(r, jnp.zeros_like(a), keep_a)
      keep_b = jnp.where(r, jnp.broadcast_to(h0[None], b.shape).astype(b.dtype), keep_b)
    a, b = jnp.where(m, a, keep_a), jnp.where(m, b, keep_b)
  return a, b


def _slice(x: Array, start: int, stop: int | None = None, stride: int = 1) -> Array:
  return jax.lax.slice_in_dim(x, start, x.shape[0] if stop is None else stop, stride, axis=0)


def _interleave(even: Array, odd: Array) -> Array:
  """[e0, o0, e1, o1, ...] along axis 0 (len(even) is len(odd) or one more)."""
  pairs = jnp.stack([_slice(even, 0, odd.shape[0]), odd], axis=1)
  pairs = pairs.reshape((2 * odd.shape[0],) + odd.shape[1:])
  if even.shape[0] > odd.shape[0]:
    pairs = jnp.concatenate([pairs, _slice(even, odd.shape[0])], axis=0)
  return pairs


def associative_scan(combine: Callable[[Element, Element], Element],
                     elements: Element) -> Element:
  """Inclusive scan of a tuple of (T, ...) arrays along axis 0 (odd-even recursion, as
  `jax.lax.associative_scan`), never forming a zero-sized slice: with jax 0.11.2,
  zero-sized residuals crossing a `shard_map` boundary crash the Shardy partitioner when
  the gradient is compiled."""
  n = elements[0].shape[0]
  if n < 2:
    return elements
  if n == 2:
    first = tuple(_slice(e, 0, 1) for e in elements)
    second = combine(first, tuple(_slice(e, 1, 2) for e in elements))
    return tuple(jnp.concatenate([a, b], axis=0) for a, b in zip(first, second))
  pairs = combine(tuple(_slice(e, 0, n - 1, 2) for e in elements),
                  tuple(_slice(e, 1, None, 2) for e in elements))
  odd = associative_scan(combine, pairs)                     # prefixes at 1, 3, 5, ...
  rest = tuple(_slice(e, 2, None, 2) for e in elements)      # elements 2, 4, ...
  head = tuple(_slice(o, 0, rest[0].shape[0]) for o in odd)
  even = combine(head, rest)                                  # prefixes at 2, 4, ...
  even = tuple(jnp.concatenate([_slice(e, 0, 1), v], axis=0) for e, v in zip(elements, even))
  return tuple(_interleave(e, o) for e, o in zip(even, odd))


def prefix(elements: Element, *, log_space: bool = False, axis_name: str | None = None,
           reverse_devices: bool = False) -> tuple[Element, Element]:
  """Inclusive prefix compositions over axis 0 and the composition of all elements.

  elements: a tuple of (T, ...) arrays. With `axis_name` (inside shard_map, time split
  over that mesh axis) the prefixes and the total are global; `reverse_devices`: the
  devices hold the chunks in reverse processing order (go_backwards).
  Returns (prefixes: a tuple of (T, ...), total: a tuple of (...)).
  """
  combine = lambda x, y: compose(x, y, log_space)  # noqa: E731
  local = associative_scan(combine, tuple(elements))
  last = tuple(x[-1] for x in local)
  if axis_name is None:
    return local, last
  # Invariant: every device holds the same (P, ...) summaries, and so the same totals.
  gathered = tuple(jax.lax.all_gather(x, axis_name, to="invarying") for x in last)
  if reverse_devices:
    gathered = tuple(jnp.flip(x, 0) for x in gathered)
  inclusive = associative_scan(combine, gathered)
  index = jax.lax.axis_index(axis_name)
  position = jax.lax.axis_size(axis_name) - 1 - index if reverse_devices else index
  before = tuple(jax.lax.dynamic_index_in_dim(x, jnp.maximum(position - 1, 0), 0, keepdims=False)
                 for x in inclusive)
  first = position == 0
  before = tuple(jnp.where(first, i, x) for i, x in zip(identity_like(before, log_space), before))
  carried = compose(tuple(x[None] for x in before), local, log_space)
  return carried, tuple(x[-1] for x in inclusive)


def apply(element: Element, h0: Array, log_space: bool = False) -> Array:
  """The state an element (a, b[, c]) maps h0 to: a h0 + b (log: (A + C) h0 + B)."""
  if log_space:
    scale = jnp.exp(element[0] if len(element) == 2 else logaddexp(element[0], element[2]))
    return scale * h0 + jnp.exp(element[1])
  return element[0] * h0 + element[1]


def varying(x: Array, axis_name: str | None) -> Array:
  """`x` typed as varying over the mesh axis `axis_name` (a no-op when it is, or when
  `axis_name` is None). Used where a value that is the same on every device (h0) meets
  per-chunk values: its gradient is then summed over devices at its own size, instead of
  after a broadcast to the chunk's shape."""
  if axis_name is None or axis_name in getattr(jax.typeof(x), "vma", frozenset()):
    return x
  return jax.lax.pcast(x, (axis_name,), to="varying")


def linear_scan(a: Array, b: Array, h0: Array, *, valid: Array | None = None,
                reset: Array | None = None, log_space: bool = False,
                axis_name: str | None = None,
                reverse_devices: bool = False) -> tuple[Array, Array]:
  """All states and the final state of `h_t = a_t h_{t-1} + b_t` from h0.

  a, b: (T, B, N) (log a, log b in log space, where b > 0); h0: (B, N); valid, reset:
  (T, B) bool or None (see `fold`). Returns (hs (T, B, N), h_T (B, N)); under
  `axis_name`, hs is this device's chunk and h_T the global final state.

  >>> import jax.numpy as jnp
  >>> a, b = jnp.full((4, 1, 1), 0.5), jnp.ones((4, 1, 1))
  >>> hs, last = linear_scan(a, b, jnp.zeros((1, 1)))
  >>> hs[:, 0, 0].tolist(), last.tolist()
  ([1.0, 1.5, 1.75, 1.875], [[1.875]])
  """
  # The global final state comes from the (device-invariant) total and h0 as given.
  local_h0 = varying(h0, axis_name)
  elements = fold(a, b, local_h0, valid=valid, reset=reset, log_space=log_space)
  prefixes, total = prefix(elements, log_space=log_space, axis_name=axis_name,
                           reverse_devices=reverse_devices)
  return apply(prefixes, local_h0[None], log_space), apply(total, h0, log_space)


def latch(values: Array, valid: Array, start: Array, *, axis_name: str | None = None,
          reverse_devices: bool = False) -> tuple[Array, Array]:
  """Forward fill: at each step the value of the last valid step so far (`start` before
  any), and the last one overall. values (T, B, U); valid (T, B) bool; start (B, U).
  Exact: the elements are (0, v) at valid steps and (1, 0) elsewhere."""
  m = valid[..., None]
  a = jnp.where(m, jnp.zeros_like(values), jnp.ones_like(values))
  b = jnp.where(m, values, jnp.zeros_like(values))
  prefixes, total = prefix((a, b), axis_name=axis_name, reverse_devices=reverse_devices)
  return apply(prefixes, varying(start, axis_name)[None]), apply(total, start)
