"""PyTorch `nn.LSTM` / `nn.GRU` / `nn.RNN` state_dicts <-> rnnjax params (no torch import).

PyTorch stores, per layer k (`num_layers`) and direction (`_reverse` when
`bidirectional=True`), `weight_ih_l{k}` (G*U, F), `weight_hh_l{k}` (G*U, U) and two
biases `bias_ih_l{k}`, `bias_hh_l{k}` (G*U,). rnnjax keeps Keras's layout: `kernel`
(F, G*U), `recurrent_kernel` (U, G*U), one bias. The conversions:

- transposes: `kernel = weight_ih.T`, `recurrent_kernel = weight_hh.T`;
- gate order: LSTM i, f, g, o is Keras's i, f, c, o; GRU r, z, n becomes Keras z, r, h;
- LSTM and RNN biases fold: `bias = bias_ih + bias_hh` (back to torch: `bias_ih = bias`,
  `bias_hh = 0`); the GRU keeps both, exactly, as Keras's `reset_after=True` bias (2, 3U)
  (row 0 `bias_ih`, row 1 `bias_hh`), so only `reset_after=True` GRUs convert;
- `num_layers` > 1 is a stacked RNN (`rj.RNN([cell, cell, ...])`, params a tuple), a
  list of layers (params a list) or an `rj.StackedRNN` (params a tuple, one entry per
  level); `bidirectional=True` gives {"forward", "backward"} params;
- `proj_size` (LSTM): `weight_hh` is (4H, P) and `weight_hr` (P, H) becomes the
  `projection` (H, P) of `rj.ProjectedLSTMCell`.
"""

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..cells import GRUCell, ProjectedLSTMCell
from ..layers import GRU, LSTM, SimpleRNN, StackedRNN
from ..types import Params
from . import _common
from ._common import Plan, cell_name, check_cell_params, output_units

# Keras gate block k comes from torch gate block ORDER[k] (and back: the same permutation).
_GATE_ORDER = {"LSTMCell": (0, 1, 2, 3), "ProjectedLSTMCell": (0, 1, 2, 3), "GRUCell": (1, 0, 2),
               "SimpleRNNCell": (0,)}
_TORCH_NAMES = {"LSTMCell": "nn.LSTM", "ProjectedLSTMCell": "nn.LSTM", "GRUCell": "nn.GRU",
                "SimpleRNNCell": "nn.RNN"}
_SUFFIXES = ("", "_reverse")
_KEY = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(\d+)(_reverse)?$")


def _reorder(array: np.ndarray, order, axis: int) -> np.ndarray:
  """Gate blocks of `array` along `axis` taken in `order`."""
  blocks = np.split(array, len(order), axis=axis)
  return np.concatenate([blocks[i] for i in order], axis=axis)


def _torch_name(cell) -> str:
  return _TORCH_NAMES[type(cell).__name__]


def _check_cell(cell, where: str) -> None:
  """The rnnjax cell must compute what the torch module computes."""
  _common.check_activations(cell, f"PyTorch {_torch_name(cell)}")
  if isinstance(cell, GRUCell) and not cell.reset_after:
    raise ValueError(
        f"PyTorch nn.GRU applies the reset gate after the recurrent matmul, which is Keras's "
        f"reset_after=True; {where} is {cell_name(cell)} with reset_after=False."
    )


def _keys_hint(state: dict, prefix: str) -> str:
  keys = sorted(prefix + k for k in state)
  return str(keys if len(keys) <= 12 else keys[:12] + ["..."])


def _check_state_dict(state_dict, prefix) -> dict:
  if not isinstance(prefix, str):
    raise TypeError(f"prefix must be a str, got {_common.describe(prefix)}.")
  if not isinstance(state_dict, Mapping):
    raise TypeError(
        f"state_dict must be a mapping of names to arrays (module.state_dict()), got "
        f"{_common.describe(state_dict)}."
    )
  state = {k[len(prefix):]: v for k, v in state_dict.items()
           if isinstance(k, str) and k.startswith(prefix)}
  if not state:
    raise ValueError(f"state_dict has no keys starting with prefix {prefix!r}; its keys are "
                     f"{sorted(map(str, state_dict))[:12]}.")
  return state


# state_dict -> params ----------------------------------------------------------------


