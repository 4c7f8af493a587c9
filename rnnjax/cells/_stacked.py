"""StackedRNNCells: several cells run as one, each feeding the next (Keras semantics)."""

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from .._validation import describe
from ..types import DTypeLike, Key, Params, PyTree, ShapeTree, State
from ._base import Cell, initial_state_of, step_output_shape


def _next_input_shape(cell, input_shape):
  """Per-example, per-step shape of `cell`'s output: the next cell's input shape.

  An int `output_size` means (output_size,) (Keras reads output_size the same way; it
  also serves cells that need constants to run); otherwise one step is traced abstractly.
  """
  size = getattr(cell, "output_size", None)
  if isinstance(size, int) and not isinstance(size, bool):
    return (size,)
  return jax.tree.map(lambda a: tuple(a.shape[1:]), step_output_shape(cell, input_shape))


@dataclasses.dataclass(frozen=True, init=False)
class StackedRNNCells(Cell):
  """Runs `cells` in order at each step; the output is the last cell's output.

  Params: a tuple with each cell's params. States: a tuple with each cell's state
  tuple, e.g. `((h1, c1), (h2,))` for `[LSTMCell, GRUCell]`, as Keras nests them.
  The first cell's input projection is hoisted out of the time loop like a single cell's.

  >>> import jax, jax.numpy as jnp, rnnjax as rj
  >>> cell = rj.StackedRNNCells([rj.LSTMCell(4), rj.GRUCell(6)])
  >>> params = cell.init(jax.random.key(0), (3,))
  >>> out, states = cell(params, jnp.ones((2, 3)), cell.initial_state(2))
  >>> out.shape, [len(s) for s in states]
  ((2, 6), [2, 1])
  """

  cells: tuple

  def __init__(self, cells: Sequence[Cell]) -> None:
    if isinstance(cells, Cell) or not isinstance(cells, (list, tuple)):
      raise TypeError(f"cells must be a list or tuple of cells, got {cells!r}.")
    if not cells:
      raise ValueError("cells must hold at least one cell, got an empty sequence.")
    for i, cell in enumerate(cells):
      if not isinstance(cell, Cell):
        raise TypeError(f"cells[{i}] must be an rnnjax Cell, got {cell!r}.")
    object.__setattr__(self, "cells", tuple(cells))

  @property
  def state_size(self) -> tuple:
    return tuple(cell.state_size for cell in self.cells)

  @property
  def output_size(self) -> Any:
    return getattr(self.cells[-1], "output_size", None)

  def init(self, key: Key, input_shape: ShapeTree) -> tuple:
    params = []
    shape = input_shape
    for k, cell in zip(jax.random.split(key, len(self.cells)), self.cells):
      params.append(cell.init(k, shape))
      shape = _next_input_shape(cell, shape)
    return tuple(params)

  def initial_state(self, batch_size: int, dtype: DTypeLike | None = None, *,
                    input_shape: ShapeTree = None) -> State:
    """Each cell's zero state; `input_shape` (per step) is handed on to cells that take it,
    each cell getting the previous cell's per-step output shape."""
    if input_shape is None:
      kwargs = {} if dtype is None else {"dtype": dtype}
      return tuple(tuple(cell.initial_state(batch_size, **kwargs)) for cell in self.cells)
    dtype = jnp.float32 if dtype is None else dtype
    states, shape = [], input_shape
    for i, cell in enumerate(self.cells):
      states.append(tuple(initial_state_of(cell, batch_size, dtype, shape)))
      if i + 1 < len(self.cells):
        shape = _next_input_shape(cell, shape)
    return tuple(states)

  def map_weight_owners(self, fn: Callable[[Any, Params], Any], params: Params) -> tuple:
    """Each cell's `map_weight_owners(fn, its params)`, as a tuple like `params`."""
    if not isinstance(params, (tuple, list)) or len(params) != len(self.cells):
      raise TypeError(
          f"params of StackedRNNCells must be a tuple with one entry per cell "
          f"({len(self.cells)}), got {type(params).__name__}."
      )
    return tuple(cell.map_weight_owners(fn, p) for cell, p in zip(self.cells, params))

  def to_keras_weights(self, params: Params) -> list:
    return [w for cell, p in zip(self.cells, params) for w in cell.to_keras_weights(p)]

  def from_keras_weights(self, arrays: list) -> tuple[Params, list]:
    params = []
    for cell in self.cells:
      p, arrays = cell.from_keras_weights(arrays)
      params.append(p)
    return tuple(params), arrays

  # A class attribute on single cells (Cell.accepts_constants), computed for a stack.
  @property
  def accepts_constants(self) -> bool:  # type: ignore[override]
    """True when some cell of the stack reads constants (each cell is handed them)."""
    return any(getattr(cell, "accepts_constants", True) for cell in self.cells)

  def validate_constants(self, params: Params, constants: PyTree, batch_size: int) -> None:
    for cell, p in zip(self.cells, params):
      if getattr(cell, "accepts_constants", True):
        cell.validate_constants(p, constants, batch_size)

  def uses_dropout(self) -> bool:
    return any(getattr(cell, "uses_dropout", lambda: False)() for cell in self.cells)

  def dropout_masks(self, key: Key, batch_size: int, input_shape: ShapeTree,
                    dtype: DTypeLike) -> Any:
    if not self.uses_dropout():
      return None
    masks, shape = [], input_shape
    for k, cell in zip(jax.random.split(key, len(self.cells)), self.cells):
      masks.append(cell.dropout_masks(k, batch_size, shape, dtype))
      shape = _next_input_shape(cell, shape)
    return tuple(masks)

  def project(self, params: Params, inputs: Any, *, dropout: Any = None) -> Any:
    first = self.cells[0]
    kwargs = {} if dropout is None or dropout[0] is None else {"dropout": dropout[0]}
    return first.project(params[0], inputs, **kwargs)

  def step(self, params: Params, projected: Any, states: State, *, training: bool = False,
           constants: PyTree = None, dropout: Any = None) -> tuple[Any, State]:
    """projected: the first cell's projected step input; states: per-cell tuples."""
    outputs, new_states = projected, []
    for i, (cell, p, s) in enumerate(zip(self.cells, params, states)):
      masks = None if dropout is None else dropout[i]
      kwargs = {} if masks is None else {"dropout": masks}
      run = cell.step if i == 0 else cell
      outputs, s_new = run(p, outputs, tuple(s), training=training, constants=constants, **kwargs)
      new_states.append(tuple(s_new))
    return outputs, tuple(new_states)

  def check_call(self, params: Params, inputs: Any, states: State) -> tuple:
    """Checks a direct call's arguments: one params entry and one state tuple per cell,
    and the first cell's own check (its inputs' feature size, its states); each later cell
    checks its call as the stack runs it. Returns the states as tuples of tuples."""
    n = len(self.cells)
    if not isinstance(params, (tuple, list)) or len(params) != n:
      raise TypeError(f"params of StackedRNNCells must be a tuple with one entry per cell "
                      f"({n}), got {describe(params)}.")
    if not isinstance(states, (tuple, list)) or len(states) != n:
      got = (f"{len(states)} entries" if isinstance(states, (tuple, list))
             else describe(states))
      raise ValueError(f"states of StackedRNNCells must hold one state tuple per cell ({n}), "
                       f"got {got}.")
    states = tuple(tuple(s) if isinstance(s, (tuple, list)) else (s,) for s in states)
    check = getattr(self.cells[0], "check_call", None)
    if check is not None:
      states = (tuple(check(params[0], inputs, states[0])), *states[1:])
    return states

  def __call__(self, params: Params, inputs: Any, states: State, *, training: bool = False,
               constants: PyTree = None, dropout: Any = None) -> tuple[Any, State]:
    return self.project_then_step(params, inputs, states, training=training,
                                  constants=constants, dropout=dropout)
