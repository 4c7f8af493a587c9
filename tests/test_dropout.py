"""Dropout and recurrent dropout: variational (one mask per call, reused at every step),
one mask per gate with recurrent dropout (Keras implementation 1), scaling 1 / (1 - rate),
the drop rate, training=False, rngs; and Keras parity with the same masks injected into
Keras's cells (`_dropout_mask` / `_recurrent_dropout_mask`, which Keras keeps for the call
when already set)."""

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest

import rnnjax as rj

from tests import fast_jit, keras_reference as ref, numpy_reference as npref
from tests.test_errors import raises

B, T, F, U = 8, 6, 5, 4
KEY = jax.random.key(42)


def _x(seed=0, shape=(B, T, F)):
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def _masks(layer, key=KEY, batch=B, features=F):
  """The masks `layer.apply(..., training=True, rng=key)` draws (one compiled call)."""
  return fast_jit.run(lambda k: layer.cell.dropout_masks(k, batch, (features,), jnp.float32), key)


def test_an_input_feature_dropped_once_stays_dropped_at_every_step():
  layer = rj.LSTM(U, dropout=0.5, return_sequences=True)
  x = _x()
  params = fast_jit.init(layer, jax.random.key(0), x)
  masks = np.asarray(_masks(layer).inputs[0])  # (B, F): one mask for the whole call
  dropped = tuple(np.argwhere(masks == 0)[0])
  kept = tuple(np.argwhere(masks > 0)[0])

  def perturbed(b, f):
    return x.at[b, :, f].add(100.0)

  base, drop, keep, scaled = fast_jit.run(lambda p: (
      layer.apply(p, x, training=True, rng=KEY),
      layer.apply(p, perturbed(*dropped), training=True, rng=KEY),
      layer.apply(p, perturbed(*kept), training=True, rng=KEY),
      layer.apply(p, x * masks[:, None, :])), params)
  np.testing.assert_array_equal(drop, base)          # zeroed at every step
  assert np.abs(np.asarray(keep) - np.asarray(base))[kept[0]].max() > 1e-3
  # The same mask, scaled by 1 / (1 - rate), multiplies the input at every step.
  np.testing.assert_allclose(base, scaled, atol=1e-6)


def test_recurrent_mask_is_the_same_at_every_step():
  layer = rj.SimpleRNN(U, recurrent_dropout=0.4, return_sequences=True)
  x = _x(1)
  params = fast_jit.init(layer, jax.random.key(1), x)
  rec = np.asarray(_masks(layer).recurrent[0], np.float64)  # (B, U)

  def step(p, x, state):
    (h,) = state
    h = np.tanh(x @ p["kernel"] + (h * rec) @ p["recurrent_kernel"] + p["bias"])
    return h, (h,)

  want, _, _ = npref.run(step, params, x, [np.zeros((B, U))])
  got = fast_jit.run(lambda p: layer.apply(p, x, training=True, rng=KEY), params)
  np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("make,count", [
    (lambda: rj.LSTM(U, dropout=0.3, recurrent_dropout=0.3), 4),
    (lambda: rj.GRU(U, dropout=0.3, recurrent_dropout=0.3), 3),
    (lambda: rj.GRU(U, recurrent_dropout=0.3, reset_after=False), 3),
    (lambda: rj.LSTM(U, dropout=0.3, implementation=1), 4),
    (lambda: rj.LSTM(U, dropout=0.3), 1),
    (lambda: rj.SimpleRNN(U, dropout=0.3, recurrent_dropout=0.3), 1),
])
def test_one_mask_per_gate_with_implementation_1(make, count):
  layer = make()
  masks = _masks(layer)
  if layer.dropout:
    assert masks.inputs.shape == (count, B, F)
  else:
    assert masks.inputs is None
  assert masks.recurrent is None if not layer.recurrent_dropout else masks.recurrent.shape == (count, B, U)
  drawn = masks.inputs if masks.inputs is not None else masks.recurrent
  if count > 1:
    assert not np.array_equal(drawn[0], drawn[1])  # independent masks per gate


def test_scaling_and_rate_statistically():
  rate = 0.3
  layer = rj.GRU(U, dropout=rate, recurrent_dropout=0.6)
  masks = _masks(layer, batch=4000, features=50)
  inputs, recurrent = np.asarray(masks.inputs), np.asarray(masks.recurrent)
  assert set(np.unique(inputs)) == {0.0, np.float32(1 / (1 - rate))}
  # 600k draws: the standard error of the drop fraction is below 0.001.
  assert abs((inputs == 0).mean() - rate) < 0.005
  assert abs(inputs.mean() - 1.0) < 0.01  # expectation preserved
  assert abs((recurrent == 0).mean() - 0.6) < 0.01
  np.testing.assert_allclose(recurrent[recurrent > 0], 1 / 0.4, rtol=1e-6)


