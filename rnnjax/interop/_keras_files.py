"""Keras 3 saved files (`.weights.h5`, `.keras`) -> the weights of their RNN layers.

How Keras 3 lays out the HDF5 file (keras/src/saving/saving_lib.py): a group per
saveable object, named by attribute (`layers/<...>`, `cell`, `forward_layer`) or, in a
list, by the snake-cased class name made unique in list order (`lstm_cell`,
`gru_cell`, `lstm_cell_1`); each group's `vars` subgroup holds its own variables as
datasets `0`, `1`, ... and the object's name in the attribute `name`. An LSTM layer is
`layers/lstm/cell/vars/{0,1,2}` (kernel, recurrent_kernel, bias), a stacked RNN
`layers/rnn/cell/cells/<cell>/vars/...`, a Bidirectional `forward_layer/...` then
`backward_layer/...`. HDF5 lists groups alphabetically, so the order of mixed cells in a
stack comes from the `.keras` file's config, or from the rnnjax layer they are loaded into.

The files are untrusted: `_safe_files.py` walks the whole HDF5 file before anything is
read (hard links only, no external or virtual data, no shape bombs) and bounds every read
of a zip member or JSON; `_keras_config.py` reads the config's parts it needs, checking
their structure. A malformed file is a ValueError naming it.
"""

import functools
import io
import os
import pathlib
import re
import zipfile
from typing import Any

import numpy as np

from ..cells import StackedRNNCells
from ..types import Params
from . import _common, _safe_files as _safe
from ._keras import from_keras
from ._keras_config import config_hint, config_index

_SUFFIX = re.compile(r"(.*?)(?:_(\d+))?", re.DOTALL)   # any name (fullmatch), "lstm_cell_2"


def _snake_case(name: str) -> str:
  """Keras's `to_snake_case` (keras/src/utils/naming.py): LSTMCell -> lstm_cell."""
  name = re.sub(r"\W+", "", name)
  name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
  return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _unique_names(class_names) -> list[str]:
  """Group names Keras gives a list of objects: snake case, then `_1`, `_2` for repeats."""
  used: dict[str, int] = {}
  out: list[str] = []
  for cls in class_names:
    base = _snake_case(cls)
    out.append(base if base not in used else f"{base}_{used[base] + 1}")
    used[base] = used.get(base, -1) + 1
  return out


# Opening the file ------------------------------------------------------------------------


def _where(path) -> str:
  return f"path {str(path)!r}"


def _open(path):
  """(h5py.File, config dict or None) for a .weights.h5, a .keras zip or an unzipped .keras,
  every part read with the guards of `_safe_files`."""
  try:
    import h5py
  except ImportError:
    raise ImportError("reading Keras files needs h5py: pip install h5py") from None

  if isinstance(path, io.IOBase):
    raise TypeError("path must be a file path (str or os.PathLike), got a file object.")
  if not isinstance(path, (str, os.PathLike)):
    raise TypeError(f"path must be a str or os.PathLike, got {_common.describe(path)}.")
  path = pathlib.Path(path)
  if not path.exists():
    raise FileNotFoundError(f"path {str(path)!r} does not exist.")
  where = _where(path)
  if path.is_dir():
    config = path / "config.json"
    weights = path / "model.weights.h5"
    if not weights.is_file():
      raise ValueError(f"path {str(path)!r} is a directory without model.weights.h5 (an unzipped "
                       f".keras file has one).")
    config = (_safe.read_json_file(config, f"config.json in {where}") if config.exists()
              else None)
    return _h5(weights, f"model.weights.h5 in {where}"), config
  if zipfile.is_zipfile(path):
    return _open_zip(path, where)
  if not h5py.is_hdf5(path):
    raise ValueError(f"path {str(path)!r} must be a Keras 3 .weights.h5 (HDF5) or .keras (zip) "
                     f"file, but it is neither.")
  return _h5(path, where), None


def _open_zip(path, where: str):
  try:
    with zipfile.ZipFile(path) as archive:
      names = archive.namelist()
      if "model.weights.h5" not in names:
        raise ValueError(f"path {str(path)!r} is a zip (.keras) file without model.weights.h5 "
                         f"(sharded or other weight formats are not read); it holds "
                         f"{names[:20]}.")
      data = _safe.read_member(archive, "model.weights.h5", f"model.weights.h5 in {where}",
                               _safe.MAX_MEMBER_BYTES)
      config = None
      if "config.json" in names:
        at = f"config.json in {where}"
        config = _safe.parse_json(
            _safe.read_member(archive, "config.json", at, _safe.MAX_JSON_BYTES), at)
  except _safe.ZIP_ERRORS as error:
    raise ValueError(f"{where} is a damaged zip (.keras) file: {type(error).__name__}: "
                     f"{error}.") from None
  return _h5(io.BytesIO(data), f"model.weights.h5 in {where}"), config


def _h5(source, where: str):
  import h5py
  try:
    return h5py.File(source, "r")
  except _safe.H5_ERRORS as error:
    raise ValueError(f"{where} is not a readable HDF5 file (truncated or damaged?): "
                     f"{error}.") from None


