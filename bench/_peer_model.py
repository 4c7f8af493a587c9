"""The model every CPU peer runs, and the jitted steps around it.

A peer builds its recurrent layer as a `Model(apply, params, to_rnnjax)`:
`apply(params, x) -> (B, T, H)`, the output sequence, and `to_rnnjax(params)` the same
weights in rnnjax's (Keras) layout when they can be converted (None when not), which
`_peer_checks.py` uses to check that the peers compute the same function. `finish` puts
the shared head on top, RNN(H) -> Dense(10) on every step, and jits the forward pass or
the train step (value_and_grad of the mean square of the (B, T, 10) output + SGD).
"""

import dataclasses
import os
from typing import Any, Callable

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

LR = 1e-3
HEAD = 10


@dataclasses.dataclass(frozen=True)
class Model:
  apply: Callable          # (params, x, *aux) -> (B, T, H)
  params: Any
  to_rnnjax: Callable | None = None


def data(b, t, d):
  """The (B, T, D) float32 inputs every peer gets."""
  return jnp.asarray(np.random.default_rng(0).normal(size=(b, t, d)), jnp.float32)


def head_params(h):
  k = jax.random.key(1)
  return {"w": jax.random.normal(k, (h, HEAD)) * h ** -0.5, "b": jnp.zeros((HEAD,))}


def finish(model: Model, x, mode, *aux):
  """(jitted fn, args): the forward pass (B, T, 10) or the train step (params, loss)."""
  h = jax.eval_shape(model.apply, model.params, x, *aux).shape[-1]
  params = {"rnn": model.params, "head": head_params(h)}

  def forward(p, x, *aux):
    return model.apply(p["rnn"], x, *aux) @ p["head"]["w"] + p["head"]["b"][None, None]

  if mode == "forward":
    return jax.jit(forward), (params, x, *aux)

  def loss(p, x, *aux):
    return jnp.mean(forward(p, x, *aux) ** 2)

  @jax.jit
  def step(p, x, *aux):
    value, grads = jax.value_and_grad(loss)(p, x, *aux)
    return jax.tree.map(lambda w, g: w - LR * g, p, grads), value

  return step, (params, x, *aux)


def builder(model_fn):
  """A peer builder (b, t, d, h, mode) -> (fn, args) from a model builder (b, t, d, h)."""
  def build(b, t, d, h, mode):
    return finish(model_fn(b, t, d, h), data(b, t, d), mode)
  build.model = model_fn
  return build


def rnnjax_layer(kind, h, use_fused="auto"):
  """rj.LSTM / rj.GRU as a user builds it, returning the output sequence."""
  import rnnjax as rj

  return (rj.LSTM if kind == "lstm" else rj.GRU)(h, return_sequences=True, use_fused=use_fused)


def rnnjax_model(kind, b, t, d, h, use_fused="auto"):
  layer = rnnjax_layer(kind, h, use_fused)
  return Model(layer.apply, layer.init(jax.random.key(0), data(b, t, d)), lambda p: p)


def keras_model(kind, t, d, h):
  """(apply, trainable list, layer) for Keras 3's compiled stateless call."""
  import keras

  layer = (keras.layers.LSTM if kind == "lstm" else keras.layers.GRU)(h, return_sequences=True)
  with jax.numpy_rank_promotion("allow"):  # Keras relies on it (tests set "raise")
    model = keras.Sequential([keras.Input((t, d)), layer])
  non_trainable = [v.value for v in model.non_trainable_variables]

  def apply(p, x):
    with jax.numpy_rank_promotion("allow"):
      y, _ = model.stateless_call(p, non_trainable, x)
    return y

  return apply, [v.value for v in model.trainable_variables]
