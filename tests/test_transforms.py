"""jit / grad / vmap compose with the layers; gradients are numerically checked."""

import numpy as np
import pytest

import jax
import jax.numpy as jnp
from jax.test_util import check_grads
import rnnjax as rj

from tests import keras_reference

B, T, F = 8, 6, 3

CELLS = {
    "simple_rnn": lambda **kw: rj.SimpleRNNCell(4, **kw),
    "gru": lambda **kw: rj.GRUCell(4, **kw),
    "gru_reset_before": lambda **kw: rj.GRUCell(4, reset_after=False, **kw),
    "lstm": lambda **kw: rj.LSTMCell(4, **kw),
    "stacked": lambda **kw: rj.StackedRNNCells([rj.LSTMCell(3, **kw), rj.GRUCell(4, **kw)]),
}


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("go_backwards", [False, True])
def test_check_grads_through_the_engine(name, go_backwards):
  with jax.enable_x64(True):
    cell = CELLS[name](param_dtype=jnp.float64)
    layer = rj.RNN(cell, return_sequences=True, go_backwards=go_backwards)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(B, T, F)))
    params = layer.init(jax.random.key(0), x)
    mask = jnp.asarray(keras_reference.mixed_mask(B, T))

    def loss(params, x):
      return jnp.sum(jnp.sin(layer.apply(params, x, mask=mask)))

    # jit: the numerical differences then run one compiled program, not op-by-op dispatch.
    check_grads(jax.jit(loss), (params, x), order=2, modes=["rev"], atol=1e-6, rtol=1e-6)


def test_jit_with_layer_as_static_argument_and_no_recompilation():
  layer = rj.LSTM(4, return_sequences=True)
  x = jnp.ones((B, T, F))
  params = layer.init(jax.random.key(0), x)
  traces = []

  @jax.jit
  def run(params, x):
    traces.append(1)
    return layer.apply(params, x)

  run(params, x)
  run(params, x + 1.0)
  assert len(traces) == 1
  static = jax.jit(lambda layer, p, x: layer.apply(p, x), static_argnums=0)
  np.testing.assert_allclose(static(layer, params, x), run(params, x), atol=1e-6)
  assert hash(layer) == hash(rj.LSTM(4, return_sequences=True))


def test_vmap_over_an_ensemble_of_parameters():
  layer = rj.GRU(4)
  x = jnp.asarray(np.random.default_rng(1).normal(size=(B, T, F)), jnp.float32)
  keys = jax.random.split(jax.random.key(0), 3)
  ensemble = jax.vmap(lambda k: layer.init(k, x))(keys)
  out = jax.vmap(layer.apply, in_axes=(0, None))(ensemble, x)
  assert out.shape == (3, B, 4)
  for i in range(3):
    single = layer.apply(jax.tree.map(lambda p: p[i], ensemble), x)
    np.testing.assert_allclose(out[i], single, atol=1e-6)


def test_vmap_over_an_extra_leading_axis_of_inputs():
  layer = rj.LSTM(4, return_sequences=True)
  x = jnp.asarray(np.random.default_rng(2).normal(size=(2, B, T, F)), jnp.float32)
  params = layer.init(jax.random.key(0), x[0])
  out = jax.vmap(layer.apply, in_axes=(None, 0))(params, x)
  np.testing.assert_allclose(out[1], layer.apply(params, x[1]), atol=1e-6)


def test_grad_is_finite_and_nonzero_for_every_parameter():
  layer = rj.LSTM(4)
  x = jnp.asarray(np.random.default_rng(3).normal(size=(B, T, F)), jnp.float32)
  params = layer.init(jax.random.key(0), x)
  grads = jax.jit(jax.grad(lambda p: jnp.sum(layer.apply(p, x) ** 2)))(params)
  for name, g in grads.items():
    assert np.isfinite(np.asarray(g)).all(), name
    assert np.abs(np.asarray(g)).max() > 0, name
