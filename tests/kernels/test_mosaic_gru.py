"""The Mosaic GPU (Hopper) GRU kernels on a CPU: interpret mode against the pure-JAX
reference (forward values and gradients, float32 to rounding, bfloat16 within its
tolerance), bias folding included; and both kernels lowered for an abstract H100."""

import functools

import numpy as np
import pytest

import jax
import jax.numpy as jnp
import rnnjax as rj
from rnnjax.pallas import mosaic

F32 = jnp.float32
B, T, F, U = 5, 4, 7, 24


def _relative(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)


def _loss(fn, params, x, h0):
  out, h = fn(params, x, h0)
  weights = jnp.cos(jnp.arange(out.size, dtype=F32)).reshape(out.shape)
  return jnp.sum(out.astype(F32) * weights) + jnp.sum(1.3 * h)


@pytest.mark.parametrize("dtype, backwards, fwd_tol, grad_tol", [
    ("float32", False, 1e-6, 1e-5),
    ("bfloat16", True, 1e-2, 1e-2),
])
def test_values_and_gradients_match_the_reference(dtype, backwards, fwd_tol, grad_tol):
  keys = jax.random.split(jax.random.key(5), 4)
  x = jax.random.normal(keys[0], (B, T, F))
  params = rj.GRU(U).init(keys[1], x)   # a (2, 3U) bias: both rows must reach the kernel
  params = jax.tree.map(lambda a: a + 0.1 * jax.random.normal(keys[2], a.shape), params)
  h0 = jax.random.normal(keys[3], (B, U))

  def kernel(p, x, h):
    return mosaic.mosaic_gru(p, x, initial_state=h, go_backwards=backwards, dtype=dtype,
                             interpret=True)

  def reference(p, x, h):
    return rj.kernels.fused_gru(p, x, initial_state=h, go_backwards=backwards, dtype=dtype,
                                implementation="reference")
  got, want = kernel(params, x, h0), reference(params, x, h0)
  assert got[0].dtype == jnp.dtype(dtype) and got[0].shape == (B, T, U)
  for a, b in zip(got, want):
    assert _relative(a, b) < fwd_tol
  grads = [jax.grad(functools.partial(_loss, fn), argnums=(0, 1, 2))(params, x, h0)
           for fn in (kernel, reference)]
  for a, b in zip(*(jax.tree.leaves(g) for g in grads)):
    assert _relative(a, b) < grad_tol


def test_lowers_for_h100_and_large_units_raise():
  text = mosaic.lowered_text(64, 8, 128, kind="gru")
  for name in ("forward", "backward"):
    assert "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16" in text[name]
  x = jnp.ones((2, 3, 4), jnp.bfloat16)
  params = {"kernel": jnp.zeros((4, 3 * 192), jnp.bfloat16),
            "recurrent_kernel": jnp.zeros((192, 3 * 192), jnp.bfloat16)}
  with pytest.raises(ValueError, match="does not stay resident in one CTA"):
    mosaic.mosaic_gru(params, x, interpret=True)
