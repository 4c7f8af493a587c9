"""What the Keras built-in cells (SimpleRNN, GRU, LSTM, ConvLSTM) share as cells: the
`kernel` / `recurrent_kernel` / `bias` params and their Keras weight list, the compute
dtype, and a call that is `project` then `step`.

The configuration fields it reads (`use_bias`, `dtype`, `param_dtype`, `dropout`,
`recurrent_dropout`) come from the cell's config class (DenseConfig, ConvLSTMConfig).
"""

import dataclasses
import functools
from typing import TYPE_CHECKING, Any, ClassVar

import jax
import jax.numpy as jnp

from .. import _validation
from ..types import Array, DTypeLike, Key, Params, PyTree, ShapeTree, State
from ._base import Cell, state_shapes
from ._dropout import DropoutMasks, keep_mask


@functools.lru_cache(maxsize=256)
def _weight_spec(cell, kernel_shape: tuple) -> tuple:
  """(name, ShapeDtypeStruct) of each weight `cell.init` gives for a kernel of
  `kernel_shape`: cached, as `regularization_loss` checks params at every eager call."""
  shapes = cell.keras_weight_shapes(jax.ShapeDtypeStruct(kernel_shape, jnp.float32))
  dtype = jnp.dtype(cell.param_dtype)
  return tuple((name, jax.ShapeDtypeStruct(shapes[name], dtype))
               for name in cell.keras_weight_names())


