"""The Keras-style sequence layer: `init(key, inputs)` and `apply(params, inputs, ...)`
over any cell, through the one engine. `RNN(cell)` is this layer for a given cell."""

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .. import _regularizers, _validation as _checks, dispatch as kernels, engine
from ..cells import Cell, StackedRNNCells
from ..cells._base import initial_state_of
from ..engine._remat import check_remat
from ..engine._scan import as_tuples


def reset_state_tree(state, where=None):
  """Zeros in place of `state` (a tuple of (B, ...) arrays, nested or not): every row, or
  only the rows where `where` (B,) bool is True."""
  state = as_tuples(state)
  if not isinstance(state, tuple) or not jax.tree.leaves(state):
    raise TypeError(f"state must be the state tuple that apply returned, got {_checks.describe(state)}.")
  if where is None:
    return jax.tree.map(jnp.zeros_like, state)
  batch = jax.tree.leaves(state)[0].shape[0]
  where = jnp.asarray(where)
  if tuple(where.shape) != (batch,) or not jnp.issubdtype(where.dtype, jnp.bool_):
    raise ValueError(
        f"where must be a bool array of shape (B,) = ({batch},), got {_checks.describe(where)}."
    )
  return jax.tree.map(
      lambda s: jnp.where(where.reshape((batch,) + (1,) * (s.ndim - 1)), jnp.zeros_like(s), s),
      state)


def _check_constants(cell, params, constants, batch: int):
  """Checks `constants` before tracing: the cell must take them (the built-in dense cells
  do not, as in Keras 2), every leaf must be (B, ...), then the cell's own check."""
  if constants is None:
    return None
  if not getattr(cell, "accepts_constants", True):
    raise ValueError(
        f"constants= was given but {type(cell).__name__} takes no constants; constants are "
        "for custom cells whose __call__ / step reads them (pass constants=None)."
    )
  constants = _checks.constants_tree(constants, batch)
  validate = getattr(cell, "validate_constants", None)
  if validate is not None:
    validate(params, constants, batch)
  return constants


class PreparedCall(NamedTuple):
  """A checked layer call, ready to run: inputs (B, T, ...) (or (T, B, ...)), the start
  state in the carry dtype, mask (B, T) bool or None (seq_lengths turned into one),
  seq_lengths (B,) or None as given, reset, constants, dropout masks, training, and
  whether it takes the fused kernel."""

  inputs: Any
  start: tuple
  mask: Any
  seq_lengths: Any
  reset: Any
  constants: Any
  dropout: Any
  training: bool
  fused: bool


