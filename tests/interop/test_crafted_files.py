"""Untrusted Keras files: crafted `.weights.h5` / `.keras` files built here with h5py and
zipfile. Each refusal is a ValueError naming the file and what is wrong, raised before
anything else is read; nothing comes back half-loaded, and the file is closed after it."""

import io
import json
import struct
import zipfile

import h5py
import numpy as np
import pytest

import rnnjax as rj
from rnnjax.interop import _safe_files

from tests.test_errors import raises

F, U = 3, 2
LAYER = rj.SimpleRNN(U)
RNG = np.random.default_rng(0)
WEIGHTS = [RNG.normal(size=(F, U)).astype("f4"), RNG.normal(size=(U, U)).astype("f4"),
           RNG.normal(size=(U,)).astype("f4")]
VARS = "layers/simple_rnn/cell/vars"


def write_h5(target, tamper=None, weights=WEIGHTS):
  """A Keras 3 `.weights.h5` of one SimpleRNN layer named "rnn" (the layout Keras writes);
  `tamper(file)` then edits it."""
  with h5py.File(target, "w") as f:
    f.create_group("vars").attrs["name"] = "sequential"
    f.create_group("layers/simple_rnn/vars").attrs["name"] = "rnn"
    cell = f.create_group(VARS)
    cell.attrs["name"] = "simple_rnn_cell"
    for i, w in enumerate(weights):
      cell[str(i)] = w
    if tamper is not None:
      tamper(f)
  return target


def replace(name, make):
  """A tamper that puts `make(vars_group)` in place of dataset `name` of the cell."""
  def tamper(f):
    del f[VARS][name]
    make(f[VARS])
  return tamper


def crafted(tmp_path, tamper, filename="model.weights.h5"):
  return write_h5(tmp_path / filename, tamper)


def assert_closed(path):
  """The loader closed the file: h5py cannot truncate a file that is still open."""
  h5py.File(path, "w").close()


def test_a_clean_crafted_file_loads(tmp_path):
  path = crafted(tmp_path, None)
  params = rj.interop.load_keras_params(path, LAYER)
  for name, w in zip(("kernel", "recurrent_kernel", "bias"), WEIGHTS):
    np.testing.assert_array_equal(params[name], w)
  assert [a.shape for a in rj.interop.load_keras_weights(path)["rnn"]] == [(3, 2), (2, 2), (2,)]


# HDF5: links, external and virtual data ---------------------------------------------------


def test_external_raw_storage_is_refused(tmp_path):
  secret = tmp_path / "secret.bin"
  secret.write_bytes(np.arange(6, dtype="f4").tobytes())
  path = crafted(tmp_path, replace("0", lambda g: g.create_dataset(
      "0", shape=(F, U), dtype="f4", external=[(str(secret), 0, 24)])))
  for load in (lambda: rj.interop.load_keras_params(path, LAYER),
               lambda: rj.interop.load_keras_weights(path)):
    with raises(ValueError, str(path), f"{VARS}/0", "outside the file",
                "external raw storage", "secret.bin"):
      load()
  assert_closed(path)


def test_external_links_are_refused(tmp_path):
  other = tmp_path / "other.h5"
  with h5py.File(other, "w") as f:
    f["data"] = np.ones((F, U), "f4")
  path = crafted(tmp_path, replace("0", lambda g: g.__setitem__(
      "0", h5py.ExternalLink(str(other), "/data"))))
  with raises(ValueError, str(path), "external link", f"/{VARS}/0", "other.h5"):
    rj.interop.load_keras_params(path, LAYER)
  assert_closed(path)


def test_soft_links_are_refused_inside_the_file_too(tmp_path):
  path = crafted(tmp_path, replace("0", lambda g: g.__setitem__(
      "0", h5py.SoftLink(f"/{VARS}/1"))))
  with raises(ValueError, str(path), "soft link", f"/{VARS}/0", "not followed"):
    rj.interop.load_keras_weights(path)


def test_a_soft_link_cycle_is_refused_not_a_recursion_error(tmp_path):
  path = crafted(tmp_path, lambda f: f["layers/simple_rnn/cell"].__setitem__(
      "loop", h5py.SoftLink("/layers")))
  with raises(ValueError, str(path), "soft link", "/layers/simple_rnn/cell/loop", "'/layers'"):
    rj.interop.load_keras_weights(path)


