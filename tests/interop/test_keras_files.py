"""Keras 3 `.weights.h5` / `.keras` files -> rnnjax params: the arrays equal each Keras
layer's get_weights(), and a pipeline of rnnjax layers loaded from the file reproduces the
Keras model's own output."""

import json
import zipfile

import numpy as np
import pytest

import jax
import jax.numpy as jnp
import keras
import rnnjax as rj

from tests import keras_reference
from tests.test_errors import raises

B, T, F = 3, 6, 3
X = np.random.default_rng(0).normal(size=(B, T, F)).astype("float32")


def build_model():
  """Every RNN kind, a stack of mixed cells, a Bidirectional and a nested model."""
  with jax.numpy_rank_promotion("allow"):
    inp = keras.Input((T, F))
    x = keras.layers.LSTM(4, return_sequences=True, name="enc")(inp)
    x = keras.layers.GRU(4, return_sequences=True, name="gru")(x)
    inner = keras.Sequential([keras.layers.SimpleRNN(4, return_sequences=True, name="srnn")],
                             name="inner")
    x = inner(x)
    x = keras.layers.RNN([keras.layers.LSTMCell(4), keras.layers.GRUCell(4, reset_after=False),
                          keras.layers.LSTMCell(4)], return_sequences=True, name="stack")(x)
    x = keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True), name="bi")(x)
    out = keras.layers.Dense(2, name="head")(x)
    model = keras.Model(inp, out)
  for i, layer in enumerate(model.layers + inner.layers):
    if layer.weights and not isinstance(layer, keras.Sequential):
      layer.set_weights(keras_reference.random_weights(layer, seed=i))
  return model, inner


def load_model(path):
  with jax.numpy_rank_promotion("allow"):
    return keras.saving.load_model(path)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
  model, inner = build_model()
  folder = tmp_path_factory.mktemp("keras_files")
  with jax.numpy_rank_promotion("allow"):
    model.save_weights(folder / "model.weights.h5")
    expected = np.asarray(model(X))
    keras_weights = {layer.name: layer.get_weights() for layer in model.layers if layer.weights}
    model.compile(optimizer="adam", loss="mse")   # the .keras file then holds optimizer state
    model.optimizer.build(model.trainable_variables)
    model.save(folder / "model.keras")
  keras_weights["inner/srnn"] = keras_weights.pop("inner")
  return folder, keras_weights, expected


RNNJAX = {  # the rnnjax twins of the Keras layers
    "enc": rj.LSTM(4, return_sequences=True),
    "gru": rj.GRU(4, return_sequences=True),
    "inner/srnn": rj.SimpleRNN(4, return_sequences=True),
    "stack": rj.RNN([rj.LSTMCell(4), rj.GRUCell(4, reset_after=False), rj.LSTMCell(4)],
                    return_sequences=True),
}


def run_pipeline(params, bi_forward, bi_backward, head):
  x = jnp.asarray(X)
  for name, layer in RNNJAX.items():
    x = layer.apply(params[name], x)
  fwd = rj.LSTM(4, return_sequences=True).apply(bi_forward, x)
  bwd = rj.LSTM(4, return_sequences=True, go_backwards=True).apply(bi_backward, x)[:, ::-1]
  x = jnp.concatenate([fwd, bwd], axis=-1)
  return np.asarray(x) @ head[0] + head[1]


@pytest.mark.parametrize("filename", ["model.weights.h5", "model.keras"])
def test_load_keras_params_reproduces_the_keras_model(saved, filename):
  folder, keras_weights, expected = saved
  path = folder / filename
  params = {name: rj.interop.load_keras_params(path, layer, name) for name, layer in RNNJAX.items()}
  bi, head = keras_weights["bi"], keras_weights["head"]
  bi_forward = rj.interop.from_keras(rj.LSTM(4), bi[:3])
  bi_backward = rj.interop.from_keras(rj.LSTM(4), bi[3:])
  np.testing.assert_allclose(run_pipeline(params, bi_forward, bi_backward, head), expected,
                             atol=1e-5)


def test_load_keras_weights_equals_get_weights(saved):
  folder, keras_weights, _ = saved
  loaded = rj.interop.load_keras_weights(folder / "model.keras")
  model = load_model(folder / "model.keras")
  names = {layer.name for layer in model.layers if layer.weights} - {"inner"} | {"inner/srnn"}
  assert set(loaded) == names   # no input layer, no optimizer state
  for layer in model.layers:
    if layer.weights:
      key = "inner/srnn" if layer.name == "inner" else layer.name
      want = layer.get_weights()
      assert [w.shape for w in loaded[key]] == [w.shape for w in want], key
      for a, b in zip(loaded[key], want):
        np.testing.assert_array_equal(a, b)


