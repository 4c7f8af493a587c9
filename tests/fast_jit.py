"""Many small reference computations at once: one jit, compiled with XLA's cheap CPU
settings (the tests' shapes are tiny, so compile time dominates; results are the same
float32 arithmetic)."""

import jax

FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def run(fn, *args):
  """`jax.jit(fn)(*args)` compiled with FAST_COMPILE."""
  return jax.jit(fn).trace(*args).lower().compile(FAST_COMPILE)(*args)
