"""A scan's starting carry with the type one step returns, as `lax.scan` requires.

In current JAX a type is more than shape and dtype: inside `jax.shard_map` a value
carries the mesh axes it varies over, and under a mesh of `AxisType.Explicit` axes its
sharding. Zeros (a tangent's start, a default initial state) vary over nothing and are
replicated, while one step on per-device or batch-sharded inputs returns values that vary
or are sharded. So the carry is cast to what one step returns (its shape is
`jax.eval_shape`d, nothing runs). Outside shard_map and explicit sharding nothing changes.
"""

import jax


def _varying(aval) -> frozenset:
  manual = getattr(aval, "manual_axis_type", None)
  return frozenset(getattr(manual, "varying", ()) or ())


def _cast(leaf, target):
  missing = _varying(target) - _varying(jax.typeof(leaf))
  if missing:
    leaf = jax.lax.pcast(leaf, tuple(sorted(missing)), to="varying")
  sharding = getattr(target, "sharding", None)
  spec, mesh = getattr(sharding, "spec", None), getattr(sharding, "mesh", None)
  explicit = any(t.name == "Explicit" for t in getattr(mesh, "axis_types", ()) or ())
  if explicit and spec is not None and getattr(jax.typeof(leaf).sharding, "spec", None) != spec:
    leaf = jax.sharding.reshard(leaf, spec)
  return leaf


def cast_like(x, like):
  """`x` with the varying mesh axes and explicit sharding of the array `like` (same rank)."""
  return _cast(x, jax.typeof(like))


def matched(step, init, xs):
  """`init` (a pytree of arrays) cast to the type of the carry `step(init, xs[0])`
  returns; `xs` a pytree of arrays with a leading time axis (None leaves allowed)."""
  x0 = jax.tree.map(lambda a: a[0], xs)
  carry, _ = jax.eval_shape(step, init, x0)
  return jax.tree.map(_cast, init, carry)
