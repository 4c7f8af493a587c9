"""ConvLSTM1D / 2D / 3D against Keras 3 on the JAX backend, weights copied across.

Each rank runs the same five configurations, which between them cover padding
valid / same, strides 1 and 2 (also unequal per axis), dilation 2, channels_last and
channels_first, return_sequences on and off, go_backwards, a mask (one batch whose
rows hold every mask pattern), initial_state, use_bias=False and unroll; every case
compares the output and both returned states. Kernels and spatial shapes are not
square, so a transposed axis cannot pass.

Keras 3.15.1 on JAX cannot run a masked ConvLSTM on its scan path (its `is_masked`
of shape (B, 1) does not broadcast against (B, *S', F) states; checked below), so
masked cases use Keras's `unroll=True` path. That path differs from the scan path
(the reference, README) in one place only, for cells whose output is `h`: steps
masked before a row's first valid step output zeros there and `h0` on the scan
path, which `_scan_rule` applies to the Keras result. Unmasked cases use the scan
path.
"""

import keras
import numpy as np
import pytest

import jax
import rnnjax as rj

from tests import keras_reference as ref

B, T, C, F = 8, 4, 2, 3
TOL = 1e-5

RANKS = {
    1: (keras.layers.ConvLSTM1D, rj.ConvLSTM1D, (7,), (3,)),
    2: (keras.layers.ConvLSTM2D, rj.ConvLSTM2D, (5, 6), (3, 2)),
    3: (keras.layers.ConvLSTM3D, rj.ConvLSTM3D, (5, 6, 5), (3, 2, 2)),
}

# name: (layer arguments, call options)
CASES = {
    "valid": (dict(return_sequences=True), {}),
    "same_stride2_channels_first_masked_backwards": (
        dict(padding="same", strides=2, data_format="channels_first", go_backwards=True,
             return_sequences=True),
        dict(mask=True, initial_state=True)),
    "dilation_masked_last_output": (
        dict(dilation_rate=2), dict(mask=True, initial_state=True)),
    "same_dilation_channels_first_no_bias_unrolled": (
        dict(padding="same", dilation_rate=2, data_format="channels_first", use_bias=False,
             go_backwards=True, unroll=True),
        dict(initial_state=True)),
    "valid_unequal_strides_masked": (
        dict(strides=(2, 1, 2), return_sequences=True, recurrent_activation="hard_sigmoid",
             activation="relu"),
        dict(mask=True)),
}


def mask_patterns() -> np.ndarray:
  """(8, 4): full, right-padded, left-padded, holes, first step masked, fully masked,
  one valid step, masked at both ends."""
  return np.array([
      [1, 1, 1, 1], [1, 1, 0, 0], [0, 0, 1, 1], [1, 0, 1, 0],
      [0, 1, 1, 1], [0, 0, 0, 0], [1, 0, 0, 0], [0, 1, 1, 0],
  ], bool)


def _scan_rule(keras_seq, mask, h0, go_backwards):
  """Keras's scan-path outputs from its unroll-path outputs: `h0` at the steps masked
  before a row's first valid step (in processing order), where unroll gives zeros."""
  processed = mask[:, ::-1] if go_backwards else mask
  before_first = np.cumsum(processed, axis=1) == 0
  where = before_first.reshape(before_first.shape + (1,) * (keras_seq.ndim - 2))
  return np.where(where, h0[:, None], keras_seq)


def _inputs(rank, data_format, seed):
  spatial = RANKS[rank][2]
  step = (*spatial, C) if data_format == "channels_last" else (C, *spatial)
  rng = np.random.default_rng(seed)
  return rng.normal(size=(B, T, *step)).astype("float32"), rng


def _compare(rank, layer_kw, call, seed=0):
  keras_cls, rj_cls, _, kernel_size = RANKS[rank]
  layer_kw = dict(layer_kw)
  if "strides" in layer_kw and isinstance(layer_kw["strides"], tuple):
    layer_kw["strides"] = layer_kw["strides"][:rank]
  data_format = layer_kw.get("data_format", "channels_last")
  x, rng = _inputs(rank, data_format, seed)
  layer = rj_cls(F, kernel_size, return_state=True, **layer_kw)
  state_shape = layer.get_initial_state(B, input_shape=x.shape[2:])[0].shape
  kwargs = {}
  if call.get("initial_state"):
    kwargs["initial_state"] = [rng.normal(size=state_shape).astype("float32") for _ in range(2)]
  masked = call.get("mask", False)
  if masked:
    kwargs["mask"] = mask_patterns()

  keras_kw = {k: v for k, v in layer_kw.items() if k != "unroll"}
  keras_kw.update(return_sequences=True, unroll=masked)
  k_layer = keras_cls(F, kernel_size, return_state=True, **keras_kw)
  weights = ref.build_for_shape(k_layer, x.shape, seed)
  seq, h, c = ref.run(k_layer, x, **kwargs)
  if masked:
    h0 = kwargs.get("initial_state", [np.zeros(state_shape, "float32")])[0]
    seq = _scan_rule(seq, kwargs["mask"], h0, layer.go_backwards)
  expected = [seq if layer.return_sequences else seq[:, -1], h, c]

  got = layer.apply(rj.interop.from_keras(layer, weights), x, **kwargs)
  assert len(got) == 3
  return expected, [np.asarray(g) for g in got]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("rank", RANKS)
