"""`initializers="keras" | "flax" | "torch"`: the weights start from each library's own
default distributions. References: Flax's cells initialised by Flax itself (the installed
flax), PyTorch's modules initialised by real PyTorch (tests/fixtures/torch_stacked.npz,
made by tests/fixtures/make_torch_stacked_fixtures.py)."""

import pathlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import rnnjax as rj
from tests.test_errors import raises

TORCH = np.load(pathlib.Path(__file__).parent / "fixtures" / "torch_stacked.npz")
F, U = 16, 32
P_MIN = 1e-3   # KS tests: a real difference of distributions gives p far below this


def init(layer, features=F, steps=1):
  return jax.tree.map(np.asarray, layer.init(jax.random.key(0), jnp.ones((1, steps, features))))


def torch_init(kind):
  prefix = f"init/{kind}/"
  return {k[len(prefix):]: TORCH[k] for k in TORCH.files if k.startswith(prefix)}


def same_distribution(a, b):
  return stats.ks_2samp(np.ravel(a), np.ravel(b)).pvalue > P_MIN


def blocks(matrix, n):
  return np.split(matrix, n, axis=-1)


# keras: the default, unchanged ------------------------------------------------------


def test_keras_is_the_default_and_spells_out_keras_defaults():
  x = jnp.ones((1, 2, F))
  explicit = dict(kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                  bias_initializer="zeros")
  for cls in (rj.LSTM, rj.GRU, rj.SimpleRNN):
    default = cls(U).init(jax.random.key(3), x)
    for other in (cls(U, initializers="keras"), cls(U, **explicit)):
      jax.tree.map(np.testing.assert_array_equal, default, other.init(jax.random.key(3), x))
  bias = init(rj.LSTM(U))["bias"]
  np.testing.assert_array_equal(bias[U:2 * U], 1.0)   # unit_forget_bias
  np.testing.assert_array_equal(np.delete(bias, np.s_[U:2 * U]), 0.0)


# flax: against Flax's own initialisation -----------------------------------------------


def flax_cell_params(cell, n_gates):
  """(kernel (F, G*U), recurrent (U, G*U), bias) from Flax's own init, via from_flax."""
  x = jnp.ones((1, 3, F))
  kind = {4: "lstm", 3: "gru", 1: "rnn"}[n_gates]
  params = rj.interop.from_flax(kind, nn.RNN(cell).init(jax.random.key(1), x))
  return {k: np.asarray(v) for k, v in params.items()}


@pytest.mark.parametrize("layer,flax_cell,gates", [
    (rj.LSTM(U, initializers="flax"), nn.LSTMCell(U), 4),
    (rj.GRU(U, initializers="flax"), nn.GRUCell(U), 3),
    (rj.SimpleRNN(U, initializers="flax"), nn.SimpleCell(U), 1),
])
def test_flax_matches_flax_cells(layer, flax_cell, gates):
  ours, theirs = init(layer), flax_cell_params(flax_cell, gates)
  assert same_distribution(ours["kernel"], theirs["kernel"])     # lecun_normal
  for params in (ours, theirs):   # orthogonal per gate block, as Flax's per-gate Denses
    for block in blocks(params["recurrent_kernel"], gates):
      np.testing.assert_allclose(block.T @ block, np.eye(U), atol=1e-5)
    np.testing.assert_array_equal(params["bias"], 0.0)
  # Keras's orthogonal is of the whole (U, G*U) matrix: W W^T = I, where Flax's G
  # orthogonal blocks give G I (the recurrent weights sqrt(G) times larger).
  keras = init(type(layer)(U))["recurrent_kernel"]
  np.testing.assert_allclose(keras @ keras.T, np.eye(U), atol=1e-5)
  rec = ours["recurrent_kernel"]
  np.testing.assert_allclose(rec @ rec.T, gates * np.eye(U), atol=1e-4)


def test_flax_conv_lstm_matches_flax_conv_lstm_cell():
  x = jnp.ones((1, 2, 6, 6, 3))
  layer = rj.ConvLSTM2D(8, 3, padding="same", initializers="flax")
  ours = jax.tree.map(np.asarray, layer.init(jax.random.key(0), x))
  theirs = nn.RNN(nn.ConvLSTMCell(8, (3, 3))).init(jax.random.key(1), x)["params"]["cell"]
  assert same_distribution(ours["kernel"], theirs["ih"]["kernel"])
  assert same_distribution(ours["recurrent_kernel"], theirs["hh"]["kernel"])
  # Flax's cell adds 1 to the forget gate in its step (gates i, g, f, o); rnnjax keeps
  # Keras's unit_forget_bias (gates i, f, c, o): the same forget bias of 1.
  np.testing.assert_array_equal(theirs["ih"]["bias"] + theirs["hh"]["bias"], 0.0)
  np.testing.assert_array_equal(ours["bias"], np.repeat([0.0, 1.0, 0.0, 0.0], 8))