def _check_keras3(root, path) -> None:
  if "layer_names" in root.attrs or "model_weights" in root:
    raise ValueError(
        f"path {str(path)!r} is a Keras 2 (legacy) HDF5 file; this reads Keras 3 files. Load "
        f"it in Keras and use rj.interop.from_keras(layer, keras_layer.get_weights())."
    )


# Walking the HDF5 tree -------------------------------------------------------------------


def _groups(group) -> list:
  import h5py
  return [(k, group[k]) for k in sorted(group) if k != "vars" and isinstance(group[k], h5py.Group)]


def _vars(group, where: str):
  """The object's `vars` group, or None."""
  import h5py
  vars_group = group.get("vars")
  if vars_group is not None and not isinstance(vars_group, h5py.Group):
    raise ValueError(f"{where}: {vars_group.name!r} must be a group of variables (Keras "
                     f"writes one per object), got a dataset.")
  return vars_group


def _name(group, where: str):
  vars_group = _vars(group, where)
  return None if vars_group is None else _safe.short_string_attr(vars_group, "name", where)


def _own(group, where: str) -> list:
  """The object's own variables, datasets `vars/0`, `vars/1`, ... in number order (h5py
  datasets, checked by `_safe_files.check_tree`, not read yet)."""
  import h5py
  vars_group = _vars(group, where)
  if vars_group is None:
    return []
  keys = list(vars_group)
  odd = [k for k in keys if not (k.isdigit() and isinstance(vars_group[k], h5py.Dataset))]
  if odd:
    raise ValueError(f"{where}: {vars_group.name!r} holds {odd[:8]}; Keras stores an "
                     f"object's variables as datasets named 0, 1, 2, ...")
  return [vars_group[k] for k in sorted(keys, key=int)]


def _is_rnn(group) -> bool:
  return "cell" in group


def _is_bidirectional(group) -> bool:
  return "forward_layer" in group and "backward_layer" in group


def _index(group, prefix: str, out: dict, where: str) -> None:
  """name -> group for every layer below `group`; nested models prefix their layers' names
  (the depth is bounded: `_safe_files.check_tree` has walked the file)."""
  for key, child in _groups(group):
    if group.name == "/" and key == "optimizer":   # a compiled model's optimizer state
      continue
    name = _name(child, where)
    if name is None:               # a container (a list of layers): look inside
      _index(child, prefix, out, where)
      continue
    if "layers" in child and not _is_rnn(child):   # a nested model
      _index(child, f"{prefix}{name}/", out, where)
      continue
    full = prefix + str(name)
    out[full if full not in out else f"{full}@{child.name}"] = child
    if not (_is_rnn(child) or _is_bidirectional(child)):
      _index(child, f"{full}/", out, where)   # sublayers of a custom layer


def _split_suffix(name: str) -> tuple[str, str | None]:
  """("lstm_cell", "2") for "lstm_cell_2"; (name, None) without a numeric suffix."""
  match = _SUFFIX.fullmatch(name)
  return (match.group(1), match.group(2)) if match else (name, None)


def _stack_order(cells_group, classes, where: str) -> list[str]:
  """The group names of a stack's cells in stack order."""
  names = [k for k, _ in _groups(cells_group)]
  if classes is not None:
    expected = _unique_names(classes)
    if sorted(expected) != sorted(names):
      raise ValueError(
          f"the stacked cells of {where} in the file are {names}, but the cells {list(classes)} "
          f"are saved by Keras as {expected}."
      )
    return expected
  parts = [_split_suffix(n) for n in names]
  if len({base for base, _ in parts}) > 1:
    raise ValueError(
        f"{where} stacks cells of different classes {names}; a .weights.h5 file does not say "
        f"their order. Read it from the .keras file, or with rj.interop.load_keras_params(path, "
        f"layer, name), whose rnnjax layer gives the order."
    )
  return [n for _, n in sorted(zip([int(i or 0) for _, i in parts], names))]


def _cell_arrays(group, classes, where, file) -> list:
  arrays = _own(group, file)
  if "cells" in group:
    cells = group["cells"]
    for key in _stack_order(cells, classes, where):
      arrays += _cell_arrays(cells[key], None, where, file)
    return arrays
  for _, child in _groups(group):
    arrays += _cell_arrays(child, None, where, file)
  return arrays


def _arrays(group, hint, where, file) -> list:
  """A layer's weights in `get_weights()` order, as h5py datasets not read yet. `hint`:
  the class names of a stacked cell in order (a pair of them for a Bidirectional), or
  None. `where`: the layer, `file`: the file, for messages."""
  arrays = _own(group, file)
  if _is_rnn(group):
    return arrays + _cell_arrays(group["cell"], hint, where, file)
  if _is_bidirectional(group):
    forward, backward = hint if hint is not None else (None, None)
    return (arrays + _arrays(group["forward_layer"], forward, f"{where}.forward_layer", file)
            + _arrays(group["backward_layer"], backward, f"{where}.backward_layer", file))
  for key, child in _groups(group):
    arrays += _arrays(child, None, f"{where}/{key}", file)
  return arrays


