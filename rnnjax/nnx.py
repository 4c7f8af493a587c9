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

import dataclasses
import inspect
from typing import ClassVar

import jax
import jax.numpy as jnp
from flax import nnx

from . import _adapters
from .layers import GRU as _GRU
from .layers import Bidirectional as _Bidirectional
from .layers import ConvLSTM1D as _ConvLSTM1D
from .layers import ConvLSTM2D as _ConvLSTM2D
from .layers import ConvLSTM3D as _ConvLSTM3D
from .layers import LSTM as _LSTM
from .layers import RNN as _RNN
from .layers import SimpleRNN as _SimpleRNN

DROPOUT = "dropout"
"""The rng stream that dropout masks are drawn from."""


class RNNCarry(nnx.Variable):
  """The carried state of a stateful rnnjax layer: a tuple of (B, ...) arrays, or None
  before the first call. Filter with `RNNCarry` (e.g. `nnx.state(model, rj.nnx.RNNCarry)`)."""


def _is_variable(x) -> bool:
  return isinstance(x, nnx.Variable)


def _as_params(tree):
  if _is_variable(tree):
    return tree
  if hasattr(tree, "shape") and hasattr(tree, "dtype"):
    return nnx.Param(tree)
  return nnx.data(jax.tree.map(nnx.Param, tree))


class RecurrentModule(nnx.Module):
  """Base of the rnnjax NNX modules: owns the pure layer (`pure_layer`, static), its
  params as `nnx.Param`s, a dropout rng stream and the carried state. Subclasses are
  made by `module_for(layer_type)`."""

  _layer_type: ClassVar[type]

  def __init__(self, in_features, *args, rngs: nnx.Rngs, deterministic: bool = False,
               **kwargs):
    self._build(in_features, type(self)._layer_type(*args, **kwargs), rngs, deterministic)

  def _build(self, in_features, layer, rngs, deterministic):
    if not isinstance(rngs, nnx.Rngs):
      raise TypeError(f"rngs must be an nnx.Rngs (e.g. nnx.Rngs(0)), got {rngs!r}.")
    if not isinstance(deterministic, bool):
      raise TypeError(f"deterministic must be a bool, got {deterministic!r}.")
    shape = _adapters.step_shape(in_features)
    params = layer.init(rngs.params(), _adapters.abstract_inputs(shape))
    self.in_features = in_features
    self.pure_layer = layer
    self.deterministic = deterministic
    self._layout = _adapters.layout(params)
    self._param_names = tuple(_adapters.to_named(params))
    for name, value in _adapters.to_named(params).items():
      if hasattr(self, name) or name in ("rngs", "carry"):
        raise ValueError(
            f"{type(layer).__name__}'s params have an entry {name!r}, which is also an "
            f"attribute of the NNX module; rename that parameter in the cell."
        )
      setattr(self, name, _as_params(value))
    if _adapters.needs_dropout_rng(layer) is False:
      self.rngs = nnx.data(None)
    else:
      try:
        self.rngs = rngs[DROPOUT].fork()
      except (KeyError, AttributeError):
        raise ValueError(
            f"{type(layer).__name__} uses dropout, so rngs needs a {DROPOUT!r} (or 'default') "
            f"stream, e.g. nnx.Rngs(0) or nnx.Rngs(params=0, dropout=1); got {rngs!r}."
        ) from None
    if getattr(layer, "stateful", False):
      self.carry = RNNCarry(None)

  def pure_params(self):
    """The params pytree that `pure_layer.init` would return (current values)."""
    named = {
        n: jax.tree.map(lambda v: v[...], getattr(self, n), is_leaf=_is_variable)
        for n in self._param_names
    }
    return _adapters.from_named(named, self._layout)

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
    rng = self._dropout_rng(layer, training, rngs)
    extra = {k: v for k, v in (("reset", reset), ("seq_lengths", seq_lengths)) if v is not None}
    params = self.pure_params()
    if not getattr(layer, "stateful", False):
      return layer.apply(params, inputs, initial_state, mask, training, rng, constants, **extra)
    out, new_state = layer.apply(params, inputs, initial_state, mask, training, rng, constants,
                                 state=self.carry.get_value(), **extra)
    self.carry.set_value(new_state)
    return out

  def initialize_carry(self, batch_size: int, dtype=jnp.float32) -> None:
    """Sets the carried state to zeros for `batch_size` rows, as a first call on inputs
    of `dtype` would start from (e.g. before restoring a checkpoint into the model)."""
    layer = self.pure_layer
    if not getattr(layer, "stateful", False):
      raise ValueError(f"{type(self).__name__} is not stateful: it has no state to initialize.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
      raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
    inputs = jax.tree.map(lambda s: jax.ShapeDtypeStruct((batch_size, 1, *s), dtype),
                          _adapters.step_shape(self.in_features), is_leaf=_adapters.is_shape)
    if layer.time_major:
      inputs = jax.tree.map(lambda a: jax.ShapeDtypeStruct((1, batch_size, *a.shape[2:]), dtype),
                            inputs)
    _, state = jax.eval_shape(lambda p, x: layer.apply(p, x), self.pure_params(), inputs)
    self.carry.set_value(jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), state))

  def reset_state(self, where=None) -> None:
    """Zeroes the carried state: every row, or rows where `where` (B,) bool is True."""
    if not getattr(self.pure_layer, "stateful", False):
      raise ValueError(f"{type(self).__name__} is not stateful: it has no state to reset.")
    state = self.carry.get_value()
    if state is not None:
      self.carry.set_value(_adapters.zero_rows(state, where))

  def set_view(self, deterministic: bool | None = None):
    """For `nnx.view(model, deterministic=...)`."""
    if deterministic is not None:
      self.deterministic = deterministic

  def _dropout_rng(self, layer, training, rngs):
    if not training:
      return None
    needed = _adapters.needs_dropout_rng(layer)
    if needed is False:
      return None
    source = self.rngs if rngs is None else rngs
    if isinstance(source, nnx.Rngs):
      return source[DROPOUT]()
    if isinstance(source, nnx.RngStream):
      return source()
    if isinstance(source, jax.Array):
      return source
    if source is None and not needed:
      return None
    raise TypeError(
        f"{type(self).__name__} with dropout called with training=True needs a dropout rng: "
        f"rngs must be an nnx.Rngs, nnx.RngStream or jax.random key, got {source!r}."
    )


