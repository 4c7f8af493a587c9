"""`flax.linen` cell modules over the rnnjax cells: one step per call, for `nn.RNN`,
`nn.scan` and step-by-step decoders, with the cell's Keras-layout params.

A cell module is a `flax.linen.RNNCellBase`: `module(carry, inputs) -> (new_carry,
output)` and `module.initialize_carry(rng, input_shape)`, as Flax's own cells. Axis
letters: B batch (any number of leading axes), F features, U units.

- **Params** are what the rnnjax cell's `init` returns, one variable per key: for
  `LSTMCell(U)` `kernel` (F, 4U), `recurrent_kernel` (U, 4U), `bias` (4U,), equal in
  layout to `rj.LSTMCell(U).init(key, (F,))`, so `rj.interop` params load directly.
- **The carry** is the cell's state in the cell's own order, each (*B, *state shape):
  `(h, c)` for LSTMCell and the ConvLSTM cells (Flax's LSTMCell carries `(c, h)`); one
  array `h` for a cell with a single state (GRUCell, SimpleRNNCell), as Flax's GRUCell.
- **Dropout** (a cell built with `dropout` / `recurrent_dropout`): with `training=True`
  (a call argument, or the module's `training` field, which is what counts inside
  `nn.RNN`, since it calls the cell as `cell(carry, x)`), each call draws its masks from
  the `"dropout"` rng stream. Inside `nn.RNN`, the default
  `split_rngs={"params": False}` gives fresh masks at every step;
  `split_rngs={"params": False, "dropout": False}` reuses one set for the whole
  sequence, Keras's variational dropout.
- **A per-step key**: a cell with `needs_rng = True` (see the Cell protocol in
  `rnnjax.cells`) gets `rng=self.make_rng(rng_stream)` at every call ("step" by
  default), so `nn.RNN(..., split_rngs={"params": False, "step": True})` gives each
  step its own key.
"""

import functools
import inspect
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from . import _adapters
from .cells import ConvLSTM1DCell as _ConvLSTM1DCell
from .cells import ConvLSTM2DCell as _ConvLSTM2DCell
from .cells import ConvLSTM3DCell as _ConvLSTM3DCell
from .cells import GRUCell as _GRUCell
from .cells import LSTMCell as _LSTMCell
from .cells import SimpleRNNCell as _SimpleRNNCell

DROPOUT = "dropout"
STEP = "step"
"""The rng stream that a cell with `needs_rng` draws its per-step key from, by default."""


def declare_params(module: nn.Module, full_spec, init_full):
  """The params of a pure layer or cell as variables of `module` (one per top-level
  name, see `_adapters.to_named`): initialised from `init_full(key)` (the whole pytree,
  drawn once) when missing, else read. Returns the pure pytree."""
  spec = _adapters.to_named(full_spec)
  full = None
  missing = not all(module.has_variable("params", n) for n in spec)
  if missing and module.is_mutable_collection("params"):  # else linen says what is missing
    full = _adapters.to_named(init_full(module.make_rng("params")))

  def init_entry(rng, name):
    del rng
    if full is not None:
      return full[name]
    # Only reached under linen's shape check of existing params (inside eval_shape).
    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), spec[name])

  named = {n: module.param(n, init_entry, n) for n in spec}
  return _adapters.from_named(named, _adapters.layout(full_spec))


