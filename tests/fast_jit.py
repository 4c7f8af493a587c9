"""Many small reference computations at once: one jit, compiled with XLA's cheap CPU
settings (the tests' shapes are tiny, so compile time dominates; results are the same
float32 arithmetic)."""

import jax

FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def run(fn, *args):
  """`jax.jit(fn)(*args)` compiled with FAST_COMPILE."""
  return jax.jit(fn).trace(*args).lower().compile(FAST_COMPILE)(*args)


def jit(fn, **kwargs):
  """`jax.jit(fn)` compiled with FAST_COMPILE (also its derivatives)."""
  return jax.jit(fn, compiler_options=FAST_COMPILE, **kwargs)


def check_scalar_grads(loss, args, *, atol=1e-6, rtol=1e-6):
  """`jax.test_util.check_vjp` for a scalar `loss(*args)`: reverse-mode gradients against
  central finite differences, with the loss and its gradient compiled once each.
  Returns the gradients (a tuple, one per argument)."""
  from jax.test_util import check_vjp

  f = jit(loss)
  value_and_grads = jit(jax.value_and_grad(loss, argnums=tuple(range(len(args)))))

  def f_vjp(*args):
    value, grads = value_and_grads(*args)
    return value, lambda ct: jax.tree.map(lambda g: g * ct, grads)

  check_vjp(f, f_vjp, args, atol=atol, rtol=rtol)
  return value_and_grads(*args)[1]


def init(layer, key, inputs):
  """`layer.init(key, inputs)` as one compiled computation (eager init compiles every
  random op separately); `inputs` only lends its shapes."""
  shapes = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), inputs)
  return run(lambda k: layer.init(k, shapes), key)