def test_flax_lstm_has_no_forget_bias_and_explicit_initializers_win():
  assert not init(rj.LSTM(U, initializers="flax"))["bias"].any()
  assert abs(init(rj.LSTM(U, initializers="torch"))["bias"][U:2 * U].mean()) < 0.1
  params = init(rj.LSTM(U, initializers="flax", bias_initializer="ones",
                        kernel_initializer="zeros"))
  np.testing.assert_array_equal(params["bias"], 1.0)
  np.testing.assert_array_equal(params["kernel"], 0.0)
  assert np.abs(params["recurrent_kernel"]).max() > 0.1      # still the preset's


# torch: against PyTorch's own initialisation ---------------------------------------------


@pytest.mark.parametrize("kind,layer", [
    ("lstm", rj.LSTM(U, initializers="torch")),
    ("gru", rj.GRU(U, initializers="torch")),
    ("rnn", rj.SimpleRNN(U, initializers="torch")),
])
def test_torch_matches_pytorch_modules(kind, layer):
  k = 1 / np.sqrt(U)
  theirs = rj.interop.from_torch(kind, torch_init(kind))     # biases folded as rnnjax keeps them
  ours = init(layer)
  for name in ("kernel", "recurrent_kernel"):
    assert same_distribution(ours[name], theirs[name])
    assert stats.kstest(np.ravel(ours[name]), stats.uniform(-k, 2 * k).cdf).pvalue > P_MIN
    assert stats.kstest(np.ravel(torch_init(kind)["weight_ih_l0"]),
                        stats.uniform(-k, 2 * k).cdf).pvalue > P_MIN   # PyTorch's own rule
  if kind == "gru":   # both torch biases kept, each U(-k, k)
    assert ours["bias"].shape == (2, 3 * U)
    assert stats.kstest(ours["bias"].ravel(), stats.uniform(-k, 2 * k).cdf).pvalue > P_MIN
  else:   # bias_ih + bias_hh: the sum of two uniforms, triangular on [-2k, 2k]
    big = init(type(layer)(1024, initializers="torch"))["bias"]
    assert stats.kstest(big, stats.triang(0.5, -2 * k * np.sqrt(U / 1024),
                                          4 * k * np.sqrt(U / 1024)).cdf).pvalue > P_MIN
    assert same_distribution(ours["bias"], theirs["bias"])


# The option itself ---------------------------------------------------------------------------


def test_the_option_is_checked_and_passes_to_cells_and_modules():
  with raises(ValueError, "initializers must be one of 'keras', 'flax', 'torch'", "'jax'"):
    rj.LSTM(4, initializers="jax")
  with raises(ValueError, "initializers", "'Flax'"):
    rj.GRUCell(4, initializers="Flax")
  with raises(ValueError, 'initializers="torch"', "PyTorch has no ConvLSTM"):
    rj.ConvLSTM2D(4, 3, initializers="torch")
  with raises(ValueError, "kernel_initializer='glorot'"):
    rj.LSTM(4, initializers="flax", kernel_initializer="glorot")
  assert rj.LSTM(4, initializers="flax").cell.initializers == "flax"
  assert rj.LSTM(4, initializers="flax") != rj.LSTM(4)
  assert hash(rj.LSTM(4, initializers="flax")) == hash(rj.LSTM(4, initializers="flax"))
  cell = rj.linen.LSTMCell(4, initializers="torch")
  assert cell.pure_cell == rj.LSTMCell(4, initializers="torch")


def test_fields_keep_keras_defaults_and_the_preset_replaces_only_those():
  import dataclasses as dc
  fields = {f.name: f.default for f in dc.fields(rj.LSTM)}
  assert (fields["kernel_initializer"], fields["recurrent_initializer"],
          fields["bias_initializer"]) == ("glorot_uniform", "orthogonal", "zeros")
  x = jnp.ones((2, 3, 40))
  flax_default = rj.LSTM(64, initializers="flax").init(jax.random.key(0), x)["kernel"]
  named = rj.LSTM(64, initializers="flax", kernel_initializer="glorot_uniform").init(
      jax.random.key(0), x)["kernel"]
  np.testing.assert_array_equal(flax_default, named)   # a Keras default name: the preset's
  pinned = rj.LSTM(64, initializers="flax", kernel_initializer="he_normal").init(
      jax.random.key(0), x)["kernel"]
  assert not np.allclose(pinned, flax_default)          # any other choice wins
