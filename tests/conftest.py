"""Test configuration: Keras runs on JAX as the reference; rnnjax runs under strict
rank promotion, so a mask or bias that broadcasts by accident fails loudly."""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