# Order hints -------------------------------------------------------------------------------


def _rnnjax_hint(layer):
  if _common.is_bidirectional(layer):
    return _rnnjax_hint(layer.forward_layer), _rnnjax_hint(layer.backward_layer)
  cell = getattr(layer, "cell", layer)
  if isinstance(cell, StackedRNNCells):
    return [type(c).__name__ for c in cell.cells]
  return None


# Public ------------------------------------------------------------------------------------


def _read(path):
  """(the open h5py.File, name -> layer group, name -> layer config), the whole file
  checked by `_safe_files.check_tree` first."""
  root, config = _open(path)
  where = _where(path)
  try:
    with _safe.h5_errors(where):
      _safe.check_tree(root, where)
      _check_keras3(root, path)
      index = {}
      _index(root, "", index, where)
    configs = {}
    config_index(config, "", configs, f"config.json in {where}")
  except BaseException:
    root.close()
    raise
  return root, index, configs


def load_keras_weights(path: str | os.PathLike[str]) -> dict[str, list[np.ndarray]]:
  """The weights of every layer in a Keras 3 `.weights.h5` or `.keras` file.

  Returns `{layer name: [arrays]}` for the layers that hold weights, each list in the
  order of that layer's `get_weights()` (exact for RNN, Bidirectional and plain layers;
  a custom layer's sublayers follow its own variables in name order), ready for
  `rj.interop.from_keras`. Layers of a nested model are named `"model/layer"`. A stack
  of cells of different classes saved in a bare `.weights.h5` has no recorded order:
  use the `.keras` file or `load_keras_params`.

  The file is untrusted: links, external or virtual data, shape and decompression bombs
  and malformed parts are refused with a ValueError naming the file (see
  `_safe_files.py`); nothing is returned unless everything was read.
  """
  root, index, configs = _read(path)
  where = _where(path)
  with root, _safe.h5_errors(where):
    out = {}
    for name, group in index.items():
      datasets = _arrays(group, config_hint(configs.get(name), f"config.json in {where}"),
                         repr(name), where)
      if datasets:
        out[name] = [_safe.read_dataset(d, where) for d in datasets]
    return out


def load_keras_params(path: str | os.PathLike[str], layer: Any,
                      name: str | None = None) -> Params:
  """rnnjax params for `layer` from the Keras layer `name` of a saved Keras 3 file.

  Args:
    path: a `.weights.h5` or `.keras` file.
    layer: the rnnjax layer (or cell) that will run them, configured like the Keras
      layer (units, use_bias, reset_after, ...); for a stack of cells it also gives their
      order.
    name: the Keras layer's name (`"model/layer"` inside a nested model); may be left out
      when the file has one layer with weights.

  Returns:
    params, checked against `layer` as `rj.interop.from_keras` checks them. The count and
    shapes of the layer's datasets are checked before any of them is read, so a dataset
    larger than the layer needs is never read (the file is untrusted, as in
    `load_keras_weights`).
  """
  if name is not None and not isinstance(name, str):
    raise TypeError(f"name must be a str (a Keras layer name) or None, got {_common.describe(name)}.")
  root, index, _ = _read(path)
  where = _where(path)
  with root, _safe.h5_errors(where):
    if name is None:
      holding = [n for n, g in index.items() if _has_datasets(g)]
      if len(holding) != 1:
        raise ValueError(f"name must be given: the file has {len(holding)} layers with weights, "
                         f"{holding}.")
      name = holding[0]
    if name not in index:
      raise ValueError(f"name {name!r} is not a layer of the file; its layers are {sorted(index)}.")
    datasets = _arrays(index[name], _rnnjax_hint(layer), repr(name), where)
    fit = functools.partial(from_keras, layer)
    _does_not_fit(name, path, lambda: _fits(fit, datasets))
    arrays = [_safe.read_dataset(d, where) for d in datasets]
  return _does_not_fit(name, path, lambda: fit(arrays))


def _does_not_fit(name, path, run):
  """`run()`, its ValueError said as the Keras layer not fitting the rnnjax layer."""
  try:
    return run()
  except ValueError as error:
    raise ValueError(f"Keras layer {name!r} of {str(path)!r} does not fit the rnnjax layer: "
                     f"{error}") from None


def _fits(fit, datasets) -> None:
  """`fit(arrays)` traced on the datasets' shapes only (nothing is read): its count and
  shape errors come before any data is."""
  import jax

  specs = [jax.ShapeDtypeStruct(tuple(d.shape), np.float32) for d in datasets]
  try:
    jax.eval_shape(lambda *arrays: fit(list(arrays)), *specs)
  except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
    pass   # a custom cell's from_keras_weights that needs values: checked after reading


def _has_datasets(group) -> bool:
  import h5py
  found = []
  group.visititems(lambda k, obj: found.append(k) if isinstance(obj, h5py.Dataset) else None)
  return bool(found)
