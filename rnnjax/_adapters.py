"""What the Flax adapters (`rj.linen`, `rj.nnx`) share, without importing Flax: what
counts as a layer, the constructor signature of a module over a layer class, the naming
of a layer's parameter pytree as top-level variables, the call of `layer.apply`, the
dropout-rng rule and the carried state; for the cell modules, one step of a cell on
inputs with any leading batch axes and its zero carry.

Parameter names (the same in linen and NNX):
  a dict of str keys (the built-in cells: kernel, recurrent_kernel, bias; a
    Bidirectional layer: forward, backward) -> one variable per key;
  a tuple or list (StackedRNNCells: one entry per cell) -> cell_0, cell_1, ...;
  anything else (a custom cell's array or other pytree) -> one variable named cell.
"""

import dataclasses
import inspect

import jax
import jax.numpy as jnp

from . import _validation as _checks
from .cells import Cell, initial_state_of

# The layer -----------------------------------------------------------------------------


def check_layer(layer, argument: str, not_a: type) -> None:
  """TypeError unless `layer` is an rnnjax layer: a dataclass instance with `init` and
  `apply` methods that is not a module of the framework (`not_a`, which may have both)."""
  if (isinstance(layer, type) or isinstance(layer, not_a) or not dataclasses.is_dataclass(layer)
      or not callable(getattr(layer, "init", None))
      or not callable(getattr(layer, "apply", None))):
    raise TypeError(
        f"{argument} must be an rnnjax layer such as rj.LSTM(64), got {_checks.describe(layer)}."
    )


def layer_arguments(layer) -> dict:
  """The constructor arguments that rebuild `layer`, by keyword; its `name` is left out
  (a Flax module has its own)."""
  return {f.name: getattr(layer, f.name) for f in dataclasses.fields(layer)
          if f.init and f.name != "name"}


def layer_type_of(module_class, attribute: str = "layer_type") -> type:
  """`module_class.layer_type` (or `.cell_type`), which a module class built from a
  layer's (cell's) arguments sets to the layer (cell) class, a dataclass."""
  layer_type = getattr(module_class, attribute, None)
  if not isinstance(layer_type, type) or not dataclasses.is_dataclass(layer_type):
    example = "an rnnjax layer class such as rj.LSTM" if attribute == "layer_type" else (
        "an rnnjax cell class such as rj.LSTMCell")
    raise TypeError(
        f"{module_class.__name__}.{attribute} must be {example}, got "
        f"{_checks.describe(layer_type)}."
    )
  return layer_type


def signature(layer_type, before=(), after=()) -> inspect.Signature:
  """The constructor signature of a module over `layer_type`: the parameters `before`,
  the layer's own (less `name`), then `after` (inspect.Parameter lists)."""
  own = [p for p in inspect.signature(layer_type).parameters.values() if p.name != "name"]
  return inspect.Signature([*before, *own, *after])


def is_stateful(layer) -> bool:
  return bool(getattr(layer, "stateful", False))


def apply(layer, params, inputs, initial_state, mask, training, rng, constants, *, reset,
          seq_lengths, state=None):
  """`layer.apply` with a module call's arguments: `(outputs, new state)` for a stateful
  layer (continuing from `state`, None: zeros), `(outputs, None)` otherwise."""
  # Only the given options are passed on: a custom layer need not take them.
  extra = {k: v for k, v in (("reset", reset), ("seq_lengths", seq_lengths)) if v is not None}
  args = (params, inputs, initial_state, mask, training, rng, constants)
  if not is_stateful(layer):
    return layer.apply(*args, **extra), None
  return layer.apply(*args, state=state, **extra)


# Parameter specs and names -------------------------------------------------------------


def layout(params) -> tuple:
  """The top-level structure of a parameter pytree, hashable: ("dict", keys),
  ("seq", tuple or list, length) or ("single",)."""
  if isinstance(params, dict) and params and all(isinstance(k, str) for k in params):
    return ("dict", tuple(params))
  if isinstance(params, (tuple, list)) and not hasattr(params, "_fields"):
    return ("seq", type(params), len(params))
  return ("single",)


def _reserved(keys) -> bool:
  """True when dict keys read as the names of a tuple or a non-dict (see `layout_of_names`)."""
  keys = set(keys)
  return keys == {"cell"} or keys == {f"cell_{i}" for i in range(len(keys))}


def to_named(params) -> dict:
  """A layer's parameter pytree as {variable name: subtree} (see the module docstring)."""
  kind = layout(params)
  if kind[0] == "dict":
    if _reserved(params):
      raise ValueError(
          f"a cell's params dict may not have exactly the keys {sorted(params)}: the Flax "
          "adapters name a tuple of params cell_0, cell_1, ... and other params cell; "
          "rename the keys."
      )
    return dict(params)
  if kind[0] == "seq":
    return {f"cell_{i}": p for i, p in enumerate(params)}
  return {"cell": params}


def layout_of_names(named) -> tuple:
  """The `layout` that `to_named` came from, read off the variable names alone."""
  keys = list(named)
  if keys == ["cell"]:
    return ("single",)
  if keys and _reserved(keys):
    return ("seq", tuple, len(keys))
  return ("dict", tuple(keys))


