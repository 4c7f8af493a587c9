"""ConvLSTM layers and cells without Keras: parameter layout and counts, the state
shape protocol (`initial_state(..., input_shape=)`), stacking, streaming, time-major,
a per-step loop oracle, jit, gradients, and bad-input messages. Keras parity is in
tests/parity/test_keras_conv_lstm.py."""

import math

import numpy as np
import pytest

import jax
import jax.numpy as jnp
from jax.test_util import check_grads
import rnnjax as rj

from tests.test_errors import raises

X2 = jnp.asarray(np.random.default_rng(0).normal(size=(2, 3, 5, 6, 3)), jnp.float32)


def count(params) -> int:
  return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))


def shapes_of(layer, x):
  """The params `layer.init` would return, as shapes/dtypes (traced, not run)."""
  return jax.eval_shape(layer.init, jax.random.key(0), x)


def random_params(layer, x, seed=0):
  """Random normal, non-symmetric params of the right shapes (cheaper than init, which
  compiles its initializers for every shape)."""
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: jnp.asarray(0.5 * rng.normal(size=s.shape), s.dtype),
                      shapes_of(layer, x))


@pytest.fixture(scope="module")
def conv2d():
  layer = rj.ConvLSTM2D(4, (3, 2), return_state=True)
  return layer, random_params(layer, X2)


# Parameters -------------------------------------------------------------------

def test_keras_parameter_count():
  x = jax.ShapeDtypeStruct((1, 4, 8, 8, 3), jnp.float32)
  assert count(shapes_of(rj.ConvLSTM2D(16, (3, 3)), x)) == 11_008


@pytest.mark.parametrize("cls,step_shape,kernel_size", [
    (rj.ConvLSTM1D, (7, 3), (2,)),
    (rj.ConvLSTM2D, (3, 5, 6), (3, 2)),
    (rj.ConvLSTM3D, (4, 5, 6, 3), (2, 3, 1)),
])
def test_weight_layout_is_keras_for_both_data_formats(cls, step_shape, kernel_size):
  data_format = "channels_first" if len(step_shape) == 3 and cls is rj.ConvLSTM2D else None
  layer = cls(5, kernel_size, data_format=data_format)
  params = shapes_of(layer, jnp.ones((1, 2, *step_shape)))
  channels = step_shape[0] if data_format == "channels_first" else step_shape[-1]
  assert {k: v.shape for k, v in params.items()} == {
      "kernel": (*kernel_size, channels, 20),
      "recurrent_kernel": (*kernel_size, 5, 20),
      "bias": (20,),
  }


def test_initializers_use_the_conv_fans_and_unit_forget_bias():
  params = rj.ConvLSTM2D(8, 3).init(jax.random.key(2), jnp.ones((1, 1, 5, 5, 6)))
  kernel, recurrent = np.asarray(params["kernel"]), np.asarray(params["recurrent_kernel"])
  limit = math.sqrt(6.0 / (9 * 6 + 9 * 32))  # glorot: fans count the 3x3 window
  assert limit * 0.98 < np.abs(kernel).max() <= limit
  flat = recurrent.reshape(-1, 32)  # orthogonal over (kh * kw * F, 4F) = (72, 32)
  np.testing.assert_allclose(flat.T @ flat, np.eye(32), atol=1e-5)
  np.testing.assert_array_equal(params["bias"], [0] * 8 + [1] * 8 + [0] * 16)


def test_no_bias_and_param_dtype():
  params = shapes_of(rj.ConvLSTM1D(2, 3, use_bias=False, param_dtype=jnp.bfloat16),
                     jnp.ones((1, 2, 6, 1)))
  assert sorted(params) == ["kernel", "recurrent_kernel"]
  assert all(p.dtype == jnp.bfloat16 for p in params.values())


def test_arguments_are_normalized_like_keras():
  layer = rj.ConvLSTM3D(2, 3, strides=[1, 2, 1], padding="SAME")
  assert layer.kernel_size == (3, 3, 3) and layer.strides == (1, 2, 1)
  assert layer.padding == "same" and layer.data_format == "channels_last"
  assert layer.dilation_rate == (1, 1, 1) and layer.rank == 3
  same = rj.ConvLSTM3D(2, (3, 3, 3), strides=(1, 2, 1), padding="same",
                       data_format="channels_last")
  assert layer == same and hash(layer) == hash(same)
  assert layer.cell == rj.ConvLSTM3DCell(2, 3, strides=(1, 2, 1), padding="same")
  assert rj.ConvLSTMCell(2, 4, 3).kernel_size == (3, 3)


