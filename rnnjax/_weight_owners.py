"""Walks a layer down to the cells that own weights, with their slice of the params:
Bidirectional -> its two layers, a sequence layer -> its cell, StackedRNNCells -> each
cell. Regularization and constraints use it; nothing here knows about either."""


def map_owners(fn, layer, params):
  """`fn(owner, owner_params)` at every weight-owning cell, in the params' structure.

  Returns a pytree shaped like `params` at the composite levels ({"forward", "backward"}
  for Bidirectional, a tuple for StackedRNNCells) whose leaves are what `fn` returned.
  """
  # Imported here: cells import this package's name checks at import time.
  from .cells._stacked import StackedRNNCells
  from .layers._base import SequenceLayer as RecurrentLayer
  from .layers._bidirectional import Bidirectional

  if isinstance(layer, Bidirectional):
    _check_keys(params, ("forward", "backward"), "Bidirectional")
    return {"forward": map_owners(fn, layer.forward_layer, params["forward"]),
            "backward": map_owners(fn, layer.backward_layer, params["backward"])}
  if isinstance(layer, RecurrentLayer):
    return map_owners(fn, layer.cell, params)
  if isinstance(layer, StackedRNNCells):
    if not isinstance(params, (tuple, list)) or len(params) != len(layer.cells):
      raise TypeError(
          f"params of StackedRNNCells must be a tuple with one entry per cell "
          f"({len(layer.cells)}), got {type(params).__name__}."
      )
    return tuple(map_owners(fn, c, p) for c, p in zip(layer.cells, params))
  return fn(layer, params)


def _check_keys(params, keys, owner: str) -> None:
  if not isinstance(params, dict) or set(params) != set(keys):
    raise TypeError(
        f"params of {owner} must be a dict with keys {list(keys)}, got "
        f"{type(params).__name__}" + (f" with keys {sorted(params)}" if isinstance(params, dict) else "")
        + "."
    )


# Which Keras argument governs which weight (the same names for every Keras RNN cell).
ROLES = (("kernel", "kernel"), ("recurrent_kernel", "recurrent"), ("bias", "bias"))
