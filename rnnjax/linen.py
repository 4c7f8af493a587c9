"""`flax.linen` modules over the rnnjax layers: the same constructor arguments, the
Keras parameter layout, and no second implementation (each call runs the pure
`layer.apply`).

>>> import jax, jax.numpy as jnp, flax.linen as nn, rnnjax as rj
>>> class Classifier(nn.Module):
...   @nn.compact
...   def __call__(self, tokens):
...     x = nn.Embed(100, 8)(tokens)
...     return nn.Dense(10)(rj.linen.LSTM(16)(x))
>>> tokens = jnp.zeros((2, 7), jnp.int32)
>>> variables = Classifier().init(jax.random.key(0), tokens)
>>> jax.tree.map(jnp.shape, variables["params"]["LSTM_0"])
{'bias': (64,), 'kernel': (8, 64), 'recurrent_kernel': (16, 64)}

One module class, `RecurrentModule(layer)`, wraps any rnnjax layer. `LSTM`, `GRU`,
`SimpleRNN`, `RNN`, `ConvLSTM1D/2D/3D` and `Bidirectional` are the same module built
from the layer's own arguments (`LayerModule`), so that linen names them after the layer
(`LSTM_0`, `GRU_1`, ...).

Parameters live in the `params` collection under the Keras names: `kernel`,
`recurrent_kernel`, `bias` for the built-in layers; `cell_0`, `cell_1`, ... (each the
cell's own dict) for `RNN([cell, ...])`; a custom cell's dict keys, or one variable
`cell` when its params are not a dict. `params["LSTM_0"]` is exactly what
`rj.LSTM(128).init` returns, so it can be handed to the pure layer and back;
`pure_params` / `named_params` convert in general (stacked cells: dict <-> tuple).

Call: `module(inputs, initial_state=None, mask=None, training=False, constants=None, *,
reset=None, seq_lengths=None)`, arguments as in `layer.apply`. With `training=True` and
dropout, the masks are drawn from the `"dropout"` rng stream:
`model.apply(variables, x, training=True, rngs={"dropout": key})`.

Cell modules, one step per call, for `nn.RNN`, `nn.scan` and step-by-step decoders:
`SimpleRNNCell`, `GRUCell`, `LSTMCell`, `ConvLSTM1D/2D/3DCell` (the rnnjax cell's
arguments) and `RecurrentCell(cell)` for any cell, each a `flax.linen.RNNCellBase` with
`initialize_carry(rng, input_shape)`; params as the cell's `init` returns them, the carry
in the cell's state order (LSTM `(h, c)`; one array `h` for GRU and SimpleRNN).

>>> cell = rj.linen.LSTMCell(16)
>>> x = jnp.ones((2, 8))
>>> carry = cell.initialize_carry(jax.random.key(0), x.shape)
>>> variables = cell.init(jax.random.key(1), carry, x)
>>> (h, c), y = cell.apply(variables, carry, x)   # one decoder step
>>> h.shape, sorted(variables["params"])
((2, 16), ['bias', 'kernel', 'recurrent_kernel'])

Stateful layers (`stateful=True`) keep their state, a tuple of (B, ...) arrays, in the
`"carry"` collection (variable `state`), zeros after `init`. A call continues from it,
returns what the layer returns without `stateful`, and stores the new state, so the
collection must be mutable: `out, updates = model.apply(variables, x,
mutable=["carry"])`, then `variables = {**variables, **updates}`. `reset_carry(variables,
where=None)` zeroes every stateful layer's state in a model (or only rows where `where`).
"""

import inspect
from typing import Any, ClassVar

import flax.linen as nn

from . import _adapters
from . import layers as _layers
from ._linen_cells import STEP as STEP
from ._linen_cells import declare_params
# The cell modules (one step per call, for nn.RNN / nn.scan / decoders): rnnjax/_linen_cells.py.
from ._linen_cells import (CellModule, ConvLSTM1DCell, ConvLSTM2DCell, ConvLSTM3DCell,  # noqa: F401
                           GRUCell, LSTMCell, RecurrentCell, SimpleRNNCell)

CARRY = "carry"
"""The collection that holds the states of stateful layers."""

DROPOUT = "dropout"
"""The rng stream that dropout masks are drawn from."""


