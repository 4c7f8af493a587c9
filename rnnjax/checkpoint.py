"""Save and restore params and carried state with Orbax (`orbax.checkpoint`), bit for bit.

>>> import tempfile, os, jax, jax.numpy as jnp, rnnjax as rj
>>> layer = rj.LSTM(4, stateful=True)
>>> x = jnp.ones((2, 5, 3))
>>> params = layer.init(jax.random.key(0), x)
>>> out, state = layer.apply(params, x)
>>> path = os.path.join(tempfile.mkdtemp(), "ckpt")
>>> rj.checkpoint.save(path, params, state=state)
>>> restored = rj.checkpoint.restore(path, like=params)
>>> jax.tree.structure(restored.params) == jax.tree.structure(params)
True
>>> type(restored.state), [s.shape for s in restored.state]
(<class 'tuple'>, [(2, 4), (2, 4)])

`params` and `state` are any pytrees of arrays: a layer's params and its state tuple,
linen variables (`{"params": ..., "carry": ...}`), or NNX state (`nnx.state(model)`).
With `step=`, checkpoints go to `path/<step>` through `ocp.CheckpointManager`, and
`restore` takes the latest step unless told which. `like` (a pytree of arrays or
`jax.ShapeDtypeStruct`s of the saved shapes and dtypes) gives the structure to
restore into; without it, the stored structure comes back with lists turned into
tuples (rnnjax states and params never hold lists). Typed PRNG keys (e.g. the rng
streams in `nnx.state(model)`) are stored as their key data and come back as keys
when `like` holds a key there.
"""

import os
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

try:
  import orbax.checkpoint as ocp
except ImportError as error:  # an optional dependency: pip install "rnnjax[checkpoint]"
  raise ImportError(
      "rj.checkpoint needs orbax-checkpoint: pip install orbax-checkpoint (or "
      '"rnnjax[checkpoint]").'
  ) from error

from .types import PyTree

_METADATA_FILE = "_CHECKPOINT_METADATA"


class Checkpoint(NamedTuple):
  """What `restore` returns: params, state (None if none was saved) and the step (None
  for a checkpoint saved without one)."""

  params: Any
  state: Any
  step: int | None


# Public API -------------------------------------------------------------------------


def save(path: str | os.PathLike, params: PyTree, state: PyTree = None, *,
         step: int | None = None, overwrite: bool = False) -> None:
  """Writes `params` (and `state`, if given) to `path`, or to `path/<step>`.

  Blocks until the checkpoint is complete on disk. Raises FileExistsError if that
  checkpoint exists, unless `overwrite`.
  """
  path = _check_path(path)
  step = _check_step(step)
  tree = {"params": _encode(params, "params")}
  if state is not None:
    tree["state"] = _encode(state, "state")
  if step is None:
    if os.path.exists(path) and not overwrite:
      raise FileExistsError(f"a file or checkpoint already exists at {path}; pass overwrite=True "
                            "to replace it.")
    with ocp.StandardCheckpointer() as checkpointer:
      checkpointer.save(path, tree, force=overwrite)
      checkpointer.wait_until_finished()
    return
  with _manager(path) as manager:
    if step in manager.all_steps():
      if not overwrite:
        raise FileExistsError(f"step {step} already exists in {path}; pass overwrite=True to "
                              "replace it.")
      manager.delete(step)
    manager.save(step, args=ocp.args.StandardSave(tree), force=True)
    manager.wait_until_finished()


def restore(path: str | os.PathLike, like: PyTree = None, *, state_like: PyTree = None,
            step: int | None = None) -> Checkpoint:
  """Reads a checkpoint that `save` wrote.

  Args:
    path: the `path` given to `save`.
    like: params of the saved structure, shapes and dtypes (arrays or
      ShapeDtypeStructs); None restores the stored structure (lists as tuples).
    state_like: the same for the state.
    step: with step checkpoints, which step (None: the latest).

  Returns:
    Checkpoint(params, state, step), arrays as jax arrays.
  """
  path = _check_path(path)
  step = _check_step(step)
  if not os.path.exists(path):
    raise FileNotFoundError(f"no checkpoint at {path}: the path does not exist.")
  steps = _steps(path)
  if step is None and not steps:
    with ocp.StandardCheckpointer() as checkpointer:
      if not os.path.exists(os.path.join(path, _METADATA_FILE)):
        raise FileNotFoundError(f"no checkpoint at {path}: it holds neither a checkpoint nor "
                                "step checkpoints (numbered subdirectories).")
      stored = checkpointer.metadata(path).item_metadata.tree
      target = _target(stored, like, state_like, path)
      tree = checkpointer.restore(path, target)
  else:
    if step is None:
      step = max(steps)
    if step not in steps:
      raise FileNotFoundError(f"no step {step} in {path}; it holds steps {sorted(steps)}.")
    with _manager(path) as manager:
      stored = manager.item_metadata(step).tree
      target = _target(stored, like, state_like, f"{path} (step {step})")
      tree = manager.restore(step, args=ocp.args.StandardRestore(target))
  params = _decode(tree["params"], like)
  state = _decode(tree["state"], state_like) if "state" in tree else None
  return Checkpoint(params, state, step)