def _signature(layer_type) -> inspect.Signature:
  P = inspect.Parameter
  layer_params = [p for p in inspect.signature(layer_type).parameters.values()
                  if p.name != "name"]
  positional = [p for p in layer_params if p.kind is not P.KEYWORD_ONLY]
  keyword = [p for p in layer_params if p.kind is P.KEYWORD_ONLY]
  return inspect.Signature(
      [P("in_features", P.POSITIONAL_OR_KEYWORD), *positional, *keyword,
       P("rngs", P.KEYWORD_ONLY), P("deterministic", P.KEYWORD_ONLY, default=False)])


def module_for(layer_type, name: str | None = None, doc: str | None = None) -> type:
  """A `RecurrentModule` subclass taking `(in_features, *layer arguments, rngs=...)`,
  e.g. `module_for(rj.LSTM)`."""
  cls = type(name or layer_type.__name__, (RecurrentModule,), {
      "__module__": __name__,
      "__doc__": doc or f"`{layer_type.__name__}` as a flax.nnx module (see rnnjax.nnx).",
      "_layer_type": layer_type,
  })
  cls.__signature__ = _signature(layer_type)
  return cls


def _doc(layer, example: str) -> str:
  return (
      f"`rj.{layer}` as a flax.nnx module: `(in_features, *{layer} arguments, rngs=...)`; "
      f"params `kernel`, `recurrent_kernel`, `bias` in the Keras layout (see rnnjax.nnx)."
      f"\n\n{example}"
  )


LSTM = module_for(_LSTM, doc=_doc("LSTM", """\
>>> import jax.numpy as jnp, rnnjax as rj
>>> from flax import nnx
>>> model = rj.nnx.LSTM(3, 4, return_state=True, rngs=nnx.Rngs(0))
>>> out, h, c = model(jnp.ones((2, 5, 3)))
>>> out.shape, c.shape
((2, 4), (2, 4))
"""))

GRU = module_for(_GRU, doc=_doc("GRU", """\
>>> import jax.numpy as jnp, rnnjax as rj
>>> from flax import nnx
>>> model = rj.nnx.GRU(3, 4, stateful=True, rngs=nnx.Rngs(0))
>>> model(jnp.ones((2, 5, 3))).shape, model.carry.get_value()[0].shape
((2, 4), (2, 4))
"""))

SimpleRNN = module_for(_SimpleRNN, doc=_doc("SimpleRNN", """\
>>> import jax.numpy as jnp, rnnjax as rj
>>> from flax import nnx
>>> rj.nnx.SimpleRNN(3, 4, rngs=nnx.Rngs(0))(jnp.ones((2, 5, 3))).shape
(2, 4)
"""))

