"""Activation functions by Keras 3 name.

`get(name_or_callable)` resolves what a layer was given. Names follow Keras 3:
`"hard_sigmoid"` is Keras 3's `relu6(x + 3) / 6`. The Keras 2 definition
`clip(0.2 x + 0.5, 0, 1)` is `"keras2_hard_sigmoid"`, so models trained with
Keras 2 load exactly.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from ._validation import lookup

Activation = Callable[[jax.Array], jax.Array]


def linear(x):
  return x


def keras2_hard_sigmoid(x):
  """Keras 2 `hard_sigmoid`: `clip(0.2 x + 0.5, 0, 1)`."""
  return jnp.clip(0.2 * x + 0.5, 0.0, 1.0)


def hard_sigmoid(x):
  """Keras 3 `hard_sigmoid`: `relu6(x + 3) / 6`."""
  return jax.nn.relu6(x + 3.0) / 6.0


def hard_tanh(x):
  return jnp.clip(x, -1.0, 1.0)


def exponential(x):
  return jnp.exp(x)


def mish(x):
  return x * jnp.tanh(jax.nn.softplus(x))


def leaky_relu(x):
  # Keras 3 default negative_slope is 0.2 (jax.nn's is 0.01).
  return jax.nn.leaky_relu(x, negative_slope=0.2)


def gelu(x):
  # Keras 3 default is the exact (erf) form; jax.nn.gelu defaults to tanh.
  return jax.nn.gelu(x, approximate=False)


def tanh_shrink(x):
  return x - jnp.tanh(x)


_BY_NAME: dict[str, Activation] = {
    "linear": linear,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "hard_sigmoid": hard_sigmoid,
    "keras2_hard_sigmoid": keras2_hard_sigmoid,
    "relu": jax.nn.relu,
    "relu6": jax.nn.relu6,
    "elu": jax.nn.elu,
    "selu": jax.nn.selu,
    "softplus": jax.nn.softplus,
    "softsign": jax.nn.soft_sign,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
    "hard_silu": jax.nn.hard_silu,
    "hard_swish": jax.nn.hard_silu,
    "gelu": gelu,
    "exponential": exponential,
    "mish": mish,
    "leaky_relu": leaky_relu,
    "log_sigmoid": jax.nn.log_sigmoid,
    "hard_tanh": hard_tanh,
    "tanh_shrink": tanh_shrink,
    "celu": jax.nn.celu,
}

NAMES = tuple(sorted(_BY_NAME))


def get(activation, *, argument: str = "activation") -> Activation:
  """Returns the activation function for a Keras name, a callable or None (linear).

  Raises:
    ValueError: `activation` is a string that names no known activation.
    TypeError: `activation` is neither a string, a callable nor None.
  """
  if activation is None:
    return linear
  return lookup(activation, _BY_NAME, argument=argument, kind="activation",
                expected=f"{', '.join(NAMES)}, or a callable",
                accepted="an activation name, a callable or None")
