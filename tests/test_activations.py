"""Activation names follow Keras 3; the Keras 2 hard_sigmoid keeps its own name."""

import keras
import numpy as np
import pytest

import jax.numpy as jnp
from rnnjax import _activations

from tests import keras_reference

X = np.linspace(-5, 5, 101).astype("float32")


@pytest.mark.parametrize("name", ["hard_sigmoid", "relu", "elu", "selu", "softplus", "softsign",
                                  "silu", "gelu", "leaky_relu", "mish", "hard_silu", "exponential",
                                  "relu6", "log_sigmoid", "hard_tanh", "tanh", "sigmoid", "linear"])
def test_matches_keras_3(name):
  expected = keras_reference.run(lambda x: keras.activations.get(name)(x), X)
  np.testing.assert_allclose(_activations.get(name)(jnp.asarray(X)), expected, atol=1e-6)


def test_hard_sigmoid_is_keras_3_and_keras2_name_is_the_old_formula():
  np.testing.assert_allclose(_activations.get("hard_sigmoid")(jnp.asarray(X)),
                             np.clip(X + 3, 0, 6) / 6, atol=1e-7)
  np.testing.assert_allclose(_activations.get("keras2_hard_sigmoid")(jnp.asarray(X)),
                             np.clip(0.2 * X + 0.5, 0, 1), atol=1e-7)
  assert _activations.get(None)(3.0) == 3.0