class RecurrentModule(nn.Module):
  """Any rnnjax layer as a flax.linen module: params in `params` (Keras layout), the
  state of a stateful layer in `carry`, and each call runs `pure_layer.apply`.

  pure_layer: the rnnjax layer (a frozen dataclass with `init` and `apply`), e.g.
    `rj.GRU(64)`, `rj.RNN(cell)`, or a layer class of your own.

  Unnamed, it is auto-named `RecurrentModule_0`; `LayerModule` subclasses such as
  `rj.linen.LSTM` are named after themselves.

  >>> import jax, jax.numpy as jnp, rnnjax as rj
  >>> module = rj.linen.RecurrentModule(rj.GRU(4, return_sequences=True))
  >>> x = jnp.ones((2, 5, 3))
  >>> module.apply(module.init(jax.random.key(0), x), x).shape
  (2, 5, 4)
  """

  pure_layer: Any

  def __post_init__(self):
    _adapters.check_layer(self.pure_layer, "pure_layer", not_a=nn.Module)
    super().__post_init__()

  @nn.compact
  def __call__(self, inputs, initial_state=None, mask=None, training: bool = False,
               constants=None, *, reset=None, seq_lengths=None):
    """Runs the layer; see `rj.LSTM.apply` for the arguments and the result."""
    _adapters.check_training(training)
    layer = self.pure_layer
    params = self._params(layer, inputs)
    has_state = self.has_variable(CARRY, "state")
    state = self.get_variable(CARRY, "state") if has_state else None
    out, new_state = _adapters.apply(layer, params, inputs, initial_state, mask, training,
                                     self._dropout_rng(layer, training), constants,
                                     reset=reset, seq_lengths=seq_lengths, state=state)
    if not _adapters.is_stateful(layer):
      return out
    if self.is_initializing():
      if not has_state:  # init stores zeros, not the state after init's inputs
        self.put_variable(CARRY, "state", layer.reset_state(new_state))
    elif self.is_mutable_collection(CARRY):
      self.put_variable(CARRY, "state", new_state)
    else:
      raise ValueError(
          f"{type(self).__name__}(stateful=True) at {'/'.join(self.path) or 'the top'} stores "
          f"its new state in the {CARRY!r} collection, which this call cannot change: call "
          f"apply(..., mutable=[{CARRY!r}]) and keep the returned {CARRY!r} for the next chunk."
      )
    return out

  def reset_state(self, where=None):
    """Zeroes this layer's carried state (every row, or rows where `where` (B,) is True).
    Use as `model.apply(variables, method="reset_state", mutable=["carry"])`; for a whole
    model, `reset_carry(variables)`."""
    if not self.has_variable(CARRY, "state"):
      raise ValueError(
          f"{type(self).__name__} has no carried state to reset: it is not stateful or "
          f"has not been initialized (no {CARRY!r} variable)."
      )
    state = self.get_variable(CARRY, "state")
    self.put_variable(CARRY, "state", self.pure_layer.reset_state(state, where))

  def _params(self, layer, inputs):
    return declare_params(self, _layers.param_spec(layer, inputs),
                          lambda key: layer.init(key, inputs))

  def _dropout_rng(self, layer, training):
    wanted = _adapters.wants_dropout_rng(layer, training)
    if wanted is False:
      return None
    if self.has_rng(DROPOUT):
      return self.make_rng(DROPOUT)
    if wanted:
      raise ValueError(
          f"{type(self).__name__} with dropout was called with training=True but no "
          f"{DROPOUT!r} rng: pass rngs={{{DROPOUT!r}: key}} to init/apply."
      )
    return None


def _pure(value):
  """A linen module among a layer's arguments (Bidirectional's) stands for its layer."""
  return value.pure_layer if isinstance(value, RecurrentModule) else value


