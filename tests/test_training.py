"""Training-shaped uses of the layers: gradients of a vmapped ensemble, and no
recompilation for repeated same-shape calls (a training step, new data, equal layers)."""

import numpy as np
import optax
import pytest

import jax
import jax.numpy as jnp
import rnnjax as rj

from tests import keras_reference
from tests.registry import F, LAYERS  # noqa: F401

B, T, E = 8, 6, 3


def data(seed, *shape):
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


@pytest.mark.parametrize("name", ["stacked", "custom_cell"])   # two compilations each
def test_vmap_grad_over_an_ensemble_equals_each_member(name):
  """E parameter sets stacked on a leading axis, each with its own data batch."""
  layer = LAYERS[name](return_sequences=True)
  xs = data(0, E, B, T, F)
  mask = jnp.asarray(keras_reference.mixed_mask(B, T))
  ensemble = jax.vmap(layer.init, in_axes=(0, None))(jax.random.split(jax.random.key(0), E), xs[0])

  def loss(params, x):
    return jnp.sum(jnp.sin(layer.apply(params, x, mask=mask)))

  grads = jax.jit(jax.vmap(jax.grad(loss)))(ensemble, xs)
  single = jax.jit(jax.grad(loss))
  for i in range(E):
    member = jax.tree.map(lambda p: p[i], ensemble)
    for got, want in zip(jax.tree.leaves(jax.tree.map(lambda g: g[i], grads)),
                         jax.tree.leaves(single(member, xs[i])), strict=True):
      np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  assert not np.allclose(jax.tree.leaves(grads)[0][0], jax.tree.leaves(grads)[0][1])


def test_training_step_does_not_recompile():
  layer = rj.LSTM(4, return_sequences=True)
  opt = optax.adam(3e-2)
  params = layer.init(jax.random.key(0), data(0, B, T, F))
  opt_state = opt.init(params)
  traces = []

  @jax.jit
  def step(params, opt_state, x, y, mask):
    traces.append(1)
    loss, grads = jax.value_and_grad(
        lambda p: jnp.mean((layer.apply(p, x, mask=mask)[..., :1] - y) ** 2))(params)
    updates, opt_state = opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  x, y = data(1, B, T, F), data(2, B, T, 1)
  losses = []
  for i in range(4):   # new masks (values) every step, same shapes
    mask = jnp.arange(T)[None, :] < jnp.asarray((np.arange(B) + i) % T + 1)[:, None]
    params, opt_state, loss = step(params, opt_state, x, y, mask)
    losses.append(float(loss))
  assert len(traces) == 1 and step._cache_size() == 1
  assert losses[-1] < losses[0]   # it trains


def test_equal_layers_and_same_shape_inputs_do_not_recompile():
  run = jax.jit(lambda layer, p, x, mask: layer.apply(p, x, mask=mask), static_argnums=0)
  layer = rj.GRU(4, return_sequences=True)
  x1, x2 = data(3, B, T, F), data(4, B, T, F)
  params = layer.init(jax.random.key(0), x1)
  mask = jnp.asarray(keras_reference.mixed_mask(B, T))
  out1 = run(layer, params, x1, mask)
  out2 = run(rj.GRU(4, return_sequences=True), params, x2, ~mask)   # an equal, new layer
  assert run._cache_size() == 1
  assert not np.allclose(out1, out2)
  run(layer, params, data(5, B, T + 1, F), jnp.ones((B, T + 1), bool))   # a new shape does
  assert run._cache_size() == 2


def test_stateful_streaming_compiles_once():
  layer = rj.LSTM(4, stateful=True, return_sequences=True)
  x = data(6, B, 4 * T, F)
  params = layer.init(jax.random.key(0), x)
  run = jax.jit(lambda p, chunk, state: layer.apply(p, chunk, state=state))
  _, state = run(params, x[:, :T], None)
  for k in range(1, 4):
    _, state = run(params, x[:, k * T:(k + 1) * T], state)
  assert run._cache_size() == 2   # the first chunk (state=None) and all later ones
  whole = rj.LSTM(4, return_state=True).apply(params, x)
  np.testing.assert_allclose(state[0], whole[1], atol=1e-5)
