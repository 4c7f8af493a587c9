"""What the converters share: the built-in cell of a layer, the kinds by name, the
per-level structure of a layer (stacked cells, a list of layers, two directions),
and checks of rnnjax params with messages naming the key, what it got and what was
expected. Axis letters: F input features, U units, G gates x units."""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._validation import check_bool, describe  # noqa: F401 (re-exported to the converters)
from ..cells import Cell, GRUCell, LSTMCell, ProjectedLSTMCell, SimpleRNNCell, StackedRNNCells

# Converter kinds by name (the built-in cells, Keras layout).
KINDS = {"lstm": LSTMCell, "gru": GRUCell, "rnn": SimpleRNNCell}
DIRECTIONS = ("forward", "backward")


def cell_name(cell) -> str:
  if isinstance(cell, ProjectedLSTMCell):
    return f"ProjectedLSTMCell(units={cell.units}, proj_size={cell.proj_size})"
  return f"{type(cell).__name__}(units={cell.units})"


def output_units(cell) -> int:
  """The size of a cell's output (and h): `proj_size` for a projected LSTM, else units."""
  return cell.proj_size if isinstance(cell, ProjectedLSTMCell) else cell.units


def as_array(value, argument: str) -> np.ndarray:
  """`value` as a NumPy float array (a torch CPU tensor, a jax or numpy array)."""
  if not hasattr(value, "shape") and not isinstance(value, (list, tuple, float, int)):
    raise TypeError(f"{argument} must be an array, got {describe(value)}.")
  array = np.asarray(value)
  if not (np.issubdtype(array.dtype, np.floating) or array.dtype.name == "bfloat16"):
    raise TypeError(f"{argument} must be a floating-point array, got dtype {array.dtype}.")
  return array


def builtin_cell(obj, argument: str = "layer"):
  """The SimpleRNN/GRU/LSTM cell of a built-in layer or cell, else a TypeError."""
  cell = obj if isinstance(obj, Cell) else getattr(obj, "cell", None)
  if isinstance(cell, (LSTMCell, GRUCell, SimpleRNNCell)):
    return cell
  if isinstance(obj, type):
    raise TypeError(f"{argument} must be an rnnjax layer or cell instance, got the class "
                    f"{obj.__name__}; pass an instance, e.g. rj.LSTM(64).")
  raise TypeError(
      f"{argument} must be an rnnjax SimpleRNN, GRU or LSTM layer or cell (or a kind name "
      f"{sorted(KINDS)}), got {describe(obj)}."
  )


def is_bidirectional(obj) -> bool:
  """A two-direction wrapper: Keras's `forward_layer` / `backward_layer` attributes."""
  return hasattr(obj, "forward_layer") and hasattr(obj, "backward_layer")


@dataclasses.dataclass(frozen=True)
class Plan:
  """A layer seen as levels (PyTorch's `num_layers`), each with one or two directions.

  levels: per level, the cells of its directions (one, or forward and backward).
  form: how params nest: "single" (a cell's dict), "directions" ({"forward", "backward"}),
    "stacked" (a tuple with a dict per level, StackedRNNCells), "list" (a list, one entry
    per level, each a dict or a {"forward", "backward"} dict), "levels" (as "list", in a
    tuple: rj.StackedRNN).
  """

  levels: tuple
  form: str

  def split(self, params, argument: str = "params") -> list:
    """params -> per level, per direction, the cell's param dict."""
    if self.form == "single":
      return [[params]]
    if self.form == "directions":
      return [_directions_of(params, argument)]
    if not isinstance(params, (list, tuple)) or len(params) != len(self.levels):
      raise TypeError(
          f"{argument} must be a {'list' if self.form == 'list' else 'tuple'} with "
          f"{len(self.levels)} entries (one per layer), got {describe(params)}."
      )
    if self.form == "stacked":
      return [[p] for p in params]
    return [[p] if len(cells) == 1 else _directions_of(p, f"{argument}[{i}]")
            for i, (cells, p) in enumerate(zip(self.levels, params))]

  def join(self, nested: list):
    """The inverse of `split`."""
    def level(entry):
      return entry[0] if len(entry) == 1 else dict(zip(DIRECTIONS, entry))

    if self.form in ("single", "directions"):
      return level(nested[0])
    if self.form == "stacked":
      return tuple(entry[0] for entry in nested)
    levels = [level(entry) for entry in nested]
    return tuple(levels) if self.form == "levels" else levels


def _directions_of(params, argument):
  if not isinstance(params, dict) or set(params) != set(DIRECTIONS):
    got = sorted(params) if isinstance(params, dict) else describe(params)
    raise TypeError(f"{argument} must be a dict with keys ['backward', 'forward'], got {got}.")
  return [params[d] for d in DIRECTIONS]


def _level_cells(obj, argument):
  if is_bidirectional(obj):
    return (builtin_cell(obj.forward_layer, f"{argument}.forward_layer"),
            builtin_cell(obj.backward_layer, f"{argument}.backward_layer"))
  return (builtin_cell(obj, argument),)


