"""What the linear-recurrence cells (MinGRU, MinLSTM, LRU) share: a state update that is
affine in the state, `h_t = a_t * h_{t-1} + b_t` (elementwise), with `a_t` and `b_t`
computed from `x_t` alone. That is what lets the layers run them as a parallel prefix
scan over time (`rnnjax.recurrences.linear_scan`) as well as step by step.

The affine protocol (read by the parallel scan of `rnnjax.dispatch`; `step` is built on
it, so the sequential loop and the parallel scan run the same arithmetic):

  log_space     True when `coefficients` returns (log a, log b) (then b > 0).
  project(params, xs, *, dropout=None) -> projected   x-only work, any leading axes.
  coefficients(params, projected) -> (a, b)           each (..., N); complex for the LRU.
  readout(params, projected, h) -> y                  the step's output from the new h.
  carrier(states) -> h0 (B, N); states_of(h) -> the state tuple (exposed as real arrays).

Axis letters: B batch, T time, F features, U units, N state size.
"""

import dataclasses
import math
from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from .. import _initializers
from .._validation import check_dtype
from ._base import Cell
from ._dropout import DropoutMasks, apply_mask, check_rate, keep_mask
from ..types import Array, DTypeLike, Key, Params, PyTree, ShapeTree, State
from ._options import check_seed

LINEAR_UNIFORM = "linear_uniform"
"""The default initializer name: U(-1/sqrt(F), 1/sqrt(F)) with F the kernel's fan-in, for
the kernel and the bias alike (PyTorch's `nn.Linear`, which the minGRU/minLSTM paper's
code uses)."""


def initializer(value: Any, fan_in: int, argument: str) -> Callable[..., Array]:
  """`(key, shape, dtype) -> array` for an initializer name or callable; LINEAR_UNIFORM
  draws U(+-1/sqrt(fan_in))."""
  if isinstance(value, str) and value == LINEAR_UNIFORM:
    bound = 1.0 / math.sqrt(max(1, fan_in))
    return lambda key, shape, dtype: jax.random.uniform(key, shape, dtype, -bound, bound)
  return _initializers.get(value, argument=argument)


def check_sequence_axis(value: Any) -> None:
  """A mesh axis name (a str) or None."""
  if value is not None and not isinstance(value, str):
    raise TypeError(f"sequence_axis must be a mesh axis name (a str) or None, got {value!r}.")


@dataclasses.dataclass(frozen=True)
class LinearOptions:
  """Options of every linear-recurrence cell and layer.

  dropout: input dropout rate (one variational mask on x_t, drawn once per call, as Keras).
  sequence_axis: the mesh axis that splits the time axis when the layer is called inside
    `jax.shard_map` on a time-sharded sequence: each device scans its chunk and the
    chunk summaries are combined across devices (the layers' parallel scan does it; the
    sequential loop cannot, so a cell with it set refuses to step).
  """

  _: dataclasses.KW_ONLY
  dropout: float = 0.0
  seed: int | None = None
  dtype: Any = None
  param_dtype: Any = jnp.float32
  sequence_axis: str | None = None

  def check_options(self) -> None:
    check_rate(self.dropout, "dropout")
    check_seed(self.seed)
    for name in ("dtype", "param_dtype"):
      check_dtype(getattr(self, name), name)
    check_sequence_axis(self.sequence_axis)


