"""The cell protocol that the engine runs.

A cell is a frozen dataclass of static configuration. Its parameters are a pytree
that `init` returns; its states are a tuple of arrays, batch first. Axis letters:
B batch, T time, F input features, U units, G gates x units.

Required (custom cells define these, as in Keras):

  state_size    an int (one state of shape (n,)), or a tuple with one entry per
                state: an int n for shape (n,), a tuple of ints for that shape.
  output_size   the same convention, for the per-step output.
  init(key, input_shape) -> params
                input_shape: per-example, per-step shape(s), a pytree of tuples.
  __call__(params, inputs, states, *, training=False, constants=None)
                -> (output, new_states); states a tuple, batch first.

Optional hooks, with defaults here (the built-in cells override them):

  project(params, inputs, *, dropout=None) -> projected
                time-parallel work hoisted out of the loop, done once over the whole
                time-major sequence (T, B, ...): for the built-in cells `x @ kernel + b`.
  step(params, projected_t, states, *, training, constants, dropout)
                -> (output, new_states): the part that must run in the loop.
  dropout_masks(key, batch_size, input_shape, dtype) -> masks or None
                drawn once per call (variational dropout) and handed to project/step.
  initial_state(batch_size, dtype, *, input_shape=None) -> tuple of zero states.
                input_shape: the per-step input shape(s), as for `init`. Optional: the
                layers pass it only to cells whose `initial_state` accepts an
                `input_shape` keyword (see `initial_state_of`), so custom cells written
                as `initial_state(batch_size, dtype)` keep working. Cells whose state
                shape depends on the inputs (ConvLSTM: the state has the spatial size of
                the input convolution's output) require it.
  accepts_constants  False for cells that take no `constants=` (the built-in dense
                cells); the layer then rejects constants before tracing.
  needs_rng     False by default. A cell that draws random numbers at every step (a
                sampling decoder, a stochastic cell) sets it to True and takes a key:
                `__call__(params, inputs, states, *, training=False, constants=None,
                rng=None)`, `rng` a fresh jax.random key for this step. The Flax cell
                modules give it: `rj.linen.RecurrentCell` / `rj.linen.LSTMCell` ... draw
                `self.make_rng(rng_stream)` ("step" by default) at every call, so
                `nn.RNN(cell, split_rngs={"params": False, "step": True})` gives each
                step its own key; the `rj.nnx` cell modules draw from a fork of their
                rngs' stream, which `nnx.RNN` advances at every step. The layers
                (`rj.RNN(cell)`) keep no randomness inside the time loop and do not pass
                `rng`: there, give per-step keys as part of the inputs, e.g. `(x,
                jax.random.key_data(jax.random.split(key, (B, T))))` ((B, T, 2)
                uint32), and `jax.random.wrap_key_data` them in `__call__`.
  validate_constants(params, constants, batch_size) -> None
                raises a clear error for constants this cell cannot use (the layer has
                already checked that every leaf is an array of shape (B, ...)).
  weight_penalty(params) -> scalar, constrain(params) -> params
                used by rj.regularization_loss / rj.apply_constraints instead of the
                Keras-named fields (kernel_regularizer, kernel_constraint, ...) that the
                built-in cells read for their kernel, recurrent_kernel and bias.
  map_weight_owners(fn, params) -> pytree
                `fn(owner, owner_params)` at every cell that owns weights, in the
                structure of `params`: here `fn(self, params)`; StackedRNNCells gives a
                tuple with one entry per cell. The layers define it too (a sequence
                layer defers to its cell, Bidirectional gives {"forward", "backward"}):
                rj.regularization_loss and rj.apply_constraints walk a layer with it.
  check_config() -> None
                no default. Validates the configuration fields, and normalises them
                with object.__setattr__ (ConvLSTM's tuples); a subclass extends it with
                `super().check_config()`. `Cell.__post_init__` runs it when a cell
                defines it (a cell with its own `__post_init__` calls
                `super().__post_init__()`), and the sequence layers run it as well, so a
                cell and the layer built on the same config class (rj.LSTMCell and
                rj.LSTM share LSTMConfig) check the same things. Config classes define
                no `__post_init__`.
"""

import dataclasses
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import jax
import jax.numpy as jnp

from ..types import DTypeLike, Key, Params, PyTree, ShapeTree, State


def state_shapes(state_size) -> tuple[tuple[int, ...], ...]:
  """Per-example state shapes from a Keras-style `state_size` of a single cell.

  >>> state_shapes(32)
  ((32,),)
  >>> state_shapes((10, (20, 30)))
  ((10,), (20, 30))
  """
  if isinstance(state_size, int):
    return ((state_size,),)
  if isinstance(state_size, (tuple, list)):
    return tuple((s,) if isinstance(s, int) else tuple(s) for s in state_size)
  raise TypeError(
      f"state_size must be an int or a tuple of ints / shape tuples, got {state_size!r}."
  )