def test_a_hard_link_cycle_is_refused(tmp_path):
  def tamper(f):
    cell = f["layers/simple_rnn/cell"]
    cell["loop"] = f["layers"]   # a hard link back up: a cycle no link type reveals
  path = crafted(tmp_path, tamper)
  with raises(ValueError, str(path), "links one object twice", "/layers/simple_rnn/cell/loop",
              "a link cycle"):
    rj.interop.load_keras_weights(path)
  assert_closed(path)


def test_virtual_datasets_are_refused(tmp_path):
  source = tmp_path / "source.h5"
  with h5py.File(source, "w") as f:
    f["data"] = np.ones((F, U), "f4")

  def virtual(group):
    layout = h5py.VirtualLayout(shape=(F, U), dtype="f4")
    layout[:] = h5py.VirtualSource(str(source), "data", shape=(F, U))
    group.create_virtual_dataset("0", layout)
  path = crafted(tmp_path, replace("0", virtual))
  with raises(ValueError, str(path), "virtual dataset", f"{VARS}/0", "other files"):
    rj.interop.load_keras_params(path, LAYER)


def test_objects_other_than_groups_and_datasets_are_refused(tmp_path):
  path = crafted(tmp_path, lambda f: f.__setitem__("committed", np.dtype("f4")))
  with raises(ValueError, str(path), "holds a Datatype", "'/committed'"):
    rj.interop.load_keras_weights(path)


def test_nesting_deeper_than_the_limit_is_refused(tmp_path):
  path = crafted(tmp_path, lambda f: f.create_group("/".join(["deep"] * 70)))
  with raises(ValueError, str(path), f"more than {_safe_files.MAX_DEPTH} levels deep"):
    rj.interop.load_keras_weights(path)


# HDF5: datasets ---------------------------------------------------------------------------


def test_a_shape_bomb_is_refused_before_it_is_read(tmp_path):
  # 16 GiB declared, nothing stored: reading it would allocate it all.
  path = crafted(tmp_path, replace("0", lambda g: g.create_dataset(
      "0", shape=(2**22, 2**10), dtype="f4")))
  for load in (lambda: rj.interop.load_keras_params(path, LAYER),
               lambda: rj.interop.load_keras_weights(path)):
    with raises(ValueError, str(path), f"{VARS}/0", "(4194304, 1024)", "stores only 0 bytes",
                "shape or decompression bomb"):
      load()


def test_a_dataset_larger_than_the_layer_needs_is_never_read(tmp_path, monkeypatch):
  big = [WEIGHTS[0], RNG.normal(size=(1000, U)).astype("f4"), WEIGHTS[2]]
  path = write_h5(tmp_path / "big.weights.h5", weights=big)
  reads = []
  real_read = _safe_files.read_dataset
  monkeypatch.setattr(_safe_files, "read_dataset",
                      lambda d, where: reads.append(d.name) or real_read(d, where))
  with raises(ValueError, "Keras layer 'rnn'", str(path), "'recurrent_kernel'", "(2, 2)",
              "got (1000, 2)"):
    rj.interop.load_keras_params(path, LAYER)
  assert reads == []   # the count and shapes are checked on the declared shapes first
  with raises(ValueError, "Keras layer 'rnn'", "needs 3 Keras weight arrays", "got 2"):
    rj.interop.load_keras_params(crafted(tmp_path, lambda f: f[VARS].__delitem__("2")),
                                 LAYER)
  assert reads == []


def test_datasets_that_are_not_numbers_are_refused(tmp_path):
  path = crafted(tmp_path, replace("2", lambda g: g.__setitem__(
      "2", np.array([b"rm -rf", b"x"]))))
  with raises(ValueError, str(path), f"{VARS}/2", "dtype |S6", "arrays of numbers"):
    rj.interop.load_keras_weights(path)
  path = crafted(tmp_path, replace("2", lambda g: g.create_dataset("2", data=h5py.Empty("f4"))))
  with raises(ValueError, str(path), f"{VARS}/2", "without a shape"):
    rj.interop.load_keras_weights(path)


