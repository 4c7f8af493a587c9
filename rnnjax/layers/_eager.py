"""Eager calls as fast as jitted ones: `apply` called outside any JAX transform with
concrete arrays runs through one `jax.jit`-compiled function, cached by JAX per layer
(a hashable frozen dataclass, a static argument), `training`, and the argument structure,
shapes and dtypes. A changed param value reuses the compilation; a changed option, shape
or dtype compiles anew, and so does a change of what the dispatch would choose
(`force_interpret()`, the registry). Under an outer `jit`/`grad`/`vmap` (any argument a tracer), with
an unhashable layer, or with non-array arguments (Python lists), the cache steps aside and
`apply` runs as written, so nothing changes there.

Checks that read values, not shapes (concrete `seq_lengths` within [0, T]), run here
before the compiled call, where the values are still concrete; `prepare` runs them again
for calls that step aside (it can read them there too, unless the user's own transform
made them tracers). Arrays of a dtype JAX cannot take (strings, objects) step aside as
well, so `prepare` names them instead of `jax.jit`."""

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

import jax
import jax.numpy as jnp
import numpy as np

from .. import _validation, dispatch

_ARGUMENTS = ("params", "inputs", "initial_state", "mask", "rng", "constants", "state",
              "reset", "seq_lengths")


def _concrete_arrays(tree) -> bool:
  """Every leaf a concrete array (jax or NumPy), none a tracer."""
  for leaf in jax.tree.leaves(tree):
    if isinstance(leaf, jax.core.Tracer) or not isinstance(leaf, (jax.Array, np.ndarray)):
      return False
    if isinstance(leaf, np.ndarray) and not (jnp.issubdtype(leaf.dtype, jnp.number)
                                             or jnp.issubdtype(leaf.dtype, jnp.bool_)):
      return False   # strings, objects: `prepare` names them, not jax.jit
  return True


def _check_values(layer, inputs, seq_lengths) -> None:
  """The value checks that must see concrete arrays, before they become jit tracers."""
  if seq_lengths is not None:
    _, steps = _validation.sequence_dims(inputs, time_major=layer.time_major)
    _validation.lengths_in_range(seq_lengths, steps)


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _compiled(method, layer, training, context, *args):
  del context   # part of the cache key only: what the dispatch would choose now
  kwargs = dict(zip(_ARGUMENTS, args))
  return method(layer, kwargs.pop("params"), kwargs.pop("inputs"), training=training, **kwargs)


_Apply = TypeVar("_Apply", bound=Callable[..., Any])


def cached_apply(method: _Apply) -> _Apply:
  """Wraps a layer's `apply(params, inputs, initial_state=None, mask=None, training=False,
  rng=None, constants=None, *, state=None, reset=None, seq_lengths=None)` with the
  compilation cache described in the module docstring."""

  @functools.wraps(method)
  def apply(self, params, inputs, initial_state=None, mask=None, training: bool = False,
            rng=None, constants=None, *, state=None, reset=None, seq_lengths=None):
    args = (params, inputs, initial_state, mask, rng, constants, state, reset, seq_lengths)
    if isinstance(training, bool) and _concrete_arrays(args):
      try:
        hash(self)
      except TypeError:
        pass
      else:
        _check_values(self, inputs, seq_lengths)
        return _compiled(method, self, training, dispatch.context(), *args)
    return method(self, params, inputs, initial_state, mask, training, rng, constants,
                  state=state, reset=reset, seq_lengths=seq_lengths)

  setattr(apply, "uncached", method)
  return cast(_Apply, apply)