def _infer_structure(kind: str, state: dict, prefix: str) -> dict:
  """What a torch state_dict of `kind` holds: num_layers, bidirectional, units, bias,
  proj_size (read off its keys and shapes)."""
  cell_type = _common.check_kind(kind)
  levels, reverse = set(), False
  for key in state:
    match = _KEY.match(key)
    if match and match.group(1) == "weight_ih":
      levels.add(int(match.group(2)))
      reverse = reverse or match.group(3) is not None
  if levels != set(range(len(levels))) or not levels:
    raise ValueError(f"state_dict must hold weight_ih_l0 ... weight_ih_l{{num_layers-1}}; "
                     f"got keys {_keys_hint(state, prefix)}.")
  hh: Any = state.get("weight_hh_l0")
  if getattr(hh, "ndim", 0) != 2:
    raise ValueError(f"state_dict[{prefix + 'weight_hh_l0'!r}] must be a (G*U, U) array, got "
                     f"{_common.describe(hh)}.")
  gates = len(_GATE_ORDER[cell_type.__name__])
  hr: Any = state.get("weight_hr_l0")
  proj_size = hr.shape[0] if cell_type.__name__ == "LSTMCell" and getattr(hr, "ndim", 0) == 2 else 0
  return dict(kind=kind, num_layers=len(levels), bidirectional=reverse,
              units=hh.shape[0] // gates if proj_size else hh.shape[1],
              use_bias="bias_ih_l0" in state, proj_size=proj_size)


def _infer_plan(found: dict) -> Plan:
  """The rnnjax cells of a torch structure (default Keras options otherwise)."""
  cell_type = _common.KINDS[found["kind"]]
  options = {"use_bias": found["use_bias"]}
  if found["proj_size"]:
    cell_type, options["proj_size"] = ProjectedLSTMCell, found["proj_size"]
  directions = 2 if found["bidirectional"] else 1
  cells = tuple(tuple(cell_type(found["units"], **options) for _ in range(directions))
                for _ in range(found["num_layers"]))
  if len(cells) == 1:
    return Plan(cells, "directions" if found["bidirectional"] else "single")
  return Plan(cells, "list" if found["bidirectional"] else "stacked")


def torch_layer(found: dict) -> StackedRNN:
  """The rj.StackedRNN that mirrors a torch module of structure `found` (see
  `_infer_structure`): batch-major, returning `(out, h_n[, c_n])` in torch's order."""
  template = {"lstm": LSTM, "gru": GRU, "rnn": SimpleRNN}[found["kind"]]
  return StackedRNN(template(found["units"], use_bias=found["use_bias"], return_sequences=True,
                             return_state=True),
                    num_layers=found["num_layers"], bidirectional=found["bidirectional"],
                    proj_size=found["proj_size"], state_order="torch")


