"""`flax.nnx` modules over the rnnjax layers: `in_features` first (as NNX modules take
it), then the layer's own arguments, then `rngs`. Each call runs the pure
`layer.apply`; there is no second implementation.

>>> import jax.numpy as jnp, optax, rnnjax as rj
>>> from flax import nnx
>>> model = rj.nnx.LSTM(3, 4, return_sequences=True, rngs=nnx.Rngs(0))
>>> model.kernel.shape, model.recurrent_kernel.shape, model.bias.shape
((3, 16), (4, 16), (16,))
>>> model(jnp.ones((2, 5, 3))).shape
(2, 5, 4)
>>> optimizer = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)
>>> grads = nnx.grad(lambda m: jnp.mean(m(jnp.ones((2, 5, 3))) ** 2))(model)
>>> _ = optimizer.update(model, grads)

One module class, `RecurrentModule(layer, in_features, rngs=...)`, wraps any rnnjax
layer. `LSTM`, `GRU`, `SimpleRNN`, `RNN`, `ConvLSTM1D/2D/3D` and `Bidirectional` are the
same module built from `in_features` and the layer's own arguments (`LayerModule`):
`Bidirectional(in_features, rj.LSTM(64, return_sequences=True), rngs=rngs)`.

Cell modules, one step per call, for `nnx.RNN`, `nnx.scan` and step-by-step decoders:
`SimpleRNNCell`, `GRUCell`, `LSTMCell`, `ConvLSTM1D/2D/3DCell` (`in_features`, then
the rnnjax cell's arguments) and `RecurrentCell(cell, in_features, rngs=...)`, each an
`nnx.RNNCellBase` with `initialize_carry(input_shape)`; the carry in the cell's state
order (LSTM `(h, c)`; one array `h` for GRU and SimpleRNN).

Parameters are `nnx.Param` attributes named as the Keras weights (`kernel`,
`recurrent_kernel`, `bias`); for `RNN([cell, ...])`, attributes `cell_0`, `cell_1`, ...
hold each cell's dict of Params; a custom cell's dict keys become attributes (its
params as one attribute `cell` when they are not a dict). `model.pure_params()` is
the pytree that the pure layer (`model.pure_layer`) takes.

`in_features` is the per-step input size F, or for custom cells a per-step shape
tuple, or a pytree of them for nested inputs, e.g. `((32,), (64, 32))`.

Dropout follows `nnx.Dropout`: with a dropout rate > 0 the module keeps a fork of the
`"dropout"` stream of the `rngs` it was built with (the default stream if there is
none); `training` defaults to `not model.deterministic`, and `model.train()`,
`model.eval()` or `nnx.view(model, deterministic=...)` switch it (False by default, so
dropout is on until `eval()`); a call may pass `rngs=` (an `nnx.Rngs`, an
`nnx.RngStream` or a key) and `training=` explicitly.

Stateful layers keep their state in `model.carry`, an `RNNCarry` variable (None until
the first call or `model.initialize_carry(batch_size)`, then the state tuple); each call
continues from it and stores the new state. `model.reset_state(where=None)` zeroes it;
`reset_carry(model)` does so for every stateful layer in a model.
"""

import inspect
from typing import ClassVar

import jax.numpy as jnp
from flax import nnx

from . import _adapters
from . import _validation as _checks
from . import layers as _layers
from ._nnx_cells import STEP as STEP
from ._nnx_cells import draw, fork, get_params, set_params
# The cell modules (one step per call, for nnx.RNN / nnx.scan / decoders): rnnjax/_nnx_cells.py.
from ._nnx_cells import (CellModule, ConvLSTM1DCell, ConvLSTM2DCell, ConvLSTM3DCell,  # noqa: F401
                         GRUCell, LSTMCell, RecurrentCell, SimpleRNNCell)

DROPOUT = "dropout"
"""The rng stream that dropout masks are drawn from."""


