"""The shapes and dtypes a layer's `init` gives for some inputs, traced abstractly once per
(layer, input structure, shapes, dtypes): what params are checked against, and what the
Flax adapters declare."""

import functools

import jax
import jax.numpy as jnp

from .. import _validation


def _spec(layer, inputs):
  for leaf in jax.tree.leaves(inputs):
    if not hasattr(leaf, "shape") or not hasattr(leaf, "dtype"):
      raise TypeError(f"inputs must hold arrays, got {_validation.describe(leaf)}.")
  return jax.eval_shape(layer.init, jax.random.key(0), inputs)


@functools.lru_cache(maxsize=512)
def _cached_spec(layer, treedef, shapes):
  inputs = jax.tree.unflatten(treedef, [jax.ShapeDtypeStruct(s, d) for s, d in shapes])
  return _spec(layer, inputs)


def param_spec(layer, inputs):
  """`jax.eval_shape(layer.init, key, inputs)`: a pytree of `jax.ShapeDtypeStruct`, cached
  (free in a loop) unless the layer is unhashable."""
  leaves, treedef = jax.tree.flatten(inputs)
  try:
    shapes = tuple((tuple(a.shape), jnp.dtype(a.dtype)) for a in leaves)
    return _cached_spec(layer, treedef, shapes)
  except (TypeError, AttributeError):   # an unhashable layer, or leaves that are not arrays
    return _spec(layer, inputs)
