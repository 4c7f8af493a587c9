"""Bidirectional: a sequence layer run forwards and backwards over the same inputs, the
two outputs merged (Keras 3 `keras.layers.Bidirectional` semantics)."""

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from .. import _regularizers, _validation as _checks, dispatch
from ..engine import as_tuples
from ._base import SequenceLayer, inner_option, reset_state_tree
from ..types import ArrayLike, DTypeLike, Inputs, Key, Params, PyTree, State
from ._eager import cached_apply

MERGE_MODES = ("concat", "sum", "mul", "ave", None)

_MERGE = {
    "concat": lambda a, b: jnp.concatenate([a, b], axis=-1),
    "sum": lambda a, b: a + b,
    "mul": lambda a, b: a * b,
    "ave": lambda a, b: (a + b) / 2,
}


def _check_sequence_layer(layer, argument: str) -> None:
  if not isinstance(layer, SequenceLayer) or not dataclasses.is_dataclass(layer):
    raise TypeError(
        f"{argument} must be an rnnjax sequence layer (rj.LSTM, rj.GRU, rj.SimpleRNN, "
        f"rj.RNN, rj.ConvLSTM2D, ...), got {layer!r}."[:400]
    )


@dataclasses.dataclass(frozen=True)
class Bidirectional:
  """Runs `layer` forwards and a backward copy of it over the same inputs (Keras 3).

  Args:
    layer: an rnnjax sequence layer. The backward layer is a copy of its configuration
      with `go_backwards` flipped, unless `backward_layer` is given.
    merge_mode: "concat" (default, forward features then backward ones), "sum", "mul",
      "ave", or None (no merge: the two outputs are returned side by side).
    weights: Keras's initial-weights argument; rnnjax params are explicit, so it must be
      None (load Keras weights with `rj.interop.from_keras(bidirectional, weights)`).
    backward_layer: the layer for the backward direction; it must go the other way and
      share `return_sequences`, `return_state`, `stateful` and `time_major` with `layer`.
    activity_regularizer: applied to the outputs by `rj.regularization_loss`.

  Params: `{"forward": <layer params>, "backward": <backward layer params>}`; Keras's
  `get_weights()` order is the forward weights, then the backward ones.

  `apply(params, inputs, initial_state=None, mask=None, training=False, rng=None,
  constants=None, *, state=None, reset=None, seq_lengths=None)`:
    initial_state: the forward layer's states then the backward layer's, as one flat list
      (Keras order, e.g. `[fh, fc, bh, bc]` for LSTM).
    output: (B, T, 2U) for concat with return_sequences, else (B, 2U) (the last valid
      output of each direction); (B, ..., U) for sum/mul/ave; `(y, y_rev)` for None. The
      backward sequence is put back in the original time order. With a mask and
      return_sequences, padded positions are exactly 0 in both directions (Keras forces
      `zero_output_for_mask=return_sequences` on both layers).
    return_state: `(output, *forward_states, *backward_states)`
      (`(y, y_rev, *forward_states, *backward_states)` when merge_mode is None).
    stateful: `apply` also takes `state=` and returns `(out, new_state)`; the state is the
      flat tuple `(*forward_states, *backward_states)`, so it is also a valid
      `initial_state`. The backward layer processes each chunk reversed (as Keras does),
      so only the forward half of a chunked run equals a run on the whole sequence.
    rng: split into one key per direction.
    reset: (B, T) True where a new segment starts; the backward direction starts its
      segments at the segment ends, so each packed segment is processed on its own both
      ways.

  With a time-sharded layer (`sequence_axis=`, sequence parallelism) the wrapper returns
  the last outputs and states only: return_sequences=True and reset= are refused (the
  backward half would be reordered, and its segment starts read, within each device's
  chunk only).

  Each direction runs through its layer's public `prepare` / `finish`; two LSTM (or two GRU)
  directions that each take the Pallas kernel share one launch (see `rj.kernels.which_path`).

  >>> import jax, jax.numpy as jnp, rnnjax as rj
  >>> layer = rj.Bidirectional(rj.LSTM(64, return_sequences=True))
  >>> x = jnp.ones((2, 5, 10))
  >>> params = layer.init(jax.random.key(0), x)
  >>> layer.apply(params, x).shape
  (2, 5, 128)
  >>> sum(p.size for p in jax.tree.leaves(params))
  38400
  """

  layer: Any
  merge_mode: str | None = "concat"
  weights: Any = None
  backward_layer: Any = None
  _: dataclasses.KW_ONLY
  activity_regularizer: Any = None
  name: str | None = None
  # The two directions with Keras's forced zero_output_for_mask (derived, not compared).
  _forward: Any = dataclasses.field(init=False, repr=False, compare=False)
  _backward: Any = dataclasses.field(init=False, repr=False, compare=False)

  def __post_init__(self):
    _check_sequence_layer(self.layer, "layer")
    if not any(self.merge_mode is m or self.merge_mode == m for m in MERGE_MODES) or (
        self.merge_mode is not None and not isinstance(self.merge_mode, str)):
      raise ValueError(
          f'merge_mode must be one of "concat", "sum", "mul", "ave" or None, got '
          f"{self.merge_mode!r}."
      )
    if self.weights is not None:
      raise ValueError(
          "weights= must be None: rnnjax params are explicit; build them from a Keras "
          "weight list with rj.interop.from_keras(bidirectional, weights)."
      )
    backward = self.backward_layer
    if backward is None:
      backward = dataclasses.replace(self.layer, go_backwards=not self.layer.go_backwards)
      object.__setattr__(self, "backward_layer", backward)
    _check_sequence_layer(backward, "backward_layer")
    self._check_pair(self.layer, backward)
    self._check_time_sharding(self.layer, backward)
    for argument, layer in (("layer", self.layer), ("backward_layer", backward)):
      if layer.activity_regularizer is not None:
        raise ValueError(
            f"{argument} has activity_regularizer={layer.activity_regularizer!r}; rnnjax "
            "regularizes the Bidirectional output instead: pass "
            "Bidirectional(..., activity_regularizer=...)."
        )
    _regularizers.get(self.activity_regularizer, argument="activity_regularizer")
    zero = self.layer.return_sequences
    object.__setattr__(self, "_forward", dataclasses.replace(self.layer, zero_output_for_mask=zero))
    object.__setattr__(self, "_backward", dataclasses.replace(backward, zero_output_for_mask=zero))

  def _check_pair(self, forward, backward) -> None:
    """Keras's checks (same conditions), plus time_major and mergeable output sizes."""
    if forward.go_backwards == backward.go_backwards:
      raise ValueError(
          "layer and backward_layer must have different go_backwards values, got "
          f"layer.go_backwards={forward.go_backwards} and "
          f"backward_layer.go_backwards={backward.go_backwards}."
      )
    for name in ("stateful", "return_sequences", "return_state", "time_major"):
      f, b = getattr(forward, name), getattr(backward, name)
      if f != b:
        raise ValueError(
            f"layer and backward_layer must have the same {name}, got {f} for layer and "
            f"{b} for backward_layer."
        )
    if self.merge_mode in ("sum", "mul", "ave"):
      f, b = forward.cell.output_size, backward.cell.output_size
      if f != b:
        raise ValueError(
            f'merge_mode="{self.merge_mode}" needs outputs of the same size in both '
            f"directions, got output_size {f} for layer and {b} for backward_layer "
            '(use merge_mode="concat" or None).'
        )

  @staticmethod
  def _sequence_axis(forward, backward) -> str | None:
    """The mesh axis that splits time for either direction (rj.MinGRU(sequence_axis=...))."""
    return getattr(forward, "sequence_axis", None) or getattr(backward, "sequence_axis", None)

  def _check_time_sharding(self, forward, backward) -> None:
    """A time-sharded backward sequence would be flipped within each device's chunk, not
    across the chunks, so the wrapper refuses to return it."""
    axis = self._sequence_axis(forward, backward)
    if axis is not None and forward.return_sequences:
      raise ValueError(
          f"Bidirectional cannot return the sequence of a time-sharded layer "
          f"(sequence_axis={axis!r} with return_sequences=True): it would put the backward "
          "outputs back in time order within each device's chunk only. Use "
          "return_sequences=False, or run the backward layer on its own (go_backwards=True) "
          "and reverse its outputs across the devices yourself.")


  @property
  def forward_layer(self) -> SequenceLayer:
    return self._forward

  @property
  def direction_layers(self) -> tuple:
    """(forward, backward): the layers `apply` runs (Keras's forced zero_output_for_mask)."""
    return self._forward, self._backward

  # The wrapped layer's output options, which both directions share (checked above).
  return_sequences = inner_option("return_sequences")
  return_state = inner_option("return_state")
  stateful = inner_option("stateful")
  time_major = inner_option("time_major")

  # Parameters and states ----------------------------------------------------

  def init(self, key: Key, inputs: Inputs) -> dict[str, Params]:
    """`{"forward": ..., "backward": ...}`, each what the direction's `init` returns."""
    _checks.check_key(key, "key")
    k_forward, k_backward = jax.random.split(key)
    return {"forward": self._forward.init(k_forward, inputs),
            "backward": self._backward.init(k_backward, inputs)}

  def _state_counts(self) -> tuple[int, int]:
    """How many top-level states each direction has (LSTM 2, GRU 1, RNN([c1, c2]) 2),
    read off the cells' `state_size` (no input shape needed, so ConvLSTM works too)."""
    def count(layer):
      size = layer.cell.state_size
      return 1 if isinstance(size, int) else len(size)
    return count(self._forward), count(self._backward)

  def get_initial_state(self, batch_size: int, dtype: DTypeLike = jnp.float32) -> State:
    """Zero states `(*forward_states, *backward_states)` for `batch_size` rows."""
    return (*self._forward.get_initial_state(batch_size, dtype),
            *self._backward.get_initial_state(batch_size, dtype))

  def reset_state(self, state: State, where: ArrayLike | None = None) -> State:
    """A fresh (zero) state: for every row, or only rows where `where` (B,) is True."""
    return reset_state_tree(state, where)

  def _split_states(self, states, argument: str):
    """Keras's split of a flat state list: the forward half, then the backward half."""
    if states is None:
      return None, None
    n_forward, n_backward = self._state_counts()
    expected = n_forward + n_backward
    if hasattr(states, "shape") or not isinstance(states, (list, tuple)):
      raise TypeError(
          f"{argument} must be a list of {expected} states ({n_forward} for the forward "
          f"layer, then {n_backward} for the backward layer), got {_checks.describe(states)}."
      )
    if len(states) != expected:
      raise ValueError(
          f"{argument} must hold {expected} states ({n_forward} for the forward layer, then "
          f"{n_backward} for the backward layer, Keras order), got {len(states)}."
      )
    return tuple(states[:n_forward]), tuple(states[n_forward:])

  def _check_halves(self, inputs, halves, argument: str) -> None:
    """Both halves checked before either direction is traced (each layer checks again)."""
    if halves[0] is None:
      return
    batch, _ = _checks.sequence_dims(inputs, time_major=self.time_major)
    input_shape = _checks.step_shapes(inputs)
    for name, layer, given in zip(("forward", "backward"), (self._forward, self._backward), halves):
      expected = jax.eval_shape(
          lambda layer=layer: layer.get_initial_state(batch, input_shape=input_shape))
      _checks.state_like(given, expected, argument=f"{argument} ({name} half)", batch=batch)

  # The call -----------------------------------------------------------------

  @cached_apply
  def apply(self, params: Params, inputs: Inputs, initial_state: State = None,
            mask: ArrayLike | None = None, training: bool = False, rng: Key | None = None,
            constants: PyTree = None, *, state: State = None,
            reset: ArrayLike | None = None, seq_lengths: ArrayLike | None = None) -> Any:
    """Runs both directions and merges them; see the class docstring for the results."""
    if not isinstance(params, dict) or set(params) != {"forward", "backward"}:
      raise TypeError(
          "params must be the dict that Bidirectional.init returns (keys 'forward' and "
          f"'backward'), got {type(params).__name__}"
          + (f" with keys {sorted(params)}" if isinstance(params, dict) else "") + "."
      )
    if state is not None and not self.stateful:
      raise ValueError(
          "state= is only for stateful layers (the wrapped layer has stateful=False); use "
          "initial_state= to start from given states."
      )
    f_init, b_init = self._split_states(initial_state, "initial_state")
    f_state, b_state = self._split_states(state, "state")
    self._check_halves(inputs, (f_init, b_init), "initial_state")
    self._check_halves(inputs, (f_state, b_state), "state")
    f_rng = b_rng = None
    if rng is not None:
      _checks.check_key(rng, "rng")
      f_rng, b_rng = jax.random.split(rng)
    f_reset, b_reset = self._direction_resets(reset, inputs)

    common = dict(mask=mask, training=training, constants=constants, seq_lengths=seq_lengths)
    f_kw = dict(common, rng=f_rng, reset=f_reset)
    b_kw = dict(common, rng=b_rng, reset=b_reset)
    if self.stateful:
      f_kw["state"], b_kw["state"] = f_state, b_state
    f_out, b_out = self._run_directions(params, inputs, (f_init, b_init), (f_kw, b_kw))
    if self.stateful:
      (f_out, f_new), (b_out, b_new) = f_out, b_out
    if self.return_state:
      f_out, f_states = f_out[0], tuple(f_out[1:])
      b_out, b_states = b_out[0], tuple(b_out[1:])
    if self.return_sequences:
      f_out = self._in_time_order(f_out, self._forward)
      b_out = self._in_time_order(b_out, self._backward)

    if self.merge_mode is None:
      out = (f_out, b_out)
    else:
      out = jax.tree.map(_MERGE[self.merge_mode], f_out, b_out)
    if self.return_state:
      states = (*f_states, *b_states)
      out = (*out, *states) if self.merge_mode is None else (out, *states)
    if self.stateful:
      return out, (*as_tuples(f_new), *as_tuples(b_new))
    return out

  def _run_directions(self, params, inputs, inits, kwargs):
    """Each direction's `apply` result: both calls prepared through the layers' public
    `prepare`, run by the dispatch (in one launch when it allows), packaged by `finish`."""
    layers = self.direction_layers
    calls = [layer.prepare(params[k], inputs, init, **kw)
             for layer, k, init, kw in zip(layers, ("forward", "backward"), inits, kwargs)]
    results = dispatch.run_together(calls)
    return tuple(layer.finish(r) for layer, r in zip(layers, results))

  def call_specs(self, inputs: Inputs, **call: Any) -> tuple[dispatch.CallSpec, ...]:
    """The specs of the two direction runs (see `rj.kernels.which_path`)."""
    return tuple(layer.call_spec(inputs, **call) for layer in self.direction_layers)

  def _in_time_order(self, outputs, layer):
    """A go_backwards layer's sequence (processing order) flipped back to input order."""
    if not layer.go_backwards:
      return outputs
    axis = 0 if self.time_major else 1
    return jax.tree.map(lambda y: jnp.flip(y, axis), outputs)

  def _direction_resets(self, reset, inputs):
    """Segment starts for each direction: a go_backwards layer starts a segment where the
    forward order ends one (just before the next segment start)."""
    if reset is None:
      return None, None
    axis = self._sequence_axis(self._forward, self._backward)
    if axis is not None:
      raise ValueError(
          f"Bidirectional cannot take reset= with a time-sharded layer (sequence_axis="
          f"{axis!r}): the backward direction's segment starts come from the next step, "
          "which at a chunk's end lies on another device. Pass reset=None, or run the two "
          "directions as separate layers.")
    batch, steps = _checks.sequence_dims(inputs, time_major=self.time_major)
    reset = _checks.step_flags(reset, "reset", batch, steps, self.time_major)
    axis = 0 if self.time_major else 1
    tail = jnp.zeros_like(jax.lax.slice_in_dim(reset, 0, 1, axis=axis))
    ends = jnp.concatenate([jax.lax.slice_in_dim(reset, 1, steps, axis=axis), tail], axis=axis)
    return tuple(ends if layer.go_backwards else reset for layer in (self._forward, self._backward))

  def map_weight_owners(self, fn: Callable[[Any, Params], Any], params: Params) -> dict:
    """`{"forward": ..., "backward": ...}`: each direction's `map_weight_owners`."""
    if not isinstance(params, dict) or set(params) != {"forward", "backward"}:
      raise TypeError(
          "params of Bidirectional must be a dict with keys ['forward', 'backward'], got "
          f"{type(params).__name__}"
          + (f" with keys {sorted(params)}" if isinstance(params, dict) else "") + "."
      )
    return {"forward": self.forward_layer.map_weight_owners(fn, params["forward"]),
            "backward": self.backward_layer.map_weight_owners(fn, params["backward"])}

  # Keras weight lists -------------------------------------------------------

  def to_keras_weights(self, params: Params) -> list:
    """Keras `get_weights()` order: the forward layer's weights, then the backward's."""
    return (self._forward.cell.to_keras_weights(params["forward"])
            + self._backward.cell.to_keras_weights(params["backward"]))

  def from_keras_weights(self, arrays: list) -> tuple[dict[str, Params], list]:
    """(params, remaining arrays) from the head of a Keras weight list."""
    forward, arrays = self._forward.cell.from_keras_weights(list(arrays))
    backward, arrays = self._backward.cell.from_keras_weights(arrays)
    return {"forward": forward, "backward": backward}, arrays
