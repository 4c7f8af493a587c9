"""Parameter layouts, the Keras guide's parameter counts, initializer distributions."""

import math

import numpy as np
import pytest

import jax
import jax.numpy as jnp
import rnnjax as rj
from rnnjax import _initializers


def count(params) -> int:
  return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))


@pytest.mark.parametrize("layer,features,expected", [
    (rj.LSTM(128), 64, 98_816),
    (rj.GRU(256), 64, 247_296),
    (rj.GRU(256, reset_after=False), 64, 246_528),
    (rj.SimpleRNN(128), 256, 49_280),
    (rj.GRU(128), 64, 74_496),
])
def test_keras_guide_parameter_counts(layer, features, expected):
  params = layer.init(jax.random.key(0), jax.ShapeDtypeStruct((1, 10, features), jnp.float32))
  assert count(params) == expected


def test_lstm_unit_forget_bias_layout():
  params = rj.LSTM(3).init(jax.random.key(0), jnp.ones((1, 2, 5)))
  np.testing.assert_array_equal(params["bias"], [0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0])
  params = rj.LSTM(3, unit_forget_bias=False).init(jax.random.key(0), jnp.ones((1, 2, 5)))
  np.testing.assert_array_equal(params["bias"], np.zeros(12))


def test_glorot_uniform_has_keras_bounds_and_variance():
  w = np.asarray(rj.LSTM(200).init(jax.random.key(1), jnp.ones((1, 1, 300)))["kernel"])
  limit = math.sqrt(6.0 / (300 + 800))
  assert w.shape == (300, 800)
  assert np.abs(w).max() <= limit
  assert np.abs(w).max() > 0.99 * limit
  np.testing.assert_allclose(w.var(), limit ** 2 / 3, rtol=0.02)


@pytest.mark.parametrize("layer", [rj.LSTM(16), rj.GRU(16), rj.SimpleRNN(16)])
def test_recurrent_kernel_is_orthogonal_over_the_flattened_shape(layer):
  r = np.asarray(layer.init(jax.random.key(2), jnp.ones((1, 1, 5)))["recurrent_kernel"])
  # (U, G*U) with U < G*U: orthonormal rows.
  np.testing.assert_allclose(r @ r.T, np.eye(16), atol=1e-5)


def test_initializers_by_keras_name_and_callable():
  key = jax.random.key(3)
  he = np.asarray(_initializers.get("he_normal")(key, (400, 300), jnp.float32))
  np.testing.assert_allclose(he.std(), math.sqrt(2.0 / 400), rtol=0.03)
  assert np.abs(he).max() <= 2 * math.sqrt(2.0 / 400) / 0.87962566103423978 + 1e-6
  lecun = np.asarray(_initializers.get("LecunUniform")(key, (500, 10), jnp.float32))
  assert np.abs(lecun).max() <= math.sqrt(3.0 / 500)
  custom = rj.LSTM(2, kernel_initializer=jax.nn.initializers.ones)
  np.testing.assert_array_equal(custom.init(key, jnp.ones((1, 1, 3)))["kernel"], np.ones((3, 8)))
  np.testing.assert_array_equal(_initializers.get("identity")(key, (3, 3), jnp.float32), np.eye(3))


def test_param_dtype():
  params = rj.GRU(4, param_dtype=jnp.bfloat16).init(jax.random.key(0), jnp.ones((1, 2, 3)))
  assert all(p.dtype == jnp.bfloat16 for p in jax.tree.leaves(params))
