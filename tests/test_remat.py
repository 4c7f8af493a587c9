"""remat trades memory for compute and never changes results."""

import numpy as np
import pytest

import jax
import jax.numpy as jnp
import rnnjax as rj

from tests import keras_reference

B, T, F, U = 8, 11, 3, 4


def _loss_and_grads(layer, params, x, mask):
  def loss(p, x):
    out, h, c = layer.apply(p, x, mask=mask)
    return jnp.sum(out ** 2) + jnp.sum(h * c)

  return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(params, x)


@pytest.mark.parametrize("remat", ["step", 1, 3, 4, "sqrt", 11, 50])
def test_remat_gives_the_same_outputs_and_gradients(remat):
  x = jnp.asarray(np.random.default_rng(0).normal(size=(B, T, F)), jnp.float32)
  mask = jnp.asarray(keras_reference.mixed_mask(B, T))
  base = rj.LSTM(U, return_sequences=True, return_state=True, go_backwards=True)
  params = base.init(jax.random.key(0), x)
  want = _loss_and_grads(base, params, x, mask)
  got = _loss_and_grads(rj.LSTM(U, return_sequences=True, return_state=True, go_backwards=True,
                                remat=remat), params, x, mask)
  for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _temp_bytes(remat, steps):
  layer = rj.GRU(32, return_sequences=True, remat=remat)
  x = jax.ShapeDtypeStruct((4, steps, 8), jnp.float32)
  params = jax.eval_shape(layer.init, jax.random.key(0), x)
  grad = jax.jit(jax.grad(lambda p, x: jnp.sum(layer.apply(p, x) ** 2)))
  return grad.lower(params, x).compile().memory_analysis().temp_size_in_bytes


def test_sqrt_remat_needs_less_memory_than_plain_autodiff():
  plain, sqrt = _temp_bytes(None, 2000), _temp_bytes("sqrt", 2000)
  assert sqrt < 0.5 * plain, (plain, sqrt)


def test_invalid_remat():
  with pytest.raises(ValueError, match=r"remat must be None, \"step\", \"sqrt\" or a positive int k.*got 0"):
    rj.LSTM(4, remat=0)
  with pytest.raises(ValueError, match="got 'every'"):
    rj.GRU(4, remat="every")
