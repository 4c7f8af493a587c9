"""Gradient checkpointing of the time loop: trade recomputation for memory.

remat=None     plain autodiff: every step's residuals are kept, memory O(T).
remat="step"   each step is recomputed in the backward pass from its incoming carry;
               only the carries are kept (still O(T), but of the state size only).
remat=k        (an int) the loop runs in chunks of k steps; only the carry at chunk
               boundaries is kept and one chunk is recomputed at a time in the backward
               pass: memory O(T / k + k).
remat="sqrt"   k = ceil(sqrt(T)): the two-level scheme with memory O(sqrt(T)).
"""

import math

import jax

REMAT_CHOICES = "None, \"step\", \"sqrt\" or a positive int k (checkpoint every k steps)"


def check_remat(remat) -> None:
  if remat is None or remat in ("step", "sqrt"):
    return
  if isinstance(remat, bool) or not isinstance(remat, int) or remat < 1:
    raise ValueError(f"remat must be {REMAT_CHOICES}, got {remat!r}.")


def scan(body, carry, xs, *, length: int, unroll, remat):
  """`jax.lax.scan(body, carry, xs)` with the checkpointing scheme `remat`."""
  check_remat(remat)
  if remat is None:
    return jax.lax.scan(body, carry, xs, unroll=unroll)
  if remat == "step":
    return jax.lax.scan(jax.checkpoint(body), carry, xs, unroll=unroll)
  k = max(1, math.isqrt(length - 1) + 1) if remat == "sqrt" else remat
  chunks = length // k
  if chunks <= 1:
    return jax.lax.scan(jax.checkpoint(body), carry, xs, unroll=unroll)

  @jax.checkpoint
  def chunk(c, xc):
    return jax.lax.scan(body, c, xc, unroll=unroll)

  head = jax.tree.map(lambda a: a[: chunks * k].reshape((chunks, k) + a.shape[1:]), xs)
  carry, ys = jax.lax.scan(chunk, carry, head)
  ys = jax.tree.map(lambda y: y.reshape((chunks * k,) + y.shape[2:]), ys)
  if chunks * k == length:
    return carry, ys
  tail = jax.tree.map(lambda a: a[chunks * k:], xs)
  carry, ys_tail = jax.lax.scan(jax.checkpoint(body), carry, tail, unroll=unroll)
  return carry, jax.tree.map(lambda a, b: jax.numpy.concatenate([a, b]), ys, ys_tail)
