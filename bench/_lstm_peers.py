"""LSTM train and forward steps of rnnjax and its JAX peers, on one problem.

Each builder takes (B, T, D, H) and a mode ("train": forward + backward + SGD update,
"forward": outputs only) and returns (step_fn, args) with step_fn jitted. The loss is
the mean square of the full output sequence (B, T, H), so every step gets a gradient.
Peers that are not installed raise ImportError and are skipped by the runner.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax
import jax.numpy as jnp
import numpy as np

LR = 1e-3


def _data(b, t, d):
  return jnp.asarray(np.random.default_rng(0).normal(size=(b, t, d)), jnp.float32)


def _finish(apply_fn, params, x, mode):
  """jit(forward) or jit(train step with SGD) around apply_fn(params, x) -> (B, T, H)."""
  if mode == "forward":
    return jax.jit(apply_fn), (params, x)

  def loss(p, x):
    return jnp.mean(apply_fn(p, x) ** 2)

  @jax.jit
  def step(p, x):
    value, grads = jax.value_and_grad(loss)(p, x)
    return jax.tree.map(lambda w, g: w - LR * g, p, grads), value

  return step, (params, x)


def rnnjax_lstm(b, t, d, h, mode, use_fused="auto"):
  """rj.LSTM as a user calls it (on a CPU: the fused path's custom-VJP scan backend)."""
  import rnnjax as rj

  layer = rj.LSTM(h, return_sequences=True, use_fused=use_fused)
  x = _data(b, t, d)
  return _finish(layer.apply, layer.init(jax.random.key(0), x), x, mode)


def rnnjax_engine_lstm(b, t, d, h, mode):
  """rj.LSTM forced onto the engine's scan (autodiff of lax.scan)."""
  return rnnjax_lstm(b, t, d, h, mode, use_fused=False)


def _scan_params(d, h):
  k1, k2 = jax.random.split(jax.random.key(0))
  return {"w": jax.random.normal(k1, (d, 4 * h)) * 0.1, "u": jax.random.normal(k2, (h, 4 * h)) * 0.1,
          "b": jnp.zeros((4 * h,))}


def _lstm_gates(z, c):
  i, f, g, o = jnp.split(z, 4, axis=-1)
  c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
  return jax.nn.sigmoid(o) * jnp.tanh(c), c


def handwritten_scan(b, t, d, h, mode):
  """The textbook lax.scan LSTM: x_t @ W + h @ U inside the loop."""

  def apply(p, x):
    def step(carry, x_t):
      hh, c = carry
      hh, c = _lstm_gates(x_t @ p["w"] + hh @ p["u"] + p["b"], c)
      return (hh, c), hh

    zeros = jnp.zeros((x.shape[0], h))
    _, ys = jax.lax.scan(step, (zeros, zeros), jnp.swapaxes(x, 0, 1))
    return jnp.swapaxes(ys, 0, 1)

  x = _data(b, t, d)
  return _finish(apply, _scan_params(d, h), x, mode)


def handwritten_scan_hoisted(b, t, d, h, mode):
  """A lax.scan LSTM with the input projection hoisted as einsum("btd,dg->tbg")."""

  def apply(p, x):
    xp = jnp.einsum("btd,dg->tbg", x, p["w"]) + p["b"]

    def step(carry, z_t):
      hh, c = carry
      hh, c = _lstm_gates(z_t + hh @ p["u"], c)
      return (hh, c), hh

    zeros = jnp.zeros((x.shape[0], h))
    _, ys = jax.lax.scan(step, (zeros, zeros), xp)
    return jnp.swapaxes(ys, 0, 1)

  x = _data(b, t, d)
  return _finish(apply, _scan_params(d, h), x, mode)


def flax_optimized_lstm(b, t, d, h, mode):
  import flax.linen as nn

  model = nn.RNN(nn.OptimizedLSTMCell(h))
  x = _data(b, t, d)
  return _finish(model.apply, model.init(jax.random.key(0), x), x, mode)


def flax_lstm(b, t, d, h, mode):
  import flax.linen as nn

  model = nn.RNN(nn.LSTMCell(h))
  x = _data(b, t, d)
  return _finish(model.apply, model.init(jax.random.key(0), x), x, mode)


def keras_stateless(b, t, d, h, mode):
  """Keras 3 on JAX: the compiled stateless call (what model.fit's train step runs)."""
  import keras

  model = keras.Sequential([keras.Input((t, d)), keras.layers.LSTM(h, return_sequences=True)])
  x = _data(b, t, d)
  trainable = [v.value for v in model.trainable_variables]
  non_trainable = [v.value for v in model.non_trainable_variables]

  def apply(p, x):
    with jax.numpy_rank_promotion("allow"):
      y, _ = model.stateless_call(p, non_trainable, x)
    return y

  return _finish(apply, trainable, x, mode)


def keras_fit(b, t, d, h, mode, batches: int = 8):
  """Keras 3 on JAX through `model.fit` (train) or `model.predict` (forward) over
  `batches` batches: the step function returns seconds per batch of one such call, so
  Keras's own loop (data adapter, callbacks) is in the time."""
  import time

  import keras

  model = keras.Sequential([keras.Input((t, d)), keras.layers.LSTM(h, return_sequences=True)])
  model.compile(optimizer=keras.optimizers.SGD(LR), loss="mse", jit_compile=True)
  x = np.tile(np.asarray(_data(b, t, d)), (batches, 1, 1))
  y = np.zeros((b * batches, t, h), np.float32)

  def step():
    start = time.perf_counter()
    with jax.numpy_rank_promotion("allow"):
      if mode == "train":
        model.fit(x, y, batch_size=b, epochs=1, verbose=0, shuffle=False)
      else:
        model.predict(x, batch_size=b, verbose=0)
    return (time.perf_counter() - start) / batches

  return step, ()


def haiku_dynamic_unroll(b, t, d, h, mode):
  import haiku as hk

  def net(x):
    core = hk.LSTM(h)
    ys, _ = hk.dynamic_unroll(core, x, core.initial_state(x.shape[0]), time_major=False)
    return ys

  model = hk.without_apply_rng(hk.transform(net))
  x = _data(b, t, d)
  return _finish(model.apply, model.init(jax.random.key(0), x), x, mode)


def equinox_scan_vmap(b, t, d, h, mode):
  import equinox as eqx

  cell = eqx.nn.LSTMCell(d, h, key=jax.random.key(0))
  params, static = eqx.partition(cell, eqx.is_array)

  def apply(p, x):
    cell = eqx.combine(p, static)

    def run(seq):  # one sequence (T, D)
      def step(carry, x_t):
        carry = cell(x_t, carry)
        return carry, carry[0]

      zeros = jnp.zeros((h,))
      return jax.lax.scan(step, (zeros, zeros), seq)[1]

    return jax.vmap(run)(x)

  x = _data(b, t, d)
  return _finish(apply, params, x, mode)


PEERS = {
    "rnnjax": rnnjax_lstm,
    "rnnjax scan (use_fused=False)": rnnjax_engine_lstm,
    "scan (per-step x@W)": handwritten_scan,
    "scan (hoisted btd->tbg)": handwritten_scan_hoisted,
    "flax OptimizedLSTMCell": flax_optimized_lstm,
    "flax LSTMCell": flax_lstm,
    "keras stateless": keras_stateless,
    "keras fit": keras_fit,
    "haiku dynamic_unroll": haiku_dynamic_unroll,
    "equinox scan+vmap": equinox_scan_vmap,
}
