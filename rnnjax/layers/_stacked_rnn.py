"""StackedRNN: PyTorch's multi-layer recurrent module (`nn.LSTM(num_layers=..., bidirectional=...,
dropout=..., proj_size=...)`) as one rnnjax layer, built from a template layer.

Axis letters: B batch, T time, F features, H units (hidden size), P projection size,
L levels (`num_layers`), D directions (2 when bidirectional, else 1).
"""

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from .. import _validation as _checks
from ..cells import GRUCell, LSTMCell, ProjectedLSTMCell, SimpleRNNCell
from ..types import Array, ArrayLike, Inputs, Key, Params, PyTree, State
from ._base import RNN, SequenceLayer, inner_option
from ._bidirectional import Bidirectional
from ._builtin import LSTM
from ._eager import cached_apply

STATE_ORDERS = ("keras", "torch")


def _cell_arguments(cell) -> dict:
  return {f.name: getattr(cell, f.name) for f in dataclasses.fields(cell) if f.init}


@dataclasses.dataclass(frozen=True)
class StackedRNN:
  """`num_layers` levels of `layer`, each optionally bidirectional, as one layer: what
  PyTorch's `nn.LSTM` / `nn.GRU` / `nn.RNN` compute with `num_layers`, `bidirectional`,
  `dropout` and (LSTM) `proj_size`.

  Args:
    layer: the template, an rnnjax sequence layer (`rj.LSTM(64)`, `rj.GRU(64)`,
      `rj.SimpleRNN(64, activation="relu")`, `rj.RNN(cell)`, ConvLSTM...). Every level
      is a copy of it; its `return_sequences`, `return_state` and `time_major` are the
      stack's (the lower levels always pass on their sequences). It must not be
      stateful or go backwards.
    num_layers: L, the number of levels.
    bidirectional: each level runs both ways (`rj.Bidirectional`, outputs concatenated),
      so level k > 0 reads 2H features.
    dropout: PyTorch's inter-layer dropout: with `training=True`, each element of every
      level's output but the last is dropped with this rate (scaled by 1 / (1 - rate));
      needs `rng=`. The template's own `dropout` / `recurrent_dropout` are Keras's and
      apply inside every level as well.
    proj_size: P > 0 (an LSTM template only): the levels run `rj.ProjectedLSTMCell`, h
      is (B, P) and level k > 0 reads D*P features, as PyTorch's `proj_size`.
    state_order: the order of the states in `return_state` and `initial_state`:
      "keras" (a flat tuple, level by level, each level's states as it returns them:
      `h, c` for an LSTM, then the backward direction's) or "torch" (PyTorch's `h_n`,
      and `c_n` for an LSTM, each (L*D, B, H) (h: P with proj_size), index
      `level * D + direction`).

  Params: a tuple with one entry per level, each the level's params (`{"forward",
  "backward"}` when bidirectional); `rj.interop.from_torch` fills it from a state_dict.

  `apply(params, inputs, initial_state=None, mask=None, training=False, rng=None,
  constants=None, *, reset=None, seq_lengths=None)`: inputs (B, T, F) ((T, B, F) when
  time_major); returns the top level's output ((B, T, D*H) with return_sequences, else
  its last valid output (B, D*H)), and with return_state `(output, *states)` in
  `state_order`.

  >>> import jax, jax.numpy as jnp, rnnjax as rj
  >>> layer = rj.StackedRNN(rj.LSTM(4, return_sequences=True, return_state=True),
  ...                       num_layers=2, bidirectional=True, state_order="torch")
  >>> x = jnp.ones((3, 5, 2))
  >>> out, h_n, c_n = layer.apply(layer.init(jax.random.key(0), x), x)
  >>> out.shape, h_n.shape, c_n.shape
  ((3, 5, 8), (4, 3, 4), (4, 3, 4))
  """

  layer: Any
  num_layers: int = 1
  bidirectional: bool = False
  dropout: float = 0.0
  proj_size: int = 0
  state_order: str = "keras"
  _: dataclasses.KW_ONLY
  name: str | None = None
  # The levels' layers (derived, not compared).
  levels: tuple = dataclasses.field(init=False, repr=False, compare=False)

  def __post_init__(self):
    template = self.layer
    if not isinstance(template, SequenceLayer):
      raise TypeError(
          f"layer must be an rnnjax sequence layer such as rj.LSTM(64) (the template of "
          f"every level), got {_checks.describe(template)}."
      )
    _checks.check_positive_int(self.num_layers, "num_layers")
    _checks.check_bool(self.bidirectional, "bidirectional")
    if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not (
        0.0 <= self.dropout < 1.0):
      raise ValueError(f"dropout must be a float in [0, 1), got {self.dropout!r}.")
    if isinstance(self.proj_size, bool) or not isinstance(self.proj_size, int) or self.proj_size < 0:
      raise ValueError(f"proj_size must be an int >= 0 (0: no projection), got {self.proj_size!r}.")
    if self.state_order not in STATE_ORDERS:
      raise ValueError(f'state_order must be "keras" or "torch", got {self.state_order!r}.')
    for flag in ("stateful", "go_backwards"):
      if getattr(template, flag):
        raise ValueError(
            f"layer has {flag}=True, which StackedRNN does not support: pass a template "
            f"with {flag}=False (bidirectional=True runs each level both ways)."
        )
    if template.activity_regularizer is not None:
      raise ValueError("layer has an activity_regularizer, which StackedRNN does not apply; "
                       "regularize the stack's output instead.")
    if self.proj_size and type(template) is not LSTM:
      raise ValueError(f"proj_size is for an LSTM template (rj.LSTM), got "
                       f"{type(template).__name__} with proj_size={self.proj_size}.")
    if self.state_order == "torch" and not isinstance(template.cell, (LSTMCell, GRUCell,
                                                                      SimpleRNNCell)):
      raise ValueError(
          'state_order="torch" stacks the states of LSTM, GRU or SimpleRNN levels; got a '
          f"{type(template.cell).__name__} template (use the default \"keras\")."
      )
    object.__setattr__(self, "levels", tuple(self._level(i) for i in range(self.num_layers)))

  def _level(self, index: int):
    top = index == self.num_layers - 1
    options = dict(return_sequences=self.layer.return_sequences if top else True,
                   return_state=True, name=None)
    if self.proj_size:
      cell = ProjectedLSTMCell(**_cell_arguments(self.layer.cell), proj_size=self.proj_size)
      sequence = {f.name: getattr(self.layer, f.name)
                  for f in dataclasses.fields(SequenceLayer) if f.init}
      level = RNN(cell, **{**sequence, **options})
    else:
      level = dataclasses.replace(self.layer, **options)
    return Bidirectional(level) if self.bidirectional else level

  # The template's output options --------------------------------------------

  return_sequences = inner_option("return_sequences")
  return_state = inner_option("return_state")
  time_major = inner_option("time_major")

  @property
  def directions(self) -> int:
    return 2 if self.bidirectional else 1

  def _level_cells(self, level):
    """The cells of one level, per direction."""
    if self.bidirectional:
      return tuple(layer.cell for layer in level.direction_layers)
    return (level.cell,)

  def _states_per_direction(self) -> int:
    size = self._level_cells(self.levels[0])[0].state_size
    return 1 if isinstance(size, int) else len(size)

  # Parameters ---------------------------------------------------------------

  def init(self, key: Key, inputs: Inputs) -> tuple:
    """A tuple with each level's params; level k > 0 is built for level k - 1's output."""
    _checks.check_key(key, "key")
    _checks.sequence_dims(inputs, time_major=self.time_major)
    x = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), inputs)
    params = []
    for level, k in zip(self.levels, jax.random.split(key, self.num_layers)):
      p = level.init(k, x)
      params.append(p)
      # The next level reads this one's output sequence (only its shape matters here).
      x = jax.eval_shape(lambda p, x, level=level: level.apply(p, x)[0], p, x)
    return tuple(params)

  def map_weight_owners(self, fn: Callable[[Any, Params], Any], params: Params) -> tuple:
    """A tuple with each level's `map_weight_owners` (for rj.regularization_loss)."""
    self._check_params(params)
    return tuple(level.map_weight_owners(fn, p) for level, p in zip(self.levels, params))

  def _check_params(self, params) -> None:
    if not isinstance(params, tuple) or len(params) != self.num_layers:
      raise TypeError(
          f"params must be the tuple that StackedRNN.init returns, one entry per level "
          f"({self.num_layers}), got {_checks.describe(params)}."
      )

  # States -------------------------------------------------------------------

  def _split_initial(self, initial_state):
    """Per level, the level's initial states (Keras order) or None."""
    if initial_state is None:
      return [None] * self.num_layers
    per_level = self.directions * self._states_per_direction()
    if self.state_order == "torch":
      n = self._states_per_direction()
      if not isinstance(initial_state, (list, tuple)) or len(initial_state) != n:
        raise TypeError(
            f'initial_state with state_order="torch" must be {"(h_0, c_0)" if n == 2 else "(h_0,)"}, '
            f"each (L*D, B, H) = ({self.num_layers * self.directions}, B, H), got "
            f"{_checks.describe(initial_state)}."
        )
      expected = self.num_layers * self.directions
      for name, s in zip(("h_0", "c_0"), initial_state):
        if getattr(s, "ndim", 0) < 1 or s.shape[0] != expected:
          raise ValueError(f"initial_state {name} must have a first axis of L*D = {expected} "
                           f"(levels x directions), got {_checks.describe(s)}.")
      return [[s[i * self.directions + d] for d in range(self.directions) for s in initial_state]
              for i in range(self.num_layers)]
    if not isinstance(initial_state, (list, tuple)) or len(initial_state) != per_level * self.num_layers:
      raise ValueError(
          f"initial_state must be a flat list of {per_level * self.num_layers} states "
          f"({per_level} per level, Keras order), got {_checks.describe(initial_state)}."
      )
    return [list(initial_state[i * per_level:(i + 1) * per_level]) for i in range(self.num_layers)]

  def _join_states(self, per_level) -> tuple:
    if self.state_order == "keras":
      return tuple(s for level in per_level for s in level)
    n = self._states_per_direction()
    by_state: list[list[Array]] = [[] for _ in range(n)]
    for level in per_level:
      for d in range(self.directions):
        for j in range(n):
          by_state[j].append(level[d * n + j])
    return tuple(jnp.stack(states) for states in by_state)

  # The call -----------------------------------------------------------------

  @cached_apply
  def apply(self, params: Params, inputs: Inputs, initial_state: State = None,
            mask: ArrayLike | None = None, training: bool = False, rng: Key | None = None,
            constants: PyTree = None, *, state: State = None,
            reset: ArrayLike | None = None, seq_lengths: ArrayLike | None = None) -> Any:
    """Runs the levels bottom-up; see the class docstring for the results."""
    self._check_params(params)
    if state is not None:
      raise ValueError("state= is for stateful layers; StackedRNN is not stateful (use "
                       "initial_state=).")
    inits = self._split_initial(initial_state)
    level_keys: Any = [None] * self.num_layers
    inter_keys: Any = [None] * self.num_layers
    if rng is not None:
      _checks.check_key(rng, "rng")
      keys = jax.random.split(rng, 2 * self.num_layers)
      level_keys, inter_keys = keys[:self.num_layers], keys[self.num_layers:]
    elif training and self.dropout > 0.0 and self.num_layers > 1:
      raise ValueError(
          f"training=True with dropout needs rng=, a jax.random key for the dropout between "
          f"levels (StackedRNN has dropout={self.dropout}); got rng=None."
      )
    x, states = inputs, []
    for i, (level, p) in enumerate(zip(self.levels, params)):
      out, *level_states = level.apply(p, x, inits[i], mask, training, level_keys[i], constants,
                                       reset=reset, seq_lengths=seq_lengths)
      states.append(level_states)
      x = out
      if i < self.num_layers - 1 and training and self.dropout > 0.0:
        keep = jax.random.bernoulli(inter_keys[i], 1.0 - self.dropout, x.shape)
        x = jnp.where(keep, x / (1.0 - self.dropout), jnp.zeros_like(x))
    return (x, *self._join_states(states)) if self.return_state else x

  # Keras weight lists -------------------------------------------------------

  def to_keras_weights(self, params: Params) -> list:
    """The levels' Keras weight lists one after another (a Keras model of the same
    layers in order)."""
    self._check_params(params)
    return [w for level, p in zip(self.levels, params) for w in _keras_owner(level).to_keras_weights(p)]

  def from_keras_weights(self, arrays: list) -> tuple[tuple, list]:
    """(params, remaining arrays) from the head of a Keras weight list."""
    params = []
    for level in self.levels:
      p, arrays = _keras_owner(level).from_keras_weights(list(arrays))
      params.append(p)
    return tuple(params), arrays


def _keras_owner(level):
  return level if isinstance(level, Bidirectional) else level.cell

