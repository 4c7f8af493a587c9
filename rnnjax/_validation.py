"""The one validation module: every public function of rnnjax (layers, cells, kernels,
interop, the Flax adapters) checks its arguments with these, before tracing.

One vocabulary of messages: `<argument> must be <what was expected>, got <what it got>.`
`TypeError` for the wrong kind of thing, `ValueError` for a wrong value. `describe` says
what was got the same way everywhere."""

import math

import jax
import jax.numpy as jnp
import numpy as np


def describe(x) -> str:
  """What `x` is, for an error message: an array's shape and dtype, a dict's keys, a
  sequence's length, else its type and repr (cut to 200 characters)."""
  if hasattr(x, "shape") and hasattr(x, "dtype"):
    return f"an array of shape {tuple(x.shape)} and dtype {x.dtype}"
  if isinstance(x, dict):
    return f"a dict with keys {sorted(map(str, x))}"
  if isinstance(x, (list, tuple)) and not hasattr(x, "_fields"):
    return f"{type(x).__name__} of length {len(x)}: {x!r}"[:200]
  return f"{type(x).__name__} {x!r}"[:200]


def check_bool(value, argument: str) -> bool:
  """`value` if it is a Python bool, else a TypeError naming `argument`."""
  if not isinstance(value, bool):
    raise TypeError(f"{argument} must be a bool, got {value!r}.")
  return value


def check_positive_int(value, argument: str) -> int:
  """`value` if it is a positive Python int (not a bool)."""
  if isinstance(value, bool) or not isinstance(value, int):
    raise TypeError(f"{argument} must be a positive int, got {value!r}.")
  if value <= 0:
    raise ValueError(f"{argument} must be a positive int, got {value}.")
  return value


def check_dtype(value, argument: str, *, optional: bool = True, floating: bool = False):
  """`value` as a jnp.dtype (None stays None when `optional`); with `floating`, a real
  floating-point one (an integer compute or carry dtype would truncate every step)."""
  if value is None and optional:
    return None
  try:
    dtype = jnp.dtype(value)
  except TypeError:
    raise TypeError(f"{argument} must be a dtype or dtype name, got {value!r}.") from None
  if floating and not jnp.issubdtype(dtype, jnp.floating):
    raise ValueError(f"{argument} must be a floating-point dtype (float32, bfloat16, float16, "
                     f"...), got {dtype.name}.")
  return dtype


def check_seed(seed, argument: str = "seed"):
  """An int in [0, 2**32) (what jax.random.fold_in takes) or None."""
  if seed is None:
    return None
  if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
    raise TypeError(f"{argument} must be an int or None, got {seed!r}.")
  if not 0 <= seed < 2**32:
    raise ValueError(f"{argument} must be in [0, 2**32) (a uint32, as jax.random.fold_in "
                     f"takes), got {seed}.")
  return int(seed)


def check_real(value, argument: str, expected: str, ok=lambda v: True) -> float:
  """`value` as a float when it is a finite real number (not a bool) with `ok(value)`: a
  TypeError for another kind of thing, a ValueError for a value outside the domain.

  expected: the domain in words, e.g. "a non-negative finite float"."""
  if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
    raise TypeError(f"{argument} must be {expected}, got {describe(value)}.")
  if not (math.isfinite(value) and ok(float(value))):
    raise ValueError(f"{argument} must be {expected}, got {value!r}.")
  return float(value)


def check_axis(axis, argument: str = "axis"):
  """An int or a tuple / list of ints (a list becomes a tuple)."""
  ints = (int, np.integer)
  if isinstance(axis, ints) and not isinstance(axis, bool):
    return int(axis)
  if isinstance(axis, (tuple, list)) and axis and all(
      isinstance(a, ints) and not isinstance(a, bool) for a in axis):
    return tuple(int(a) for a in axis)
  raise TypeError(f"{argument} must be an int or a non-empty tuple of ints, got {axis!r}.")


def check_lengths(seq_lengths, batch: int, steps: int | None = None):
  """(B,) integer `seq_lengths` as a jax array, or None; with `steps` (T), concrete values
  must lie in [0, T] (see `lengths_in_range`)."""
  if seq_lengths is None:
    return None
  if not hasattr(seq_lengths, "shape"):
    seq_lengths = np.asarray(seq_lengths)
  if tuple(seq_lengths.shape) != (batch,):
    raise ValueError(
        f"seq_lengths must have shape (B,) = ({batch},), got shape {tuple(seq_lengths.shape)}."
    )
  if not jnp.issubdtype(seq_lengths.dtype, jnp.integer):
    raise TypeError(f"seq_lengths must be an integer array, got dtype {seq_lengths.dtype}.")
  if steps is not None:
    lengths_in_range(seq_lengths, steps)
  return jnp.asarray(seq_lengths)


