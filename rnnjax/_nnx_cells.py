"""`flax.nnx` cell modules over the rnnjax cells: one step per call, for `nnx.RNN`,
`nnx.scan` and step-by-step decoders, with the cell's Keras-layout params as
`nnx.Param` attributes.

A cell module is an `nnx.RNNCellBase`: `module(carry, inputs) -> (new_carry, output)`
and `module.initialize_carry(input_shape)`. Axis letters: B batch (any number of
leading axes), F features, U units.

- **Params**: the rnnjax cell's `init` dict as attributes (`kernel`,
  `recurrent_kernel`, `bias`); `model.pure_params()` is what `cell.init` returns.
- **The carry**: the cell's state in its own order, each (*B, *state shape): `(h, c)`
  for LSTMCell and ConvLSTM (Flax's LSTMCell carries `(c, h)`), one array `h` for GRU
  and SimpleRNN.
- **Dropout**: as `nnx.Dropout`, from a fork of the `"dropout"` stream (or the default
  one), on while `not deterministic` (`model.eval()` turns it off); masks are drawn at
  every call, so each step of `nnx.RNN` gets its own.
- **A per-step key**: a cell with `needs_rng = True` (the Cell protocol) gets `rng=` at
  every call from a fork of the `rng_stream` stream ("step", or the default one); the
  stream is part of the module's state, so `nnx.RNN` advances it at each step.
"""

import inspect
from typing import ClassVar

import jax
from flax import nnx

from . import _adapters
from . import _validation as _checks
from .cells import ConvLSTM1DCell as _ConvLSTM1DCell
from .cells import ConvLSTM2DCell as _ConvLSTM2DCell
from .cells import ConvLSTM3DCell as _ConvLSTM3DCell
from .cells import GRUCell as _GRUCell
from .cells import LSTMCell as _LSTMCell
from .cells import SimpleRNNCell as _SimpleRNNCell

DROPOUT = "dropout"
STEP = "step"


def is_variable(x) -> bool:
  return isinstance(x, nnx.Variable)


def as_params(tree):
  """A params entry as nnx.Params (an array, or a pytree of them)."""
  if is_variable(tree):
    return tree
  if hasattr(tree, "shape") and hasattr(tree, "dtype"):
    return nnx.Param(tree)
  return nnx.data(jax.tree.map(nnx.Param, tree))


def set_params(module, params, owner: str) -> tuple:
  """Sets `params` (a pure pytree) as attributes of `module`; returns (layout, names)."""
  named = _adapters.to_named(params)
  for name, value in named.items():
    if hasattr(module, name) or name in ("rngs", "carry", "step_rngs"):
      raise ValueError(
          f"{owner}'s params have an entry {name!r}, which is also an attribute of the NNX "
          f"module; rename that parameter in the cell."
      )
    setattr(module, name, as_params(value))
  return _adapters.layout(params), tuple(named)


def get_params(module, layout, names):
  """The pure pytree of the attributes that `set_params` set (current values)."""
  named = {n: jax.tree.map(lambda v: v[...], getattr(module, n), is_leaf=is_variable)
           for n in names}
  return _adapters.from_named(named, layout)


def fork(rngs: nnx.Rngs, stream: str, owner: str, why: str):
  """A fork of `rngs`' `stream` (nnx falls back to the default stream)."""
  try:
    return rngs[stream].fork()
  except (KeyError, AttributeError):
    raise ValueError(
        f"{owner} {why}, so rngs needs a {stream!r} (or 'default') stream, e.g. "
        f"nnx.Rngs(0) or nnx.Rngs(params=0, {stream}=1); got {rngs!r}."
    ) from None


def draw(source, stream: str, owner: str):
  """A key from `source`: an nnx.Rngs (its `stream`), an nnx.RngStream or a key."""
  if isinstance(source, nnx.Rngs):
    return source[stream]()
  if isinstance(source, nnx.RngStream):
    return source()
  if isinstance(source, jax.Array):
    return source
  raise TypeError(
      f"{owner} needs a {stream!r} key: rngs must be an nnx.Rngs, nnx.RngStream or "
      f"jax.random key, got {source!r}."
  )


