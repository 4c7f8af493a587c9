"""Keras 3 weight lists (`layer.get_weights()` order) to rnnjax params and back.

The parameter layouts are the same (Keras names, shapes and gate order), so this
is a checked re-packing: counts and shapes are validated against the layer."""

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from ..types import ArrayLike, Params


def _weights_owner(layer):
  owner = getattr(layer, "cell", layer)
  if not hasattr(owner, "from_keras_weights"):
    raise TypeError(f"layer must be an rnnjax layer or cell, got {layer!r}.")
  return owner


def from_keras(layer: Any, weights: Sequence[ArrayLike]) -> Params:
  """rnnjax params for `layer` from a Keras `get_weights()` list of arrays.

  >>> import numpy as np, rnnjax as rj
  >>> layer = rj.SimpleRNN(2)
  >>> params = rj.interop.from_keras(layer, [np.ones((3, 2)), np.eye(2), np.zeros(2)])
  >>> sorted(params)
  ['bias', 'kernel', 'recurrent_kernel']
  """
  if not isinstance(weights, (list, tuple)):
    raise TypeError(f"weights must be a list of arrays (Keras get_weights()), got {type(weights).__name__}.")
  # jax arrays stay as they are (shape-only tracers when a file's shapes are checked first)
  weights = [w if isinstance(w, jax.Array) else np.asarray(w) for w in weights]
  params, rest = _weights_owner(layer).from_keras_weights(weights)
  if rest:
    raise ValueError(
        f"weights has {len(weights)} arrays but {type(layer).__name__} uses "
        f"{len(weights) - len(rest)}; {len(rest)} left over (shapes {[w.shape for w in rest]})."
    )
  return params


def to_keras(layer: Any, params: Params) -> list[np.ndarray]:
  """`params` of `layer` as the list Keras's `set_weights()` takes."""
  return [np.asarray(w) for w in _weights_owner(layer).to_keras_weights(params)]