def from_named(named: dict, kind: tuple):
  """Inverse of `to_named`, for a tree of top-level structure `kind` (see `layout`)."""
  if kind[0] == "dict":
    return {k: named[k] for k in kind[1]}
  if kind[0] == "seq":
    return kind[1](named[f"cell_{i}"] for i in range(kind[2]))
  return named["cell"]


# Dropout and training ------------------------------------------------------------------


def needs_dropout_rng(layer) -> bool | None:
  """Whether `training=True` makes `layer.apply` draw dropout masks: True / False, or
  None when the layer does not say (then a dropout rng is passed if one is available)."""
  uses = getattr(layer, "uses_dropout", None)
  if callable(uses):
    return bool(uses())
  cell = getattr(layer, "cell", None)
  uses = getattr(cell, "uses_dropout", None)
  if callable(uses):
    return bool(uses())
  # Wrappers (Bidirectional): the layers they run.
  inner = [getattr(layer, n) for n in ("layer", "backward_layer")
           if getattr(layer, n, None) is not None]
  answers = [needs_dropout_rng(sub) for sub in inner]
  if answers and all(a is not None for a in answers):
    return any(answers)
  return None


def wants_dropout_rng(layer, training: bool) -> bool | None:
  """`needs_dropout_rng` for a call: False when not training."""
  return needs_dropout_rng(layer) if training else False


def check_training(training) -> None:
  if not isinstance(training, bool):
    raise TypeError(f"training must be a Python bool, got {_checks.describe(training)}.")


# Carried state --------------------------------------------------------------------------


def zero_rows(state, where=None):
  """`state` (a pytree of (B, ...) arrays, e.g. a whole linen `carry` collection) set to
  zeros: every row, or the rows where `where` (B,) bool is True."""
  leaves = jax.tree.leaves(state)
  if not leaves:
    return state
  if where is None:
    return jax.tree.map(jnp.zeros_like, state)
  batch = leaves[0].shape[0]
  where = jnp.asarray(where)
  if tuple(where.shape) != (batch,) or not jnp.issubdtype(where.dtype, jnp.bool_):
    raise ValueError(
        f"where must be a bool array of shape (B,) = ({batch},), got {_checks.describe(where)}."
    )
  return jax.tree.map(
      lambda s: jnp.where(where.reshape((batch,) + (1,) * (s.ndim - 1)), jnp.zeros_like(s), s),
      state)


def zero_state(layer, params, step, batch_size: int, dtype=jnp.float32):
  """The zero state that a first call of `layer.apply` on `batch_size` rows of per-step
  shape(s) `step` and `dtype` starts from."""
  _checks.check_positive_int(batch_size, "batch_size")
  inputs = jax.tree.map(lambda s: jax.ShapeDtypeStruct((batch_size, 1, *s), dtype), step,
                        is_leaf=is_shape)
  if getattr(layer, "time_major", False):
    inputs = jax.tree.map(lambda a: jax.ShapeDtypeStruct((1, batch_size, *a.shape[2:]), dtype),
                          inputs)
  # The state of an abstract call, not layer.get_initial_state(batch, dtype): that one
  # ignores carry_dtype and needs the input shape only for some cells (ConvLSTM).
  _, state = jax.eval_shape(lambda p, x: layer.apply(p, x), params, inputs)
  return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), state)


# NNX's in_features -----------------------------------------------------------------------


def is_shape(x) -> bool:
  return isinstance(x, tuple) and all(isinstance(d, int) and not isinstance(d, bool) for d in x)


def step_shape(in_features, argument: str = "in_features"):
  """Per-step input shape(s) from an NNX-style `in_features`: an int F -> (F,), or a
  shape tuple / pytree of shape tuples (custom cells with nested inputs)."""
  if isinstance(in_features, int) and not isinstance(in_features, bool):
    if in_features <= 0:
      raise ValueError(f"{argument} must be a positive int or a shape tuple, got {in_features}.")
    return (in_features,)
  leaves = jax.tree.leaves(in_features, is_leaf=is_shape)
  if not leaves or not all(is_shape(s) and all(d > 0 for d in s) for s in leaves):
    raise TypeError(
        f"{argument} must be a positive int (features F), a per-step shape tuple such as "
        f"(64, 32), or a pytree of them for nested inputs; got {in_features!r}."
    )
  return in_features


def abstract_inputs(shape, dtype=jnp.float32):
  """A one-row, one-step input (B = T = 1) of per-step `shape`, as ShapeDtypeStructs."""
  return jax.tree.map(lambda s: jax.ShapeDtypeStruct((1, 1, *s), dtype), shape, is_leaf=is_shape)


# Cell modules: one step --------------------------------------------------------------


def check_cell(cell, argument: str, not_a: type) -> None:
  """TypeError unless `cell` is an rnnjax cell instance (a subclass of rj.Cell)."""
  if isinstance(cell, type) or isinstance(cell, not_a) or not isinstance(cell, Cell):
    raise TypeError(
        f"{argument} must be an rnnjax cell such as rj.LSTMCell(64) (an instance of a "
        f"subclass of rj.Cell), got {_checks.describe(cell)}."
    )


