"""Eager calls as fast as jitted ones: `apply` called outside any JAX transform with
concrete arrays runs through one `jax.jit`-compiled function, cached by JAX per layer
(a hashable frozen dataclass, a static argument), `training`, and the argument structure,
shapes and dtypes. A changed param value reuses the compilation; a changed option, shape
or dtype compiles anew, and so does a change of what the dispatch would choose
(`force_interpret()`, the registry). Under an outer `jit`/`grad`/`vmap` (any argument a tracer), with
an unhashable layer, or with non-array arguments (Python lists), the cache steps aside and
`apply` runs as written, so nothing changes there."""

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

import jax
import numpy as np

from .. import dispatch

_ARGUMENTS = ("params", "inputs", "initial_state", "mask", "rng", "constants", "state",
              "reset", "seq_lengths")


def _concrete_arrays(tree) -> bool:
  """Every leaf a concrete array (jax or NumPy), none a tracer."""
  for leaf in jax.tree.leaves(tree):
    if isinstance(leaf, jax.core.Tracer) or not isinstance(leaf, (jax.Array, np.ndarray)):
      return False
  return True


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
        return _compiled(method, self, training, dispatch.context(), *args)
    return method(self, params, inputs, initial_state, mask, training, rng, constants,
                  state=state, reset=reset, seq_lengths=seq_lengths)

  setattr(apply, "uncached", method)
  return cast(_Apply, apply)