class RecurrentCell(nn.RNNCellBase):
  """Any rnnjax cell as a flax.linen cell module (see the module docstring).

  pure_cell: the rnnjax cell, e.g. `rj.LSTMCell(64)` or a cell of your own.
  rng_stream: the rng stream of the per-step key of a cell with `needs_rng`.
  training: the default of the call's `training` (dropout on), e.g. for `nn.RNN`.

  `__call__(carry, inputs, training=None, constants=None) -> (new_carry, output)`:
  inputs (*B, F) (ConvLSTM: (*B, *S, C)); `training` None: the field; `constants` go to
  cells that take them.

  >>> import jax, jax.numpy as jnp, flax.linen as nn, rnnjax as rj
  >>> cell = rj.linen.RecurrentCell(rj.GRUCell(4))
  >>> x = jnp.ones((2, 3))
  >>> carry = cell.initialize_carry(jax.random.key(0), x.shape)
  >>> variables = cell.init(jax.random.key(1), carry, x)
  >>> carry, y = cell.apply(variables, carry, x)
  >>> carry.shape, y.shape
  ((2, 4), (2, 4))
  """

  pure_cell: Any
  rng_stream: str = STEP
  training: bool = False

  def __post_init__(self):
    _adapters.check_cell(self.pure_cell, "pure_cell", not_a=nn.Module)
    super().__post_init__()

  @property
  def num_feature_axes(self) -> int:
    return _adapters.num_feature_axes(self.pure_cell)

  @nn.nowrap
  def initialize_carry(self, rng, input_shape):
    """Zeros (the carry a sequence starts from) for inputs of shape `input_shape`,
    (*B, F) (ConvLSTM: (*B, *S, C)); `rng` is unused (the start is zeros)."""
    del rng
    return _adapters.zero_carry(self.pure_cell, tuple(input_shape))

  @nn.compact
  def __call__(self, carry, inputs, training: bool | None = None, constants=None):
    """One step: `(new_carry, output)`, shapes as the module docstring says."""
    training = self.training if training is None else training
    _adapters.check_training(training)
    cell = self.pure_cell
    batch, step = _adapters.split_batch(cell, inputs)
    params = declare_params(self, _cell_spec(cell, step),
                            lambda key: cell.init(key, step))
    extra = {}
    if training and cell.uses_dropout():
      if not self.has_rng(DROPOUT):
        raise ValueError(
            f"{type(self).__name__} with dropout was called with training=True but no "
            f"{DROPOUT!r} rng: pass rngs={{{DROPOUT!r}: key}} to init/apply."
        )
      extra["dropout"] = cell.dropout_masks(self.make_rng(DROPOUT), _adapters.rows(batch),
                                            step, _adapters.float_dtype(inputs))
    if _adapters.needs_rng(cell):
      extra["rng"] = self.make_rng(self.rng_stream)
    return _adapters.cell_step(cell, params, carry, inputs, batch, training, constants, extra)


def _cell_spec(cell, step):
  """`jax.eval_shape` of `cell.init` for per-step shape(s) `step`, cached when hashable."""
  try:
    return _cached_spec(cell, step)
  except TypeError:   # an unhashable cell or step (a dict of shapes)
    return jax.eval_shape(lambda: cell.init(jax.random.key(0), step))


@functools.lru_cache(maxsize=256)
def _cached_spec(cell, step):
  return jax.eval_shape(lambda: cell.init(jax.random.key(0), step))


class CellModule(RecurrentCell):
  """A `RecurrentCell` built from the arguments of the class attribute `cell_type`;
  linen auto-names it after the subclass: `rj.linen.LSTMCell(64)` is
  `RecurrentCell(rj.LSTMCell(64))`, auto-named `LSTMCell_0`. A cell class of your own
  gets a named module the same way: `class MyCellModule(rj.linen.CellModule):
  cell_type = MyCell`."""

  cell_type: ClassVar[type]

  def __init_subclass__(cls, **kwargs):
    # As LayerModule: flax's dataclass __init__ would replace this one.
    cls.__init__ = CellModule.__init__
    super().__init_subclass__(**kwargs)
    cls.__signature__ = _adapters.signature(_adapters.layer_type_of(cls, "cell_type"), after=[
        inspect.Parameter("rng_stream", inspect.Parameter.KEYWORD_ONLY, default=STEP),
        inspect.Parameter("training", inspect.Parameter.KEYWORD_ONLY, default=False),
        inspect.Parameter("name", inspect.Parameter.KEYWORD_ONLY, default=None)])

  def __init__(self, *args, pure_cell=None, rng_stream: str = STEP, training: bool = False,
               **kwargs):
    """The cell's own arguments, plus `rng_stream`, `training` and the module's `name`."""
    module_kwargs = {k: kwargs.pop(k) for k in ("parent", "name") if k in kwargs}
    if pure_cell is None:
      pure_cell = type(self).cell_type(*args, **kwargs)
    elif args or kwargs:
      raise TypeError(
          f"{type(self).__name__} takes the cell's arguments or pure_cell=, not both; got "
          f"pure_cell= with {len(args)} positional argument(s) and keywords {sorted(kwargs)}."
      )
    RecurrentCell.__init__(self, pure_cell, rng_stream, training, **module_kwargs)