class RecurrentCell(nnx.RNNCellBase):
  """Any rnnjax cell as an NNX cell module (see the module docstring).

  cell: the rnnjax cell, e.g. `rj.LSTMCell(64)` or a cell of your own.
  in_features: per-step input size F, or the per-step shape (ConvLSTM: (*S, C)).
  rngs: `nnx.Rngs`; params from `rngs.params()`.
  rng_stream: the stream of the per-step key of a cell with `needs_rng`.
  deterministic: the default of `training` is `not deterministic`.

  `__call__(carry, inputs, *, training=None, constants=None, rngs=None)` ->
  `(new_carry, output)`; `rngs` (an nnx.Rngs, RngStream or key) replaces the kept
  streams for this call.

  >>> import jax.numpy as jnp, flax.nnx as nnx, rnnjax as rj
  >>> cell = rj.nnx.RecurrentCell(rj.GRUCell(4), 3, rngs=nnx.Rngs(0))
  >>> carry = cell.initialize_carry((2, 3))
  >>> carry, y = cell(carry, jnp.ones((2, 3)))
  >>> carry.shape, cell.kernel.shape
  ((2, 4), (3, 12))
  """

  def __init__(self, cell, in_features, *, rngs: nnx.Rngs, rng_stream: str = STEP,
               deterministic: bool = False):
    _adapters.check_cell(cell, "cell", not_a=nnx.Module)
    if not isinstance(rngs, nnx.Rngs):
      raise TypeError(f"rngs must be an nnx.Rngs (e.g. nnx.Rngs(0)), got {rngs!r}.")
    if not isinstance(rng_stream, str):
      raise TypeError(f"rng_stream must be a str, got {_checks.describe(rng_stream)}.")
    _checks.check_bool(deterministic, "deterministic")
    step = _adapters.step_shape(in_features)
    self.in_features = in_features
    self.pure_cell = cell
    self.deterministic = deterministic
    self.rng_stream = rng_stream
    self._layout, self._param_names = set_params(self, cell.init(rngs.params(), step),
                                                 type(cell).__name__)
    owner = type(cell).__name__
    self.rngs = (fork(rngs, DROPOUT, owner, "uses dropout") if cell.uses_dropout()
                 else nnx.data(None))
    self.step_rngs = (fork(rngs, rng_stream, owner, "takes a per-step key (needs_rng)")
                      if _adapters.needs_rng(cell) else nnx.data(None))

  @property
  def num_feature_axes(self) -> int:
    return _adapters.num_feature_axes(self.pure_cell)

  def pure_params(self):
    """The params pytree that `pure_cell.init` would return (current values)."""
    return get_params(self, self._layout, self._param_names)

  def initialize_carry(self, input_shape, rngs=None, carry_init=None):
    """Zeros for inputs of shape `input_shape` (*B, F) (ConvLSTM: (*B, *S, C)); `rngs`
    is unused (the start is zeros), `carry_init` is not supported (None)."""
    del rngs
    if carry_init is not None:
      raise ValueError("carry_init is not supported: the carry starts at zeros; pass "
                       "the carry you want to the call instead.")
    return _adapters.zero_carry(self.pure_cell, tuple(input_shape))

  def __call__(self, carry, inputs, *, training: bool | None = None, constants=None,
               rngs=None):
    """One step: `(new_carry, output)`."""
    if training is None:
      training = not self.deterministic
    _adapters.check_training(training)
    cell = self.pure_cell
    batch, step = _adapters.split_batch(cell, inputs)
    owner = type(self).__name__
    extra = {}
    if training and cell.uses_dropout():
      key = draw(self.rngs if rngs is None else rngs, DROPOUT, owner)
      extra["dropout"] = cell.dropout_masks(key, _adapters.rows(batch), step,
                                            _adapters.float_dtype(inputs))
    if _adapters.needs_rng(cell):
      extra["rng"] = draw(self.step_rngs if rngs is None else rngs, self.rng_stream, owner)
    return _adapters.cell_step(cell, self.pure_params(), carry, inputs, batch, training,
                               constants, extra)

  def set_view(self, deterministic: bool | None = None):
    """For `nnx.view(model, deterministic=...)`."""
    if deterministic is not None:
      self.deterministic = deterministic


_P = inspect.Parameter


class CellModule(RecurrentCell):
  """A `RecurrentCell` built from `in_features`, the arguments of the class attribute
  `cell_type`, and `rngs`: `rj.nnx.LSTMCell(3, 64, rngs=rngs)` is
  `RecurrentCell(rj.LSTMCell(64), 3, rngs=rngs)` as an `rj.nnx.LSTMCell`."""

  cell_type: ClassVar[type]

  def __init_subclass__(cls, **kwargs):
    super().__init_subclass__(**kwargs)
    cls.__signature__ = _adapters.signature(
        _adapters.layer_type_of(cls, "cell_type"), before=[_P("in_features", _P.POSITIONAL_OR_KEYWORD)],
        after=[_P("rngs", _P.KEYWORD_ONLY), _P("rng_stream", _P.KEYWORD_ONLY, default=STEP),
               _P("deterministic", _P.KEYWORD_ONLY, default=False)])

  def __init__(self, in_features, *args, rngs: nnx.Rngs, rng_stream: str = STEP,
               deterministic: bool = False, **kwargs):
    super().__init__(type(self).cell_type(*args, **kwargs), in_features, rngs=rngs,
                     rng_stream=rng_stream, deterministic=deterministic)


