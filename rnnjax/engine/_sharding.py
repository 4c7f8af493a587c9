"""Carries whose type matches what one step returns, under explicit sharding and shard_map.

`lax.scan` requires the carry to keep its type, and in current JAX a type holds more
than shape and dtype:

- with a mesh of `AxisType.Explicit` axes (the default of `jax.make_mesh`), the
  sharding: a zero state made with `jnp.zeros((B, U))` is replicated, but one step on a
  batch-sharded input returns a batch-sharded state;
- inside `jax.shard_map`, the mesh axes a value varies over: zeros are the same on
  every device, a step on per-device inputs returns values that vary.

So the engine gives the starting carry the sharding and the varying axes that one step
produces. Under the default (auto) sharding and outside shard_map nothing changes."""

import jax


def _varying(aval) -> frozenset:
  manual = getattr(aval, "manual_axis_type", None)
  if manual is not None:
    return frozenset(getattr(manual, "varying", ()) or ())
  return frozenset(getattr(aval, "vma", ()) or ())


def _match(leaf, target):
  have = jax.typeof(leaf)
  missing = _varying(target) - _varying(have)
  if missing:
    leaf = jax.lax.pcast(leaf, tuple(sorted(missing)), to="varying")
  spec = getattr(getattr(target, "sharding", None), "spec", None)
  mesh = getattr(getattr(target, "sharding", None), "mesh", None)
  explicit = any(t.name == "Explicit" for t in getattr(mesh, "axis_types", ()) or ())
  if explicit and spec is not None and getattr(have.sharding, "spec", None) != spec:
    leaf = jax.sharding.reshard(leaf, spec)
  return leaf


def match_sharding(tree, like):
  """`tree` with each leaf given the sharding and varying mesh axes of the matching leaf
  of `like` (a pytree of `jax.ShapeDtypeStruct`s from `jax.eval_shape`)."""
  leaves, treedef = jax.tree.flatten(tree)
  targets = jax.tree.leaves(like)
  if len(leaves) != len(targets):
    return tree
  return jax.tree.unflatten(treedef, [_match(a, t) for a, t in zip(leaves, targets)])