# States -----------------------------------------------------------------------

@pytest.mark.parametrize("kw,step_shape,state_shape", [
    (dict(), (7, 6, 2), (5, 5, 4)),
    (dict(padding="same", strides=2), (7, 6, 2), (4, 3, 4)),
    (dict(dilation_rate=(2, 1)), (7, 6, 2), (3, 5, 4)),
    (dict(padding="same", data_format="channels_first"), (2, 7, 6), (4, 7, 6)),
    (dict(strides=(3, 2), data_format="channels_first"), (2, 7, 6), (4, 2, 3)),
])
def test_state_shapes_follow_the_input_convolution(kw, step_shape, state_shape):
  layer = rj.ConvLSTM2D(4, (3, 2), return_state=True, return_sequences=True, **kw)
  h0, c0 = layer.get_initial_state(2, input_shape=step_shape)
  assert h0.shape == c0.shape == (2, *state_shape)
  x = jnp.ones((2, 3, *step_shape))
  out, h, c = jax.eval_shape(layer.apply, shapes_of(layer, x), x)
  assert out.shape == (2, 3, *state_shape) and h.shape == c.shape == (2, *state_shape)


def test_initial_state_needs_the_input_shape():
  cell = rj.ConvLSTM2DCell(4, 3)
  with raises(ValueError, "ConvLSTM2DCell.initial_state needs input_shape=", "(H, W, C)"):
    cell.initial_state(2)
  with raises(ValueError, "needs input_shape="):
    rj.ConvLSTM1D(4, 3).get_initial_state(2)
  assert cell.state_size == ((None, None, 4), (None, None, 4))
  assert rj.ConvLSTM1DCell(3, 2, data_format="channels_first").output_size == (3, None)


def test_custom_cells_with_the_old_initial_state_signature_still_run():
  """A cell whose initial_state(batch_size, dtype) takes no input_shape is called as before."""

  class Old(rj.SimpleRNNCell):
    def initial_state(self, batch_size, dtype=jnp.float32):
      return (jnp.full((batch_size, self.units), 0.5, dtype),)

  layer = rj.RNN(Old(3), return_state=True)
  x = jnp.ones((2, 4, 5))
  params = random_params(layer, x)
  apply = jax.jit(layer.apply)
  _, h = apply(params, x)
  _, h_half = apply(params, x, initial_state=[jnp.full((2, 3), 0.5)])
  np.testing.assert_allclose(h, h_half)
  assert layer.get_initial_state(2, input_shape=(5,))[0][0, 0] == 0.5


# Against other runs of the same maths ----------------------------------------

def test_layer_equals_a_per_step_loop_over_the_cell():
  """The hoisted input convolution (T folded into the batch) equals stepping the cell."""
  layer = rj.ConvLSTM3D(3, (2, 3, 2), padding="same", strides=(1, 2, 1),
                        data_format="channels_first", return_sequences=True, go_backwards=True)
  x = jnp.asarray(np.random.default_rng(3).normal(size=(2, 4, 2, 3, 5, 4)), jnp.float32)
  params = random_params(layer, x, seed=3)
  cell = layer.cell
  state = cell.initial_state(2, input_shape=x.shape[2:])
  outs = []
  step = jax.jit(cell.__call__)
  for t in reversed(range(x.shape[1])):
    out, state = step(params, x[:, t], state)
    outs.append(out)
  np.testing.assert_allclose(layer.apply(params, x), jnp.stack(outs, 1), atol=1e-5, rtol=1e-5)


def test_stacked_conv_cells_equal_two_layers():
  cells = [rj.ConvLSTM2DCell(3, 3, padding="same"), rj.ConvLSTM2DCell(2, (2, 3))]
  stacked = rj.RNN(cells, return_sequences=True, return_state=True)
  params = random_params(stacked, X2, seed=4)
  out, (h1, c1), (h2, c2) = jax.jit(stacked.apply)(params, X2)
  first = rj.ConvLSTM2D(3, 3, padding="same", return_sequences=True, return_state=True)
  second = rj.ConvLSTM2D(2, (2, 3), return_sequences=True, return_state=True)
  y1, g1, d1 = jax.jit(first.apply)(params[0], X2)
  y2, g2, d2 = jax.jit(second.apply)(params[1], y1)
  for a, b in [(out, y2), (h1, g1), (c1, d1), (h2, g2), (c2, d2)]:
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)
  assert out.shape == (2, 3, 4, 4, 2)


