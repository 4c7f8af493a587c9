"""Keras 3 (JAX backend) as the independent reference: build the Keras twin of an
rnnjax configuration, give it random non-symmetric weights, run it."""

import jax
import numpy as np

from tests import fast_jit


def random_weights(keras_layer, seed: int, scale: float = 0.5) -> list[np.ndarray]:
  """Random normal weights for every array of a built Keras layer (no symmetric constants,
  so a gate or transpose mix-up cannot pass)."""
  rng = np.random.default_rng(seed)
  return [(scale * rng.normal(size=w.shape)).astype("float32") for w in keras_layer.get_weights()]


def run(keras_layer, *args, **kwargs):
  """Calls a Keras layer with NumPy results; Keras relies on implicit rank promotion."""
  with jax.numpy_rank_promotion("allow"):
    out = keras_layer(*args, **kwargs)
  if isinstance(out, (list, tuple)):
    return [np.asarray(o) for o in out]
  return np.asarray(out)


def build(keras_layer, inputs, seed: int = 0) -> list[np.ndarray]:
  """Builds `keras_layer` on `inputs`, sets random weights and returns them."""
  run(keras_layer, inputs)
  weights = random_weights(keras_layer, seed)
  keras_layer.set_weights(weights)
  return weights


def build_for_shape(keras_layer, input_shape, seed: int) -> list[np.ndarray]:
  """Builds `keras_layer` for `input_shape` without calling it (cheaper than `build`),
  sets random weights and returns them."""
  with jax.numpy_rank_promotion("allow"):  # Keras's initializers rely on it
    keras_layer.build(input_shape)
  weights = random_weights(keras_layer, seed)
  keras_layer.set_weights(weights)
  return weights


def run_twins(keras_layers, rj_layers, params, args):
  """Every named Keras layer and its rnnjax twin on the same inputs, all Keras layers in
  one compiled call and all rnnjax layers in another (compiling each pair separately
  takes minutes). `args`: {name: (x, call kwargs)}; returns {name: (keras out, rnnjax out)}."""

  def run_keras(args):
    with jax.numpy_rank_promotion("allow"):
      return {n: keras_layers[n](x, **kw) for n, (x, kw) in args.items()}

  def run_rnnjax(params, args):
    return {n: rj_layers[n].apply(params[n], x, **kw) for n, (x, kw) in args.items()}

  expected = fast_jit.run(run_keras, args)
  got = fast_jit.run(run_rnnjax, params, args)
  return {n: (expected[n], got[n]) for n in args}


def mixed_mask(batch: int, steps: int) -> np.ndarray:
  """One (B, T) mask whose rows cover every pattern: no padding, right padding, left
  padding, holes, a masked first step, a single valid step, a fully masked row."""
  assert batch >= 8 and steps >= 6
  mask = np.ones((batch, steps), bool)
  mask[1, steps - 2:] = False            # right-padded
  mask[2, :3] = False                    # left-padded
  mask[3, 1::2] = False                  # holes
  mask[4, 0] = False                     # first step masked
  mask[5, :] = False                     # fully masked row
  mask[6, 1:] = False                    # one valid step (length 1)
  mask[7, [0, steps - 1]] = False        # masked at both ends
  return mask