def test_keras_bfloat16_datasets_are_read_as_bfloat16(tmp_path):
  import ml_dtypes

  def bf16(group):
    group.create_dataset("2", data=WEIGHTS[2].astype(ml_dtypes.bfloat16)).attrs["dtype"] = "bfloat16"
  path = crafted(tmp_path, replace("2", bf16))
  bias = rj.interop.load_keras_weights(path)["rnn"][2]
  assert bias.dtype == ml_dtypes.bfloat16
  np.testing.assert_array_equal(bias, WEIGHTS[2].astype(ml_dtypes.bfloat16))


def test_a_vars_group_of_another_structure_is_refused(tmp_path):
  path = crafted(tmp_path, lambda f: f[VARS].create_group("extra"))
  with raises(ValueError, str(path), f"'/{VARS}' holds ['extra']", "named 0, 1, 2"):
    rj.interop.load_keras_weights(path)
  path = crafted(tmp_path, lambda f: f[VARS].__setitem__("kernel", np.ones(2, "f4")))
  with raises(ValueError, str(path), "['kernel']"):
    rj.interop.load_keras_params(path, LAYER)

  def vars_dataset(f):
    del f["layers/simple_rnn/vars"]
    f["layers/simple_rnn/vars"] = np.ones(2, "f4")
  with raises(ValueError, str(path), "'/layers/simple_rnn/vars' must be a group"):
    rj.interop.load_keras_weights(crafted(tmp_path, vars_dataset))


def test_a_layer_name_that_is_not_a_short_string_is_refused(tmp_path):
  path = crafted(tmp_path, lambda f: f["layers/simple_rnn/vars"].attrs.__setitem__(
      "name", np.arange(100)))
  with raises(ValueError, str(path), "attribute 'name'", "short string", "(100,)"):
    rj.interop.load_keras_weights(path)