def plan_of(layer, argument: str = "layer") -> Plan:
  """The Plan of an rnnjax layer or cell, a stacked RNN, a two-direction wrapper, or a
  list of those (one per level)."""
  levels = getattr(layer, "levels", None)
  if isinstance(levels, tuple) and hasattr(layer, "num_layers"):   # rj.StackedRNN
    return Plan(tuple(_level_cells(obj, f"{argument}.levels[{i}]") for i, obj in enumerate(levels)),
                "levels")
  cell = getattr(layer, "cell", layer)
  if isinstance(cell, StackedRNNCells):
    return Plan(tuple((builtin_cell(c, f"{argument}.cells[{i}]"),) for i, c in enumerate(cell.cells)),
                "stacked")
  if isinstance(layer, (list, tuple)):
    if not layer:
      raise ValueError(f"{argument} must hold at least one layer, got an empty {type(layer).__name__}.")
    return Plan(tuple(_level_cells(obj, f"{argument}[{i}]") for i, obj in enumerate(layer)), "list")
  cells = _level_cells(layer, argument)
  return Plan((cells,), "single" if len(cells) == 1 else "directions")

def _cell_of_params(cell_type, params, argument):
  if not isinstance(params, dict) or getattr(params.get("recurrent_kernel"), "ndim", 0) != 2:
    raise TypeError(f"{argument} must be an rnnjax params dict with a (U, G*U) recurrent_kernel, "
                    f"got {describe(params)}.")
  kwargs = {"use_bias": "bias" in params}
  if cell_type is GRUCell:
    kwargs["reset_after"] = getattr(params.get("bias"), "ndim", 2) == 2
  projection = params.get("projection")
  if cell_type is LSTMCell and getattr(projection, "ndim", 0) == 2:
    return ProjectedLSTMCell(projection.shape[0], proj_size=projection.shape[1], **kwargs)
  return cell_type(params["recurrent_kernel"].shape[0], **kwargs)


def plan_of_params(kind, params) -> Plan:
  """The Plan that `params` of `kind` ("lstm", "gru", "rnn") have, read off their nesting
  and shapes (a dict, {"forward", "backward"}, a tuple (stacked) or a list)."""
  cell_type = check_kind(kind)

  def level(p, argument):
    if isinstance(p, dict) and set(p) == set(DIRECTIONS):
      return tuple(_cell_of_params(cell_type, p[d], f"{argument}[{d!r}]") for d in DIRECTIONS)
    return (_cell_of_params(cell_type, p, argument),)

  if isinstance(params, (list, tuple)):
    if not params:
      raise ValueError(f"params must hold at least one layer's params, got an empty {type(params).__name__}.")
    levels = tuple(level(p, f"params[{i}]") for i, p in enumerate(params))
    form = "list" if isinstance(params, list) else (
        "levels" if any(len(cells) == 2 for cells in levels) else "stacked")
    return Plan(levels, form)
  cells = level(params, "params")
  return Plan((cells,), "single" if len(cells) == 1 else "directions")


def expected_shapes(cell, features: int) -> dict:
  """Shapes of `cell`'s params for `features` inputs, e.g. {"kernel": (F, G*U), ...}."""
  shapes = jax.eval_shape(lambda: cell.init(jax.random.key(0), (features,)))
  return {name: tuple(s.shape) for name, s in shapes.items()}


def check_cell_params(cell, params, argument: str = "params") -> dict:
  """`params` of a built-in `cell` as NumPy arrays, after checking keys and shapes."""
  if not isinstance(params, dict):
    raise TypeError(f"{argument} must be the dict that {cell_name(cell)}.init returns, got "
                    f"{describe(params)}.")
  kernel: Any = params.get("kernel")
  features = kernel.shape[0] if getattr(kernel, "ndim", 0) == 2 else 1
  shapes = expected_shapes(cell, features)
  if set(params) != set(shapes):
    raise ValueError(
        f"{argument} of {cell_name(cell)} must have keys {sorted(shapes)}, got {sorted(params)}."
    )
  out = {}
  for name, shape in shapes.items():
    array = as_array(params[name], f"{argument}[{name!r}]")
    if tuple(array.shape) != shape:
      raise ValueError(
          f"{argument}[{name!r}] of {cell_name(cell)} must have shape {shape}, got "
          f"{tuple(array.shape)}; expected {shapes}."
      )
    out[name] = array
  return out


def cell_params(cell, arrays: dict) -> dict:
  """rnnjax params (jax arrays in the cell's param_dtype) from checked NumPy arrays."""
  return {name: jnp.asarray(a, dtype=jnp.dtype(cell.param_dtype)) for name, a in arrays.items()}


def check_kind(kind, argument: str = "layer"):
  if kind not in KINDS:
    raise ValueError(f"{argument} must be an rnnjax layer or one of the kinds {sorted(KINDS)}, "
                     f"got {kind!r}.")
  return KINDS[kind]


def check_activations(cell, source: str) -> None:
  """Libraries with fixed activations (PyTorch LSTM/GRU): the rnnjax cell must match."""
  if isinstance(cell, SimpleRNNCell):
    if cell.activation not in ("tanh", "relu"):
      raise ValueError(
          f"{source} nn.RNN has nonlinearity 'tanh' or 'relu'; the rnnjax {cell_name(cell)} has "
          f"activation={cell.activation!r}."
      )
    return
  if cell.activation != "tanh" or cell.recurrent_activation != "sigmoid":
    raise ValueError(
        f"{source} uses activation 'tanh' and recurrent activation 'sigmoid'; the rnnjax "
        f"{cell_name(cell)} has activation={cell.activation!r}, "
        f"recurrent_activation={cell.recurrent_activation!r}."
    )