@dataclasses.dataclass(frozen=True)
class Cell:
  """Base class of rnnjax cells; see the module docstring for the protocol."""

  accepts_constants: ClassVar[bool] = True
  needs_rng: ClassVar[bool] = False

  if TYPE_CHECKING:
    @property
    def state_size(self) -> Any:
      """Required: the state shapes (see the module docstring)."""

  def __post_init__(self) -> None:
    # The one validation hook of dataclass cells: config classes define `check_config`.
    check_config = getattr(self, "check_config", None)
    if check_config is not None:
      check_config()

  def map_weight_owners(self, fn: Callable[[Any, Params], Any], params: Params) -> Any:
    """`fn(self, params)`: a single cell owns all of its params."""
    return fn(self, params)

  def init(self, key: Key, input_shape: ShapeTree) -> Params:
    raise NotImplementedError(f"{type(self).__name__} must define init(key, input_shape).")

  def __call__(self, params: Params, inputs: Any, states: State, *, training: bool = False,
               constants: PyTree = None) -> tuple[Any, State]:
    raise NotImplementedError(
        f"{type(self).__name__} must define __call__(params, inputs, states, *, "
        "training=False, constants=None)."
    )

  def project(self, params: Params, inputs: Any, *, dropout: Any = None) -> Any:
    """Time-parallel part of the step, applied to the time-major sequence. Default: none."""
    del params, dropout
    return inputs

  def step(self, params: Params, projected: Any, states: State, *, training: bool = False,
           constants: PyTree = None, dropout: Any = None) -> tuple[Any, State]:
    """The per-step part, applied to one time step of `project`'s result."""
    kwargs = {} if dropout is None else {"dropout": dropout}
    return self(params, projected, states, training=training, constants=constants, **kwargs)

  def project_then_step(self, params: Params, inputs: Any, states: State, *,
                        training: bool = False, constants: PyTree = None,
                        dropout: Any = None) -> tuple[Any, State]:
    """A call of a cell that splits its step: `check_call(params, inputs, states)` when
    the cell has one, then `project`, then `step` (the built-in cells' `__call__`)."""
    check = getattr(self, "check_call", None)
    if check is not None:
      states = check(params, inputs, states)
    projected = self.project(params, inputs, dropout=dropout)
    return self.step(params, projected, states, training=training, constants=constants,
                     dropout=dropout)

  def dropout_masks(self, key: Key, batch_size: int, input_shape: ShapeTree,
                    dtype: DTypeLike) -> Any:
    """Variational dropout masks for one call; None when the cell uses no dropout."""
    del key, batch_size, input_shape, dtype
    return None

  def uses_dropout(self) -> bool:
    """True when `training=True` would draw dropout masks (and so needs an rng)."""
    return False

  def validate_inputs(self, params: Params, input_shape: ShapeTree) -> None:
    """Raises a clear error if `params` cannot take per-step `input_shape`. Default: no check."""
    del params, input_shape

  def validate_constants(self, params: Params, constants: PyTree, batch_size: int) -> None:
    """Raises a clear error if this cell cannot use `constants`. Default: no check."""
    del params, constants, batch_size

  def to_keras_weights(self, params: Params) -> list:
    """Params as Keras's `get_weights()` list. Custom cells define it to use rj.interop."""
    raise NotImplementedError(f"{type(self).__name__} does not define to_keras_weights.")

  def from_keras_weights(self, arrays: list) -> tuple[Params, list]:
    """(params, remaining arrays) from the head of a Keras weight list."""
    raise NotImplementedError(f"{type(self).__name__} does not define from_keras_weights.")

  def initial_state(self, batch_size: int, dtype: DTypeLike = jnp.float32, *,
                    input_shape: ShapeTree = None) -> State:
    """Zero states, one array per state, each `(batch_size, *shape)` from `state_size`
    (`input_shape` is not needed here)."""
    del input_shape
    return tuple(jnp.zeros((batch_size, *shape), dtype) for shape in state_shapes(self.state_size))


def step_output_shape(cell, input_shape, batch_size: int = 1):
  """Shape/dtype pytree of one step's output for per-step `input_shape`, traced abstractly."""

  def run():
    key = jax.random.key(0)
    params = cell.init(key, input_shape)
    x = jax.tree.map(lambda s: jnp.zeros((batch_size, *s)), input_shape, is_leaf=is_shape)
    return cell(params, x, initial_state_of(cell, batch_size, jnp.float32, input_shape))[0]

  return jax.eval_shape(run)


def accepts_input_shape(initial_state) -> bool:
  """True when a cell's `initial_state` method takes an `input_shape` keyword."""
  try:
    parameters = inspect.signature(initial_state).parameters.values()
  except (TypeError, ValueError):
    return False
  return any(p.name == "input_shape" and p.kind != p.POSITIONAL_ONLY or p.kind == p.VAR_KEYWORD
             for p in parameters)


def initial_state_of(cell, batch_size: int, dtype, input_shape=None):
  """`cell.initial_state(batch_size, dtype)`, with `input_shape=` when the cell accepts it."""
  if input_shape is not None and accepts_input_shape(cell.initial_state):
    return cell.initial_state(batch_size, dtype, input_shape=input_shape)
  return cell.initial_state(batch_size, dtype)


def is_shape(x) -> bool:
  """True for a shape tuple of ints (a leaf of an input_shape pytree)."""
  return isinstance(x, tuple) and all(isinstance(d, int) for d in x)