def test_stateful_chunks_equal_the_whole_sequence():
  layer = rj.ConvLSTM1D(3, 2, stateful=True, return_sequences=True)
  x = jnp.asarray(np.random.default_rng(5).normal(size=(2, 6, 5, 2)), jnp.float32)
  params = random_params(layer, x, seed=5)
  whole, _ = layer.apply(params, x)
  first, state = layer.apply(params, x[:, :4])
  second, _ = layer.apply(params, x[:, 4:], state=state)
  np.testing.assert_allclose(jnp.concatenate([first, second], 1), whole, atol=1e-5)
  fresh = layer.reset_state(state, where=jnp.array([True, False]))
  assert not fresh[0][0].any() and fresh[0][1].any()


def test_time_major_and_jit(conv2d):
  layer, params = conv2d
  expected = layer.apply(params, X2)
  tm = rj.ConvLSTM2D(4, (3, 2), return_state=True, time_major=True)
  got = jax.jit(tm.apply)(params, jnp.swapaxes(X2, 0, 1))
  for e, g in zip(expected, got):
    np.testing.assert_allclose(g, e, atol=1e-5, rtol=1e-5)


def test_bfloat16_compute_with_float32_carry(conv2d):
  layer, params = conv2d
  expected = layer.apply(params, X2)
  low = rj.ConvLSTM2D(4, (3, 2), return_state=True, dtype="bfloat16", carry_dtype="float32")
  out, h, c = low.apply(params, X2)
  assert out.dtype == jnp.bfloat16 and c.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(c), expected[2], atol=5e-2)


def test_no_dropout_masks_without_dropout():
  """(The masks themselves are checked against Keras in tests/parity.)"""
  cell = rj.ConvLSTM2DCell(4, 3)
  assert not cell.uses_dropout()
  assert cell.dropout_masks(jax.random.key(0), 2, (6, 7, 2), jnp.float32) is None
  assert rj.ConvLSTM2DCell(4, 3, recurrent_dropout=0.1).uses_dropout()


def test_check_grads_through_conv_lstm2d():
  with jax.enable_x64(True):
    layer = rj.ConvLSTM2D(2, (2, 3), padding="same", strides=(2, 1), return_sequences=True,
                          param_dtype=jnp.float64)
    x = jnp.asarray(np.random.default_rng(6).normal(size=(3, 3, 4, 3, 2)))
    params = random_params(layer, x, seed=6)
    mask = jnp.array([[1, 1, 1], [1, 1, 0], [0, 1, 0]], bool)
    h0 = jnp.asarray(np.random.default_rng(7).normal(size=(2, 3, 2, 3, 2)))

    def loss(params, x, h0):
      return jnp.sum(jnp.sin(layer.apply(params, x, initial_state=list(h0), mask=mask)))

    check_grads(loss, (params, x, h0), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)


# Bad input ----------------------------------------------------------------------

def test_wrong_input_rank(conv2d):
  layer, params = conv2d
  with raises(ValueError, "(B, T, H, W, C)", "per step (H, W, C)", "(6, 3)"):
    layer.apply(params, jnp.ones((2, 3, 6, 3)))
  with raises(ValueError, "(B, T, C, W)", "(4, 3, 5)"):
    rj.ConvLSTM1D(2, 3, data_format="channels_first").init(jax.random.key(0),
                                                          jnp.ones((2, 3, 4, 3, 5)))
  with raises(ValueError, "(B, T, W, C)", "((5, 2), (4,))"):
    rj.ConvLSTM1DCell(2, 3).init(jax.random.key(0), ((5, 2), (4,)))


def test_channel_count_differs_from_params(conv2d):
  layer, params = conv2d
  with raises(ValueError, "inputs have 5 channels", "built for 3", "(3, 2, 3, 16)"):
    layer.apply(params, jnp.ones((2, 3, 5, 6, 5)))
  with raises(ValueError, "inputs have 5 channels"):
    jax.jit(layer.apply)(params, jnp.ones((2, 3, 5, 6, 5)))


def test_params_of_another_configuration(conv2d):
  layer, params = conv2d
  with raises(ValueError, "params['kernel'] has shape (3, 2, 3, 16)", "expects (3, 3, 3, 16)"):
    rj.ConvLSTM2D(4, 3).apply(params, X2)
  with raises(ValueError, "params['bias'] has shape None", "(16,)"):
    layer.apply({k: v for k, v in params.items() if k != "bias"}, X2)
  with raises(TypeError, "params", "keys ['w']"):
    layer.apply({"w": 1}, X2)