def _take(state, key, prefix, used, cell, where, shape, torch_units=None):
  """state[key] as a NumPy array of `shape` (None entries: any size), marked used.
  `torch_units`: the hidden size the state_dict itself holds, for a hint on mix-ups."""
  full = prefix + key
  if key not in state:
    raise ValueError(
        f"state_dict has no {full!r}, which {where} ({cell_name(cell)}) needs; its keys are "
        f"{_keys_hint(state, prefix)}."
    )
  array = _common.as_array(state[key], f"state_dict[{full!r}]")
  if array.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, array.shape)):
    want = "(" + ", ".join("F" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
    gates = _GATE_ORDER[type(cell).__name__]
    hint = ""
    if array.ndim >= 1 and torch_units and array.shape[0] % torch_units == 0:
      ratio = array.shape[0] // torch_units
      other = {4: "an nn.LSTM", 3: "an nn.GRU", 1: "an nn.RNN"}.get(ratio)
      if other and ratio != len(gates):
        hint = f" (a first axis of {ratio} x hidden size {torch_units} is {other} weight)"
    raise ValueError(
        f"state_dict[{full!r}] has shape {tuple(array.shape)}, expected {want} for {where} "
        f"({cell_name(cell)}, {_torch_name(cell)} with {len(gates)} gate block(s)){hint}."
    )
  used.add(key)
  return array


def _cell_from_torch(cell, state, level, suffix, prefix, used, features):
  where = f"torch layer {level}" + (" (reverse direction)" if suffix else "")
  _check_cell(cell, where)
  order = _GATE_ORDER[type(cell).__name__]
  g = len(order) * cell.units
  tag = f"_l{level}{suffix}"
  hh = state.get("weight_hh" + tag)
  torch_units = hh.shape[-1] if getattr(hh, "ndim", 0) == 2 else None
  w_ih = _take(state, "weight_ih" + tag, prefix, used, cell, where, (g, features), torch_units)
  w_hh = _take(state, "weight_hh" + tag, prefix, used, cell, where, (g, output_units(cell)))
  arrays = {"kernel": _reorder(w_ih, order, 0).T, "recurrent_kernel": _reorder(w_hh, order, 0).T}
  if isinstance(cell, ProjectedLSTMCell):
    w_hr = _take(state, "weight_hr" + tag, prefix, used, cell, where, (cell.proj_size, cell.units))
    arrays["projection"] = w_hr.T
  has_bias = f"bias_ih{tag}" in state or f"bias_hh{tag}" in state
  if cell.use_bias:
    b_ih = _take(state, "bias_ih" + tag, prefix, used, cell, where, (g,))
    b_hh = _take(state, "bias_hh" + tag, prefix, used, cell, where, (g,))
    b_ih, b_hh = _reorder(b_ih, order, 0), _reorder(b_hh, order, 0)
    arrays["bias"] = np.stack([b_ih, b_hh]) if isinstance(cell, GRUCell) else b_ih + b_hh
  elif has_bias:
    raise ValueError(
        f"state_dict has {prefix}bias_ih{tag} (torch bias=True) but {where} is {cell_name(cell)} "
        f"with use_bias=False; use use_bias=True."
    )
  checked = check_cell_params(cell, arrays, f"params from torch layer {level}")
  return _common.cell_params(cell, checked)


def _leftover_error(state, used, prefix, layer_desc):
  rest = sorted(set(state) - used)
  hints = []
  if any(k.startswith("weight_hr") for k in rest):
    hints.append("weight_hr_* is an nn.LSTM with proj_size > 0: use rj.ProjectedLSTMCell, or "
                 "rj.StackedRNN(rj.LSTM(H), proj_size=P)")
  if any(k.endswith("_reverse") for k in rest):
    hints.append("*_reverse keys come from bidirectional=True: pass a two-direction layer")
  if any(_KEY.match(k) and not k.endswith("_reverse") and not k.startswith("weight_hr")
         for k in rest):
    hints.append("more layers in torch (num_layers) than the rnnjax layer has levels")
  hint = f" ({'; '.join(hints)})" if hints else ""
  raise ValueError(
      f"state_dict has keys that {layer_desc} does not use: {[prefix + k for k in rest]}{hint}."
  )


def from_torch(layer: Any, state_dict: Mapping[str, Any], *, prefix: str = "",
               return_layer: bool = False) -> Params | tuple[Any, Params]:
  """rnnjax params from a PyTorch `nn.LSTM` / `nn.GRU` / `nn.RNN` `state_dict()`.

  Args:
    layer: the rnnjax layer or cell that will run the params (`rj.LSTM`, `rj.GRU`
      (reset_after=True), `rj.SimpleRNN` with activation "tanh" or "relu", their cells),
      `rj.StackedRNN(template, num_layers, bidirectional, dropout, proj_size)` (params a
      tuple, one entry per level), `rj.RNN([cell, ...])` / `rj.StackedRNNCells` for
      `num_layers` > 1 (params a tuple), or a list of layers, one per torch layer (params
      a list). Or a kind name, "lstm", "gru" or "rnn": the structure is read off the
      state_dict (a dict; a tuple for num_layers > 1; {"forward", "backward"} dicts, in a
      list for num_layers > 1, when bidirectional; `rj.ProjectedLSTMCell` params with
      `proj_size`).
    state_dict: a mapping of names to arrays (NumPy arrays, or torch CPU tensors).
    prefix: the module's prefix inside a larger state_dict, e.g. "encoder.rnn.".
    return_layer: return `(layer, params)`. With a kind name, the layer is the
      `rj.StackedRNN` that computes what the torch module computes (`num_layers`,
      `bidirectional`, `proj_size`, `bias` read off the state_dict; tanh for "rnn"),
      batch-major (torch's `batch_first=True`; pass `time_major=True` in a template of
      your own for torch's default), with `return_sequences=True`, `return_state=True`
      and `state_order="torch"`: `out, h_n, c_n = layer.apply(params, x)`. What the
      state_dict does not hold (inter-layer `dropout`, `nonlinearity="relu"`) needs a
      layer of your own: `from_torch(rj.StackedRNN(rj.SimpleRNN(H, activation="relu",
      ...), num_layers=2, dropout=0.1), sd)`.

  Returns:
    params in Keras layout (or `(layer, params)`). Every state_dict key under `prefix`
    must be used.

  >>> import numpy as np, rnnjax as rj
  >>> sd = {"weight_ih_l0": np.ones((12, 3)), "weight_hh_l0": np.ones((12, 4)),
  ...       "bias_ih_l0": np.ones(12), "bias_hh_l0": np.zeros(12)}
  >>> params = rj.interop.from_torch(rj.GRU(4), sd)
  >>> params["kernel"].shape, params["bias"].shape
  ((3, 12), (2, 12))
  """
  _common.check_bool(return_layer, "return_layer")
  state = _check_state_dict(state_dict, prefix)
  if isinstance(layer, str):
    found = _infer_structure(layer, state, prefix)
    if return_layer:
      layer = torch_layer(found)
      return layer, from_torch(layer, state_dict, prefix=prefix)
    plan = _infer_plan(found)
    layer_desc = f"a torch {layer!r} of {len(plan.levels)} layer(s)"
  else:
    plan = _common.plan_of(layer)
    layer_desc = f"{type(layer).__name__}"
  used: set[str] = set()
  nested: list = []
  features = None
  for level, cells in enumerate(plan.levels):
    nested.append([
        _cell_from_torch(cell, state, level, suffix, prefix, used, features)
        for cell, suffix in zip(cells, _SUFFIXES)])
    features = sum(output_units(cell) for cell in cells)
  if set(state) - used:
    _leftover_error(state, used, prefix, layer_desc)
  params = plan.join(nested)
  return (layer, params) if return_layer else params


# params -> state_dict ----------------------------------------------------------------


def _cell_to_torch(cell, params, level, suffix, argument, features) -> dict:
  where = f"torch layer {level}" + (" (reverse direction)" if suffix else "")
  _check_cell(cell, where)
  arrays = check_cell_params(cell, params, argument)
  if features is not None and arrays["kernel"].shape[0] != features:
    raise ValueError(
        f"{argument}['kernel'] has {arrays['kernel'].shape[0]} input features but torch layer "
        f"{level} reads the {features} outputs of layer {level - 1}."
    )
  order = _GATE_ORDER[type(cell).__name__]
  tag = f"_l{level}{suffix}"
  out = {
      "weight_ih" + tag: _reorder(arrays["kernel"].T, order, 0),
      "weight_hh" + tag: _reorder(arrays["recurrent_kernel"].T, order, 0),
  }
  if isinstance(cell, ProjectedLSTMCell):
    out["weight_hr" + tag] = arrays["projection"].T
  if cell.use_bias:
    bias = arrays["bias"]
    if isinstance(cell, GRUCell):
      b_ih, b_hh = bias[0], bias[1]
    else:
      b_ih, b_hh = bias, np.zeros_like(bias)
    out["bias_ih" + tag] = _reorder(b_ih, order, 0)
    out["bias_hh" + tag] = _reorder(b_hh, order, 0)
  return out


def to_torch(layer: Any, params: Params, *, prefix: str = "") -> dict[str, np.ndarray]:
  """A PyTorch `state_dict` (NumPy arrays) from rnnjax params; the inverse of `from_torch`.

  `layer` as in `from_torch` (an rnnjax layer, cell, stacked RNN, list of layers, or a
  kind name "lstm" / "gru" / "rnn", the structure then read off `params`). LSTM and RNN
  biases go to `bias_ih` with `bias_hh = 0`. Load the result into torch with
  `module.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})`.

  >>> import jax, jax.numpy as jnp, rnnjax as rj
  >>> layer = rj.LSTM(4)
  >>> sd = rj.interop.to_torch(layer, layer.init(jax.random.key(0), jnp.ones((1, 2, 3))))
  >>> {k: v.shape for k, v in sd.items()}
  {'weight_ih_l0': (16, 3), 'weight_hh_l0': (16, 4), 'bias_ih_l0': (16,), 'bias_hh_l0': (16,)}
  """
  if not isinstance(prefix, str):
    raise TypeError(f"prefix must be a str, got {_common.describe(prefix)}.")
  plan = _common.plan_of_params(layer, params) if isinstance(layer, str) else _common.plan_of(layer)
  nested = plan.split(params)
  out, features = {}, None
  for level, (cells, entry) in enumerate(zip(plan.levels, nested)):
    for d, (cell, suffix, p) in enumerate(zip(cells, _SUFFIXES, entry)):
      argument = "params" + ("" if plan.form == "single" else f" (layer {level}, direction {d})")
      out.update(_cell_to_torch(cell, p, level, suffix, argument, features))
    features = sum(output_units(cell) for cell in cells)
  return {prefix + k: v for k, v in out.items()}