@dataclasses.dataclass(frozen=True)
class SequenceOptions:
  """Keras RNN-layer arguments shared by every sequence layer, plus rnnjax's own.

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

  def __post_init__(self):
    for name in ("return_sequences", "return_state", "go_backwards", "stateful", "time_major",
                 "zero_output_for_mask"):
      _checks.check_bool(getattr(self, name), name)
    if not isinstance(self.unroll, (bool, int)) or (
        not isinstance(self.unroll, bool) and self.unroll < 1):
      raise ValueError(f"unroll must be a bool or a positive int, got {self.unroll!r}.")
    check_remat(self.remat)
    _regularizers.get(self.activity_regularizer, argument="activity_regularizer")
    # The cell arguments of the built-in layers: their config classes' one hook.
    check_config = getattr(self, "check_config", None)
    if check_config is not None:
      check_config()


class RecurrentLayer:
  """Methods of every sequence layer; subclasses provide `cell` and the option fields."""

  cell: Cell  # a dataclass field (RNN) or a property (the built-in layers)

  @property
  def scan_unroll(self) -> int | bool:
    """scan's `unroll`: False -> 1 (rolled), True -> fully unrolled, n -> n steps per iteration."""
    return 1 if self.unroll is False else self.unroll

  def map_weight_owners(self, fn, params):
    """`fn(cell, cell_params)` at each weight-owning cell (see `Cell.map_weight_owners`)."""
    return self.cell.map_weight_owners(fn, params)

  # Parameters and states ----------------------------------------------------

  def init(self, key: jax.Array, inputs) -> Any:
    """Parameters for `inputs` of shape (B, T, ...) (only shapes are read; a pytree of
    arrays or `jax.ShapeDtypeStruct`s is fine)."""
    _checks.check_key(key, "key")
    _checks.sequence_dims(inputs, time_major=self.time_major)
    return self.cell.init(key, _checks.step_shapes(inputs))

  def get_initial_state(self, batch_size: int, dtype=jnp.float32, *, input_shape=None) -> tuple:
    """Zero states for `batch_size` rows, in the cell's state structure.

    input_shape: per-step input shape(s) (no batch and time axes), for cells whose state
    shape depends on the inputs (ConvLSTM); handed to cells that accept it.
    """
    return as_tuples(initial_state_of(self.cell, batch_size, dtype, input_shape))

  def reset_state(self, state, where=None):
    """A fresh (zero) state: for every row, or only rows where `where` (B,) is True."""
    return reset_state_tree(state, where)

  # The call -----------------------------------------------------------------

  def apply(self, params, inputs, initial_state=None, mask=None, training: bool = False,
            rng=None, constants=None, *, state=None, reset=None, seq_lengths=None):
    """Runs the layer over a sequence.

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
    prepared = self._prepare(params, inputs, initial_state, mask, training, rng, constants,
                             state=state, reset=reset, seq_lengths=seq_lengths)
    return self._package(self._run(params, prepared))

  def _prepare(self, params, inputs, initial_state=None, mask=None, training: bool = False,
               rng=None, constants=None, *, state=None, reset=None,
               seq_lengths=None) -> PreparedCall:
    """Everything `apply` checks and derives before running (arguments as `apply`): the
    start state, dropout masks, step flags and the path, decided before tracing."""
    cell = self.cell
    if not isinstance(training, bool):
      raise TypeError(f"training must be a Python bool, got {_checks.describe(training)}.")
    batch, steps = _checks.sequence_dims(inputs, time_major=self.time_major)
    inputs = jax.tree.map(jnp.asarray, inputs)
    input_shape = _checks.step_shapes(inputs)
    cell.validate_inputs(params, input_shape)

    if mask is not None and seq_lengths is not None:
      raise ValueError("pass either mask or seq_lengths, not both.")
    user_mask = mask
    mask = _checks.step_flags(mask, "mask", batch, steps, self.time_major)
    if seq_lengths is not None:
      mask = _checks.lengths_to_mask(seq_lengths, batch, steps, self.time_major)
    reset = _checks.step_flags(reset, "reset", batch, steps, self.time_major)
    constants = _check_constants(cell, params, constants, batch)

    compute_dtype = self._compute_dtype(cell, inputs)
    start = self._start_state(cell, initial_state, state, batch, compute_dtype, input_shape)
    dropout = self._dropout_masks(cell, training, rng, batch, input_shape, compute_dtype)
    fused = self._takes_fused_path(inputs, user_mask, seq_lengths, training, constants, reset)
    return PreparedCall(inputs, start, mask, seq_lengths, reset, constants, dropout, training,
                        fused)

  def _run(self, params, call: PreparedCall) -> engine.RNNResult:
    """The prepared call on its path: the fused kernel or the scan engine."""
    if call.fused:
      return kernels.fused_layer_apply(self, params, call.inputs, call.start, call.seq_lengths,
                                       training=call.training, dropout=call.dropout)
    return engine.rnn(
        self.cell, params, call.inputs, call.start, mask=call.mask, reset=call.reset,
        go_backwards=self.go_backwards, unroll=self.scan_unroll, time_major=self.time_major,
        zero_output_for_mask=self.zero_output_for_mask,
        return_sequences=self.return_sequences, training=call.training,
        constants=call.constants, dropout=call.dropout, remat=self.remat)

  # Helpers ------------------------------------------------------------------

  def _takes_fused_path(self, inputs, mask, seq_lengths, training, constants, reset) -> bool:
    """Layers with a `fused_request` (LSTM, GRU) ask the kernel dispatch; it raises for
    use_fused=True on an ineligible call, before anything is traced."""
    if not hasattr(self, "fused_request"):
      return False
    choice = kernels.which_path(self, inputs, mask=mask, seq_lengths=seq_lengths,
                                training=training, constants=constants, reset=reset)
    return choice.path == "fused"

  def _package(self, result: engine.RNNResult):
    output = result.outputs if self.return_sequences else result.last_output
    out = (output, *result.final_state) if self.return_state else output
    return (out, result.final_state) if self.stateful else out

  def _compute_dtype(self, cell, inputs):
    leaf = jax.tree.leaves(inputs)[0]
    if hasattr(cell, "compute_dtype"):
      return cell.compute_dtype(leaf)
    return jnp.result_type(leaf.dtype, jnp.float32)

  def _start_state(self, cell, initial_state, state, batch, compute_dtype, input_shape=None):
    carry_dtype = jnp.dtype(self.carry_dtype) if self.carry_dtype is not None else compute_dtype

    def zeros():
      return as_tuples(initial_state_of(cell, batch, carry_dtype, input_shape))

    expected = jax.eval_shape(zeros)
    if state is not None and not self.stateful:
      raise ValueError(
          "state= is only for stateful layers (stateful=True); use initial_state= to start "
          "a non-stateful layer from given states."
      )
    if initial_state is not None:
      return _checks.state_like(initial_state, expected, argument="initial_state", batch=batch)
    if state is not None:
      return _checks.state_like(state, expected, argument="state", batch=batch)
    return zeros()

  def _dropout_masks(self, cell, training, rng, batch, input_shape, dtype):
    if not (training and cell.uses_dropout()):
      return None
    if rng is None:
      raise ValueError(
          f"training=True with dropout needs rng=, a jax.random key for the dropout masks "
          f"({type(self).__name__} has dropout={getattr(cell, 'dropout', None)}, "
          f"recurrent_dropout={getattr(cell, 'recurrent_dropout', None)}); got rng=None."
      )
    _checks.check_key(rng, "rng")
    return cell.dropout_masks(rng, batch, input_shape, dtype)


@dataclasses.dataclass(frozen=True)
class RNN(RecurrentLayer, SequenceOptions):
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

  def __post_init__(self):
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
