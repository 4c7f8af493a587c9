"""Weight constraints with Keras's names, defaults and formulas; `apply_constraints`
projects a layer's params, and `with_constraints` wraps an optax optimizer to do it after
every update.

A constraint is a function `weight -> projected weight`. `get` accepts the Keras names
("max_norm", "non_neg", "unit_norm", "min_max_norm" and their CamelCase class names), the
classes here, Keras constraint objects, or any such callable.

A leaf module: it reaches a layer's cells through the layer's own
`map_weight_owners(fn, params)`, so it imports no layer or cell.
"""

import dataclasses
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp

from ._validation import (check_axis, check_optimizer, check_real, check_weight_owner, lookup,
                          owner_params)
from .types import Array, Params

if TYPE_CHECKING:
  import optax

# The constraint argument of each weight of a Keras RNN cell's params.
WEIGHT_CONSTRAINTS = tuple((w, f"{role}_constraint") for w, role in (
    ("kernel", "kernel"), ("recurrent_kernel", "recurrent"), ("bias", "bias")))

EPSILON = 1e-7  # Keras's backend.epsilon()


_POSITIVE = "a positive finite float"
_NON_NEGATIVE = "a non-negative finite float"


def _norms(w, axis):
  return jnp.sqrt(jnp.sum(jnp.square(w), axis=axis, keepdims=True))


@dataclasses.dataclass(frozen=True)
class MaxNorm:
  """Rescales each slice along `axis` to a norm of at most `max_value` (Keras `MaxNorm`)."""

  max_value: float = 2.0
  axis: int | tuple = 0

  def __post_init__(self):
    # A negative bound would flip the sign of every weight; 0 would zero them all.
    check_real(self.max_value, "max_value", _POSITIVE, lambda v: v > 0)
    object.__setattr__(self, "axis", check_axis(self.axis))

  def __call__(self, w: Array) -> Array:
    norms = _norms(w, self.axis)
    return w * (jnp.clip(norms, 0, self.max_value) / (EPSILON + norms))


@dataclasses.dataclass(frozen=True)
class NonNeg:
  """`max(w, 0)` (Keras `NonNeg`)."""

  def __call__(self, w: Array) -> Array:
    return jnp.maximum(w, 0)


@dataclasses.dataclass(frozen=True)
class UnitNorm:
  """Each slice along `axis` divided by its norm (Keras `UnitNorm`)."""

  axis: int | tuple = 0

  def __post_init__(self):
    object.__setattr__(self, "axis", check_axis(self.axis))

  def __call__(self, w: Array) -> Array:
    return w / (EPSILON + _norms(w, self.axis))


@dataclasses.dataclass(frozen=True)
class MinMaxNorm:
  """Norms along `axis` moved into [min_value, max_value] at `rate` (Keras `MinMaxNorm`)."""

  min_value: float = 0.0
  max_value: float = 1.0
  rate: float = 1.0
  axis: int | tuple = 0

  def __post_init__(self):
    check_real(self.min_value, "min_value", _NON_NEGATIVE, lambda v: v >= 0)
    check_real(self.max_value, "max_value", f"a finite float >= min_value ({self.min_value})",
               lambda v: v >= self.min_value)
    check_real(self.rate, "rate", "a float in (0, 1]", lambda v: 0 < v <= 1)
    object.__setattr__(self, "axis", check_axis(self.axis))

  def __call__(self, w: Array) -> Array:
    norms = _norms(w, self.axis)
    desired = self.rate * jnp.clip(norms, self.min_value, self.max_value) + (1 - self.rate) * norms
    return w * (desired / (EPSILON + norms))


_BY_NAME = {
    "max_norm": MaxNorm(), "MaxNorm": MaxNorm(),
    "non_neg": NonNeg(), "NonNeg": NonNeg(),
    "unit_norm": UnitNorm(), "UnitNorm": UnitNorm(),
    "min_max_norm": MinMaxNorm(), "MinMaxNorm": MinMaxNorm(),
}


def get(constraint, *, argument: str = "constraint"):
  """The constraint function for a Keras name, a callable, or None (no constraint)."""
  return None if constraint is None else lookup(
      constraint, _BY_NAME, argument=argument, kind="constraint",
      expected=f"{', '.join(sorted(_BY_NAME))}, a callable `weight -> weight`, or None",
      accepted="a constraint name, a callable `weight -> weight` or None")


def _project(owner, params):
  """One cell's params with its constraints applied (its `constrain(params)` hook if any);
  `params` must be the cell's own (others would come back unprojected without a word)."""
  owner_params(owner, params)
  hook = getattr(owner, "constrain", None)
  if hook is not None:
    return hook(params)
  if not isinstance(params, dict):
    return params
  new = dict(params)
  for weight, argument in WEIGHT_CONSTRAINTS:
    fn = get(getattr(owner, argument, None), argument=argument)
    if fn is not None and weight in params:
      new[weight] = jnp.asarray(fn(params[weight]), params[weight].dtype)
  return new


def apply_constraints(layer: Any, params: Params) -> Params:
  """`params` with `layer`'s kernel / recurrent / bias constraints applied (Keras applies
  them to the variables after each optimizer step). Pure: returns new params.

  >>> import jax, jax.numpy as jnp, rnnjax as rj
  >>> layer = rj.GRU(3, kernel_constraint="non_neg")
  >>> params = layer.init(jax.random.key(0), jnp.ones((2, 4, 5)))
  >>> bool((rj.apply_constraints(layer, params)["kernel"] >= 0).all())
  True
  """
  check_weight_owner(layer)
  return layer.map_weight_owners(_project, params)


def with_constraints(optimizer: "optax.GradientTransformation",
                     layer: Any) -> "optax.GradientTransformationExtraArgs":
  """Wraps an optax optimizer so that the params it produces satisfy `layer`'s constraints.

  optax has no projection hook, so the wrapped `update(grads, state, params)` computes
  the inner update, projects `params + update` with `apply_constraints`, and returns
  `projected - params` as the update: `optax.apply_updates(params, updates)` then gives
  the projected params (to float rounding; call `apply_constraints` after
  `apply_updates` instead when the projection must be exact). `params` is required.

  >>> import optax
  >>> import jax, jax.numpy as jnp, rnnjax as rj
  >>> layer = rj.LSTM(3, recurrent_constraint="max_norm")
  >>> x = jnp.ones((2, 4, 5))
  >>> params = layer.init(jax.random.key(0), x)
  >>> opt = rj.with_constraints(optax.sgd(1.0), layer)
  >>> state = opt.init(params)
  >>> grads = jax.grad(lambda p: -jnp.sum(p["recurrent_kernel"] ** 2))(params)
  >>> updates, state = opt.update(grads, state, params)
  >>> params = optax.apply_updates(params, updates)
  >>> bool(jnp.linalg.norm(params["recurrent_kernel"], axis=0).max() <= 2.0 + 1e-5)
  True
  """
  import optax

  check_weight_owner(layer)
  check_optimizer(optimizer)
  inner = optax.with_extra_args_support(optimizer)

  def update(updates, state, params=None, **extra_args):
    if params is None:
      raise ValueError(
          "with_constraints needs params: call update(grads, state, params), got params=None."
      )
    updates, state = inner.update(updates, state, params, **extra_args)
    projected = apply_constraints(layer, optax.apply_updates(params, updates))
    return jax.tree.map(lambda n, p: (n - p).astype(p.dtype), projected, params), state

  return optax.GradientTransformationExtraArgs(inner.init, update)