@dataclasses.dataclass(frozen=True)
class KerasCell(Cell):
  """Base of DenseCell and ConvLSTMCell. Subclasses define `describe_cell` and
  `keras_weight_shapes`, plus the protocol's `init`, `project` and `step`."""

  accepts_constants: ClassVar[bool] = False

  if TYPE_CHECKING:  # fields of the config class (WeightOptions), and its mask_count
    @property
    def use_bias(self) -> bool: ...
    @property
    def dtype(self) -> Any: ...
    @property
    def param_dtype(self) -> Any: ...
    @property
    def dropout(self) -> float: ...
    @property
    def recurrent_dropout(self) -> float: ...
    @property
    def seed(self) -> int | None: ...
    @property
    def mask_count(self) -> int: ...

  def describe_cell(self) -> str:
    """The cell in words for error messages, e.g. "LSTMCell(units=4)"."""
    raise NotImplementedError

  def keras_weight_shapes(self, kernel: Any) -> dict[str, tuple[int, ...]]:
    """Param shapes by name for a Keras weight list whose first array is `kernel` (it
    gives the input size; None or a wrong rank: assume 1)."""
    raise NotImplementedError

  # Keras weight lists (layer.get_weights() order) ------------------------------

  def keras_weight_names(self) -> tuple[str, ...]:
    return ("kernel", "recurrent_kernel") + (("bias",) if self.use_bias else ())

  def to_keras_weights(self, params: Params) -> list:
    return [params[name] for name in self.keras_weight_names()]

  def from_keras_weights(self, arrays: list) -> tuple[Params, list]:
    """Params from the head of a Keras weight list; returns (params, the rest of the list)."""
    names = self.keras_weight_names()
    shapes = self.keras_weight_shapes(arrays[0] if arrays else None)
    wanted = ", ".join(f"{n} {shapes[n]}" for n in names)
    if len(arrays) < len(names):
      raise ValueError(
          f"{self.describe_cell()} needs {len(names)} Keras weight arrays [{wanted}], "
          f"got {len(arrays)}."
      )
    params = {}
    for name, array in zip(names, arrays):
      got = tuple(getattr(array, "shape", ()))
      if got != shapes[name]:
        raise ValueError(
            f"Keras weight {name!r} of {self.describe_cell()} must have shape {shapes[name]}, "
            f"got {got}; expected [{wanted}]."
        )
      params[name] = jnp.asarray(array, dtype=jnp.dtype(self.param_dtype))
    return params, list(arrays[len(names):])

  # Checks -------------------------------------------------------------------

  def check_params_dict(self, params: Params) -> None:
    """Raises a TypeError unless `params` is a dict with the kernels `init` returns."""
    if not isinstance(params, dict) or "kernel" not in params or "recurrent_kernel" not in params:
      raise TypeError(
          f"params must be the dict that {type(self).__name__}.init returns (keys kernel, "
          f"recurrent_kernel, bias), got {type(params).__name__}"
          + (f" with keys {sorted(params)}" if isinstance(params, dict) else "") + "."
      )

  def check_weight_params(self, params: Params, argument: str = "params") -> None:
    """Raises unless `params` are what `init` returns: a dict with exactly the kernel,
    recurrent kernel (and bias) of the shapes that fit the kernel's input size, floating
    point (`rj.regularization_loss` and `rj.apply_constraints` check with it)."""
    self.check_params_dict(params)
    shape = tuple(getattr(params["kernel"], "shape", ()))
    try:
      hash(self)
    except TypeError:   # e.g. an unhashable regularizer object among the options
      expected = _weight_spec.__wrapped__(self, shape)
    else:
      expected = _weight_spec(self, shape)
    _validation.params_like(params, dict(expected), argument=argument)

  def call_state_shapes(self, input_shape: ShapeTree) -> tuple[tuple[int, ...], ...]:
    """Per-example state shapes for per-step `input_shape` (here from `state_size`)."""
    del input_shape
    return state_shapes(self.state_size)

  def check_call(self, params: Params, inputs: Any, states: State) -> tuple:
    """Checks a direct call's arguments (a layer checks its own before tracing): `params`
    as `init` returns them, `inputs` one step (B, *input_shape), `states` one (B, *shape)
    array per state. Returns the states as a tuple (a bare array stands for one state)."""
    if not (hasattr(inputs, "shape") and hasattr(inputs, "dtype")):
      raise TypeError(f"inputs must be an array of shape (B, ...) (one time step), got "
                      f"{_validation.describe(inputs)}.")
    _validation.check_input_dtype(inputs.dtype)
    if len(inputs.shape) < 2:
      raise ValueError(f"inputs of {self.describe_cell()} must be one time step with a batch "
                       f"axis, (B, ...), got shape {tuple(inputs.shape)}.")
    batch, input_shape = inputs.shape[0], tuple(inputs.shape[1:])
    self.validate_inputs(params, input_shape)
    expected = tuple(jax.ShapeDtypeStruct((batch, *shape), jnp.float32)
                     for shape in self.call_state_shapes(input_shape))
    if not isinstance(states, (tuple, list)) and not hasattr(states, "shape"):
      raise TypeError(f"states must be a tuple of {len(expected)} arrays (the cell's "
                      f"initial_state), got {_validation.describe(states)}.")
    return _validation.state_like(states, expected, argument="states", batch=batch, cast=False)

  # Computation --------------------------------------------------------------

  def compute_dtype(self, x: Array) -> Any:
    """`dtype` when given, else the promotion of the inputs' and the params' dtypes."""
    if self.dtype is not None:
      return jnp.dtype(self.dtype)
    return jnp.result_type(x.dtype, jnp.dtype(self.param_dtype))

  def uses_dropout(self) -> bool:
    return self.dropout > 0.0 or self.recurrent_dropout > 0.0

  def recurrent_mask_shape(self, input_shape: ShapeTree) -> tuple[int, ...]:
    """Per-example shape of the recurrent dropout mask (the state's)."""
    raise NotImplementedError

  def dropout_masks(self, key: Key, batch_size: int, input_shape: ShapeTree,
                    dtype: DTypeLike) -> DropoutMasks | None:
    """Variational masks for one call, `mask_count` per role (one per gate with Keras
    `implementation=1`): inputs (N, B, *input_shape), recurrent (N, B, *state shape);
    `seed` is folded into `key`."""
    if not self.uses_dropout():
      return None
    if self.seed is not None:
      key = jax.random.fold_in(key, self.seed)
    k_in, k_rec = jax.random.split(key)
    n = self.mask_count
    return DropoutMasks(
        keep_mask(k_in, self.dropout, (n, batch_size, *tuple(input_shape)), dtype),
        keep_mask(k_rec, self.recurrent_dropout,
                  (n, batch_size, *self.recurrent_mask_shape(input_shape)), dtype),
    )

  def __call__(self, params: Params, inputs: Any, states: State, *, training: bool = False,
               constants: PyTree = None, dropout: Any = None) -> tuple[Any, State]:
    """One Keras step: `project` the step's inputs (B, ...), then `step` -> (output, new states)."""
    return self.project_then_step(params, inputs, states, training=training,
                                  constants=constants, dropout=dropout)
