"""LSTM train and forward steps of rnnjax and its JAX peers, on one problem.

Each builder takes (B, T, D, H) and a mode ("train": forward + backward + SGD update,
"forward": outputs only) and returns (step_fn, args) with step_fn jitted. The model is
RNN(H) -> Dense(10) on every step and the loss the mean square of the (B, T, 10) output,
so every step gets a gradient (`_peer_model.finish`). `builder.model(b, t, d, h)` gives
the recurrent part alone with a conversion of its weights to rnnjax's layout, for the
numerics checks (`_peer_checks.py`). Peers that are not installed raise ImportError and
are skipped by the runner.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from _peer_model import LR, Model, builder, data, keras_model, rnnjax_model


def scan_params(d, h, gates):
  """Keras-layout params (kernel, recurrent_kernel, bias) for the hand-written scans."""
  k1, k2 = jax.random.split(jax.random.key(0))
  bias = (2, gates * h) if gates == 3 else (gates * h,)
  return {"kernel": jax.random.normal(k1, (d, gates * h)) * 0.1,
          "recurrent_kernel": jax.random.normal(k2, (h, gates * h)) * 0.1,
          "bias": jnp.zeros(bias)}


def lstm_step(p, x_t, carry):
  """Keras's LSTM step, gates i, f, g, o; the input GEMM inside the step."""
  hh, c = carry
  z = x_t @ p["kernel"] + hh @ p["recurrent_kernel"] + p["bias"][None]
  i, f, g, o = jnp.split(z, 4, axis=-1)
  c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
  hh = jax.nn.sigmoid(o) * jnp.tanh(c)
  return hh, (hh, c)


def scan_apply(step, p, x, zeros):
  """The textbook lax.scan over the time-major sequence: step(p, x_t, carry)."""
  def body(carry, x_t):
    y, carry = step(p, x_t, carry)
    return carry, y

  _, ys = jax.lax.scan(body, zeros, jnp.swapaxes(x, 0, 1))
  return jnp.swapaxes(ys, 0, 1)


def scan_model(b, t, d, h):
  """The textbook lax.scan LSTM: x_t @ W + h @ U inside the loop."""
  zeros = jnp.zeros((b, h))
  return Model(lambda p, x: scan_apply(lstm_step, p, x, (zeros, zeros)), scan_params(d, h, 4),
               lambda p: p)


def scan_hoisted_model(b, t, d, h):
  """A lax.scan LSTM with the input projection hoisted as einsum("btd,dg->tbg")."""

  def apply(p, x):
    xp = jnp.einsum("btd,dg->tbg", x, p["kernel"]) + p["bias"][None, None]

    def step(carry, z_t):
      hh, c = carry
      i, f, g, o = jnp.split(z_t + hh @ p["recurrent_kernel"], 4, axis=-1)
      c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
      hh = jax.nn.sigmoid(o) * jnp.tanh(c)
      return (hh, c), hh

    zeros = jnp.zeros((x.shape[0], h))
    return jnp.swapaxes(jax.lax.scan(step, (zeros, zeros), xp)[1], 0, 1)

  return Model(apply, scan_params(d, h, 4), lambda p: p)


def flax_model(cell_name, kind, b, t, d, h):
  import flax.linen as nn

  import rnnjax as rj

  model = nn.RNN(getattr(nn, cell_name)(h))
  layer = rj.LSTM(h) if kind == "lstm" else rj.GRU(h)
  return Model(model.apply, model.init(jax.random.key(0), data(b, t, d)),
               lambda p: rj.interop.from_flax(layer, p))


def keras_stateless_model(kind, b, t, d, h):
  """Keras 3 on JAX: the compiled stateless call (what model.fit's train step runs)."""
  import rnnjax as rj

  apply, params = keras_model(kind, t, d, h)
  layer = rj.LSTM(h) if kind == "lstm" else rj.GRU(h)
  return Model(apply, params, lambda p: rj.interop.from_keras(layer, [np.asarray(w) for w in p]))


def keras_fit(b, t, d, h, mode, batches: int = 8, kind="lstm"):
  """Keras 3 on JAX through `model.fit` (train) or `model.predict` (forward) over
  `batches` batches: the step function returns seconds per batch of one such call, so
  Keras's own loop (data adapter, callbacks) is in the time."""
  import time

  import keras

  cell = keras.layers.LSTM if kind == "lstm" else keras.layers.GRU
  with jax.numpy_rank_promotion("allow"):
    model = keras.Sequential([keras.Input((t, d)), cell(h, return_sequences=True),
                              keras.layers.Dense(10)])
    model.compile(optimizer=keras.optimizers.SGD(LR), loss="mse", jit_compile=True)
  x = np.tile(np.asarray(data(b, t, d)), (batches, 1, 1))
  y = np.zeros((b * batches, t, 10), np.float32)

  def step():
    start = time.perf_counter()
    with jax.numpy_rank_promotion("allow"):
      if mode == "train":
        model.fit(x, y, batch_size=b, epochs=1, verbose=0, shuffle=False)
      else:
        model.predict(x, batch_size=b, verbose=0)
    return (time.perf_counter() - start) / batches

  return step, ()


def haiku_model(b, t, d, h, core_name="LSTM"):
  """A Haiku core (hk.LSTM or hk.GRU) under hk.dynamic_unroll."""
  import haiku as hk

  def net(x):
    core = getattr(hk, core_name)(h)
    ys, _ = hk.dynamic_unroll(core, x, core.initial_state(x.shape[0]), time_major=False)
    return ys

  model = hk.without_apply_rng(hk.transform(net))
  return Model(model.apply, model.init(jax.random.key(0), data(b, t, d)))


def equinox_model(b, t, d, h, cell_name="LSTMCell"):
  """An Equinox cell (one sequence) under lax.scan, vmapped over the batch."""
  import equinox as eqx

  cell = getattr(eqx.nn, cell_name)(d, h, key=jax.random.key(0))
  params, static = eqx.partition(cell, eqx.is_array)
  lstm = cell_name == "LSTMCell"

  def apply(p, x):
    cell = eqx.combine(p, static)

    def run(seq):  # one sequence (T, D)
      def step(carry, x_t):
        carry = cell(x_t, carry)
        return carry, (carry[0] if lstm else carry)

      zeros = jnp.zeros((h,))
      return jax.lax.scan(step, (zeros, zeros) if lstm else zeros, seq)[1]

    return jax.vmap(run)(x)

  return Model(apply, params)


PEERS = {
    "rnnjax": builder(functools.partial(rnnjax_model, "lstm")),
    "rnnjax scan (use_fused=False)": builder(
        functools.partial(rnnjax_model, "lstm", use_fused=False)),
    "scan (per-step x@W)": builder(scan_model),
    "scan (hoisted btd->tbg)": builder(scan_hoisted_model),
    "flax OptimizedLSTMCell": builder(functools.partial(flax_model, "OptimizedLSTMCell", "lstm")),
    "flax LSTMCell": builder(functools.partial(flax_model, "LSTMCell", "lstm")),
    "keras stateless": builder(functools.partial(keras_stateless_model, "lstm")),
    "keras fit": keras_fit,
    "haiku dynamic_unroll": builder(haiku_model),
    "equinox scan+vmap": builder(equinox_model),
}