def latest_step(path: str | os.PathLike) -> int | None:
  """The largest step saved in `path` with `save(..., step=)`, or None."""
  steps = _steps(_check_path(path))
  return max(steps) if steps else None


# Helpers ----------------------------------------------------------------------------


def _check_path(path) -> str:
  if not isinstance(path, (str, os.PathLike)):
    raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__} {path!r}.")
  return os.path.abspath(os.fspath(path))


def _check_step(step):
  if step is None:
    return None
  if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
    raise ValueError(f"step must be a non-negative int or None, got {step!r}.")
  return int(step)


def _manager(path):
  return ocp.CheckpointManager(path, item_handlers=ocp.StandardCheckpointHandler())


def _steps(path) -> list[int]:
  if not os.path.isdir(path):
    return []
  return [int(n) for n in os.listdir(path)
          if n.isdigit() and os.path.exists(os.path.join(path, n, _METADATA_FILE))]


def _is_key(x) -> bool:
  return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _encode(tree, argument):
  leaves = jax.tree.leaves(tree)
  if not leaves:
    raise ValueError(f"{argument} must be a pytree holding at least one array, got {tree!r}.")
  for leaf in leaves:
    if not hasattr(leaf, "shape") or not hasattr(leaf, "dtype"):
      raise TypeError(f"{argument} must hold arrays, got a leaf of type {type(leaf).__name__}.")
  return jax.tree.map(lambda a: jax.random.key_data(a) if _is_key(a) else a, tree)


def _key_impl(like_leaf):
  if isinstance(like_leaf, jax.Array):
    return jax.random.key_impl(like_leaf)
  found = []
  jax.eval_shape(lambda k: found.append(jax.random.key_impl(k)), like_leaf)
  return found[0]


def _lists_as_tuples(tree):
  if isinstance(tree, dict):
    return {k: _lists_as_tuples(v) for k, v in tree.items()}
  if isinstance(tree, (list, tuple)) and not hasattr(tree, "_fields"):
    return tuple(_lists_as_tuples(v) for v in tree)
  return tree


def _decode(tree, like):
  if like is None:
    return _lists_as_tuples(tree)
  return jax.tree.map(
      lambda a, ref: jax.random.wrap_key_data(a, impl=_key_impl(ref)) if _is_key(ref) else a,
      tree, like)


def _abstract(leaf):
  """The restore target of one leaf: a ShapeDtypeStruct with a sharding (so that Orbax
  returns jax arrays), key-typed leaves as their key data."""
  if _is_key(leaf):
    leaf = jax.eval_shape(jax.random.key_data, leaf)
  sharding = getattr(leaf, "sharding", None)
  if not isinstance(sharding, jax.sharding.Sharding):
    sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  return jax.ShapeDtypeStruct(tuple(leaf.shape), jnp.dtype(leaf.dtype), sharding=sharding)


def _key_name(entry) -> str:
  for attr in ("key", "idx", "name"):
    if hasattr(entry, attr):
      return str(getattr(entry, attr))
  return str(entry)


def _entries(tree) -> dict[str, tuple]:
  """{"params/kernel": (shape, dtype)} for every leaf, tuples and lists alike."""
  flat, _ = jax.tree_util.tree_flatten_with_path(tree)
  return {"/".join(_key_name(k) for k in path): (tuple(leaf.shape), jnp.dtype(leaf.dtype))
          for path, leaf in flat}


def _target(stored, like, state_like, where):
  """The restore target: `like`/`state_like` as ShapeDtypeStructs after checking them
  against the stored metadata, or the stored structure where they are None."""
  has_state = "state" in stored
  if state_like is not None and not has_state:
    raise ValueError(f"state_like was given but the checkpoint at {where} holds no state.")
  target = {}
  for name, template in (("params", like), ("state", state_like)):
    if name not in stored:
      continue
    if template is None:
      target[name] = jax.tree.map(_abstract, stored[name])
      continue
    argument = "like" if name == "params" else "state_like"
    _encode(template, argument)  # the same leaf checks as save
    expected = _entries(stored[name])
    given = _entries(jax.tree.map(
        lambda a: jax.eval_shape(jax.random.key_data, a) if _is_key(a) else a, template))
    _compare(expected, given, argument, where)
    target[name] = jax.tree.map(_abstract, template)
  return target


def _compare(expected: dict, given: dict, argument: str, where: str) -> None:
  missing = sorted(set(expected) - set(given))
  extra = sorted(set(given) - set(expected))
  differ = [f"{k}: {expected[k][0]} {expected[k][1]} stored, {given[k][0]} {given[k][1]} in "
            f"{argument}" for k in sorted(set(expected) & set(given)) if expected[k] != given[k]]
  if not (missing or extra or differ):
    return
  parts = []
  if missing:
    parts.append(f"stored but not in {argument}: {missing[:8]}")
  if extra:
    parts.append(f"in {argument} but not stored: {extra[:8]}")
  if differ:
    parts.append("different shape or dtype: " + "; ".join(differ[:8]))
  raise ValueError(f"{argument} does not match the checkpoint at {where}: " + "; ".join(parts)
                   + ".")


__all__ = ["Checkpoint", "latest_step", "restore", "save"]
