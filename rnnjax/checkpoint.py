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

import math
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
# Restoring without `like` trusts the stored shapes: a checkpoint declaring more than this,
# and more than MAX_EXPANSION times the bytes it holds on disk, is refused (a shape bomb).
BOMB_FLOOR_BYTES = 1 << 30
MAX_EXPANSION = 1000


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
      stored = _stored_tree(lambda: checkpointer.metadata(path).item_metadata, path)
      _check_declared_size(stored, like, state_like, path, path)
      target = _target(stored, like, state_like, path)
      tree = _read(lambda: checkpointer.restore(path, target), target, path)
  else:
    if step is None:
      step = max(steps)
    if step not in steps:
      raise FileNotFoundError(f"no step {step} in {path}; it holds steps {sorted(steps)}.")
    where = f"{path} (step {step})"
    with _manager(path) as manager:
      stored = _stored_tree(lambda: manager.item_metadata(step), where)
      _check_declared_size(stored, like, state_like, os.path.join(path, str(step)), where)
      target = _target(stored, like, state_like, where)
      tree = _read(lambda: manager.restore(step, args=ocp.args.StandardRestore(target)),
                   target, where)
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


# What Orbax raises on a damaged checkpoint (bad JSON, missing or truncated files, a
# metadata of another structure).
_DAMAGE = (ValueError, TypeError, KeyError, AttributeError, IndexError, OSError, RuntimeError)


def _stored_tree(read_metadata, where: str) -> dict:
  """The stored tree metadata, {"params": ..., "state": ...}; a ValueError naming the
  checkpoint when it is missing or damaged (Orbax returns None, or fails in many ways)."""
  try:
    tree = getattr(read_metadata(), "tree", None)
  except _DAMAGE as error:
    raise ValueError(f"the checkpoint at {where} has damaged metadata: "
                     f"{type(error).__name__}: {error}.") from None
  if not isinstance(tree, dict) or "params" not in tree:
    got = "none" if tree is None else _describe_tree(tree)
    raise ValueError(f"the checkpoint at {where} has damaged or missing metadata (Orbax "
                     f"_METADATA): expected a tree with 'params', got {got}.")
  return tree


def _check_declared_size(stored, like, state_like, directory: str, where: str) -> None:
  """Without `like` (or `state_like`), the stored shapes are all there is: refuse a
  checkpoint that declares far more bytes than it holds on disk."""
  trusted = [name for name, template in (("params", like), ("state", state_like))
             if template is None and name in stored]
  declared = sum(math.prod(leaf.shape) * jnp.dtype(leaf.dtype).itemsize
                 for name in trusted for leaf in jax.tree.leaves(stored[name]))
  if declared <= BOMB_FLOOR_BYTES:
    return
  on_disk = sum(os.path.getsize(os.path.join(root, f))
                for root, _, files in os.walk(directory) for f in files)
  if declared > MAX_EXPANSION * on_disk:
    raise ValueError(f"the checkpoint at {where} declares arrays of {declared} bytes but holds "
                     f"{on_disk} bytes on disk (a shape bomb?); pass like= with the shapes you "
                     f"expect to restore it.")


def _describe_tree(tree) -> str:
  if isinstance(tree, dict):
    return f"a dict with keys {sorted(map(str, tree))[:8]}"
  return type(tree).__name__


def _read(restore, target: dict, where: str) -> dict:
  """`restore()`'s tree, checked against `target`: a ValueError naming the checkpoint when
  its data cannot be read or comes back of other shapes than its metadata said."""
  try:
    tree = restore()
  except _DAMAGE as error:
    raise ValueError(f"the checkpoint at {where} cannot be read (damaged or truncated?): "
                     f"{type(error).__name__}: {error}.") from None
  if not isinstance(tree, dict) or set(tree) != set(target):
    raise ValueError(f"the checkpoint at {where} is damaged: it restored "
                     f"{_describe_tree(tree)}, expected keys {sorted(target)}.")
  for name in target:
    if _entries(tree[name]) != _entries(target[name]):
      raise ValueError(f"the checkpoint at {where} is damaged: its {name} came back with other "
                       f"entries, shapes or dtypes than its metadata lists.")
  return tree


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