@dataclasses.dataclass(frozen=True)
class LinearCell(LinearOptions, Cell):
  """Base of MinGRUCell, MinLSTMCell and LRUCell: the step `h = a * h + b` over the
  affine protocol (module docstring). Subclasses define init, project, coefficients,
  readout, validate_inputs (and carrier / states_of for a non-(B, N) state)."""

  accepts_constants: ClassVar[bool] = False
  log_space: ClassVar[bool] = False   # a dataclass field on MinGRU / MinLSTM

  def project(self, params: Params, inputs: Array, *,
              dropout: DropoutMasks | None = None) -> Any:
    """The x-only work of the step for inputs (..., F), any leading axes."""
    raise NotImplementedError(f"{type(self).__name__} must define project.")

  def coefficients(self, params: Params, projected: Any) -> tuple[Array, Array]:
    """(a, b) of `h = a * h + b`, each (..., N) (their logarithms when `log_space`)."""
    raise NotImplementedError(f"{type(self).__name__} must define coefficients.")

  def readout(self, params: Params, projected: Any, h: Array) -> Array:
    """The step's output (..., U) from the new h (..., N)."""
    raise NotImplementedError(f"{type(self).__name__} must define readout.")

  def compute_dtype(self, x: jax.Array) -> jnp.dtype:
    """`dtype` when given, else the promotion of the inputs' and the params' dtypes."""
    if self.dtype is not None:
      return jnp.dtype(self.dtype)
    return jnp.result_type(x.dtype, jnp.dtype(self.param_dtype))

  def math_dtype(self, x: jax.Array) -> jnp.dtype:
    """The dtype of the recurrence arithmetic: the compute dtype, at least float32."""
    return jnp.promote_types(self.compute_dtype(x), jnp.float32)

  def output_dtype(self, x: jax.Array) -> jnp.dtype:
    """The outputs' dtype: `dtype` when given, else the math dtype."""
    return jnp.dtype(self.dtype) if self.dtype is not None else self.math_dtype(x)

  def carrier(self, states: State) -> jax.Array:
    """The state tuple `(h,)` as the array the recurrence carries, (B, N)."""
    (h,) = states
    return h

  def states_of(self, h: jax.Array) -> tuple:
    return (h,)

  def uses_dropout(self) -> bool:
    return self.dropout > 0.0

  def dropout_masks(self, key: Key, batch_size: int, input_shape: ShapeTree,
                    dtype: DTypeLike) -> DropoutMasks | None:
    """One input mask (1, B, F) for the call (`seed` folded into `key`); no recurrent one."""
    if not self.uses_dropout():
      return None
    if self.seed is not None:
      key = jax.random.fold_in(key, self.seed)
    return DropoutMasks(keep_mask(key, self.dropout, (1, batch_size, *tuple(input_shape)), dtype),
                        None)

  def dropped(self, x: Array, dropout: DropoutMasks | None) -> Array:
    """`x` (..., B, F) with the call's input dropout mask applied."""
    if dropout is None or dropout.inputs is None:
      return x
    return apply_mask(x, dropout.inputs[0])

  def step(self, params: Params, projected: Any, states: State, *, training: bool = False,
           constants: PyTree = None, dropout: DropoutMasks | None = None) -> tuple[Array, State]:
    """One step of `h = a * h + b` (a, b from `coefficients`, exponentiated in log space);
    returns (readout, new states)."""
    del training, constants, dropout
    if self.sequence_axis is not None:
      raise ValueError(
          f"{type(self).__name__} has sequence_axis={self.sequence_axis!r}: a time-sharded "
          "sequence needs the parallel scan, which the sequential loop (rj.RNN, "
          "scan='sequential') is not; run it in its layer with scan='parallel' or 'auto'.")
    h = self.carrier(states)
    a, b = self.coefficients(params, projected)
    if self.log_space:
      a, b = jnp.exp(a), jnp.exp(b)
    h_new = a * h.astype(a.dtype) + b
    y = self.readout(params, projected, h_new)
    return (y if self.dtype is None else y.astype(self.dtype)), self.states_of(h_new)

  def __call__(self, params: Params, inputs: Array, states: State, *, training: bool = False,
               constants: PyTree = None,
               dropout: DropoutMasks | None = None) -> tuple[Array, State]:
    """One step on inputs (B, F): `project`, then `step` -> (output, new states)."""
    projected = self.project(params, inputs, dropout=dropout)
    return self.step(params, projected, states, training=training, constants=constants,
                     dropout=dropout)

  def check_params_dict(self, params: Params, names: tuple[str, ...]) -> None:
    if not isinstance(params, dict) or not set(names) <= set(params):
      raise TypeError(
          f"params must be the dict that {type(self).__name__}.init returns (keys "
          f"{', '.join(names)}), got {type(params).__name__}"
          + (f" with keys {sorted(params)}" if isinstance(params, dict) else "") + ".")

  def check_rank(self, input_shape: ShapeTree) -> None:
    if len(input_shape) != 1:
      raise ValueError(
          f"inputs must have shape (B, T, F) (one feature axis), got a per-step shape "
          f"{tuple(input_shape)}.")
