"""Flax linen `LSTMCell` / `OptimizedLSTMCell` / `GRUCell` / `SimpleCell` params <->
rnnjax params.

Flax keeps one Dense module per gate and role, rnnjax Keras's fused matrices:

- LSTM (both LSTMCell and OptimizedLSTMCell store this layout): input Denses `ii, if,
  ig, io` (kernel (F, U), no bias), recurrent Denses `hi, hf, hg, ho` (kernel (U, U) and
  bias (U,)). Gates i, f, g, o are Keras's i, f, c, o, so `kernel` is `ii|if|ig|io`
  side by side and `bias` the recurrent biases. Flax's carry is `(c, h)`, Keras's `(h, c)`.
- GRU: `ir, iz, in` (kernel and bias), `hr, hz` (kernel only), `hn` (kernel and bias):
  `n = tanh(x W_in + b_in + r * (h W_hn + b_hn))`, `h' = (1 - z) n + z h`, which is
  Keras's `reset_after=True` GRU with bias[0] = (b_iz, b_ir, b_in) and bias[1] =
  (0, 0, b_hn). Keras's recurrent z and r biases fold into flax's input biases.
- SimpleCell: `i` (kernel and bias), `h` (kernel only).

Activations are flax cell arguments, not params: build the rnnjax layer with the same
ones (the flax defaults are tanh and sigmoid, as Keras's). `nn.Bidirectional` params
({"forward_rnn": {"cell": ...}, "backward_rnn": {"cell": ...}}) map to rnnjax's
{"forward", "backward"}.
"""

from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np

from ..cells import GRUCell, LSTMCell, SimpleRNNCell
from ..layers import GRU, LSTM, Bidirectional, SimpleRNN
from . import _common
from ..types import Params
from ._common import Plan, cell_name, check_cell_params, describe

# Per rnnjax cell: flax module names of the input and recurrent Denses in Keras gate
# order, and which of them hold a bias.
_LAYOUT = {
    LSTMCell: (("ii", "if", "ig", "io"), ("hi", "hf", "hg", "ho"), {"hi", "hf", "hg", "ho"}),
    GRUCell: (("iz", "ir", "in"), ("hz", "hr", "hn"), {"iz", "ir", "in", "hn"}),
    SimpleRNNCell: (("i",), ("h",), {"i"}),
}
_FLAX_NAMES = {LSTMCell: "LSTMCell / OptimizedLSTMCell", GRUCell: "GRUCell", SimpleRNNCell: "SimpleCell"}
_FLAX_DIRECTIONS = ("forward_rnn", "backward_rnn")


def _unwrap(tree):
  """Drops the {"params": ...} and {"cell": ...} wrappers of `nn.RNN(cell).init(...)`."""
  while isinstance(tree, dict) and len(tree) == 1 and next(iter(tree)) in ("params", "cell"):
    tree = next(iter(tree.values()))
  return tree


def _flax_type(tree, argument):
  """The rnnjax cell type whose flax twin has `tree`'s module names."""
  if isinstance(tree, dict):
    for cell_type, (inp, rec, _) in _LAYOUT.items():
      if set(tree) == set(inp + rec):
        return cell_type
  got = sorted(tree) if isinstance(tree, dict) else describe(tree)
  raise ValueError(
      f"{argument} must be the params of a flax linen LSTMCell / OptimizedLSTMCell (keys "
      f"{sorted(_LAYOUT[LSTMCell][0] + _LAYOUT[LSTMCell][1])}), GRUCell (keys "
      f"{sorted(_LAYOUT[GRUCell][0] + _LAYOUT[GRUCell][1])}) or SimpleCell (keys ['h', 'i']), "
      f"got {got}."
  )


def _flax_levels(flax_params) -> tuple:
  """(per-direction flax cell params, argument names): one direction or two."""
  tree = _unwrap(flax_params)
  if isinstance(tree, dict) and set(tree) == set(_FLAX_DIRECTIONS):
    return (tuple(_unwrap(tree[d]) for d in _FLAX_DIRECTIONS),
            tuple(f"flax_params[{d!r}]" for d in _FLAX_DIRECTIONS))
  return (tree,), ("flax_params",)


def _dense(tree, name, argument, shape, with_bias, cell):
  """(kernel, bias or None) of the flax Dense `name`, checked against `shape` (F may be None)."""
  module = tree[name]
  keys = {"kernel", "bias"} if with_bias else {"kernel"}
  if not isinstance(module, dict) or set(module) != keys:
    got = sorted(module) if isinstance(module, dict) else describe(module)
    raise ValueError(f"{argument}[{name!r}] must have keys {sorted(keys)}, got {got}.")
  kernel = _common.as_array(module["kernel"], f"{argument}[{name!r}]['kernel']")
  if kernel.ndim != 2 or any(s is not None and s != k for s, k in zip(shape, kernel.shape)):
    want = "(" + ", ".join("F" if s is None else str(s) for s in shape) + ")"
    raise ValueError(f"{argument}[{name!r}]['kernel'] must have shape {want} for "
                     f"{cell_name(cell)}, got {tuple(kernel.shape)}.")
  bias = None
  if with_bias:
    bias = _common.as_array(module["bias"], f"{argument}[{name!r}]['bias']")
    if tuple(bias.shape) != (shape[1],):
      raise ValueError(f"{argument}[{name!r}]['bias'] must have shape ({shape[1]},) for "
                       f"{cell_name(cell)}, got {tuple(bias.shape)}.")
  return kernel, bias


