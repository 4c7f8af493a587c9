"""A linear map with a fast transpose of its own, that composes with every transform.

`apply(rule, residuals, linear)` computes `rule.forward(residuals, linear)`, linear in
`linear`; its transpose (what reverse mode runs) is `rule.transpose(residuals,
cotangents)`, e.g. a Pallas backward kernel that JAX could not derive, or a hand-written
reverse scan (the CPU recurrences). It is one primitive with every rule a transform needs:
  - transpose: the same primitive in the other direction (transposing twice gives back
    the forward), so reverse mode runs `rule.transpose`;
  - jvp (residuals and linear inputs may both carry tangents, as under a Hessian): JAX's
    jvp of the plain-JAX direction (`rule.forward`, or `rule.transpose_reference`), so
    every higher order is autodiff of plain JAX;
  - vmap: vmapped levels are a parameter, applied as nested `jax.vmap`s of the direction
    it runs (a Pallas kernel batches along a new grid axis), so the primitive survives
    vmap and is still transposed into `rule.transpose` after it;
  - jit, partial evaluation (remat), DCE: by the default rules, lowered through `impl`.
JAX's own `jax.custom_derivatives.linear_call` does this too, but in jax 0.11 it has no
vmap rule and no jvp with respect to its residuals (so no Hessians).

`rule`: a hashable object (a static parameter) with, on tuples of arrays,
  forward(res, lin) -> out             plain JAX, linear in lin;
  transpose(res, ct) -> lin_ct         linear in ct, the transpose of forward;
  transpose_reference(res, ct)         the same in plain JAX (differentiated under jvp).
"""

import functools

import jax
import jax.numpy as jnp
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir


def varying_axes(x) -> frozenset:
  """The mesh axes `x` varies over inside shard_map (empty elsewhere)."""
  manual = getattr(jax.typeof(x), "manual_axis_type", None)
  return frozenset(getattr(manual, "varying", ()) or ())


def vary(x, axes: frozenset):
  """`x` made to vary over the mesh axes `axes` too (a no-op outside shard_map)."""
  missing = axes - varying_axes(x)
  return jax.lax.pcast(x, tuple(sorted(missing)), to="varying") if missing else x


def transpose_linear(fn, like, cotangents, others=()) -> tuple:
  """The transpose of `fn` (linear, tuple of arrays shaped as `like` -> tuple) applied to
  `cotangents`: its vjp at zeros. Inside shard_map every value is made to vary over the
  axes any of them (or of `others`) varies over, since vjp checks the types."""
  axes = frozenset().union(*(varying_axes(a) for a in (*like, *cotangents, *others)))
  zeros = tuple(vary(jnp.zeros_like(a), axes) for a in like)
  _, vjp = jax.vjp(fn, zeros)
  (out,) = vjp(tuple(vary(a, axes) for a in cotangents))
  return out


_p = Primitive("rnnjax_linear_map")
_p.multiple_results = True


def apply(rule, residuals, linear) -> tuple:
  """`rule.forward(residuals, linear)` (tuples of arrays), reverse mode `rule.transpose`."""
  residuals, linear = tuple(residuals), tuple(linear)
  # Inside shard_map, every operand is cast to vary over the axes any varies over, so
  # that the casts' transposes (sums over devices) are JAX's, not the rule's business.
  axes = frozenset().union(*(varying_axes(a) for a in residuals + linear))
  operands = [vary(a, axes) for a in residuals + linear]
  return tuple(_p.bind(*operands, rule=rule, transposed=False, n_res=len(residuals),
                       levels=()))


def _direction(rule, transposed: bool, fast: bool):
  if not transposed:
    return rule.forward
  return rule.transpose if fast else rule.transpose_reference


def _batched(fn, n_res: int, levels):
  """fn(res, lin) as a function of the flat operands, vmapped over `levels` (outermost
  first; per level, per operand, 0 or None)."""
  def flat(*args):
    return tuple(fn(tuple(args[:n_res]), tuple(args[n_res:])))
  for axes in reversed(levels):
    flat = jax.vmap(flat, in_axes=axes)
  return flat


def _impl(*args, rule, transposed, n_res, levels):
  return _batched(_direction(rule, transposed, fast=True), n_res, levels)(*args)


def _struct(aval):
  """A ShapeDtypeStruct with the aval's type: inside shard_map its varying axes, under a
  mesh of Explicit axes its sharding."""
  if not aval.manual_axis_type.empty:
    return jax.ShapeDtypeStruct(aval.shape, aval.dtype, sharding=aval.sharding,
                                manual_axis_type=aval.manual_axis_type)
  mesh = getattr(aval.sharding, "mesh", None)
  if any(t.name == "Explicit" for t in getattr(mesh, "axis_types", ()) or ()):
    return jax.ShapeDtypeStruct(aval.shape, aval.dtype, sharding=aval.sharding)
  return jax.ShapeDtypeStruct(aval.shape, aval.dtype)


def _abstract_eval(*avals, **params):
  # Traced on the operands' types, so the varying mesh axes (inside shard_map) go
  # through to the outputs' types. The effects are those of the direction it runs (a
  # kernel in an interpret mode that calls back into Python has ordered IO effects,
  # which jit must thread through tokens).
  structs = [_struct(a) for a in avals]
  closed = jax.make_jaxpr(functools.partial(_impl, **params))(*structs)
  return closed.out_avals, closed.effects


def _jvp(primals, tangents, *, rule, transposed, n_res, levels):
  fn = _batched(_direction(rule, transposed, fast=False), n_res, levels)
  tangents = [ad.instantiate_zeros(t) for t in tangents]
  out, dout = jax.jvp(fn, tuple(primals), tuple(tangents))
  return list(out), list(dout)


def _transpose(cts, *args, rule, transposed, n_res, levels):
  res, lin = args[:n_res], args[n_res:]
  if any(ad.is_undefined_primal(r) for r in res):
    raise ValueError("rnnjax_linear_map: a residual operand is linear (undefined) in the "
                     "transpose; only the linear operands may be.")
  cts = [ad.instantiate_zeros(ct) for ct in cts]
  # Every output is batched (axis 0) at every level, so the cotangents are too; so are
  # the transposed outputs, which are summed over the levels a linear input was not.
  t_levels = tuple(axes[:n_res] + (0,) * len(cts) for axes in levels)
  outs = _p.bind(*res, *cts, rule=rule, transposed=not transposed, n_res=n_res,
                 levels=t_levels)
  lin_cts = []
  for i, (x, out) in enumerate(zip(lin, outs)):
    if not ad.is_undefined_primal(x):
      lin_cts.append(None)
      continue
    unbatched = tuple(k for k, axes in enumerate(levels) if axes[n_res + i] is None)
    lin_cts.append(jnp.sum(out, axis=unbatched) if unbatched else out)
  return [None] * n_res + lin_cts


def _batch(args, dims, *, rule, transposed, n_res, levels):
  # dims: per operand, its batched axis, or None (not batched)
  args = [a if d is None else jnp.moveaxis(a, d, 0)
          for a, d in zip(args, dims)]
  axes = tuple(None if d is None else 0 for d in dims)
  outs = _p.bind(*args, rule=rule, transposed=transposed, n_res=n_res,
                 levels=(axes,) + levels)
  return outs, [0] * len(outs)


_p.def_impl(_impl)
_p.def_effectful_abstract_eval(_abstract_eval)
ad.primitive_jvps[_p] = _jvp
ad.primitive_transposes[_p] = _transpose
batching.primitive_batchers[_p] = _batch
mlir.register_lowering(_p, mlir.lower_fun(_impl, multiple_results=True))
