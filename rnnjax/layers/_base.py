"""The Keras-style sequence layer: `init(key, inputs)` and `apply(params, inputs, ...)`
over any cell. A layer is its sequence options plus its cell: `prepare` checks a call
once and turns it into a `dispatch.Call`, the dispatch runs it on its implementation (the
scan engine or a registered fast path), and `finish` packages the result the Keras way.

Axis letters: B batch, T time, F features, U units.
"""

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp

from .. import _regularizers, _validation, dispatch, engine
from ..cells import Cell, StackedRNNCells, initial_state_of
from ..engine import as_tuples, check_remat
from ..types import ArrayLike, DTypeLike, Inputs, Key, Params, PyTree, ShapeTree, State
from ._eager import cached_apply
from ._param_spec import param_spec

_FUSED_CHOICES = ("auto", True, False)


def reset_state_tree(state: State, where: ArrayLike | None = None) -> State:
  """Zeros in place of `state` (a tuple of (B, ...) arrays, nested or not): every row, or
  only the rows where `where` (B,) bool is True."""
  state = as_tuples(state)
  if not isinstance(state, tuple) or not jax.tree.leaves(state):
    raise TypeError("state must be the state tuple that apply returned, got "
                    f"{_validation.describe(state)}.")
  if where is None:
    return jax.tree.map(jnp.zeros_like, state)
  batch = jax.tree.leaves(state)[0].shape[0]
  where = jnp.asarray(where)
  if tuple(where.shape) != (batch,) or not jnp.issubdtype(where.dtype, jnp.bool_):
    raise ValueError(f"where must be a bool array of shape (B,) = ({batch},), got "
                     f"{_validation.describe(where)}.")
  return jax.tree.map(
      lambda s: jnp.where(where.reshape((batch,) + (1,) * (s.ndim - 1)), jnp.zeros_like(s), s),
      state)


def inner_option(name: str) -> property:
  """A read-only property giving the wrapped `layer`'s option `name` (for wrappers such as
  Bidirectional and StackedRNN, whose output options are their layer's)."""
  def get(self) -> Any:
    return getattr(self.layer, name)
  return property(get, doc=f"The wrapped layer's `{name}`.")


def _check_training(training) -> None:
  if not isinstance(training, bool):
    raise TypeError(f"training must be a Python bool, got {_validation.describe(training)}.")