def test_inputs_too_small_for_the_convolution(conv2d):
  layer, params = conv2d
  with raises(ValueError, "spatial shape (2, 6)", "too small", "padding='valid'",
              "output spatial shape would be (0, 5)"):
    layer.apply(params, jnp.ones((2, 3, 2, 6, 3)))
  with raises(ValueError, "dilation_rate=(3,)", "would be (0,)"):
    rj.ConvLSTM1D(2, 3, dilation_rate=3).init(jax.random.key(0), jnp.ones((1, 2, 6, 1)))


def test_initial_state_shapes(conv2d):
  layer, params = conv2d
  with raises(ValueError, "initial_state", "(2, 3, 5, 4)", "(2, 5, 6, 4)"):
    layer.apply(params, X2, initial_state=[jnp.zeros((2, 5, 6, 4))] * 2)
  with raises(ValueError, "initial_state has batch size 3"):
    layer.apply(params, X2, initial_state=[jnp.zeros((3, 3, 5, 4))] * 2)


@pytest.mark.parametrize("kwargs,exc,fragments", [
    (dict(filters=0, kernel_size=3), ValueError, ("filters", "positive", "0")),
    (dict(filters="4", kernel_size=3), TypeError, ("filters", "'4'")),
    (dict(filters=4, kernel_size=(3,)), ValueError, ("kernel_size", "2 positive ints", "(3,)")),
    (dict(filters=4, kernel_size=0), ValueError, ("kernel_size", "got 0")),
    (dict(filters=4, kernel_size="3"), TypeError, ("kernel_size", "'3'")),
    (dict(filters=4, kernel_size=3, strides=(1, 0)), ValueError, ("strides", "(1, 0)")),
    (dict(filters=4, kernel_size=3, dilation_rate=1.5), TypeError, ("dilation_rate", "1.5")),
    (dict(filters=4, kernel_size=3, padding="full"), ValueError,
     ("padding", '"valid" or "same"', "'full'")),
    (dict(filters=4, kernel_size=3, padding=0), TypeError, ("padding", "0")),
    (dict(filters=4, kernel_size=3, data_format="NHWC"), ValueError,
     ("data_format", "channels_first", "'NHWC'")),
    (dict(filters=4, kernel_size=3, strides=2, dilation_rate=2), ValueError,
     ("strides > 1", "dilation_rate > 1", "(2, 2)")),
    (dict(filters=4, kernel_size=3, dropout=1.5), ValueError, ("dropout", "[0, 1)", "1.5")),
    (dict(filters=4, kernel_size=3, unit_forget_bias=1), TypeError, ("unit_forget_bias", "bool")),
    (dict(filters=4, kernel_size=3, activation="tanhh"), ValueError, ("activation='tanhh'",)),
    (dict(filters=4, kernel_size=3, kernel_initializer="glorot"), ValueError,
     ("kernel_initializer='glorot'",)),
    (dict(filters=4, kernel_size=3, return_sequences="yes"), TypeError, ("return_sequences",)),
])
def test_invalid_constructor_values(kwargs, exc, fragments):
  with raises(exc, *fragments):
    rj.ConvLSTM2D(**kwargs)


def test_invalid_rank_and_fixed_rank():
  with raises(ValueError, "rank must be 1, 2 or 3", "4"):
    rj.ConvLSTMCell(4, 2, 3)
  with pytest.raises(TypeError):
    rj.ConvLSTM2D(rank=3, filters=2, kernel_size=3)  # the rank is the class's


def test_keras_weights_with_wrong_count_or_shapes():
  layer = rj.ConvLSTM1D(2, 3)
  w = [np.zeros((3, 4, 8)), np.zeros((3, 2, 8)), np.zeros((8,))]
  assert rj.interop.from_keras(layer, w)["kernel"].shape == (3, 4, 8)
  with raises(ValueError, "needs 3 Keras weight arrays", "got 2", "recurrent_kernel (3, 2, 8)"):
    rj.interop.from_keras(layer, w[:2])
  with raises(ValueError, "'recurrent_kernel'", "(3, 2, 8)", "got (2, 2, 8)"):
    rj.interop.from_keras(layer, [w[0], np.zeros((2, 2, 8)), w[2]])
  with raises(ValueError, "'kernel'", "got (4, 8)"):
    rj.interop.from_keras(layer, [np.zeros((4, 8))] + w[1:])
  with raises(ValueError, "4 arrays", "uses 3", "1 left over"):
    rj.interop.from_keras(layer, w + [np.zeros(1)])
