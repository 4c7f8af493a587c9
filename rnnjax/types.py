"""Type aliases used in rnnjax's public signatures.

rnnjax works on pytrees: a custom cell's params, inputs and states can be any nesting of
arrays, so several aliases name a role (what the argument is for) over `Any` rather
than a precise type. The built-in layers use the precise forms given in each comment.
"""

from typing import Any, TypeAlias

import jax
import jax.typing

Array: TypeAlias = jax.Array
"""A JAX array."""

ArrayLike: TypeAlias = jax.typing.ArrayLike
"""Anything `jnp.asarray` takes: a JAX or NumPy array, a Python scalar."""

DTypeLike: TypeAlias = jax.typing.DTypeLike
"""A dtype or its name: `jnp.float32`, `"bfloat16"`, ..."""

Key: TypeAlias = jax.Array
"""A `jax.random.key(...)` (a typed PRNG key array)."""

Shape: TypeAlias = tuple[int, ...]
"""One array shape."""

ShapeTree: TypeAlias = Any
"""A per-step input shape (no batch and time axes): a `Shape`, or a pytree of them for
cells with nested inputs."""

Params: TypeAlias = Any
"""What a layer's or cell's `init` returns: for the built-in layers a dict of arrays in
Keras's layout (`kernel`, `recurrent_kernel`, `bias`); a tuple of them for stacked cells;
`{"forward": ..., "backward": ...}` for Bidirectional; any pytree for a custom cell."""

Inputs: TypeAlias = Any
"""A sequence: a (B, T, ...) array ((T, B, ...) when time-major), or a pytree of them for
custom cells with nested inputs."""

State: TypeAlias = Any
"""A cell's or layer's states: a tuple of (B, ...) arrays (LSTM `(h, c)`), nested per
cell for stacked cells."""

PyTree: TypeAlias = Any
"""Any pytree of arrays."""

__all__ = ["Array", "ArrayLike", "DTypeLike", "Inputs", "Key", "Params", "PyTree", "Shape",
           "ShapeTree", "State"]
