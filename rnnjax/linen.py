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

Stateful layers (`stateful=True`) keep their state, a tuple of (B, ...) arrays, in the
`"carry"` collection (variable `state`), zeros after `init`. A call continues from it,
returns what the layer returns without `stateful`, and stores the new state, so the
collection must be mutable: `out, updates = model.apply(variables, x,
mutable=["carry"])`, then `variables = {**variables, **updates}`. `reset_carry(variables,
where=None)` zeroes every stateful layer's state in a model (or only rows where `where`).
"""

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from . import _adapters
from .layers import GRU as _GRU
from .layers import Bidirectional as _Bidirectional
from .layers import ConvLSTM1D as _ConvLSTM1D
from .layers import ConvLSTM2D as _ConvLSTM2D
from .layers import ConvLSTM3D as _ConvLSTM3D
from .layers import LSTM as _LSTM
from .layers import RNN as _RNN
from .layers import SimpleRNN as _SimpleRNN

CARRY = "carry"
"""The collection that holds the states of stateful layers."""

DROPOUT = "dropout"
"""The rng stream that dropout masks are drawn from."""


class RecurrentModule(nn.Module):
  """Base of the rnnjax linen modules: builds the pure layer from the module's fields
  (`pure_layer`), keeps its params in `params` and its state in `carry`, and calls
  `pure_layer.apply`. Subclasses are made by `module_for(layer_type)`."""

  def __post_init__(self):
    for name in getattr(type(self), "_field_names", ()):
      value = getattr(self, name)
      if isinstance(value, list):  # the module must stay hashable (e.g. RNN([cells]))
        object.__setattr__(self, name, tuple(value))
    self.pure_layer  # noqa: B018 -- validates the arguments now, as the layer does
    super().__post_init__()

  @property
  def pure_layer(self):
    """The rnnjax layer (a frozen dataclass) that this module delegates to."""
    cls = type(self)
    return cls._layer_type(**{n: getattr(self, n) for n in cls._field_names})

  @nn.compact
  def __call__(self, inputs, initial_state=None, mask=None, training: bool = False,
               constants=None, *, reset=None, seq_lengths=None):
    """Runs the layer; see `rj.LSTM.apply` for the arguments and the result."""
    _adapters.check_training(training)
    layer = self.pure_layer
    params = self._params(layer, inputs)
    rng = self._dropout_rng(layer, training)
    extra = {k: v for k, v in (("reset", reset), ("seq_lengths", seq_lengths)) if v is not None}
    if not getattr(layer, "stateful", False):
      return layer.apply(params, inputs, initial_state, mask, training, rng, constants, **extra)

    has_state = self.has_variable(CARRY, "state")
    state = self.get_variable(CARRY, "state") if has_state else None
    out, new_state = layer.apply(params, inputs, initial_state, mask, training, rng, constants,
                                 state=state, **extra)
    if self.is_initializing():
      if not has_state:
        self.put_variable(CARRY, "state", _adapters.zero_rows(new_state))
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
    self.put_variable(CARRY, "state",
                      _adapters.zero_rows(self.get_variable(CARRY, "state"), where))

  # Helpers ------------------------------------------------------------------

  def _params(self, layer, inputs):
    full_spec = _adapters.param_spec(layer, inputs)
    spec = _adapters.to_named(full_spec)
    full = None
    missing = not all(self.has_variable("params", n) for n in spec)
    if missing and self.is_mutable_collection("params"):  # else linen says what is missing
      full = _adapters.to_named(layer.init(self.make_rng("params"), inputs))

    def init_entry(rng, name):
      del rng
      if full is not None:
        return full[name]
      # Only reached under linen's shape check of existing params (inside eval_shape).
      return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), spec[name])

    named = {n: self.param(n, init_entry, n) for n in spec}
    return _adapters.from_named(named, _adapters.layout(full_spec))

  def _dropout_rng(self, layer, training):
    if not training:
      return None
    needed = _adapters.needs_dropout_rng(layer)
    if needed is False:
      return None
    if self.has_rng(DROPOUT):
      return self.make_rng(DROPOUT)
    if needed:
      raise ValueError(
          f"{type(self).__name__} with dropout was called with training=True but no "
          f"{DROPOUT!r} rng: pass rngs={{{DROPOUT!r}: key}} to init/apply."
      )
    return None


def _signature_fields(layer_type):
  fields = _adapters.layer_fields(layer_type)
  for f in fields:
    if hasattr(nn.Module, f.name):
      raise TypeError(
          f"{layer_type.__name__} has a field {f.name!r} that flax.linen.Module reserves; "
          "it cannot be wrapped as a linen module field."
      )
  return fields


def module_for(layer_type, name: str | None = None, doc: str | None = None) -> type:
  """A `RecurrentModule` subclass whose fields are `layer_type`'s constructor fields
  (same names, defaults, and positional/keyword split), e.g. `module_for(rj.LSTM)`."""
  fields = _signature_fields(layer_type)
  namespace: dict[str, Any] = {
      "__annotations__": {},
      "__module__": __name__,
      "__doc__": doc or f"`{layer_type.__name__}` as a flax.linen module (see rnnjax.linen).",
      "_layer_type": layer_type,
      "_field_names": tuple(f.name for f in fields),
  }
  for f in fields:
    namespace["__annotations__"][f.name] = f.type
    if f.default is not dataclasses.MISSING:
      namespace[f.name] = dataclasses.field(default=f.default, kw_only=f.kw_only)
    elif f.default_factory is not dataclasses.MISSING:
      namespace[f.name] = dataclasses.field(default_factory=f.default_factory, kw_only=f.kw_only)
    elif f.kw_only:
      namespace[f.name] = dataclasses.field(kw_only=True)
  return type(name or layer_type.__name__, (RecurrentModule,), namespace)


def _doc(layer, example: str) -> str:
  return (
      f"`rj.{layer}` as a flax.linen module: the same arguments; params `kernel`, "
      f"`recurrent_kernel`, `bias` in the Keras layout (see rnnjax.linen).\n\n{example}"
  )


LSTM = module_for(_LSTM, doc=_doc("LSTM", """\
>>> import jax, jax.numpy as jnp, rnnjax as rj
>>> module = rj.linen.LSTM(4, return_state=True)
>>> x = jnp.ones((2, 5, 3))
>>> variables = module.init(jax.random.key(0), x)
>>> out, h, c = module.apply(variables, x)
>>> out.shape, c.shape
((2, 4), (2, 4))
"""))

GRU = module_for(_GRU, doc=_doc("GRU", """\
>>> import jax, jax.numpy as jnp, rnnjax as rj
>>> module = rj.linen.GRU(4, return_sequences=True)
>>> x = jnp.ones((2, 5, 3))
>>> module.apply(module.init(jax.random.key(0), x), x).shape
(2, 5, 4)
"""))

SimpleRNN = module_for(_SimpleRNN, doc=_doc("SimpleRNN", """\
>>> import jax, jax.numpy as jnp, rnnjax as rj
>>> module = rj.linen.SimpleRNN(4)
>>> x = jnp.ones((2, 5, 3))
>>> module.apply(module.init(jax.random.key(0), x), x).shape
(2, 4)
"""))

RNN = module_for(_RNN, doc="""\
`rj.RNN(cell)` as a flax.linen module, for any cell or list of cells. Params: the
cell's dict entries, or `cell_0`, `cell_1`, ... for a list of cells.

