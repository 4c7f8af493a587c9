"""Reading untrusted Keras files: nothing is read that was not asked for, and every
malformed file is a ValueError that names it and says what is wrong.

Keras 3 (keras/src/saving/saving_lib.py: `safe_get_h5_group`, `safe_get_h5_dataset`,
`_reject_zip_bomb`, `_safe_zip_read`) refuses soft and external links, external and
virtual datasets, and datasets or zip members that declare far more data than they store.
This module does that and more, over the whole file before anything is read:

- HDF5: every link a hard link inside the file (no soft, external or user-defined links),
  every object reached once (no link cycles, no shared groups), at most `MAX_DEPTH`
  levels and `MAX_OBJECTS` objects; every dataset stored in the file (no external raw
  storage, no virtual datasets), a real number array (or Keras's bfloat16), not declaring
  more than `MAX_EXPANSION_H5` times what it stores above `BOMB_FLOOR_BYTES` (a shape
  bomb); a layer's `name` attribute a short string. h5py errors (truncated or damaged
  files) become ValueErrors.
- zip (`.keras`): a member is refused above `MAX_MEMBER_BYTES` (`MAX_JSON_BYTES` for
  config.json) or when it expands more than `MAX_EXPANSION_ZIP` times what it stores
  above `BOMB_FLOOR_BYTES`, and is read with a bounded read (a lying header cannot make
  it read more).
- JSON: a bounded read, UTF-8, valid JSON, an object at the top.

The limits are module attributes, so a caller that trusts a bigger file can raise them.
"""

import json
import math
import zipfile
import zlib

import numpy as np

MAX_DEPTH = 64                  # group nesting (Keras files are a few levels deep)
MAX_OBJECTS = 1_000_000         # groups and datasets in one file
MAX_MEMBER_BYTES = 1 << 34      # 16 GiB: a zip member read into memory
MAX_JSON_BYTES = 1 << 26        # 64 MiB: config.json
MAX_NAME_CHARS = 1024           # a layer's `name` attribute
BOMB_FLOOR_BYTES = 1 << 24      # 16 MiB: below this, no expansion check
MAX_EXPANSION_H5 = 1000         # declared / stored bytes of a dataset (Keras: 1000 above 4 GiB)
MAX_EXPANSION_ZIP = 100         # uncompressed / compressed bytes of a member (Keras: 100)

# What h5py and zipfile raise on a damaged file.
H5_ERRORS = (OSError, KeyError, RuntimeError)
ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError,
              RuntimeError)


def _bytes(n: int) -> str:
  return f"{n} bytes" if n < 1 << 20 else f"{n} bytes ({n / (1 << 20):.1f} MiB)"


# JSON --------------------------------------------------------------------------------------


def read_json_file(path, where: str) -> dict:
  """The JSON object in the file `path`, read with a bounded read."""
  try:
    with open(path, "rb") as f:
      data = f.read(MAX_JSON_BYTES + 1)
  except OSError as error:
    raise ValueError(f"{where} cannot be read: {error}.") from None
  return parse_json(data, where)


def parse_json(data: bytes, where: str) -> dict:
  """`data` (at most MAX_JSON_BYTES) parsed as a JSON object."""
  if len(data) > MAX_JSON_BYTES:
    raise ValueError(f"{where} is larger than the limit of {_bytes(MAX_JSON_BYTES)} for a "
                     f"Keras config.")
  try:
    config = json.loads(data.decode("utf-8"))
  except UnicodeDecodeError as error:
    raise ValueError(f"{where} is not UTF-8 text: {error}.") from None
  except RecursionError:
    raise ValueError(f"{where} is not a Keras config: its JSON is nested too deeply.") from None
  except ValueError as error:   # json.JSONDecodeError, an integer of too many digits
    raise ValueError(f"{where} is not valid JSON: {error}.") from None
  if not isinstance(config, dict):
    raise ValueError(f"{where} must hold a JSON object (a Keras config), got a JSON "
                     f"{type(config).__name__}.")
  return config


# zip ---------------------------------------------------------------------------------------


def read_member(archive: zipfile.ZipFile, name: str, where: str, limit: int) -> bytes:
  """The member `name` of `archive`, refused above `limit` bytes or as a decompression
  bomb, read with a bounded read. `where`: the member in words, for messages."""
  info = archive.getinfo(name)
  if info.file_size > limit:
    raise ValueError(f"{where} declares {_bytes(info.file_size)}, above the limit of "
                     f"{_bytes(limit)}.")
  if (info.file_size > BOMB_FLOOR_BYTES
      and info.file_size > MAX_EXPANSION_ZIP * max(info.compress_size, 1)):
    raise ValueError(f"{where} declares {_bytes(info.file_size)} but stores only "
                     f"{_bytes(info.compress_size)} (a decompression bomb); refused.")
  try:
    with archive.open(info) as member:
      data = member.read(limit + 1)
  except ZIP_ERRORS as error:
    raise ValueError(f"{where} is damaged: {type(error).__name__}: {error}.") from None
  if len(data) > limit:
    raise ValueError(f"{where} holds more than the limit of {_bytes(limit)}.")
  return data


# HDF5 --------------------------------------------------------------------------------------