RNN = module_for(_RNN, doc="""\
`rj.RNN(cell)` as a flax.nnx module: `RNN(in_features, cell, ..., rngs=...)`, where
`in_features` is F, a per-step shape tuple, or a pytree of them (nested inputs).

>>> import jax.numpy as jnp, rnnjax as rj
>>> from flax import nnx
>>> model = rj.nnx.RNN(3, [rj.LSTMCell(4), rj.GRUCell(6)], rngs=nnx.Rngs(0))
>>> model.cell_0["kernel"].shape, model(jnp.ones((2, 5, 3))).shape
((3, 16), (2, 6))
""")


def _conv_doc(layer: str) -> str:
  return (
      f"`rj.{layer}` as a flax.nnx module: the same arguments; params `kernel`, "
      f"`recurrent_kernel`, `bias` in the Keras layout (see rnnjax.nnx)."
  )


ConvLSTM1D = module_for(_ConvLSTM1D, doc=_conv_doc("ConvLSTM1D"))
ConvLSTM2D = module_for(_ConvLSTM2D, doc=_conv_doc("ConvLSTM2D") + """\n\n>>> import jax, jax.numpy as jnp, flax.nnx as nnx, rnnjax as rj
>>> module = rj.nnx.ConvLSTM2D((6, 6, 3), 4, 3, padding="same", rngs=nnx.Rngs(0))
>>> module(jnp.ones((2, 5, 6, 6, 3))).shape
(2, 6, 6, 4)
""")
ConvLSTM3D = module_for(_ConvLSTM3D, doc=_conv_doc("ConvLSTM3D"))


class Bidirectional(RecurrentModule):
  """`rj.Bidirectional` as a flax.nnx module, wrapping an rnnjax NNX module:
  `rj.nnx.Bidirectional(rj.nnx.LSTM(10, 64, return_sequences=True, rngs=rngs),
  rngs=rngs)`. As in Keras, the wrapped module only provides the configuration (and
  `in_features`); fresh params are made for both directions, attributes `forward` and
  `backward`, what `rj.Bidirectional.init` returns.
  """

  def __init__(self, layer, *, merge_mode="concat", backward_layer=None, rngs: nnx.Rngs,
               deterministic: bool = False):
    for argument, value in (("layer", layer), ("backward_layer", backward_layer)):
      if value is not None and not isinstance(value, RecurrentModule):
        raise TypeError(
            f"{argument} must be an rnnjax NNX module such as rj.nnx.LSTM(10, 64, rngs=rngs), "
            f"got {value!r}."
        )
    backward = None if backward_layer is None else backward_layer.pure_layer
    bidirectional = _Bidirectional(layer.pure_layer, merge_mode=merge_mode, backward_layer=backward)
    self._build(layer.in_features, bidirectional, rngs, deterministic)


_BY_LAYER_TYPE = {_LSTM: LSTM, _GRU: GRU, _SimpleRNN: SimpleRNN, _RNN: RNN}


def wrap(layer, in_features, *, rngs: nnx.Rngs, deterministic: bool = False) -> RecurrentModule:
  """The NNX module of an rnnjax layer instance, with the same configuration and fresh
  params: e.g. `wrap(rj.LSTM(128), 64, rngs=rngs)` is `rj.nnx.LSTM(64, 128, rngs=rngs)`.
  Any layer dataclass works (its module class is made by `module_for` on first use)."""
  layer_type = type(layer)
  if (isinstance(layer, type) or not dataclasses.is_dataclass(layer)
      or isinstance(layer, nnx.Module) or not callable(getattr(layer, "apply", None))):
    raise TypeError(f"layer must be an rnnjax layer such as rj.LSTM(64), got {layer!r}.")
  if layer_type not in _BY_LAYER_TYPE:
    _BY_LAYER_TYPE[layer_type] = module_for(layer_type)
  kwargs = {f.name: getattr(layer, f.name) for f in _adapters.layer_fields(layer_type)}
  return _BY_LAYER_TYPE[layer_type](in_features, **kwargs, rngs=rngs, deterministic=deterministic)


def reset_carry(model, where=None) -> None:
  """Zeroes the state of every stateful rnnjax layer in `model` (all rows, or rows where
  `where` (B,) bool is True), in place."""
  if not isinstance(model, nnx.Module):
    raise TypeError(f"model must be an nnx.Module, got {type(model).__name__}.")
  for _, module in nnx.iter_modules(model):
    if isinstance(module, RecurrentModule) and getattr(module.pure_layer, "stateful", False):
      module.reset_state(where)


__all__ = ["ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D", "DROPOUT", "GRU", "LSTM", "RNN", "Bidirectional", "RNNCarry", "RecurrentModule",
           "SimpleRNN", "module_for", "reset_carry", "wrap"]
