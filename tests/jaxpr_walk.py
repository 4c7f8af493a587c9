"""Walking a jaxpr in tests: the equations a program runs, with calls entered."""

import functools

import jax

from rnnjax import _linear_map


def _linear_map_body(eqn):
  """The jaxpr of the direction a `rnnjax_linear_map` equation runs when lowered."""
  structs = [jax.ShapeDtypeStruct(v.aval.shape, v.aval.dtype) for v in eqn.invars]
  return jax.make_jaxpr(functools.partial(_linear_map._impl, **eqn.params))(*structs).jaxpr


def equations(jaxpr):
  """Every equation of a jaxpr, entering calls (pjit, custom_jvp_call), linear maps (what
  they run when lowered) and every branch of a cond (`platform_dependent`'s: the native
  CPU call and the scan it stands for), but not loops."""
  for eqn in jaxpr.eqns:
    inner = [v for k, v in eqn.params.items() if k in ("jaxpr", "call_jaxpr")]
    if eqn.primitive.name == "cond":
      for branch in eqn.params["branches"]:
        yield from equations(branch.jaxpr)
    elif eqn.primitive.name == "rnnjax_linear_map":
      yield from equations(_linear_map_body(eqn))
    elif eqn.primitive.name != "scan" and inner:
      yield from equations(getattr(inner[0], "jaxpr", inner[0]))
    else:
      yield eqn