class LayerModule(RecurrentModule):
  """A `RecurrentModule` built from the arguments of the class attribute `layer_type`;
  linen auto-names it after the subclass. `rj.linen.LSTM(64, return_sequences=True)` is
  `RecurrentModule(rj.LSTM(64, return_sequences=True))`, auto-named `LSTM_0`. A layer
  class of your own gets a named module the same way:

  >>> import flax.linen as nn, jax, jax.numpy as jnp, rnnjax as rj
  >>> class Encoder(rj.linen.LayerModule):
  ...   layer_type = rj.GRU
  >>> class Model(nn.Module):
  ...   @nn.compact
  ...   def __call__(self, x):
  ...     return Encoder(8, return_sequences=True)(x)
  >>> variables = Model().init(jax.random.key(0), jnp.ones((2, 5, 3)))
  >>> jax.tree.map(jnp.shape, variables["params"])
  {'Encoder_0': {'bias': (2, 24), 'kernel': (3, 24), 'recurrent_kernel': (8, 24)}}
  """

  layer_type: ClassVar[type]

  def __init_subclass__(cls, **kwargs):
    # flax makes each subclass a dataclass, whose field-wise __init__(pure_layer, ...)
    # would take the place of this one, unless the class has its own __init__ already.
    cls.__init__ = LayerModule.__init__
    super().__init_subclass__(**kwargs)
    cls.__signature__ = _adapters.signature(_adapters.layer_type_of(cls), after=[
        inspect.Parameter("name", inspect.Parameter.KEYWORD_ONLY, default=None)])

  def __init__(self, *args, pure_layer=None, **kwargs):
    """The layer's own arguments, plus the module's `name`."""
    # linen's clone() and copy() rebuild a module from its fields: pure_layer, parent, name.
    module_kwargs = {k: kwargs.pop(k) for k in ("parent", "name") if k in kwargs}
    if pure_layer is None:
      args = [_pure(a) for a in args]
      pure_layer = type(self).layer_type(*args, **{k: _pure(v) for k, v in kwargs.items()})
    elif args or kwargs:
      raise TypeError(
          f"{type(self).__name__} takes the layer's arguments or pure_layer=, not both; got "
          f"pure_layer= with {len(args)} positional argument(s) and keywords {sorted(kwargs)}."
      )
    RecurrentModule.__init__(self, pure_layer, **module_kwargs)


class LSTM(LayerModule):
  """`rj.LSTM` as a flax.linen module, with the same arguments.

  >>> import jax, jax.numpy as jnp, rnnjax as rj
  >>> module = rj.linen.LSTM(4, return_state=True)
  >>> x = jnp.ones((2, 5, 3))
  >>> out, h, c = module.apply(module.init(jax.random.key(0), x), x)
  >>> out.shape, c.shape
  ((2, 4), (2, 4))
  """

  layer_type = _layers.LSTM


class GRU(LayerModule):
  """`rj.GRU` as a flax.linen module, with the same arguments.

  >>> import jax, jax.numpy as jnp, rnnjax as rj
  >>> module = rj.linen.GRU(4, return_sequences=True)
  >>> x = jnp.ones((2, 5, 3))
  >>> module.apply(module.init(jax.random.key(0), x), x).shape
  (2, 5, 4)
  """

  layer_type = _layers.GRU


class SimpleRNN(LayerModule):
  """`rj.SimpleRNN` as a flax.linen module, with the same arguments.

  >>> import jax, jax.numpy as jnp, rnnjax as rj
  >>> module = rj.linen.SimpleRNN(4)
  >>> x = jnp.ones((2, 5, 3))
  >>> module.apply(module.init(jax.random.key(0), x), x).shape
  (2, 4)
  """

  layer_type = _layers.SimpleRNN


class RNN(LayerModule):
  """`rj.RNN(cell)` as a flax.linen module, for any cell or list of cells. Params: the
  cell's dict entries, or `cell_0`, `cell_1`, ... for a list of cells.

  >>> import jax, jax.numpy as jnp, rnnjax as rj
  >>> module = rj.linen.RNN([rj.LSTMCell(4), rj.GRUCell(6)])
  >>> x = jnp.ones((2, 5, 3))
  >>> variables = module.init(jax.random.key(0), x)
  >>> sorted(variables["params"]), module.apply(variables, x).shape
  (['cell_0', 'cell_1'], (2, 6))
  """

  layer_type = _layers.RNN


class ConvLSTM1D(LayerModule):
  """`rj.ConvLSTM1D` as a flax.linen module, with the same arguments.

  >>> import jax, jax.numpy as jnp, rnnjax as rj
  >>> module = rj.linen.ConvLSTM1D(4, 3, padding="same")
  >>> x = jnp.ones((2, 5, 6, 3))
  >>> module.apply(module.init(jax.random.key(0), x), x).shape
  (2, 6, 4)
  """

  layer_type = _layers.ConvLSTM1D


class ConvLSTM2D(LayerModule):
  """`rj.ConvLSTM2D` as a flax.linen module, with the same arguments.

  >>> import jax, jax.numpy as jnp, rnnjax as rj
  >>> module = rj.linen.ConvLSTM2D(4, 3, padding="same", return_sequences=True)
  >>> x = jnp.ones((2, 5, 6, 6, 3))
  >>> module.apply(module.init(jax.random.key(0), x), x).shape
  (2, 5, 6, 6, 4)
  """

  layer_type = _layers.ConvLSTM2D


class ConvLSTM3D(LayerModule):
  """`rj.ConvLSTM3D` as a flax.linen module, with the same arguments.

  >>> import jax, jax.numpy as jnp, rnnjax as rj
  >>> module = rj.linen.ConvLSTM3D(2, 3, padding="same")
  >>> x = jnp.ones((1, 3, 4, 4, 4, 2))
  >>> module.apply(module.init(jax.random.key(0), x), x).shape
  (1, 4, 4, 4, 2)
  """

  layer_type = _layers.ConvLSTM3D