>>> import jax, jax.numpy as jnp, rnnjax as rj
>>> module = rj.linen.RNN([rj.LSTMCell(4), rj.GRUCell(6)])
>>> x = jnp.ones((2, 5, 3))
>>> variables = module.init(jax.random.key(0), x)
>>> sorted(variables["params"]), module.apply(variables, x).shape
(['cell_0', 'cell_1'], (2, 6))
""")


def _conv_doc(layer: str) -> str:
  return (
      f"`rj.{layer}` as a flax.linen module: the same arguments; params `kernel`, "
      f"`recurrent_kernel`, `bias` in the Keras layout (see rnnjax.linen)."
  )


ConvLSTM1D = module_for(_ConvLSTM1D, doc=_conv_doc("ConvLSTM1D"))
ConvLSTM2D = module_for(_ConvLSTM2D, doc=_conv_doc("ConvLSTM2D") + """\n\n>>> import jax, jax.numpy as jnp, rnnjax as rj
>>> module = rj.linen.ConvLSTM2D(4, 3, padding="same", return_sequences=True)
>>> x = jnp.ones((2, 5, 6, 6, 3))
>>> module.apply(module.init(jax.random.key(0), x), x).shape
(2, 5, 6, 6, 4)
""")
ConvLSTM3D = module_for(_ConvLSTM3D, doc=_conv_doc("ConvLSTM3D"))


class Bidirectional(RecurrentModule):
  """`rj.Bidirectional` as a flax.linen module, wrapping an rnnjax linen module:
  `rj.linen.Bidirectional(rj.linen.LSTM(64, return_sequences=True))`. As in Keras, the
  wrapped module only provides the configuration; the params are
  `forward/...` and `backward/...`, what `rj.Bidirectional.init` returns.
  """

  layer: Any
  merge_mode: Any = dataclasses.field(default="concat", kw_only=True)
  backward_layer: Any = dataclasses.field(default=None, kw_only=True)

  @property
  def pure_layer(self):
    for argument, value in (("layer", self.layer), ("backward_layer", self.backward_layer)):
      if value is not None and not isinstance(value, RecurrentModule):
        raise TypeError(
            f"{argument} must be an rnnjax linen module such as rj.linen.LSTM(64), got "
            f"{value!r}."
        )
    backward = None if self.backward_layer is None else self.backward_layer.pure_layer
    return _Bidirectional(self.layer.pure_layer, merge_mode=self.merge_mode, backward_layer=backward)


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


_BY_LAYER_TYPE = {_LSTM: LSTM, _GRU: GRU, _SimpleRNN: SimpleRNN, _RNN: RNN}


def wrap(layer, *, name: str | None = None) -> RecurrentModule:
  """The linen module of an rnnjax layer instance, with the same configuration: e.g.
  `wrap(rj.LSTM(64))` is `rj.linen.LSTM(64)`. Any layer dataclass works (its module
  class is made by `module_for` on first use)."""
  layer_type = type(layer)
  if (isinstance(layer, type) or not dataclasses.is_dataclass(layer) or isinstance(layer, nn.Module)
      or not callable(getattr(layer, "apply", None))):
    raise TypeError(f"layer must be an rnnjax layer such as rj.LSTM(64), got {layer!r}.")
  if layer_type not in _BY_LAYER_TYPE:
    _BY_LAYER_TYPE[layer_type] = module_for(layer_type)
  cls = _BY_LAYER_TYPE[layer_type]
  return cls(**{n: getattr(layer, n) for n in cls._field_names}, name=name)


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


__all__ = ["ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D", "CARRY", "DROPOUT", "GRU", "LSTM", "RNN", "Bidirectional", "RecurrentModule",
           "SimpleRNN", "module_for", "named_params", "pure_params", "reset_carry", "wrap"]
