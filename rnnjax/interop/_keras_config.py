"""The parts of a Keras 3 model config (`config.json` of a `.keras` file) that give the
order of a layer's weights: each layer's serialized config by name, and from it the class
names of a stack's cells. The config is untrusted JSON: a part of another structure than
Keras writes is a ValueError naming the file and the part."""

from . import _safe_files as _safe


def _field(mapping: dict, key: str, kind, where: str):
  """`mapping[key]` (None when absent), which must be a JSON `kind` (dict, list, str)."""
  value = mapping.get(key)
  if value is not None and not isinstance(value, kind):
    names = {dict: "object", list: "list", str: "string"}
    raise ValueError(f"{where}: {key!r} must be a JSON {names[kind]}, got "
                     f"{type(value).__name__} {str(value)[:80]}.")
  return value


def config_index(config, prefix: str, out: dict, where: str, depth: int = 0) -> None:
  """layer name -> its serialized config, for Functional and Sequential models (nested
  too). `where`: the config file, for messages on a config of another structure."""
  if config is None:
    return
  if depth >= _safe.MAX_DEPTH:
    raise ValueError(f"{where} nests models more than {_safe.MAX_DEPTH} levels deep.")
  layers = _field(_field(config, "config", dict, where) or {}, "layers", list, where)
  for i, layer in enumerate(layers or []):
    if not isinstance(layer, dict):
      raise ValueError(f"{where}: layer {i} of {prefix or 'the model'!r} must be a JSON "
                       f"object, got {type(layer).__name__}.")
    layer_config = _field(layer, "config", dict, where) or {}
    name = prefix + str(layer_config.get("name"))
    out[name] = layer
    if layer_config.get("layers") is not None:
      config_index(layer, name + "/", out, where, depth + 1)


def config_hint(layer_config, where: str):
  if not layer_config:
    return None
  config = _field(layer_config, "config", dict, where) or {}
  if layer_config.get("class_name") == "Bidirectional" and "layer" in config:
    forward = _field(config, "layer", dict, where)
    backward = _field(config, "backward_layer", dict, where) or forward
    return config_hint(forward, where), config_hint(backward, where)
  cell = config.get("cell")
  if isinstance(cell, dict) and cell.get("class_name") == "StackedRNNCells":
    cells = _field(_field(cell, "config", dict, where) or {}, "cells", list, where) or []
    names = [c.get("class_name") if isinstance(c, dict) else None for c in cells]
    if not all(isinstance(n, str) for n in names):
      raise ValueError(f"{where}: the cells of a StackedRNNCells config must be JSON "
                       f"objects with a 'class_name' string, got {str(cells)[:200]}.")
    return names
  return None