def test_matches_keras(rank, case):
  expected, got = _compare(rank, *CASES[case], seed=rank)
  for e, g in zip(expected, got):
    assert e.shape == g.shape
    np.testing.assert_allclose(g, e, atol=TOL, rtol=TOL)
  assert np.abs(got[2]).max() > 1e-2  # a real state, not zeros


def test_keras_scan_path_cannot_mask_conv_lstm():
  """Why the masked cases use Keras's unroll path (see the module docstring)."""
  x = np.zeros((3, 3, 4, 1), "float32")  # (B, 1) against (B, 2, 2): 3 vs 2
  with pytest.raises(ValueError, match="Incompatible shapes for broadcasting"):
    ref.run(keras.layers.ConvLSTM1D(2, 3), x, mask=np.ones((3, 3), bool))


def test_dropout_masks_match_keras_given_the_same_masks():
  """training=True: the four input and four recurrent masks (one per gate, reused at
  every step) are applied as Keras applies them; Keras is handed rnnjax's masks."""
  kw = dict(padding="same", strides=(2, 1), dropout=0.3, recurrent_dropout=0.4,
            return_sequences=True, return_state=True)
  x, _ = _inputs(2, "channels_last", seed=9)
  layer = rj.ConvLSTM2D(F, (3, 2), **kw)
  k_layer = keras.layers.ConvLSTM2D(F, (3, 2), unroll=True, **kw)
  weights = ref.build_for_shape(k_layer, x.shape, seed=9)
  rng = jax.random.key(4)
  got = layer.apply(rj.interop.from_keras(layer, weights), x, training=True, rng=rng)
  masks = layer.cell.dropout_masks(rng, B, x.shape[2:], np.float32)
  assert masks.inputs.shape == (4, B, *x.shape[2:])
  assert masks.recurrent.shape == (4, *got[1].shape)
  np.testing.assert_allclose(np.unique(masks.inputs), [0.0, 1 / 0.7], rtol=1e-6)
  np.testing.assert_allclose(np.unique(masks.recurrent), [0.0, 1 / 0.6], rtol=1e-6)
  assert abs(float((masks.inputs == 0).mean()) - 0.3) < 0.05
  assert not np.array_equal(masks.inputs[0], masks.inputs[1])  # one mask per gate
  k_layer.cell._dropout_mask = list(np.asarray(masks.inputs))
  k_layer.cell._recurrent_dropout_mask = list(np.asarray(masks.recurrent))
  expected = ref.run(k_layer, x, training=True)
  for e, g in zip(expected, got):
    np.testing.assert_allclose(np.asarray(g), e, atol=TOL, rtol=TOL)
  inference = layer.apply(rj.interop.from_keras(layer, weights), x)
  assert np.abs(np.asarray(inference[0]) - np.asarray(got[0])).max() > 1e-2


def test_return_state_false_returns_only_the_output():
  x, _ = _inputs(1, "channels_last", seed=5)
  k_layer = keras.layers.ConvLSTM1D(F, 3, padding="same")
  weights = ref.build_for_shape(k_layer, x.shape, seed=5)
  layer = rj.ConvLSTM1D(F, 3, padding="same")
  got = layer.apply(rj.interop.from_keras(layer, weights), x)
  assert not isinstance(got, tuple)
  np.testing.assert_allclose(np.asarray(got), ref.run(k_layer, x), atol=TOL, rtol=TOL)


@pytest.mark.parametrize("unit_forget_bias", [True, False])
def test_initial_parameters_match_keras_layout(unit_forget_bias):
  """Same weight shapes and order as Keras; the bias init (deterministic) is equal."""
  k_layer = keras.layers.ConvLSTM2D(4, (3, 2), unit_forget_bias=unit_forget_bias)
  with jax.numpy_rank_promotion("allow"):
    k_layer.build((None, T, 6, 5, 3))
  layer = rj.ConvLSTM2D(4, (3, 2), unit_forget_bias=unit_forget_bias)
  params = layer.init(jax.random.key(0), jax.ShapeDtypeStruct((1, T, 6, 5, 3), np.float32))
  arrays = rj.interop.to_keras(layer, params)
  assert [a.shape for a in arrays] == [tuple(w.shape) for w in k_layer.get_weights()]
  np.testing.assert_array_equal(arrays[2], k_layer.get_weights()[2])
  assert arrays[2].sum() == (4 if unit_forget_bias else 0)


def test_keras_weight_round_trip():
  x, _ = _inputs(3, "channels_first", seed=7)
  k_layer = keras.layers.ConvLSTM3D(F, (3, 2, 2), data_format="channels_first")
  with jax.numpy_rank_promotion("allow"):  # Keras's initializers rely on it
    weights = ref.build_for_shape(k_layer, x.shape, seed=7)
  layer = rj.ConvLSTM3D(F, (3, 2, 2), data_format="channels_first")
  back = rj.interop.to_keras(layer, rj.interop.from_keras(layer, weights))
  for a, b in zip(back, weights, strict=True):
    np.testing.assert_array_equal(a, b)