def _cell_from_flax(cell, tree, argument):
  flax_type = _flax_type(tree, argument)
  if not isinstance(cell, flax_type):
    raise ValueError(
        f"{argument} are the params of a flax {_FLAX_NAMES[flax_type]} but the rnnjax cell is "
        f"{cell_name(cell)}."
    )
  if isinstance(cell, GRUCell) and not cell.reset_after:
    raise ValueError(
        f"flax's GRUCell is Keras's reset_after=True GRU; the rnnjax cell is {cell_name(cell)} "
        f"with reset_after=False."
    )
  inputs, recurrent, biased = _LAYOUT[type(cell)]
  u = cell.units
  first = tree[inputs[0]].get("kernel") if isinstance(tree[inputs[0]], dict) else None
  features = first.shape[0] if getattr(first, "ndim", 0) == 2 else None
  x = [_dense(tree, n, argument, (features, u), n in biased, cell) for n in inputs]
  h = [_dense(tree, n, argument, (u, u), n in biased, cell) for n in recurrent]
  arrays = {"kernel": np.concatenate([k for k, _ in x], axis=1),
            "recurrent_kernel": np.concatenate([k for k, _ in h], axis=1)}
  if isinstance(cell, LSTMCell):
    bias = np.concatenate([b for _, b in h])
  elif isinstance(cell, GRUCell):
    b_in = np.concatenate([b for _, b in x])
    b_rec = np.concatenate([np.zeros_like(h[2][1]), np.zeros_like(h[2][1]), h[2][1]])
    bias = np.stack([b_in, b_rec])
  else:
    bias = x[0][1]
  if cell.use_bias:
    arrays["bias"] = bias
  elif np.any(bias != 0):
    raise ValueError(
        f"{argument} have nonzero biases but the rnnjax cell is {cell_name(cell)} with "
        f"use_bias=False; use use_bias=True."
    )
  return _common.cell_params(cell, check_cell_params(cell, arrays, f"params from {argument}"))


def _single_level(plan: Plan, argument: str):
  if len(plan.levels) != 1:
    raise TypeError(
        f"{argument} must be one layer or cell (flax has no stacked cells): convert each "
        f"level separately; got {len(plan.levels)} levels."
    )
  return plan.levels[0]


def flax_layer(plan: Plan):
  """The rnnjax layer that computes what flax's `nn.RNN(cell)` (or `nn.Bidirectional`)
  computes for the cells of a one-level `plan`: the output sequence."""
  cell = plan.levels[0][0]
  layer = {LSTMCell: LSTM, GRUCell: GRU, SimpleRNNCell: SimpleRNN}[type(cell)](
      cell.units, use_bias=cell.use_bias, return_sequences=True)
  return Bidirectional(layer) if len(plan.levels[0]) == 2 else layer