def lengths_in_range(seq_lengths, steps: int) -> None:
  """Concrete integer `seq_lengths` must lie in [0, T] (a length past T, or below 0, would
  be clipped without a word). Tracers (under the user's own jit / vmap) cannot be read and
  pass; so do values of another shape or dtype, which `check_lengths` reports."""
  if seq_lengths is None or isinstance(seq_lengths, jax.core.Tracer):
    return
  values = np.asarray(seq_lengths)
  if values.size == 0 or not np.issubdtype(values.dtype, np.integer):
    return
  bad = np.flatnonzero((values < 0) | (values > steps))
  if bad.size:
    shown = ", ".join(f"seq_lengths[{i}] = {values.flat[i]}" for i in bad[:4])
    raise ValueError(f"seq_lengths must lie in [0, T] = [0, {steps}], got {shown}.")


def check_key(key, argument: str) -> None:
  """One jax.random key: a typed key of shape (), or a raw (2,) uint32 PRNGKey."""
  if key is None:
    raise ValueError(f"{argument} must be a jax.random key, got None.")
  dtype = getattr(key, "dtype", None)
  if dtype is None:
    raise TypeError(f"{argument} must be a jax.random key, got {describe(key)}.")
  if jnp.issubdtype(dtype, jax.dtypes.prng_key):
    if tuple(key.shape) != ():
      raise ValueError(f"{argument} must be a single jax.random key (shape ()), got a key "
                       f"array of shape {tuple(key.shape)}; pass one key, e.g. keys[0].")
    return
  if dtype == jnp.uint32 and tuple(key.shape) == (2,):
    return
  raise TypeError(
      f"{argument} must be a jax.random key (jax.random.key or PRNGKey), got {describe(key)}."
  )


def sequence_dims(inputs, *, time_major: bool, argument: str = "inputs") -> tuple[int, int]:
  """(B, T) of `inputs`, a pytree of (B, T, ...) arrays ((T, B, ...) if time_major)."""
  leaves = jax.tree.leaves(inputs)
  if not leaves:
    raise ValueError(f"{argument} must be an array or a pytree of arrays, got {inputs!r}.")
  layout = "(T, B, ...)" if time_major else "(B, T, ...)"
  dims = None
  for leaf in leaves:
    if not hasattr(leaf, "shape") or not hasattr(leaf, "dtype"):
      hint = (" (a shape? pass an array or jax.ShapeDtypeStruct(shape, dtype))"
              if isinstance(inputs, tuple) and all(isinstance(d, int) for d in inputs) else "")
      raise TypeError(f"{argument} must hold arrays, got {describe(leaf)}{hint}.")
    check_input_dtype(leaf.dtype, argument)
    if len(leaf.shape) < 3:
      raise ValueError(
          f"{argument} must have shape {layout} with at least one feature axis, got "
          f"shape {tuple(leaf.shape)} (rank {len(leaf.shape)})."
      )
    bt = (leaf.shape[1], leaf.shape[0]) if time_major else (leaf.shape[0], leaf.shape[1])
    if dims is not None and bt != dims:
      raise ValueError(
          f"all arrays in {argument} must share batch and time sizes {layout}; got (B, T) = "
          f"{dims} and {bt}."
      )
    dims = bt
  assert dims is not None   # leaves is not empty
  batch, steps = dims
  if steps == 0:
    raise ValueError(f"{argument} must have at least one time step, got shape {tuple(leaves[0].shape)}.")
  return batch, steps


def check_input_dtype(dtype, argument: str = "inputs") -> None:
  """Inputs must be real numbers: floating-point, integer or bool (complex inputs would run
  in complex arithmetic, strings and objects cannot be computed with)."""
  try:
    dtype = jnp.dtype(dtype)
  except TypeError:
    raise TypeError(f"{argument} must have a real floating-point, integer or bool dtype, got "
                    f"{dtype}.") from None
  if not any(jnp.issubdtype(dtype, kind) for kind in (jnp.floating, jnp.integer, jnp.bool_)):
    raise TypeError(f"{argument} must have a real floating-point, integer or bool dtype, got "
                    f"{dtype}.")


def step_shapes(inputs):
  """Per-example, per-step shape(s): leaves' shapes without batch and time axes."""
  return jax.tree.map(lambda a: tuple(a.shape[2:]), inputs)