class RNNCarry(nnx.Variable):
  """The carried state of a stateful rnnjax layer: a tuple of (B, ...) arrays, or None
  before the first call. Filter with `RNNCarry`:

  >>> import flax.nnx as nnx, rnnjax as rj
  >>> model = rj.nnx.GRU(3, 4, stateful=True, rngs=nnx.Rngs(0))
  >>> model.initialize_carry(2)
  >>> list(nnx.state(model, rj.nnx.RNNCarry)), model.carry.get_value()[0].shape
  (['carry'], (2, 4))
  """


class RecurrentModule(nnx.Module):
  """Any rnnjax layer as an NNX module: its params as `nnx.Param` attributes (Keras
  names), a dropout rng stream, the carried state of a stateful layer, and each call
  runs `pure_layer.apply`.

  layer: the rnnjax layer (a frozen dataclass with `init` and `apply`), e.g.
    `rj.GRU(64)`, `rj.RNN(cell)`, or a layer class of your own.
  in_features: per-step input size F, a per-step shape tuple, or a pytree of them.
  rngs: `nnx.Rngs`; params from `rngs.params()`, dropout from its `"dropout"` stream.
  deterministic: the default of `training` is `not deterministic`.

  >>> import jax.numpy as jnp, flax.nnx as nnx, rnnjax as rj
  >>> model = rj.nnx.RecurrentModule(rj.GRU(4, return_sequences=True), 3, rngs=nnx.Rngs(0))
  >>> model.kernel.shape, model(jnp.ones((2, 5, 3))).shape
  ((3, 12), (2, 5, 4))
  """

  def __init__(self, layer, in_features, *, rngs: nnx.Rngs, deterministic: bool = False):
    _adapters.check_layer(layer, "layer", not_a=nnx.Module)
    if not isinstance(rngs, nnx.Rngs):
      raise TypeError(f"rngs must be an nnx.Rngs (e.g. nnx.Rngs(0)), got {rngs!r}.")
    _checks.check_bool(deterministic, "deterministic")
    params = layer.init(rngs.params(), _adapters.abstract_inputs(_adapters.step_shape(in_features)))
    self.in_features = in_features
    self.pure_layer = layer
    self.deterministic = deterministic
    self._layout, self._param_names = set_params(self, params, type(layer).__name__)
    if _adapters.needs_dropout_rng(layer) is False:
      self.rngs = nnx.data(None)
    else:
      self.rngs = fork(rngs, DROPOUT, type(layer).__name__, "uses dropout")
    if _adapters.is_stateful(layer):
      self.carry = RNNCarry(None)

  def pure_params(self):
    """The params pytree that `pure_layer.init` would return (current values)."""
    return get_params(self, self._layout, self._param_names)

  def __call__(self, inputs, initial_state=None, mask=None, training: bool | None = None,
               constants=None, *, reset=None, seq_lengths=None, rngs=None):
    """Runs the layer; see `rj.LSTM.apply` for the arguments and the result.

    training: None -> `not self.deterministic`.
    rngs: for the dropout masks, an nnx.Rngs, nnx.RngStream or key; None -> the stream
      the module keeps.
    """
    if training is None:
      training = not self.deterministic
    _adapters.check_training(training)
    layer = self.pure_layer
    stateful = _adapters.is_stateful(layer)
    out, new_state = _adapters.apply(
        layer, self.pure_params(), inputs, initial_state, mask, training,
        self._dropout_rng(layer, training, rngs), constants, reset=reset,
        seq_lengths=seq_lengths, state=self.carry.get_value() if stateful else None)
    if stateful:
      self.carry.set_value(new_state)
    return out

  def initialize_carry(self, batch_size: int, dtype=jnp.float32) -> None:
    """Sets the carried state to zeros for `batch_size` rows, as a first call on inputs
    of `dtype` would start from (e.g. before restoring a checkpoint into the model)."""
    self._check_stateful("initialize")
    self.carry.set_value(_adapters.zero_state(
        self.pure_layer, self.pure_params(), _adapters.step_shape(self.in_features),
        batch_size, dtype))

  def reset_state(self, where=None) -> None:
    """Zeroes the carried state: every row, or rows where `where` (B,) bool is True."""
    self._check_stateful("reset")
    state = self.carry.get_value()
    if state is not None:
      self.carry.set_value(self.pure_layer.reset_state(state, where))

  def set_view(self, deterministic: bool | None = None):
    """For `nnx.view(model, deterministic=...)`."""
    if deterministic is not None:
      self.deterministic = deterministic

  def _check_stateful(self, verb: str) -> None:
    if not _adapters.is_stateful(self.pure_layer):
      raise ValueError(f"{type(self).__name__} is not stateful: it has no state to {verb}.")

  def _dropout_rng(self, layer, training, rngs):
    wanted = _adapters.wants_dropout_rng(layer, training)
    if wanted is False:
      return None
    source = self.rngs if rngs is None else rngs
    if source is None and not wanted:
      return None
    return draw(source, DROPOUT, f"{type(self).__name__} with dropout called with training=True")