class Bidirectional(LayerModule):
  """`rj.Bidirectional` as a flax.linen module, over an rnnjax linen module (or layer):
  `rj.linen.Bidirectional(rj.linen.LSTM(64, return_sequences=True))`. As in Keras, the
  wrapped module only provides the configuration; the params are `forward/...` and
  `backward/...`, what `rj.Bidirectional.init` returns.

  >>> import jax, jax.numpy as jnp, rnnjax as rj
  >>> module = rj.linen.Bidirectional(rj.linen.LSTM(4, return_sequences=True))
  >>> x = jnp.ones((2, 5, 3))
  >>> variables = module.init(jax.random.key(0), x)
  >>> sorted(variables["params"]), module.apply(variables, x).shape
  (['backward', 'forward'], (2, 5, 8))
  """

  layer_type = _layers.Bidirectional


_BY_LAYER_TYPE: dict[type, type] = {cls.layer_type: cls for cls in (
    LSTM, GRU, SimpleRNN, RNN, ConvLSTM1D, ConvLSTM2D, ConvLSTM3D, Bidirectional)}


def wrap(layer, *, name: str | None = None) -> RecurrentModule:
  """The linen module of an rnnjax layer instance: e.g. `wrap(rj.LSTM(64))` is
  `rj.linen.LSTM(64)`; a layer of another class gives `RecurrentModule(layer)`."""
  _adapters.check_layer(layer, "layer", not_a=nn.Module)
  return _BY_LAYER_TYPE.get(type(layer), RecurrentModule)(pure_layer=layer, name=name)


def pure_params(named):
  """A module's entry of the `params` collection (e.g. `variables["params"]["RNN_0"]`)
  as the pytree the pure layer takes: the same dict for the built-in layers, the tuple
  of per-cell dicts for `RNN([cells])`."""
  if not hasattr(named, "keys"):
    raise TypeError(f"named must be a module's params dict, got {type(named).__name__}.")
  return _adapters.from_named(named, _adapters.layout_of_names(named))


def named_params(params) -> dict:
  """Inverse of `pure_params`: a pure layer's params (e.g. from `layer.init` or
  `rj.interop.from_keras`) as the module's entry of the `params` collection."""
  return _adapters.to_named(params)


def reset_carry(variables, where=None):
  """`variables` with every stateful layer's state zeroed (all rows, or rows where
  `where` (B,) bool is True); the other collections are returned unchanged.

  variables: a dict of collections as `init`/`apply` give them.
  """
  if not isinstance(variables, dict) and not hasattr(variables, "items"):
    raise TypeError(f"variables must be the dict of collections that init returns, got "
                    f"{type(variables).__name__}.")
  if CARRY not in variables:
    return variables
  return {**variables, CARRY: _adapters.zero_rows(variables[CARRY], where)}


__all__ = [
    "Bidirectional", "CARRY", "CellModule", "ConvLSTM1D", "ConvLSTM1DCell", "ConvLSTM2D",
    "ConvLSTM2DCell", "ConvLSTM3D", "ConvLSTM3DCell", "DROPOUT", "GRU", "GRUCell", "LSTM",
    "LSTMCell", "LayerModule", "RNN", "RecurrentCell", "RecurrentModule", "STEP",
    "SimpleRNN", "SimpleRNNCell", "named_params", "pure_params", "reset_carry", "wrap",
]



# The linear recurrences (tests/test_linear_layers.py runs them as modules).
class MinGRU(LayerModule):
  """`rj.MinGRU` as a flax.linen module, with the same arguments (`scan=` included),
  e.g. `rj.linen.MinGRU(64, return_sequences=True, scan="parallel")`."""
  layer_type = _layers.MinGRU


class MinLSTM(LayerModule):
  """`rj.MinLSTM` as a flax.linen module, with the same arguments, e.g.
  `rj.linen.MinLSTM(64, log_space=True)`."""
  layer_type = _layers.MinLSTM


class LRU(LayerModule):
  """`rj.LRU` as a flax.linen module, with the same arguments, e.g.
  `rj.linen.LRU(64, r_min=0.9)`."""
  layer_type = _layers.LRU


_BY_LAYER_TYPE.update({cls.layer_type: cls for cls in (MinGRU, MinLSTM, LRU)})
__all__ += ["LRU", "MinGRU", "MinLSTM"]