class SimpleRNNCell(CellModule):
  """`rj.SimpleRNNCell` as a flax.linen cell module; carry `h` (*B, U).

  >>> import jax, jax.numpy as jnp, flax.linen as nn, rnnjax as rj
  >>> model = nn.RNN(rj.linen.SimpleRNNCell(4))
  >>> x = jnp.ones((2, 5, 3))
  >>> model.apply(model.init(jax.random.key(0), x), x).shape
  (2, 5, 4)
  """

  cell_type = _SimpleRNNCell


class GRUCell(CellModule):
  """`rj.GRUCell` as a flax.linen cell module; carry `h` (*B, U).

  >>> import jax, jax.numpy as jnp, flax.linen as nn, rnnjax as rj
  >>> model = nn.RNN(rj.linen.GRUCell(4), return_carry=True)
  >>> x = jnp.ones((2, 5, 3))
  >>> h, y = model.apply(model.init(jax.random.key(0), x), x)
  >>> h.shape, y.shape
  ((2, 4), (2, 5, 4))
  """

  cell_type = _GRUCell


class LSTMCell(CellModule):
  """`rj.LSTMCell` as a flax.linen cell module; carry `(h, c)`, each (*B, U) (Flax's
  LSTMCell carries `(c, h)`). Params `kernel` (F, 4U), `recurrent_kernel` (U, 4U),
  `bias` (4U,), as `rj.LSTMCell(U).init` returns.

  >>> import jax, jax.numpy as jnp, flax.linen as nn, rnnjax as rj
  >>> model = nn.RNN(rj.linen.LSTMCell(4, initializers="flax"), return_carry=True)
  >>> x = jnp.ones((2, 5, 3))
  >>> variables = model.init(jax.random.key(0), x)
  >>> jax.tree.map(jnp.shape, variables["params"]["cell"])
  {'bias': (16,), 'kernel': (3, 16), 'recurrent_kernel': (4, 16)}
  >>> (h, c), y = model.apply(variables, x)
  >>> bool(jnp.allclose(h, y[:, -1]))
  True
  """

  cell_type = _LSTMCell


class ConvLSTM1DCell(CellModule):
  """`rj.ConvLSTM1DCell` as a flax.linen cell module: inputs (*B, W, C), carry `(h, c)`.

  >>> import jax, jax.numpy as jnp, flax.linen as nn, rnnjax as rj
  >>> model = nn.RNN(rj.linen.ConvLSTM1DCell(4, 3, padding="same"))
  >>> x = jnp.ones((2, 5, 6, 3))
  >>> model.apply(model.init(jax.random.key(0), x), x).shape
  (2, 5, 6, 4)
  """

  cell_type = _ConvLSTM1DCell


class ConvLSTM2DCell(CellModule):
  """`rj.ConvLSTM2DCell` as a flax.linen cell module: inputs (*B, H, W, C), carry `(h, c)`.

  >>> import jax, jax.numpy as jnp, flax.linen as nn, rnnjax as rj
  >>> model = nn.RNN(rj.linen.ConvLSTM2DCell(4, 3, padding="same"))
  >>> x = jnp.ones((2, 5, 6, 6, 3))
  >>> model.apply(model.init(jax.random.key(0), x), x).shape
  (2, 5, 6, 6, 4)
  """

  cell_type = _ConvLSTM2DCell


class ConvLSTM3DCell(CellModule):
  """`rj.ConvLSTM3DCell` as a flax.linen cell module: inputs (*B, D, H, W, C), carry
  `(h, c)`.

  >>> import jax, jax.numpy as jnp, flax.linen as nn, rnnjax as rj
  >>> model = nn.RNN(rj.linen.ConvLSTM3DCell(2, 3, padding="same"))
  >>> x = jnp.ones((1, 3, 4, 4, 4, 2))
  >>> model.apply(model.init(jax.random.key(0), x), x).shape
  (1, 3, 4, 4, 4, 2)
  """

  cell_type = _ConvLSTM3DCell


CELL_NAMES = ["CellModule", "ConvLSTM1DCell", "ConvLSTM2DCell", "ConvLSTM3DCell", "GRUCell",
              "LSTMCell", "RecurrentCell", "SimpleRNNCell"]