_P = inspect.Parameter
_BEFORE = [_P("in_features", _P.POSITIONAL_OR_KEYWORD)]
_AFTER = [_P("rngs", _P.KEYWORD_ONLY), _P("deterministic", _P.KEYWORD_ONLY, default=False)]


class LayerModule(RecurrentModule):
  """A `RecurrentModule` built from `in_features`, the arguments of the class attribute
  `layer_type`, and `rngs`: `rj.nnx.LSTM(64, 128, rngs=rngs)` is
  `RecurrentModule(rj.LSTM(128), 64, rngs=rngs)` as an `rj.nnx.LSTM`. A layer class of
  your own gets a named module the same way:

  >>> import flax.nnx as nnx, rnnjax as rj
  >>> class Encoder(rj.nnx.LayerModule):
  ...   layer_type = rj.GRU
  >>> Encoder(3, 8, reset_after=False, rngs=nnx.Rngs(0)).bias.shape
  (24,)
  """

  layer_type: ClassVar[type]

  def __init_subclass__(cls, **kwargs):
    super().__init_subclass__(**kwargs)
    cls.__signature__ = _adapters.signature(_adapters.layer_type_of(cls), before=_BEFORE,
                                           after=_AFTER)

  def __init__(self, in_features, *args, rngs: nnx.Rngs, deterministic: bool = False,
               **kwargs):
    super().__init__(type(self).layer_type(*args, **kwargs), in_features, rngs=rngs,
                     deterministic=deterministic)


class LSTM(LayerModule):
  """`rj.LSTM` as a flax.nnx module: `(in_features, *LSTM arguments, rngs=...)`.

  >>> import jax.numpy as jnp, flax.nnx as nnx, rnnjax as rj
  >>> model = rj.nnx.LSTM(3, 4, return_state=True, rngs=nnx.Rngs(0))
  >>> out, h, c = model(jnp.ones((2, 5, 3)))
  >>> out.shape, c.shape
  ((2, 4), (2, 4))
  """

  layer_type = _layers.LSTM


class GRU(LayerModule):
  """`rj.GRU` as a flax.nnx module: `(in_features, *GRU arguments, rngs=...)`.

  >>> import jax.numpy as jnp, flax.nnx as nnx, rnnjax as rj
  >>> model = rj.nnx.GRU(3, 4, stateful=True, rngs=nnx.Rngs(0))
  >>> model(jnp.ones((2, 5, 3))).shape, model.carry.get_value()[0].shape
  ((2, 4), (2, 4))
  """

  layer_type = _layers.GRU