def test_training_false_and_rngs():
  x = _x(2)
  layer = rj.GRU(U, dropout=0.4, recurrent_dropout=0.4)
  plain = rj.GRU(U)
  seeded = rj.GRU(U, dropout=0.4, recurrent_dropout=0.4, seed=7)
  params = fast_jit.init(plain, jax.random.key(2), x)
  infer, no_dropout, a, b, c, d = fast_jit.run(lambda p: (
      layer.apply(p, x), plain.apply(p, x),
      layer.apply(p, x, training=True, rng=jax.random.key(0)),
      layer.apply(p, x, training=True, rng=jax.random.key(0)),
      layer.apply(p, x, training=True, rng=jax.random.key(1)),
      seeded.apply(p, x, training=True, rng=jax.random.key(0))), params)
  np.testing.assert_array_equal(infer, no_dropout)
  np.testing.assert_array_equal(a, b)
  assert not np.allclose(a, c)
  assert not np.allclose(a, d)  # seed is folded into the rng
  assert not np.allclose(a, infer)


def test_a_missing_rng_is_a_clear_error():
  x = _x()
  for layer in (rj.LSTM(U, recurrent_dropout=0.2), rj.RNN([rj.GRUCell(3), rj.LSTMCell(U, dropout=0.1)]),
                rj.Bidirectional(rj.SimpleRNN(U, dropout=0.5))):
    params = jax.eval_shape(layer.init, jax.random.key(0), x)
    with raises(ValueError, "training=True with dropout needs rng=", "got rng=None"):
      layer.apply(params, x, training=True)


def test_stacked_cells_draw_masks_per_cell_with_their_input_sizes():
  cell = rj.StackedRNNCells([rj.LSTMCell(3, dropout=0.2, recurrent_dropout=0.2), rj.GRUCell(U, dropout=0.5)])
  first, second = fast_jit.run(lambda k: cell.dropout_masks(k, B, (F,), jnp.float32), KEY)
  assert first.inputs.shape == (4, B, F) and first.recurrent.shape == (4, B, 3)
  assert second.inputs.shape == (1, B, 3) and second.recurrent is None


# Keras parity with the same masks ----------------------------------------------------

KERAS_CASES = {
    "lstm_dropout": (keras.layers.LSTM, rj.LSTM, dict(dropout=0.3)),
    "lstm_both": (keras.layers.LSTM, rj.LSTM, dict(dropout=0.3, recurrent_dropout=0.4)),
    "gru_both": (keras.layers.GRU, rj.GRU, dict(dropout=0.3, recurrent_dropout=0.4)),
    "gru_reset_before": (keras.layers.GRU, rj.GRU, dict(dropout=0.3, recurrent_dropout=0.4, reset_after=False)),
    # Not compared: implementation=1 with dropout only. Keras's GRU/LSTM inner_loop then
    # broadcasts the list of per-gate masks as one array and fails in training.
    "simple_rnn_both": (keras.layers.SimpleRNN, rj.SimpleRNN, dict(dropout=0.3, recurrent_dropout=0.4)),
}


def _keras_mask(masks):
  """rnnjax (N, B, ...) masks as Keras keeps them: one array, or a list of N."""
  if masks is None:
    return None
  return masks[0] if masks.shape[0] == 1 else list(masks)


def test_matches_keras_with_injected_masks():
  x = np.asarray(_x(3))
  mask = ref.mixed_mask(B, T)
  k_layers, r_layers, params, masks = {}, {}, {}, {}
  for i, (name, (k_cls, r_cls, kw)) in enumerate(KERAS_CASES.items()):
    k_layer = k_cls(U, return_sequences=True, return_state=True, kernel_initializer="zeros",
                    recurrent_initializer="zeros", **kw)
    weights = ref.build_for_shape(k_layer, (B, T, F), seed=i)
    r_layer = r_cls(U, return_sequences=True, return_state=True, **kw)
    k_layers[name], r_layers[name] = k_layer, r_layer
    params[name] = rj.interop.from_keras(r_layer, weights)
  # The masks each layer draws for rng=key(i), all in one compiled call.
  masks = jax.tree.map(np.asarray, fast_jit.run(lambda: {
      name: layer.cell.dropout_masks(jax.random.key(i), B, (F,), jnp.float32)
      for i, (name, layer) in enumerate(r_layers.items())}))

  def run_keras():
    out = {}
    with jax.numpy_rank_promotion("allow"):
      for name, layer in k_layers.items():
        layer.cell._dropout_mask = _keras_mask(masks[name].inputs)
        layer.cell._recurrent_dropout_mask = _keras_mask(masks[name].recurrent)
        out[name] = layer(x, mask=mask, training=True)
    return out

  def run_rnnjax(params):
    return {name: layer.apply(params[name], x, mask=mask, training=True, rng=jax.random.key(i))
            for i, (name, layer) in enumerate(r_layers.items())}

  expected = fast_jit.run(run_keras)
  got = fast_jit.run(run_rnnjax, params)
  no_dropout = fast_jit.run(lambda p: {n: l.apply(p[n], x, mask=mask) for n, l in r_layers.items()}, params)
  for name in KERAS_CASES:
    for e, g in zip(jax.tree.leaves(expected[name]), jax.tree.leaves(got[name])):
      np.testing.assert_allclose(g, e, atol=1e-5, rtol=1e-5, err_msg=name)
    assert np.abs(np.asarray(got[name][0]) - np.asarray(no_dropout[name][0])).max() > 1e-3, name