def step_flags(flags, argument: str, batch: int, steps: int, time_major: bool):
  """Checks a (B, T) (or (T, B)) boolean/integer mask or reset array; returns it as bool."""
  if flags is None:
    return None
  if not hasattr(flags, "shape"):
    flags = np.asarray(flags)
  expected = (steps, batch) if time_major else (batch, steps)
  if tuple(flags.shape) != expected:
    layout = "(T, B)" if time_major else "(B, T)"
    raise ValueError(
        f"{argument} must have shape {layout} = {expected} to match the inputs, got shape "
        f"{tuple(flags.shape)}."
    )
  if not (jnp.issubdtype(flags.dtype, jnp.bool_) or jnp.issubdtype(flags.dtype, jnp.integer)):
    raise TypeError(f"{argument} must be a bool (or integer 0/1) array, got dtype {flags.dtype}.")
  return jnp.asarray(flags).astype(jnp.bool_)


def lengths_to_mask(seq_lengths, batch: int, steps: int, time_major: bool):
  """Right-padded mask from per-row lengths (B,) in [0, T]: step t is valid when t < length."""
  seq_lengths = check_lengths(seq_lengths, batch, steps)
  mask = jnp.arange(steps)[None, :] < seq_lengths[:, None]
  return mask.T if time_major else mask


def _match_single(given, expected):
  """Lets a bare array stand for a one-state tuple, at any nesting level (as Keras does)."""
  if isinstance(expected, tuple):
    if hasattr(given, "shape") and len(expected) == 1 and not isinstance(expected[0], tuple):
      return (given,)
    if isinstance(given, (tuple, list)) and len(given) == len(expected):
      return tuple(_match_single(g, e) for g, e in zip(given, expected))
  return given


def _shapes(tree):
  return jax.tree.map(lambda a: tuple(a.shape) if hasattr(a, "shape") else describe(a), tree,
                      is_leaf=lambda a: not isinstance(a, (tuple, list)))


def state_like(given, expected, *, argument: str, batch: int, cast: bool = True):
  """Checks a user state against the cell's `expected` zero state (arrays or
  ShapeDtypeStructs); returns it as nested tuples, cast to the expected dtypes when `cast`."""
  if not isinstance(given, (tuple, list)):
    given = (given,)
  given = _match_single(tuple(given), expected)
  g_leaves, e_leaves = jax.tree.leaves(given), jax.tree.leaves(expected)
  same_structure = jax.tree.structure(given) == jax.tree.structure(expected)
  if not same_structure or any(not hasattr(g, "shape") for g in g_leaves):
    raise ValueError(
        f"{argument} must hold {len(e_leaves)} state array(s) of shapes {_shapes(expected)}, "
        f"got {_shapes(given)}."
    )
  for g, e in zip(g_leaves, e_leaves):
    check_input_dtype(g.dtype, argument)   # complex states would lose their imaginary part
    if tuple(g.shape) != tuple(e.shape):
      if g.ndim >= 1 and g.shape[0] != batch and tuple(g.shape[1:]) == tuple(e.shape[1:]):
        raise ValueError(
            f"{argument} has batch size {g.shape[0]} but the inputs have batch size {batch}; "
            f"expected state shapes {_shapes(expected)}."
        )
      raise ValueError(
          f"{argument} must hold state arrays of shapes {_shapes(expected)}, got {_shapes(given)}."
      )
  if not cast:
    return given
  return jax.tree.map(lambda g, e: jnp.asarray(g).astype(e.dtype), given, expected)


def constants_tree(constants, batch: int):
  """Checks `constants` (a pytree of arrays) and returns it with arrays as jax arrays.

  Constants are static per-example inputs that the cell sees at every step, so every
  leaf must be an array whose first axis is the batch: (B, ...).
  """
  paths_leaves, treedef = jax.tree_util.tree_flatten_with_path(constants)
  if not paths_leaves:
    raise ValueError(f"constants must be an array or a pytree of arrays (B, ...), got {constants!r}.")
  arrays = []
  for path, leaf in paths_leaves:
    where = "constants" + jax.tree_util.keystr(path)
    if not (hasattr(leaf, "shape") and hasattr(leaf, "dtype")):
      raise TypeError(f"{where} must be an array of shape (B, ...), got {describe(leaf)}.")
    if leaf.ndim == 0 or leaf.shape[0] != batch:
      raise ValueError(
          f"{where} must have the batch size {batch} of the inputs as its first axis, "
          f"(B, ...) = ({batch}, ...), got shape {tuple(leaf.shape)}."
      )
    arrays.append(jnp.asarray(leaf))
  return jax.tree.unflatten(treedef, arrays)