class SimpleRNN(LayerModule):
  """`rj.SimpleRNN` as a flax.nnx module: `(in_features, *SimpleRNN arguments, rngs=...)`.

  >>> import jax.numpy as jnp, flax.nnx as nnx, rnnjax as rj
  >>> rj.nnx.SimpleRNN(3, 4, rngs=nnx.Rngs(0))(jnp.ones((2, 5, 3))).shape
  (2, 4)
  """

  layer_type = _layers.SimpleRNN


class RNN(LayerModule):
  """`rj.RNN(cell)` as a flax.nnx module: `RNN(in_features, cell, ..., rngs=...)`, where
  `in_features` is F, a per-step shape tuple, or a pytree of them (nested inputs).

  >>> import jax.numpy as jnp, flax.nnx as nnx, rnnjax as rj
  >>> model = rj.nnx.RNN(3, [rj.LSTMCell(4), rj.GRUCell(6)], rngs=nnx.Rngs(0))
  >>> model.cell_0["kernel"].shape, model(jnp.ones((2, 5, 3))).shape
  ((3, 16), (2, 6))
  """

  layer_type = _layers.RNN


class ConvLSTM1D(LayerModule):
  """`rj.ConvLSTM1D` as a flax.nnx module: `(in_features, *ConvLSTM1D arguments,
  rngs=...)` with `in_features` the per-step shape (W, C).

  >>> import jax.numpy as jnp, flax.nnx as nnx, rnnjax as rj
  >>> model = rj.nnx.ConvLSTM1D((6, 3), 4, 3, padding="same", rngs=nnx.Rngs(0))
  >>> model(jnp.ones((2, 5, 6, 3))).shape
  (2, 6, 4)
  """

  layer_type = _layers.ConvLSTM1D


class ConvLSTM2D(LayerModule):
  """`rj.ConvLSTM2D` as a flax.nnx module: `(in_features, *ConvLSTM2D arguments,
  rngs=...)` with `in_features` the per-step shape (H, W, C).

  >>> import jax.numpy as jnp, flax.nnx as nnx, rnnjax as rj
  >>> model = rj.nnx.ConvLSTM2D((6, 6, 3), 4, 3, padding="same", rngs=nnx.Rngs(0))
  >>> model(jnp.ones((2, 5, 6, 6, 3))).shape
  (2, 6, 6, 4)
  """

  layer_type = _layers.ConvLSTM2D


class ConvLSTM3D(LayerModule):
  """`rj.ConvLSTM3D` as a flax.nnx module: `(in_features, *ConvLSTM3D arguments,
  rngs=...)` with `in_features` the per-step shape (D, H, W, C).

  >>> import jax.numpy as jnp, flax.nnx as nnx, rnnjax as rj
  >>> model = rj.nnx.ConvLSTM3D((4, 4, 4, 2), 2, 3, padding="same", rngs=nnx.Rngs(0))
  >>> model(jnp.ones((1, 3, 4, 4, 4, 2))).shape
  (1, 4, 4, 4, 2)
  """

  layer_type = _layers.ConvLSTM3D


def _pure(value):
  """An rnnjax NNX module among Bidirectional's arguments stands for its pure layer."""
  return value.pure_layer if isinstance(value, RecurrentModule) else value