def check_tree(root, where: str) -> None:
  """Walks the whole HDF5 file once, without following anything but hard links, and
  raises a ValueError at the first link, object or dataset that a Keras 3 file does not
  hold (see the module docstring)."""
  import h5py

  seen = {root.id}
  stack = [(root, 0)]
  count = 0
  while stack:
    group, depth = stack.pop()
    if depth >= MAX_DEPTH:
      raise ValueError(f"{where} nests groups more than {MAX_DEPTH} levels deep at "
                       f"{group.name!r}; not a Keras file.")
    for key in group:   # link names: nothing is followed yet
      path = f"{group.name.rstrip('/')}/{key}"
      link = group.get(key, getlink=True)
      if isinstance(link, h5py.SoftLink):
        raise ValueError(f"{where} holds a soft link {path!r} -> {link.path!r}; links are "
                         f"not followed (Keras files have none).")
      if isinstance(link, h5py.ExternalLink):
        raise ValueError(f"{where} holds an external link {path!r} -> {link.path!r} in file "
                         f"{link.filename!r}; data outside the file is not read.")
      if not isinstance(link, h5py.HardLink):
        raise ValueError(f"{where} holds a link of an unknown kind at {path!r}; only the "
                         f"file's own objects are read.")
      obj = group[key]
      if obj.id in seen:
        raise ValueError(f"{where} links one object twice, at {path!r} (a link cycle or a "
                         f"shared group); a Keras file is a tree.")
      seen.add(obj.id)
      count += 1
      if count > MAX_OBJECTS:
        raise ValueError(f"{where} holds more than {MAX_OBJECTS} objects; not read.")
      if isinstance(obj, h5py.Group):
        stack.append((obj, depth + 1))
      elif isinstance(obj, h5py.Dataset):
        check_dataset(obj, path, where)
      else:
        raise ValueError(f"{where} holds a {type(obj).__name__} at {path!r}; a Keras file "
                         f"holds only groups and datasets.")


def _is_bfloat16(dataset, where: str) -> bool:
  """Keras stores bfloat16 variables as 2-byte opaque data marked `dtype="bfloat16"`."""
  if dataset.dtype.kind != "V" or dataset.dtype.itemsize != 2 or "dtype" not in dataset.attrs:
    return False
  return short_string_attr(dataset, "dtype", where) == "bfloat16"


def check_dataset(dataset, path: str, where: str) -> None:
  """A dataset Keras could have written: stored in the file, numbers, no shape bomb."""
  if dataset.external:
    files = sorted({str(entry[0]) for entry in dataset.external})
    raise ValueError(f"{where} stores dataset {path!r} outside the file (external raw "
                     f"storage in {files}); it is not read.")
  if dataset.is_virtual:
    raise ValueError(f"{where} holds a virtual dataset {path!r} (it maps data of other "
                     f"files); it is not read.")
  if dataset.shape is None:
    raise ValueError(f"{where} holds a dataset {path!r} without a shape (an empty "
                     f"dataspace); Keras variables are arrays.")
  if dataset.dtype.kind not in "biuf" and not _is_bfloat16(dataset, where):
    raise ValueError(f"{where} holds dataset {path!r} of dtype {dataset.dtype}; Keras "
                     f"variables are arrays of numbers.")
  declared = math.prod(dataset.shape) * dataset.dtype.itemsize
  stored = dataset.id.get_storage_size()
  if declared > BOMB_FLOOR_BYTES and declared > MAX_EXPANSION_H5 * stored:
    raise ValueError(f"{where}: dataset {path!r} declares shape {dataset.shape} "
                     f"({_bytes(declared)}) but stores only {_bytes(stored)} (a shape or "
                     f"decompression bomb); refused.")


def read_dataset(dataset, where: str) -> np.ndarray:
  """The array of a dataset that `check_tree` passed (h5py errors as ValueErrors)."""
  try:
    array = np.asarray(dataset[()])
  except H5_ERRORS as error:
    raise ValueError(f"{where}: dataset {dataset.name!r} cannot be read (a truncated or "
                     f"damaged file?): {error}.") from None
  if _is_bfloat16(dataset, where):
    import ml_dtypes
    array = array.view(ml_dtypes.bfloat16)
  return array


def short_string_attr(obj, name: str, where: str):
  """The string attribute `name` of `obj` (None when absent), refused unless it is a
  scalar string of at most MAX_NAME_CHARS characters."""
  if name not in obj.attrs:
    return None
  attr = obj.attrs.get_id(name)
  if attr.shape not in ((), (1,)) or attr.get_storage_size() > 16 * MAX_NAME_CHARS:
    raise ValueError(f"{where}: the attribute {name!r} of {obj.name!r} must be a short "
                     f"string, got one of shape {attr.shape}.")
  value = obj.attrs[name]
  if isinstance(value, np.ndarray) and value.shape == (1,):
    value = value[0]
  if isinstance(value, bytes):
    value = value.decode("utf-8", errors="replace")
  if not isinstance(value, str) or len(value) > MAX_NAME_CHARS:
    raise ValueError(f"{where}: the attribute {name!r} of {obj.name!r} must be a string of "
                     f"at most {MAX_NAME_CHARS} characters, got {type(value).__name__}.")
  return value


class h5_errors:
  """A context in which h5py's errors on a damaged file become ValueErrors naming it."""

  def __init__(self, where: str):
    self.where = where

  def __enter__(self):
    return self

  def __exit__(self, kind, error, traceback):
    if kind is not None and issubclass(kind, H5_ERRORS):
      raise ValueError(f"{self.where} is a damaged HDF5 file (truncated?): "
                       f"{kind.__name__}: {error}.") from None
    return False