def from_flax(layer: Any, flax_params: Mapping[str, Any], *,
              return_layer: bool = False) -> Params | tuple[Any, Params]:
  """rnnjax params from the params of a flax linen recurrent cell.

  Args:
    layer: the rnnjax layer or cell that will run them (`rj.LSTM` / `rj.LSTMCell` for
      flax LSTMCell and OptimizedLSTMCell, `rj.GRU` (reset_after=True) for GRUCell,
      `rj.SimpleRNN` for SimpleCell), a two-direction layer for `nn.Bidirectional`, or a
      kind name "lstm" / "gru" / "rnn" (the sizes then read off the params).
    flax_params: the cell's params, e.g. `{"ii": {"kernel": ...}, ...}`; the
      `{"params": {"cell": ...}}` wrappers of `nn.RNN(cell).init` are taken off.
    return_layer: return `(layer, params)`; with a kind name the layer is the one that
      computes what `nn.RNN(cell)` computes (`rj.LSTM` / `rj.GRU` / `rj.SimpleRNN` with
      `return_sequences=True`, in an `rj.Bidirectional` for `nn.Bidirectional`'s
      params), with the default activations (tanh, sigmoid; flax's too).

  Returns:
    params in Keras layout ({"forward", "backward"} for two directions), or
    `(layer, params)`.

  >>> import jax, jax.numpy as jnp, flax.linen as nn, rnnjax as rj
  >>> x = jnp.ones((2, 5, 3))
  >>> variables = nn.RNN(nn.GRUCell(4)).init(jax.random.key(0), x)
  >>> params = rj.interop.from_flax(rj.GRU(4), variables)
  >>> params["kernel"].shape, params["bias"].shape
  ((3, 12), (2, 12))
  """
  _common.check_bool(return_layer, "return_layer")
  trees, arguments = _flax_levels(flax_params)
  if isinstance(layer, str):
    cell_type = _common.check_kind(layer)
    cells = []
    for tree, argument in zip(trees, arguments):
      flax_type = _flax_type(tree, argument)
      if flax_type is not cell_type:
        raise ValueError(f"{argument} are the params of a flax {_FLAX_NAMES[flax_type]}, not "
                         f"of kind {layer!r}.")
      first = tree[_LAYOUT[cell_type][1][0]]
      kernel: Any = first.get("kernel") if isinstance(first, dict) else None
      if getattr(kernel, "ndim", 0) != 2:
        raise ValueError(f"{argument}[{_LAYOUT[cell_type][1][0]!r}]['kernel'] must be a (U, U) "
                         f"array, got {describe(kernel)}.")
      cells.append(cell_type(kernel.shape[1]))
    plan = Plan((tuple(cells),), "single" if len(cells) == 1 else "directions")
    if return_layer:
      layer = flax_layer(plan)
  else:
    plan = _common.plan_of(layer)
  cells = _single_level(plan, "layer")
  if len(cells) != len(trees):
    raise ValueError(
        f"layer has {len(cells)} direction(s) but flax_params hold {len(trees)} ("
        f"{'nn.Bidirectional' if len(trees) == 2 else 'one cell'})."
    )
  params = plan.join([[_cell_from_flax(c, t, a) for c, t, a in zip(cells, trees, arguments)]])
  return (layer, params) if return_layer else params


def _cell_to_flax(cell, params, argument) -> dict:
  if isinstance(cell, GRUCell) and not cell.reset_after:
    raise ValueError(
        f"flax's GRUCell is Keras's reset_after=True GRU; {argument} belong to "
        f"{cell_name(cell)} with reset_after=False."
    )
  arrays = check_cell_params(cell, params, argument)
  inputs, recurrent, biased = _LAYOUT[type(cell)]
  n = len(inputs)
  u = cell.units
  kernels = np.split(arrays["kernel"], n, axis=1)
  rec = np.split(arrays["recurrent_kernel"], n, axis=1)
  bias = arrays.get("bias")
  zeros = np.zeros((u,), arrays["kernel"].dtype)
  if isinstance(cell, LSTMCell):
    biases = dict(zip(recurrent, np.split(bias, n) if bias is not None else [zeros] * n))
  elif isinstance(cell, GRUCell):
    b_in, b_rec = (bias[0], bias[1]) if bias is not None else (np.zeros(3 * u), np.zeros(3 * u))
    folded = np.split(b_in, 3)
    r_in = np.split(b_rec, 3)
    biases = {"iz": folded[0] + r_in[0], "ir": folded[1] + r_in[1], "in": folded[2],
              "hn": r_in[2]}
  else:
    biases = {"i": bias if bias is not None else zeros}
  out = {}
  for name, kernel in list(zip(inputs, kernels)) + list(zip(recurrent, rec)):
    out[name] = {"kernel": jnp.asarray(kernel)}
    if name in biased:
      out[name]["bias"] = jnp.asarray(biases[name], dtype=kernel.dtype)
  return out


def to_flax(layer: Any, params: Params) -> dict[str, Any]:
  """Flax linen cell params from rnnjax params; the inverse of `from_flax`.

  `layer` as in `from_flax`. Returns the cell's params dict: use it as
  `{"params": {"cell": p}}` for `nn.RNN(cell)`. For two directions, returns
  `{"forward_rnn": {"cell": ...}, "backward_rnn": {"cell": ...}}`, the params of
  `nn.Bidirectional`. The LSTM layout serves LSTMCell and OptimizedLSTMCell alike.

  >>> import jax, jax.numpy as jnp, rnnjax as rj
  >>> layer = rj.LSTM(4)
  >>> p = rj.interop.to_flax(layer, layer.init(jax.random.key(0), jnp.ones((1, 2, 3))))
  >>> sorted(p), p["hf"]["bias"].shape
  (['hf', 'hg', 'hi', 'ho', 'if', 'ig', 'ii', 'io'], (4,))
  """
  if isinstance(layer, str):
    plan = _common.plan_of_params(layer, params)
  else:
    plan = _common.plan_of(layer)
  cells = _single_level(plan, "layer")
  entry = plan.split(params)[0]
  if len(cells) == 1:
    return _cell_to_flax(cells[0], entry[0], "params")
  return {flax: {"cell": _cell_to_flax(c, p, f"params[{d!r}]")}
          for flax, d, c, p in zip(_FLAX_DIRECTIONS, _common.DIRECTIONS, cells, entry)}
