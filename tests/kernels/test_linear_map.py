"""The linear-map primitive under the Pallas recurrence's custom JVP
(`rnnjax/_linear_map.py`), on a toy rule whose fast transpose is instrumented:
every transform composes (checked against finite differences in float64 and against
plain JAX), and reverse mode runs the rule's own transpose, also under vmap."""

import dataclasses

import numpy as np
import pytest

import jax
import jax.numpy as jnp
from jax.test_util import check_grads

from rnnjax import _linear_map

CALLS = []   # which direction ran: appended while tracing


@dataclasses.dataclass(frozen=True)
class Rule:
  """lin v (n,) -> a * v + b * sum(v), residuals a, b (n,): linear in v, not in (a, b)."""

  def forward(self, res, lin):
    (a, b), (v,) = res, lin
    return (a * v + b * jnp.sum(v),)

  def transpose(self, res, ct):
    CALLS.append("transpose")
    return self._transpose(res, ct)

  def transpose_reference(self, res, ct):
    CALLS.append("transpose_reference")
    return self._transpose(res, ct)

  def _transpose(self, res, ct):
    (a, b), (c,) = res, ct
    return (a * c + jnp.sum(b * c),)


def custom(a, b, v):
  (out,) = _linear_map.apply(Rule(), (a, b), (v,))
  return out


def plain(a, b, v):
  (out,) = Rule().forward((a, b), (v,))
  return out


def _g(x):
  return jnp.sin(x) + jnp.sin(jnp.sum(x))


@jax.custom_jvp
def g_custom(x):
  """sin(x) + sin(sum(x)), whose tangent is the rule: a = cos(x), b = cos(sum(x)) (the
  way the recurrences use the primitive: inside a custom JVP, on tangents only)."""
  return _g(x)


@g_custom.defjvp
def _g_jvp(primals, tangents):
  (x,), (v,) = primals, tangents
  return g_custom(x), custom(jnp.cos(x), jnp.full_like(x, jnp.cos(jnp.sum(x))), v)


def f_custom(x):
  """Through the custom JVP, then the primitive applied directly (its residual operands
  carry tangents too: forward mode differentiates its plain-JAX direction)."""
  y = g_custom(x)
  return jnp.sin(custom(jnp.cos(y), 0.3 * jnp.sin(y), y))


def f_plain(x):
  y = _g(x)
  return jnp.sin(plain(jnp.cos(y), 0.3 * jnp.sin(y), y))


X = jnp.array([0.3, -1.2, 0.7])


def test_value_and_reverse_mode_run_the_rules_own_transpose():
  loss = lambda g: lambda x: jnp.sum(jnp.cos(g(x)))   # noqa: E731
  np.testing.assert_allclose(g_custom(X), _g(X), rtol=1e-6)
  CALLS.clear()
  grad = jax.jit(jax.grad(loss(g_custom)))
  np.testing.assert_allclose(grad(X), jax.grad(loss(_g))(X), rtol=1e-5)
  assert "transpose" in CALLS and "transpose_reference" not in CALLS


def test_vmap_keeps_the_primitive_and_its_transpose():
  loss = lambda g: lambda x: jnp.sum(jnp.cos(g(x)))   # noqa: E731
  xs = jnp.stack([X, 2 * X])
  CALLS.clear()
  got = jax.jit(jax.vmap(jax.grad(loss(g_custom))))(xs)
  assert "transpose" in CALLS and "transpose_reference" not in CALLS
  np.testing.assert_allclose(got, jax.vmap(jax.grad(loss(_g)))(xs), rtol=1e-5)
  got = jax.jit(jax.grad(lambda xs: jnp.sum(jax.vmap(loss(g_custom))(xs))))(xs)
  np.testing.assert_allclose(got, jax.vmap(jax.grad(loss(_g)))(xs), rtol=1e-5)


@pytest.mark.parametrize("in_axes", [(0, 0), (None, 0), (0, None)])
def test_nested_vmap_with_unbatched_operands(in_axes):
  """Two levels of vmap (the same in_axes at both), the residual or the linear operand
  unbatched; the transpose sums an unbatched linear operand's cotangent over the levels."""
  def twice(fn):
    return jax.vmap(jax.vmap(lambda r, v: fn(r, jnp.sin(r), v), in_axes=in_axes),
                    in_axes=in_axes)
  rs = jnp.cos(jnp.arange(24.0)).reshape(2, 4, 3)
  vs = jnp.sin(jnp.arange(24.0)).reshape(2, 4, 3)
  r = rs if in_axes[0] == 0 else rs[0, 0]
  v = vs if in_axes[1] == 0 else vs[0, 0]
  np.testing.assert_allclose(twice(custom)(r, v), twice(plain)(r, v), rtol=1e-6)
  # the transpose rule directly: the cotangent of v through jax.linear_transpose
  ct = jnp.cos(twice(plain)(r, v))
  (got,) = jax.linear_transpose(lambda v: twice(custom)(r, v), v)(ct)
  (want,) = jax.linear_transpose(lambda v: twice(plain)(r, v), v)(ct)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


# f_custom to second order: its third is beyond finite differences' accuracy (plain JAX
# fails it too)
@pytest.mark.parametrize("f, order", [(g_custom, 3), (f_custom, 2)], ids=["custom_jvp", "direct"])
def test_check_grads_in_float64(f, order):
  with jax.enable_x64(True):
    x = X.astype(jnp.float64)
    check_grads(f, (x,), order=order, modes=["fwd", "rev"], atol=1e-6, rtol=1e-6)


def test_hessian_jacfwd_linearize_checkpoint_equal_plain_jax():
  scalar = lambda f: lambda x: jnp.sum(f(x) * jnp.arange(1.0, 4.0))   # noqa: E731
  for transform in (jax.hessian, jax.jacfwd, jax.jacrev):
    np.testing.assert_allclose(jax.jit(transform(scalar(f_custom)))(X),
                               transform(scalar(f_plain))(X), rtol=1e-5, atol=1e-6)
  y, lin = jax.linearize(f_custom, X)
  np.testing.assert_allclose(lin(X), jax.jvp(f_plain, (X,), (X,))[1], rtol=1e-5)
  g = jax.grad(jax.checkpoint(scalar(f_custom)))(X)
  np.testing.assert_allclose(g, jax.grad(scalar(f_plain))(X), rtol=1e-5)