class Bidirectional(LayerModule):
  """`rj.Bidirectional` as a flax.nnx module: `(in_features, layer, merge_mode="concat",
  weights=None, backward_layer=None, *, rngs=...)`, with `layer` (and `backward_layer`)
  pure rnnjax layers that only give the configuration, as in Keras: the params are
  made once, for both directions (attributes `forward` and `backward`, what
  `rj.Bidirectional.init` returns).

  >>> import jax.numpy as jnp, flax.nnx as nnx, rnnjax as rj
  >>> model = rj.nnx.Bidirectional(3, rj.LSTM(4, return_sequences=True), rngs=nnx.Rngs(0))
  >>> sorted(model.forward), model(jnp.ones((2, 5, 3))).shape
  (['bias', 'kernel', 'recurrent_kernel'], (2, 5, 8))

  The earlier form `Bidirectional(rj.nnx.LSTM(3, 4, rngs=rngs), rngs=rngs)` (an rnnjax
  NNX module in place of `in_features` and `layer`) still works, but builds params for
  that module that are then not used.
  """

  layer_type = _layers.Bidirectional

  def __init__(self, in_features, *args, rngs: nnx.Rngs, deterministic: bool = False,
               **kwargs):
    if isinstance(in_features, RecurrentModule):   # Bidirectional(module, ...)
      args, in_features = (in_features.pure_layer, *args), in_features.in_features
    elif isinstance(in_features, nnx.Module):
      raise TypeError(
          "in_features must be the per-step input size (or shape), followed by the pure "
          "layer: rj.nnx.Bidirectional(in_features, rj.LSTM(64), rngs=rngs); got "
          f"{type(in_features).__name__}."
      )
    super().__init__(in_features, *map(_pure, args), rngs=rngs, deterministic=deterministic,
                     **{k: _pure(v) for k, v in kwargs.items()})


# The linear recurrences (tests/test_linear_layers.py runs them as modules); in_features
# is the inputs' feature size, as for the other layers (LRU's equals its units).
class MinGRU(LayerModule):
  """`rj.MinGRU` as a flax.nnx module: `(in_features, *MinGRU arguments, rngs=...)`."""
  layer_type = _layers.MinGRU


class MinLSTM(LayerModule):
  """`rj.MinLSTM` as a flax.nnx module: `(in_features, *MinLSTM arguments, rngs=...)`."""
  layer_type = _layers.MinLSTM


class LRU(LayerModule):
  """`rj.LRU` as a flax.nnx module: `(in_features, *LRU arguments, rngs=...)`."""
  layer_type = _layers.LRU


_BY_LAYER_TYPE: dict[type, type] = {cls.layer_type: cls for cls in (
    LSTM, GRU, SimpleRNN, RNN, ConvLSTM1D, ConvLSTM2D, ConvLSTM3D, Bidirectional, MinGRU,
    MinLSTM, LRU)}


def wrap(layer, in_features, *, rngs: nnx.Rngs, deterministic: bool = False) -> RecurrentModule:
  """The NNX module of an rnnjax layer instance, with the same configuration and fresh
  params: e.g. `wrap(rj.LSTM(128), 64, rngs=rngs)` is `rj.nnx.LSTM(64, 128, rngs=rngs)`;
  a layer of another class gives `RecurrentModule(layer, in_features, rngs=rngs)`."""
  _adapters.check_layer(layer, "layer", not_a=nnx.Module)
  cls = _BY_LAYER_TYPE.get(type(layer))
  if cls is None:
    return RecurrentModule(layer, in_features, rngs=rngs, deterministic=deterministic)
  return cls(in_features, **_adapters.layer_arguments(layer), rngs=rngs,
             deterministic=deterministic)


def reset_carry(model, where=None) -> None:
  """Zeroes the state of every stateful rnnjax layer in `model` (all rows, or rows where
  `where` (B,) bool is True), in place."""
  if not isinstance(model, nnx.Module):
    raise TypeError(f"model must be an nnx.Module, got {type(model).__name__}.")
  for _, module in nnx.iter_modules(model):
    if isinstance(module, RecurrentModule) and _adapters.is_stateful(module.pure_layer):
      module.reset_state(where)


__all__ = [
    "Bidirectional", "CellModule", "ConvLSTM1D", "ConvLSTM1DCell", "ConvLSTM2D", "LRU",
    "MinGRU", "MinLSTM",
    "ConvLSTM2DCell", "ConvLSTM3D", "ConvLSTM3DCell", "DROPOUT", "GRU", "GRUCell", "LSTM",
    "LSTMCell", "LayerModule", "RNN", "RNNCarry", "RecurrentCell", "RecurrentModule",
    "STEP", "SimpleRNN", "SimpleRNNCell", "reset_carry", "wrap",
]