@dataclasses.dataclass(frozen=True)
class SequenceLayer:
  """Keras RNN-layer options shared by every sequence layer, plus rnnjax's own, and the
  methods of every sequence layer (subclasses give `cell`).

  time_major: inputs (and sequence outputs) are (T, B, ...) instead of (B, T, ...).
  carry_dtype: dtype of the carried state (None: the compute dtype, as Keras); e.g.
    float32 under bfloat16 compute.
  remat: gradient checkpointing of the time loop: None, "step", k (every k steps) or
    "sqrt" (two-level, memory O(sqrt(T))). Results are the same; memory and time differ.
  """

  _: dataclasses.KW_ONLY
  return_sequences: bool = False
  return_state: bool = False
  go_backwards: bool = False
  stateful: bool = False
  unroll: bool | int = False
  time_major: bool = False
  zero_output_for_mask: bool = False
  activity_regularizer: Any = None
  carry_dtype: Any = None
  remat: Any = None
  name: str | None = None
  # `cell`: a dataclass field (RNN) or a property (the built-in layers).
  if TYPE_CHECKING:
    @property
    def cell(self) -> Cell:
      """The cell this layer runs."""

  def __post_init__(self) -> None:
    for name in ("return_sequences", "return_state", "go_backwards", "stateful", "time_major",
                 "zero_output_for_mask"):
      _validation.check_bool(getattr(self, name), name)
    if not isinstance(self.unroll, (bool, int)):
      raise TypeError(f"unroll must be a bool or a positive int, got {self.unroll!r}.")
    if not isinstance(self.unroll, bool) and self.unroll < 1:
      raise ValueError(f"unroll must be a bool or a positive int, got {self.unroll!r}.")
    if self.name is not None and not isinstance(self.name, str):
      raise TypeError(f"name must be a str or None, got {self.name!r}.")
    check_remat(self.remat)
    _validation.check_dtype(self.carry_dtype, "carry_dtype", floating=True)
    _regularizers.get(self.activity_regularizer, argument="activity_regularizer")
    for name in ("use_fused", "use_cudnn"):
      value = getattr(self, name, "auto")
      if not any(value is c or value == c and type(value) is type(c) for c in _FUSED_CHOICES):
        raise ValueError(f'{name} must be "auto", True or False, got {value!r}.')
    self.check_config()

  def check_config(self) -> None:
    """Checks the cell arguments; the built-in layers inherit their cell config's check."""

  @property
  def fused_request(self) -> Any:
    """The fast-path switch: `use_fused` ("auto" | True | False), where Keras's `use_cudnn`
    counts when `use_fused` is "auto"; None for layers without the switch."""
    if not hasattr(self, "use_fused"):
      return None
    return getattr(self, "use_cudnn", "auto") if self.use_fused == "auto" else self.use_fused

  @property
  def scan_unroll(self) -> int | bool:
    """scan's `unroll`: False -> 1 (rolled), True -> fully unrolled, n -> n steps per iteration."""
    return 1 if self.unroll is False else self.unroll

  # Parameters and states ----------------------------------------------------

  def init(self, key: Key, inputs: Inputs) -> Params:
    """Parameters for `inputs` of shape (B, T, ...) (only shapes are read; a pytree of
    arrays or `jax.ShapeDtypeStruct`s is fine)."""
    _validation.check_key(key, "key")
    _validation.sequence_dims(inputs, time_major=self.time_major)
    return self.cell.init(key, _validation.step_shapes(inputs))

  def param_spec(self, inputs: Inputs) -> Any:
    """Shapes and dtypes of `init(key, inputs)`, a pytree of `jax.ShapeDtypeStruct`
    (cached per layer and input shapes: free in a loop)."""
    return param_spec(self, inputs)

  def get_initial_state(self, batch_size: int, dtype: DTypeLike = jnp.float32, *,
                        input_shape: ShapeTree = None) -> State:
    """Zero states for `batch_size` rows, in the cell's state structure.

    input_shape: per-step input shape(s) (no batch and time axes), for cells whose state
    shape depends on the inputs (ConvLSTM); handed to cells that accept it.
    """
    return as_tuples(initial_state_of(self.cell, batch_size, dtype, input_shape))

  def reset_state(self, state: State, where: ArrayLike | None = None) -> State:
    """A fresh (zero) state: for every row, or only rows where `where` (B,) is True."""
    return reset_state_tree(state, where)

  def map_weight_owners(self, fn: Callable[[Any, Params], Any], params: Params) -> Any:
    """`fn(cell, cell_params)` at every weight-owning cell, in the params' structure."""
    return self.cell.map_weight_owners(fn, params)

  # The call -----------------------------------------------------------------

  @cached_apply
  def apply(self, params: Params, inputs: Inputs, initial_state: State = None,
            mask: ArrayLike | None = None, training: bool = False, rng: Key | None = None,
            constants: PyTree = None, *, state: State = None,
            reset: ArrayLike | None = None, seq_lengths: ArrayLike | None = None) -> Any:
    """Runs the layer over a sequence. An eager call compiles once per layer and input
    shapes (see `_eager.py`); inside a transform it traces as written.

    Args:
      params: what `init` returned.
      inputs: (B, T, ...) array (or a pytree of them for custom cells); (T, B, ...)
        when `time_major`.
      initial_state: states to start from, in Keras order (LSTM: [h, c]), each (B, U).
      mask: (B, T) bool, False at padded steps (Keras semantics).
      training: enables dropout (then `rng` is required).
      rng: a jax.random key for the dropout masks.
      constants: static inputs handed to the cell at every step.
      state: (stateful layers) the state returned by the previous chunk.
      reset: (B, T) bool, True where a new segment starts: the state is set back to the
        initial state just before that step (episode boundaries, packed sequences).
      seq_lengths: (B,) int, valid length of each row (a right-padded mask).

    Returns:
      output (B, T, U) with return_sequences else (B, U) (the last valid output);
      with return_state: (output, *states); with stateful: (that, new_state).
    """
    call = self.prepare(params, inputs, initial_state, mask, training, rng, constants,
                        state=state, reset=reset, seq_lengths=seq_lengths)
    return self.finish(dispatch.run(call))

  def call_spec(self, inputs: Inputs, *, mask: ArrayLike | None = None,
                seq_lengths: ArrayLike | None = None, initial_state: State = None,
                training: bool = False, constants: PyTree = None,
                reset: ArrayLike | None = None) -> dispatch.CallSpec:
    """The static description of a call (what chooses its implementation); `prepare`
    and `rj.kernels.which_path` both build it here."""
    del seq_lengths, initial_state   # every implementation takes any lengths and states
    _check_training(training)
    _validation.sequence_dims(inputs, time_major=self.time_major)
    leaves = jax.tree.leaves(inputs)
    compute = carry = None
    if len(leaves) == 1:
      compute = jnp.dtype(self._compute_dtype(leaves[0]))
      carry = jnp.dtype(self.carry_dtype) if self.carry_dtype is not None else compute
    request = self.fused_request
    request_name = ("use_cudnn" if getattr(self, "use_fused", None) == "auto"
                    and getattr(self, "use_cudnn", "auto") != "auto" else "use_fused")
    options = dispatch.RunOptions(self.go_backwards, self.time_major,
                                  self.zero_output_for_mask, self.return_sequences,
                                  self.unroll, self.remat)
    return dispatch.CallSpec(type(self).__name__, self.cell, options, request, request_name,
                             compute, carry, training, mask is not None, reset is not None,
                             constants is not None)

  def call_specs(self, inputs: Inputs, **call: Any) -> tuple[dispatch.CallSpec, ...]:
    """The specs of the runs this layer makes for one call: one."""
    return (self.call_spec(inputs, **call),)

  def prepare(self, params: Params, inputs: Inputs, initial_state: State = None,
              mask: ArrayLike | None = None, training: bool = False, rng: Key | None = None,
              constants: PyTree = None, *, state: State = None,
              reset: ArrayLike | None = None,
              seq_lengths: ArrayLike | None = None) -> dispatch.Call:
    """Everything `apply` checks and derives before running (arguments as `apply`): the
    checked params, the start state, the step flags and the dropout masks, before any
    tracing of the time loop."""
    cell = self.cell
    _check_training(training)
    batch, steps = _validation.sequence_dims(inputs, time_major=self.time_major)
    inputs = jax.tree.map(jnp.asarray, inputs)
    input_shape = _validation.step_shapes(inputs)
    cell.validate_inputs(params, input_shape)
    _validation.params_like(params, self.param_spec(inputs))

    if mask is not None and seq_lengths is not None:
      raise ValueError("pass either mask or seq_lengths, not both.")
    spec = self.call_spec(inputs, mask=mask, training=training, constants=constants,
                          reset=reset)
    mask = _validation.step_flags(mask, "mask", batch, steps, self.time_major)
    if seq_lengths is not None:
      mask = _validation.lengths_to_mask(seq_lengths, batch, steps, self.time_major)
    reset = _validation.step_flags(reset, "reset", batch, steps, self.time_major)
    if rng is not None:
      _validation.check_key(rng, "rng")
    constants = self._check_constants(params, constants, batch)
    compute_dtype = self._compute_dtype(jax.tree.leaves(inputs)[0])
    start = self._start_state(initial_state, state, batch, compute_dtype, input_shape)
    dropout = self._dropout_masks(training, rng, batch, input_shape, compute_dtype)
    if mask is not None:   # garbage (NaN, Inf) in padding never reaches any path's gradients
      inputs = engine.zero_masked(inputs, mask, time_major=self.time_major)
    return dispatch.Call(spec, params, inputs, start, mask, seq_lengths, reset, constants,
                         dropout)

  def finish(self, result: engine.RNNResult) -> Any:
    """A run's result as `apply` returns it (Keras order)."""
    output = result.outputs if self.return_sequences else result.last_output
    out = (output, *result.final_state) if self.return_state else output
    return (out, result.final_state) if self.stateful else out

  # Helpers ------------------------------------------------------------------

  def _compute_dtype(self, leaf):
    if hasattr(self.cell, "compute_dtype"):
      return self.cell.compute_dtype(leaf)
    return jnp.result_type(leaf.dtype, jnp.float32)

  def _check_constants(self, params, constants, batch: int):
    """Checks `constants` before tracing: the cell must take them (the built-in dense cells
    do not, as in Keras 2), every leaf must be (B, ...), then the cell's own check."""
    if constants is None:
      return None
    cell = self.cell
    if not getattr(cell, "accepts_constants", True):
      raise ValueError(
          f"constants= was given but {type(cell).__name__} takes no constants; constants are "
          "for custom cells whose __call__ / step reads them (pass constants=None)."
      )
    constants = _validation.constants_tree(constants, batch)
    validate = getattr(cell, "validate_constants", None)
    if validate is not None:
      validate(params, constants, batch)
    return constants

  def _start_state(self, initial_state, state, batch, compute_dtype, input_shape=None):
    carry_dtype = jnp.dtype(self.carry_dtype) if self.carry_dtype is not None else compute_dtype

    def zeros():
      return as_tuples(initial_state_of(self.cell, batch, carry_dtype, input_shape))

    expected = jax.eval_shape(zeros)
    if state is not None and not self.stateful:
      raise ValueError(
          "state= is only for stateful layers (stateful=True); use initial_state= to start "
          "a non-stateful layer from given states."
      )
    if initial_state is not None:
      return _validation.state_like(initial_state, expected, argument="initial_state",
                                    batch=batch)
    if state is not None:
      return _validation.state_like(state, expected, argument="state", batch=batch)
    return zeros()

  def _dropout_masks(self, training, rng, batch, input_shape, dtype):
    cell = self.cell
    if not (training and cell.uses_dropout()):
      return None
    if rng is None:
      raise ValueError(
          f"training=True with dropout needs rng=, a jax.random key for the dropout masks "
          f"({type(self).__name__} has dropout={getattr(cell, 'dropout', None)}, "
          f"recurrent_dropout={getattr(cell, 'recurrent_dropout', None)}); got rng=None."
      )
    _validation.check_key(rng, "rng")
    return cell.dropout_masks(rng, batch, input_shape, dtype)


@dataclasses.dataclass(frozen=True)
class RNN(SequenceLayer):
  """A sequence layer over any cell (Keras `keras.layers.RNN`).

  `cell` is an rnnjax Cell, or a list of cells (run as `StackedRNNCells`).

  >>> import jax, jax.numpy as jnp, rnnjax as rj
  >>> layer = rj.RNN([rj.LSTMCell(4), rj.GRUCell(6)], return_state=True)
  >>> x = jnp.ones((2, 5, 3))
  >>> params = layer.init(jax.random.key(0), x)
  >>> out, (h1, c1), (h2,) = layer.apply(params, x)
  >>> out.shape, h1.shape, h2.shape
  ((2, 6), (2, 4), (2, 6))
  """

  cell: Any

  def __post_init__(self) -> None:
    cell = self.cell
    if isinstance(cell, (list, tuple)):
      cell = StackedRNNCells(cell)
      object.__setattr__(self, "cell", cell)
    if not isinstance(cell, Cell):
      raise TypeError(
          f"cell must be an rnnjax Cell (a subclass of rj.Cell) or a list of them, got "
          f"{cell!r}."
      )
    super().__post_init__()