class SimpleRNNCell(CellModule):
  """`rj.SimpleRNNCell` as an NNX cell module: `(in_features, units, ..., rngs=...)`.

  >>> import jax.numpy as jnp, flax.nnx as nnx, rnnjax as rj
  >>> model = nnx.RNN(rj.nnx.SimpleRNNCell(3, 4, rngs=nnx.Rngs(0)))
  >>> model(jnp.ones((2, 5, 3))).shape
  (2, 5, 4)
  """

  cell_type = _SimpleRNNCell


class GRUCell(CellModule):
  """`rj.GRUCell` as an NNX cell module: `(in_features, units, ..., rngs=...)`.

  >>> import jax.numpy as jnp, flax.nnx as nnx, rnnjax as rj
  >>> model = nnx.RNN(rj.nnx.GRUCell(3, 4, rngs=nnx.Rngs(0)), return_carry=True)
  >>> h, y = model(jnp.ones((2, 5, 3)))
  >>> h.shape, y.shape
  ((2, 4), (2, 5, 4))
  """

  cell_type = _GRUCell


class LSTMCell(CellModule):
  """`rj.LSTMCell` as an NNX cell module: `(in_features, units, ..., rngs=...)`; carry
  `(h, c)`; params `kernel` (F, 4U), `recurrent_kernel` (U, 4U), `bias` (4U,).

  >>> import jax.numpy as jnp, flax.nnx as nnx, rnnjax as rj
  >>> cell = rj.nnx.LSTMCell(3, 4, initializers="flax", rngs=nnx.Rngs(0))
  >>> carry = cell.initialize_carry((2, 3))
  >>> (h, c), y = cell(carry, jnp.ones((2, 3)))   # one decoder step
  >>> h.shape, cell.recurrent_kernel.shape
  ((2, 4), (4, 16))
  """

  cell_type = _LSTMCell


class ConvLSTM1DCell(CellModule):
  """`rj.ConvLSTM1DCell` as an NNX cell module; `in_features` the per-step shape (W, C).

  >>> import jax.numpy as jnp, flax.nnx as nnx, rnnjax as rj
  >>> model = nnx.RNN(rj.nnx.ConvLSTM1DCell((6, 3), 4, 3, padding="same", rngs=nnx.Rngs(0)))
  >>> model(jnp.ones((2, 5, 6, 3))).shape
  (2, 5, 6, 4)
  """

  cell_type = _ConvLSTM1DCell


class ConvLSTM2DCell(CellModule):
  """`rj.ConvLSTM2DCell` as an NNX cell module; `in_features` the per-step shape (H, W, C).

  >>> import jax.numpy as jnp, flax.nnx as nnx, rnnjax as rj
  >>> cell = rj.nnx.ConvLSTM2DCell((6, 6, 3), 4, 3, padding="same", rngs=nnx.Rngs(0))
  >>> (h, c), y = cell(cell.initialize_carry((2, 6, 6, 3)), jnp.ones((2, 6, 6, 3)))
  >>> h.shape
  (2, 6, 6, 4)
  """

  cell_type = _ConvLSTM2DCell


class ConvLSTM3DCell(CellModule):
  """`rj.ConvLSTM3DCell` as an NNX cell module; `in_features` the per-step shape
  (D, H, W, C).

  >>> import jax.numpy as jnp, flax.nnx as nnx, rnnjax as rj
  >>> cell = rj.nnx.ConvLSTM3DCell((4, 4, 4, 2), 2, 3, padding="same", rngs=nnx.Rngs(0))
  >>> (h, c), y = cell(cell.initialize_carry((1, 4, 4, 4, 2)), jnp.ones((1, 4, 4, 4, 2)))
  >>> y.shape
  (1, 4, 4, 4, 2)
  """

  cell_type = _ConvLSTM3DCell


CELL_NAMES = ["CellModule", "ConvLSTM1DCell", "ConvLSTM2DCell", "ConvLSTM3DCell", "GRUCell",
              "LSTMCell", "RecurrentCell", "SimpleRNNCell"]
