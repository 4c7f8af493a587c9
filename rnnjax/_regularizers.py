"""Weight and activity regularizers with Keras's names, factors and formulas, and the one
function that turns a layer's regularizers into a penalty to add to the loss.

A regularizer is a function `weight -> scalar`. `get` accepts the Keras names
("l1", "l2", "l1_l2", "L1", "L2", "L1L2", "l1l2"), the classes here, Keras regularizer
objects, or any such callable.

`regularization_loss` walks a layer's cells with the layer's own
`map_weight_owners(fn, params)`: this registry stays a leaf, importing no layer or cell.
"""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from ._validation import check_real, check_weight_owner, describe, lookup, owner_params
from .types import Array, Params, PyTree

# The regularizer argument of each weight of a Keras RNN cell's params.
WEIGHT_REGULARIZERS = tuple((w, f"{role}_regularizer") for w, role in (
    ("kernel", "kernel"), ("recurrent_kernel", "recurrent"), ("bias", "bias")))


def _check_factor(value, argument: str) -> float:
  return check_real(value, argument, "a non-negative finite float", lambda v: v >= 0)


@dataclasses.dataclass(frozen=True)
class L1:
  """`l1 * sum(|w|)` (Keras `L1`, default 0.01)."""

  l1: float = 0.01

  def __post_init__(self):
    _check_factor(self.l1, "l1")

  def __call__(self, w: Array) -> Array:
    return jnp.asarray(self.l1, w.dtype) * jnp.sum(jnp.abs(w))


@dataclasses.dataclass(frozen=True)
class L2:
  """`l2 * sum(w ** 2)` (Keras `L2`, default 0.01)."""

  l2: float = 0.01

  def __post_init__(self):
    _check_factor(self.l2, "l2")

  def __call__(self, w: Array) -> Array:
    return jnp.asarray(self.l2, w.dtype) * jnp.sum(jnp.square(w))


@dataclasses.dataclass(frozen=True)
class L1L2:
  """`l1 * sum(|w|) + l2 * sum(w ** 2)` (Keras `L1L2`; class defaults 0, as in Keras)."""

  l1: float = 0.0
  l2: float = 0.0

  def __post_init__(self):
    _check_factor(self.l1, "l1")
    _check_factor(self.l2, "l2")

  def __call__(self, w: Array) -> Array:
    return L1(self.l1)(w) + L2(self.l2)(w)


# "l1_l2" is the name Keras documents with l1 = l2 = 0.01 (Keras 2's `l1_l2()` default);
# Keras 3's own lookup of that string fails, and its "l1l2" builds L1L2() (both 0).
_BY_NAME = {
    "l1": L1(), "L1": L1(), "l2": L2(), "L2": L2(),
    "l1_l2": L1L2(0.01, 0.01), "l1l2": L1L2(), "L1L2": L1L2(),
}


def _weight_penalty(owner, params):
  """Sum of one cell's weight penalties (its `weight_penalty(params)` hook if it has one);
  `params` must be the cell's own (a penalty of other params would be 0 without a word)."""
  owner_params(owner, params)
  hook = getattr(owner, "weight_penalty", None)
  if hook is not None:
    return jnp.asarray(hook(params), jnp.float32)
  total = jnp.zeros((), jnp.float32)
  for weight, argument in WEIGHT_REGULARIZERS:
    reg = get(getattr(owner, argument, None), argument=argument)
    if reg is not None and isinstance(params, dict) and weight in params:
      total = total + jnp.asarray(reg(params[weight]), jnp.float32)
  return total


def get(regularizer, *, argument: str = "regularizer"):
  """The regularizer function for a Keras name, a callable, or None (no penalty)."""
  return None if regularizer is None else lookup(
      regularizer, _BY_NAME, argument=argument, kind="regularizer",
      expected=f"{', '.join(sorted(_BY_NAME))}, a callable `weight -> scalar`, or None",
      accepted="a regularizer name, a callable `weight -> scalar` or None")


def regularization_loss(layer: Any, params: Params, outputs: PyTree = None) -> Array:
  """The penalty that `layer`'s regularizers put on `params` (and `outputs`), as Keras's
  `sum(layer.losses)` after a call; add it to the loss.

  Args:
    layer: an rnnjax layer (sequence layer, `RNN` of stacked cells, `Bidirectional`) or cell.
    params: the layer's params.
    outputs: what `layer.apply` returned (for a stateful layer, its first element), or
      None. With an `activity_regularizer`, each array in it adds
      `activity_regularizer(array) / array.shape[0]` (Keras divides by the batch size;
      with `return_state` the states count too, as in Keras).

  Returns:
    A float32 scalar: kernel, recurrent and bias penalties of every cell (both
    directions of a Bidirectional, every cell of a stack) plus the activity penalty.

  >>> import jax, jax.numpy as jnp, rnnjax as rj
  >>> layer = rj.LSTM(4, kernel_regularizer="l2", bias_regularizer=rj.L1(0.1))
  >>> params = layer.init(jax.random.key(0), jnp.ones((2, 3, 5)))
  >>> loss = rj.regularization_loss(layer, params)
  >>> bool(jnp.allclose(loss, 0.01 * jnp.sum(params["kernel"] ** 2) + 0.1 * 4))
  True
  """
  check_weight_owner(layer)
  penalties = layer.map_weight_owners(_weight_penalty, params)
  total = sum(jax.tree.leaves(penalties), jnp.zeros((), jnp.float32))
  activity = get(getattr(layer, "activity_regularizer", None), argument="activity_regularizer")
  for leaf in jax.tree.leaves(outputs):
    if not (hasattr(leaf, "shape") and hasattr(leaf, "dtype")):
      raise TypeError(f"outputs must be what layer.apply returned (arrays), got "
                      f"{describe(leaf)}.")
  if activity is not None and outputs is not None:
    for leaf in jax.tree.leaves(outputs):
      penalty = jnp.asarray(activity(leaf), jnp.float32)
      if leaf.ndim > 0 and leaf.shape[0] > 0:
        penalty = penalty / leaf.shape[0]
      total = total + penalty
  return total