def test_truncated_and_foreign_files(tmp_path):
  path = crafted(tmp_path, None)
  data = path.read_bytes()
  truncated = tmp_path / "truncated.weights.h5"
  truncated.write_bytes(data[: len(data) // 2])
  with raises(ValueError, str(truncated), "HDF5", "truncated"):
    rj.interop.load_keras_weights(truncated)
  header_only = tmp_path / "header.weights.h5"
  header_only.write_bytes(data[:64])
  with raises(ValueError, str(header_only), "HDF5"):
    rj.interop.load_keras_params(header_only, LAYER)
  pickle_file = tmp_path / "model.weights.h5.pkl"
  pickle_file.write_bytes(b"\x80\x04\x95")
  with raises(ValueError, str(pickle_file), "neither"):
    rj.interop.load_keras_weights(pickle_file)


def test_a_half_bad_file_returns_nothing(tmp_path):
  """One good layer and one bad one: an error, no partial dict."""
  def second_layer(f):
    f.create_group("layers/gru/vars").attrs["name"] = "gru"
    cell = f.create_group("layers/gru/cell/vars")
    cell.attrs["name"] = "gru_cell"
    cell.create_dataset("0", shape=(2**22, 2**10), dtype="f4")
  path = crafted(tmp_path, second_layer)
  with raises(ValueError, str(path), "layers/gru/cell/vars/0", "bomb"):
    rj.interop.load_keras_weights(path)
  assert_closed(path)


# .keras zips and their config -------------------------------------------------------------


def write_keras(target, config=b"{}", weights=None, compression=zipfile.ZIP_STORED):
  if weights is None:
    buffer = io.BytesIO()
    write_h5(buffer)
    weights = buffer.getvalue()
  with zipfile.ZipFile(target, "w", compression=compression) as archive:
    archive.writestr("config.json", config)
    archive.writestr("model.weights.h5", weights)
  return target


def test_a_clean_keras_zip_loads(tmp_path):
  path = write_keras(tmp_path / "clean.keras")
  np.testing.assert_array_equal(rj.interop.load_keras_weights(path)["rnn"][1], WEIGHTS[1])


def test_a_weights_member_that_is_not_hdf5(tmp_path):
  path = write_keras(tmp_path / "fake.keras", weights=b"not an hdf5 file at all")
  with raises(ValueError, "model.weights.h5 in path", str(path), "not a readable HDF5 file"):
    rj.interop.load_keras_weights(path)


@pytest.mark.parametrize("config, fragments", [
    (b"{not json", ["is not valid JSON", "line 1"]),
    (b"\xff\xfe{}", ["is not UTF-8"]),
    (b"[1, 2]", ["must hold a JSON object", "got a JSON list"]),
    (b'"model"', ["must hold a JSON object", "got a JSON str"]),
    (b"[" * 100_000 + b"]" * 100_000, ["nested too deeply"]),
    (json.dumps({"config": [1]}).encode(), ["'config' must be a JSON object", "got list"]),
    (json.dumps({"config": {"layers": {"a": 1}}}).encode(), ["'layers' must be a JSON list"]),
    (json.dumps({"config": {"layers": [3]}}).encode(), ["layer 0", "must be a JSON object",
                                                        "got int"]),
    (json.dumps({"config": {"layers": [{"config": "x"}]}}).encode(),
     ["'config' must be a JSON object", "got str"]),
])
def test_config_json_that_is_malformed(tmp_path, config, fragments):
  path = write_keras(tmp_path / "bad.keras", config=config)
  with raises(ValueError, "config.json in path", str(path), *fragments):
    rj.interop.load_keras_weights(path)


def test_a_stacked_cells_config_of_another_structure(tmp_path):
  layer = {"class_name": "RNN", "config": {"name": "rnn", "cell": {
      "class_name": "StackedRNNCells", "config": {"cells": [{"class_name": 7}]}}}}
  path = write_keras(tmp_path / "stack.keras", json.dumps({"config": {"layers": [layer]}}))
  with raises(ValueError, "config.json in path", "StackedRNNCells", "'class_name' string"):
    rj.interop.load_keras_weights(path)


def test_an_unzipped_directory_with_bad_config(tmp_path):
  write_h5(tmp_path / "model.weights.h5")
  (tmp_path / "config.json").write_text("[]")
  with raises(ValueError, "config.json in path", str(tmp_path), "got a JSON list"):
    rj.interop.load_keras_weights(tmp_path)


def test_zip_members_above_the_limit_are_refused(tmp_path, monkeypatch):
  path = write_keras(tmp_path / "big.keras")
  monkeypatch.setattr(_safe_files, "MAX_MEMBER_BYTES", 1000)
  with raises(ValueError, "model.weights.h5 in path", str(path), "above the limit of 1000"):
    rj.interop.load_keras_weights(path)
  monkeypatch.setattr(_safe_files, "MAX_MEMBER_BYTES", 1 << 30)
  monkeypatch.setattr(_safe_files, "MAX_JSON_BYTES", 1)
  with raises(ValueError, "config.json in path", "declares 2 bytes", "above the limit of 1"):
    rj.interop.load_keras_weights(path)


def test_a_decompression_bomb_is_refused(tmp_path):
  bomb = b"\0" * (_safe_files.BOMB_FLOOR_BYTES + (1 << 20))   # compresses ~1000:1
  path = write_keras(tmp_path / "bomb.keras", weights=bomb, compression=zipfile.ZIP_DEFLATED)
  with raises(ValueError, "model.weights.h5 in path", str(path), "decompression bomb"):
    rj.interop.load_keras_weights(path)


def test_a_lying_zip_header_cannot_make_it_read_more(tmp_path):
  """The central directory says config.json is 1 byte: the bounded read takes that, the
  checksum then fails, and the damage is reported."""
  path = write_keras(tmp_path / "liar.keras", config=b'{"config": {}}')
  data = bytearray(path.read_bytes())
  at = data.index(b"PK\x01\x02")   # the first central directory entry: config.json
  assert data[at + 46: at + 46 + 11] == b"config.json"
  data[at + 24: at + 28] = struct.pack("<I", 1)   # its uncompressed size
  path.write_bytes(bytes(data))
  with raises(ValueError, "config.json in path", str(path), "is damaged", "CRC"):
    rj.interop.load_keras_weights(path)


def test_a_truncated_zip(tmp_path):
  path = write_keras(tmp_path / "cut.keras")
  data = path.read_bytes()
  path.write_bytes(data[: len(data) // 2])
  with raises(ValueError, str(path), "neither"):   # no zip directory, no HDF5 signature
    rj.interop.load_keras_weights(path)