def needs_rng(cell) -> bool:
  """Whether the cell takes a per-step key `rng=` (the Cell protocol's `needs_rng`)."""
  return bool(getattr(cell, "needs_rng", False))


def num_feature_axes(cell) -> int:
  """The trailing axes of a step's input that are features: rank + 1 for the ConvLSTM
  cells ((*S, C)), else 1 (a cell may say otherwise with `num_feature_axes`)."""
  axes = getattr(cell, "num_feature_axes", None)
  if isinstance(axes, int):
    return axes
  rank = getattr(cell, "rank", None)
  return rank + 1 if isinstance(rank, int) and not isinstance(rank, bool) else 1


def split_batch(cell, inputs) -> tuple[tuple, object]:
  """(leading batch axes, per-step shape(s)) of one step's `inputs` (*B, *features)."""
  leaves = jax.tree.leaves(inputs)
  axes = num_feature_axes(cell)
  if not leaves or any(getattr(a, "ndim", 0) <= axes for a in leaves):
    raise ValueError(
        f"inputs of one step of {type(cell).__name__} must be arrays (*B, *features) with "
        f"{axes} feature axis/axes and at least one batch axis, got {_checks.describe(inputs)}."
    )
  batch = tuple(leaves[0].shape[: leaves[0].ndim - axes])
  step = jax.tree.map(lambda a: tuple(a.shape[len(batch):]), inputs)
  return batch, step


def rows(batch: tuple) -> int:
  n = 1
  for d in batch:
    n *= d
  return n


def float_dtype(inputs):
  """The dtype of the first floating input leaf (float32 when there is none)."""
  for a in jax.tree.leaves(inputs):
    if jnp.issubdtype(a.dtype, jnp.floating):
      return a.dtype
  return jnp.float32


def _carry_of(states):
  return states[0] if len(states) == 1 else tuple(states)


def zero_carry(cell, input_shape: tuple, dtype=None):
  """The zero carry of `cell` for one step's inputs of shape (*B, *features): its state
  tuple (one array alone for a single state), each (*B, *state shape), in the cell's
  `param_dtype` (float32 when it has none) unless `dtype` is given."""
  if not is_shape(input_shape):
    raise TypeError(f"input_shape must be a shape tuple (*B, *features), got {input_shape!r}.")
  axes = num_feature_axes(cell)
  if len(input_shape) <= axes:
    raise ValueError(f"input_shape must be (*B, *features) with {axes} feature axis/axes and "
                     f"at least one batch axis, got {input_shape}.")
  batch, step = input_shape[: len(input_shape) - axes], input_shape[len(input_shape) - axes:]
  dtype = jnp.dtype(dtype or getattr(cell, "param_dtype", None) or jnp.float32)
  states = jax.eval_shape(lambda: initial_state_of(cell, 1, dtype, step))
  zeros = jax.tree.map(lambda s: jnp.zeros((*batch, *s.shape[1:]), s.dtype), tuple(states))
  return _carry_of(zeros)


def cell_step(cell, params, carry, inputs, batch, training, constants, extra):
  """`cell(params, inputs, states)` on inputs (*B, ...) and the carry (see `zero_carry`):
  the batch axes are flattened to one for the cell and restored after. `extra`: the
  keyword arguments `dropout=` / `rng=`. Returns (new carry, output)."""
  if constants is not None and not getattr(cell, "accepts_constants", True):
    raise ValueError(f"constants= was given but {type(cell).__name__} takes no constants.")
  _, step = split_batch(cell, inputs)
  expected = jax.eval_shape(lambda: _carry_of(initial_state_of(cell, 1, jnp.float32, step)))
  states = carry if isinstance(carry, tuple) and not hasattr(carry, "shape") else (carry,)
  want = jax.tree.map(lambda s: (*batch, *s.shape[1:]), expected)
  got = jax.tree.map(lambda a: tuple(getattr(a, "shape", ())), _carry_of(states))
  if jax.tree.structure(got, is_leaf=is_shape) != jax.tree.structure(want, is_leaf=is_shape) or (
      jax.tree.leaves(got, is_leaf=is_shape) != jax.tree.leaves(want, is_leaf=is_shape)):
    raise ValueError(
        f"carry of {type(cell).__name__} must have shapes {want} for inputs with batch axes "
        f"{batch} (initialize_carry gives it), got {got}."
    )
  n = rows(batch)
  flat = lambda a: a.reshape((n, *a.shape[len(batch):]))  # noqa: E731
  kwargs = dict(extra, training=training)
  if constants is not None:
    kwargs["constants"] = jax.tree.map(flat, constants)
  out, new = cell(params, jax.tree.map(flat, inputs), jax.tree.map(flat, tuple(states)), **kwargs)
  unflat = lambda a: a.reshape((*batch, *a.shape[1:]))  # noqa: E731
  return _carry_of(jax.tree.map(unflat, tuple(new))), jax.tree.map(unflat, out)
