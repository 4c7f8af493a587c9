"""Walking a jaxpr in tests: the equations a program runs, with calls entered."""


def equations(jaxpr):
  """Every equation of a jaxpr, entering calls (pjit, custom_jvp_call) but not loops."""
  for eqn in jaxpr.eqns:
    inner = [v for k, v in eqn.params.items() if k in ("jaxpr", "call_jaxpr")]
    if eqn.primitive.name != "scan" and inner:
      yield from equations(getattr(inner[0], "jaxpr", inner[0]))
    else:
      yield eqn