def test_unzipped_keras_directory(saved, tmp_path):
  folder, _, _ = saved
  with zipfile.ZipFile(folder / "model.keras") as archive:
    archive.extractall(tmp_path)
  from_dir = rj.interop.load_keras_weights(tmp_path)
  from_zip = rj.interop.load_keras_weights(folder / "model.keras")
  assert from_dir.keys() == from_zip.keys()
  for key in from_dir:
    for a, b in zip(from_dir[key], from_zip[key]):
      np.testing.assert_array_equal(a, b)


def test_stack_order_of_same_class_cells_is_read_from_the_names(tmp_path):
  """lstm_cell, lstm_cell_1, ..., lstm_cell_10 sort by number, not alphabetically."""
  cells = [keras.layers.SimpleRNNCell(1) for _ in range(11)]   # one shape: one compile
  with jax.numpy_rank_promotion("allow"):
    model = keras.Sequential([keras.Input((2, 1)), keras.layers.RNN(cells, name="deep")])
  model.layers[0].set_weights(keras_reference.random_weights(model.layers[0], seed=1))
  model.save_weights(tmp_path / "deep.weights.h5")
  loaded = rj.interop.load_keras_weights(tmp_path / "deep.weights.h5")["deep"]
  for a, b in zip(loaded, model.layers[0].get_weights(), strict=True):
    np.testing.assert_array_equal(a, b)


def test_subclassed_model(tmp_path):
  class Encoder(keras.Model):
    def __init__(self):
      super().__init__()
      self.rnn = keras.layers.GRU(3, name="my_gru")

    def call(self, x):
      return self.rnn(x)

  model = Encoder()
  keras_reference.run(model, X)
  model.rnn.set_weights(keras_reference.random_weights(model.rnn, seed=2))
  model.save_weights(tmp_path / "sub.weights.h5")
  params = rj.interop.load_keras_params(tmp_path / "sub.weights.h5", rj.GRU(3))  # one layer: no name
  np.testing.assert_allclose(rj.GRU(3).apply(params, jnp.asarray(X)),
                             keras_reference.run(model, X), atol=1e-5)


# Bad input -----------------------------------------------------------------------------


def test_bad_input(saved, tmp_path):
  folder, _, _ = saved
  h5 = folder / "model.weights.h5"
  with raises(TypeError, "path", "str or os.PathLike", "int"):
    rj.interop.load_keras_weights(3)
  with raises(FileNotFoundError, "missing.keras", "does not exist"):
    rj.interop.load_keras_weights(tmp_path / "missing.keras")
  (tmp_path / "notes.txt").write_text("hello")
  with raises(ValueError, "notes.txt", ".weights.h5", ".keras", "neither"):
    rj.interop.load_keras_weights(tmp_path / "notes.txt")
  with zipfile.ZipFile(tmp_path / "empty.keras", "w") as archive:
    archive.writestr("config.json", json.dumps({}))
  with raises(ValueError, "empty.keras", "without model.weights.h5", "config.json"):
    rj.interop.load_keras_weights(tmp_path / "empty.keras")
  import h5py
  with h5py.File(tmp_path / "old.h5", "w") as f:
    f.attrs["layer_names"] = [b"lstm"]
  with raises(ValueError, "old.h5", "Keras 2 (legacy)", "get_weights"):
    rj.interop.load_keras_weights(tmp_path / "old.h5")
  (tmp_path / "unzipped").mkdir()
  with raises(ValueError, "unzipped", "directory without model.weights.h5"):
    rj.interop.load_keras_weights(tmp_path / "unzipped")
  with raises(ValueError, "'stack'", "different classes", "load_keras_params"):
    rj.interop.load_keras_weights(h5)   # mixed cells, bare .weights.h5: the order is unknown
  with raises(ValueError, "name 'dec'", "is not a layer", "'enc'"):
    rj.interop.load_keras_params(h5, rj.LSTM(4), "dec")
  with raises(TypeError, "name", "str", "int"):
    rj.interop.load_keras_params(h5, rj.LSTM(4), 0)
  with raises(ValueError, "name must be given", "'enc'"):
    rj.interop.load_keras_params(h5, rj.LSTM(4))
  with raises(ValueError, "Keras layer 'enc'", "model.weights.h5", "(3, 20), got (3, 16)"):
    rj.interop.load_keras_params(h5, rj.LSTM(5), "enc")
  with raises(ValueError, "stacked cells of 'stack'", "gru_cell", "['lstm_cell', 'lstm_cell_1', 'lstm_cell_2']"):
    rj.interop.load_keras_params(h5, rj.RNN([rj.LSTMCell(4)] * 3), "stack")
