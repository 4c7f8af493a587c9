"""SimpleRNN / GRU / LSTM against Keras 3 on the JAX backend, weights copied across.

The grid: each layer x mask (none, or one batch whose rows hold every mask pattern)
x go_backwards x zero_output_for_mask x initial_state x return_sequences, with
return_state on; then activations, use_bias=False and return_state=False.
"""

import itertools

import keras
import numpy as np
import pytest

import rnnjax as rj

from tests import keras_reference as ref

B, T, F, U = 8, 7, 5, 4
TOL = 1e-5

KINDS = {
    "simple_rnn": (keras.layers.SimpleRNN, rj.SimpleRNN, {}),
    "gru": (keras.layers.GRU, rj.GRU, {}),
    "gru_reset_before": (keras.layers.GRU, rj.GRU, {"reset_after": False}),
    "lstm": (keras.layers.LSTM, rj.LSTM, {}),
}


def _data(seed=1):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(B, T, F)).astype("float32")
  states = [rng.normal(size=(B, U)).astype("float32") for _ in range(2)]
  return x, states


def _compare(kind, *, masked, seed=0, keras_overrides=None, **kw):
  """Runs Keras and rnnjax with the same configuration; returns both result lists."""
  keras_cls, rj_cls, extra = KINDS[kind]
  kw = {**extra, **kw}
  x, states = _data(seed + 1)
  n_states = 2 if kind == "lstm" else 1
  initial = kw.pop("initial_state", False)
  call_kw = {}
  if initial:
    call_kw["initial_state"] = states[:n_states]
  if masked:
    call_kw["mask"] = ref.mixed_mask(B, T)
  k_layer = keras_cls(U, return_state=True, **{**kw, **(keras_overrides or {})})
  weights = ref.build(k_layer, x, seed)
  expected = ref.run(k_layer, x, **call_kw)
  r_layer = rj_cls(U, return_state=True, **kw)
  params = rj.interop.from_keras(r_layer, weights)
  got = r_layer.apply(params, x, **call_kw)
  assert len(got) == len(expected) == 1 + n_states
  return expected, [np.asarray(g) for g in got]


GRID = [
    (kind, masked, go_backwards, zero_output, initial, return_sequences)
    for kind, masked, go_backwards, zero_output, initial, return_sequences in itertools.product(
        KINDS, [False, True], [False, True], [False, True], [False, True], [False, True])
    if masked or not zero_output  # zero_output_for_mask only matters with a mask
]


@pytest.mark.parametrize("kind,masked,go_backwards,zero_output,initial,return_sequences", GRID)
def test_matches_keras(kind, masked, go_backwards, zero_output, initial, return_sequences):
  kw = dict(go_backwards=go_backwards, zero_output_for_mask=zero_output,
            initial_state=initial, return_sequences=return_sequences)
  # Deliberate difference (README): return_sequences=False gives the last *valid*
  # output whatever zero_output_for_mask, i.e. Keras's zero_output_for_mask=False result.
  overrides = {"zero_output_for_mask": False} if not return_sequences else None
  expected, got = _compare(kind, masked=masked, keras_overrides=overrides, **kw)
  for e, g in zip(expected, got):
    np.testing.assert_allclose(g, e, atol=TOL, rtol=TOL)


VARIANTS = {
    "hard_sigmoid": {"recurrent_activation": "hard_sigmoid"},
    "relu": {"activation": "relu"},
    "no_bias": {"use_bias": False},
    "implementation_1": {"implementation": 1},
}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("go_backwards", [False, True])
def test_cell_variants_match_keras(kind, variant, go_backwards):
  kw = dict(VARIANTS[variant])
  if kind == "simple_rnn":
    if "recurrent_activation" in kw:
      kw = {"activation": kw["recurrent_activation"]}
    kw.pop("implementation", None)
  expected, got = _compare(kind, masked=True, go_backwards=go_backwards, return_sequences=True,
                           initial_state=True, seed=3, **kw)
  for e, g in zip(expected, got):
    np.testing.assert_allclose(g, e, atol=TOL, rtol=TOL)


def test_zero_output_for_mask_last_output_is_the_documented_difference():
  """Keras returns zeros as the last output of a right-padded row with
  zero_output_for_mask=True; rnnjax returns that row's last valid output."""
  x, _ = _data()
  mask = ref.mixed_mask(B, T)
  k_layer = keras.layers.LSTM(U, zero_output_for_mask=True)
  weights = ref.build(k_layer, x)
  keras_last = ref.run(k_layer, x, mask=mask)
  layer = rj.LSTM(U, zero_output_for_mask=True, return_sequences=True)
  params = rj.interop.from_keras(layer, weights)
  seq = np.asarray(layer.apply(params, x, mask=mask))
  last = np.asarray(rj.LSTM(U, zero_output_for_mask=True).apply(params, x, mask=mask))
  row = 1  # right-padded: valid for steps 0..T-3
  np.testing.assert_allclose(keras_last[row], 0.0)
  np.testing.assert_allclose(last[row], seq[row, T - 3], atol=TOL)
  assert np.abs(last[row]).max() > 1e-3


@pytest.mark.parametrize("kind", KINDS)
def test_return_state_false_returns_only_the_output(kind):
  keras_cls, rj_cls, extra = KINDS[kind]
  x, _ = _data()
  k_layer = keras_cls(U, return_sequences=True, **extra)
  weights = ref.build(k_layer, x, seed=5)
  expected = ref.run(k_layer, x)
  layer = rj_cls(U, return_sequences=True, **extra)
  got = layer.apply(rj.interop.from_keras(layer, weights), x)
  assert not isinstance(got, tuple)
  np.testing.assert_allclose(np.asarray(got), expected, atol=TOL, rtol=TOL)


@pytest.mark.parametrize("kind", KINDS)
def test_keras_weight_round_trip(kind):
  keras_cls, rj_cls, extra = KINDS[kind]
  x, _ = _data()
  k_layer = keras_cls(U, **extra)
  weights = ref.build(k_layer, x, seed=7)
  layer = rj_cls(U, **extra)
  back = rj.interop.to_keras(layer, rj.interop.from_keras(layer, weights))
  assert [w.shape for w in back] == [w.shape for w in weights]
  for a, b in zip(back, weights):
    np.testing.assert_array_equal(a, b)