def params_like(params, expected, *, argument: str = "params") -> None:
  """Checks `params` against `expected`, the layer's own `jax.eval_shape(init)`: the same
  structure (dict keys, sequence lengths), the same shapes, floating-point arrays where
  init gives floating-point ones. Raises a ValueError naming the entry, what it got and
  what was expected."""
  if isinstance(expected, dict):
    if not isinstance(params, dict):
      raise ValueError(f"{argument} must be a dict with keys {sorted(expected)}, got "
                       f"{describe(params)}.")
    missing = [k for k in expected if k not in params]
    extra = [k for k in params if k not in expected]
    if missing or extra:
      what = "; ".join(part for part in (
          missing and f"missing {', '.join(map(repr, missing))}",
          extra and f"unexpected {', '.join(map(repr, extra))}") if part)
      raise ValueError(f"{argument} must have the keys {sorted(expected)} that the layer's "
                       f"init returns, got keys {sorted(map(str, params))} ({what}).")
    for key, want in expected.items():
      params_like(params[key], want, argument=f"{argument}[{key!r}]")
  elif isinstance(expected, (tuple, list)) and not hasattr(expected, "_fields"):
    if not isinstance(params, (tuple, list)) or len(params) != len(expected):
      raise ValueError(f"{argument} must be a {type(expected).__name__} of {len(expected)} "
                       f"entries (the layer's init), got {describe(params)}.")
    for i, (given, want) in enumerate(zip(params, expected)):
      params_like(given, want, argument=f"{argument}[{i}]")
  elif isinstance(expected, jax.ShapeDtypeStruct):
    want = f"an array of shape {tuple(expected.shape)} and dtype {expected.dtype}"
    if not (hasattr(params, "shape") and hasattr(params, "dtype")):
      raise ValueError(f"{argument} must be {want} (the layer's init), got {describe(params)}.")
    if tuple(params.shape) != tuple(expected.shape):
      raise ValueError(f"{argument} must have shape {tuple(expected.shape)} (the layer's "
                       f"init), got shape {tuple(params.shape)}.")
    if (jnp.issubdtype(expected.dtype, jnp.inexact)
        and not jnp.issubdtype(params.dtype, jnp.inexact)):
      raise ValueError(f"{argument} must be a floating-point array like the layer's init "
                       f"({expected.dtype}), got dtype {params.dtype}.")
  else:   # another pytree node: structure, then leaves
    if jax.tree.structure(params) != jax.tree.structure(expected):
      raise ValueError(f"{argument} must have the structure of the layer's init "
                       f"{jax.tree.structure(expected)}, got {jax.tree.structure(params)}.")
    for i, (given, want) in enumerate(zip(jax.tree.leaves(params), jax.tree.leaves(expected))):
      params_like(given, want, argument=f"{argument} leaf {i}")


def lookup(value, table: dict, *, argument: str, kind: str, expected: str, accepted: str):
  """A registry entry by Keras name, or the callable itself: `table[value]` for a string
  (a ValueError saying what was `expected` otherwise), `value` when callable, else a
  TypeError saying what is `accepted`.

  kind: "activation", "regularizer", ...
  """
  if isinstance(value, str):
    if value not in table:
      raise ValueError(f"{argument}={value!r} is not a known {kind}; expected one of "
                       f"{expected}.")
    return table[value]
  if callable(value):
    return value
  raise TypeError(f"{argument} must be {accepted}; got {value!r} of type "
                  f"{type(value).__name__}.")


def check_weight_owner(layer, argument: str = "layer") -> None:
  """`layer` must walk its weights (`map_weight_owners(fn, params)`): an rnnjax layer or cell."""
  if not hasattr(layer, "map_weight_owners"):
    raise TypeError(f"{argument} must be an rnnjax layer or cell (with a "
                    f"map_weight_owners(fn, params) method), got {describe(layer)}.")


def owner_params(owner, params, argument: str = "params") -> None:
  """The params of one weight-owning cell in a layer's walk (`map_weight_owners`) must be
  the ones its init returns: checked by the cell's `check_weight_params` hook (the built-in
  cells have one; a custom cell without it is taken as it is)."""
  check = getattr(owner, "check_weight_params", None)
  if check is not None:
    check(params, argument)


def check_optimizer(optimizer, argument: str = "optimizer") -> None:
  """An optax GradientTransformation: something with `init` and `update` methods."""
  if not (callable(getattr(optimizer, "init", None))
          and callable(getattr(optimizer, "update", None))):
    raise TypeError(f"{argument} must be an optax GradientTransformation (with init and "
                    f"update, e.g. optax.adam(1e-3)), got {describe(optimizer)}.")
