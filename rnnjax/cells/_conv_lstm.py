"""ConvLSTMCell: Keras 3 convolutional LSTM (Shi et al., 2015) for 1, 2 or 3 spatial axes.

Axis letters: B batch, T time, S spatial (W; H, W; D, H, W), C input channels,
F filters, S' the output spatial shape of the input convolution. Per-example inputs
are `(*S, C)` with data_format "channels_last" and `(C, *S)` with "channels_first";
states and outputs `(*S', F)` or `(F, *S')`.

Keras layout: `kernel` (*kernel_size, C, 4F), `recurrent_kernel` (*kernel_size, F, 4F),
`bias` (4F,), gates i, f, c, o along the last axis. The input convolution uses the
given strides, padding and dilation; the recurrent one is always stride 1, padding
"same", no dilation (as Keras), so the state keeps the shape S'.
"""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from .. import _activations, _initializers
from . import _conv
from ._base import Cell
from ._dense import _next_post_init, accumulation_dtype, check_units
from ._dropout import DropoutMasks, apply_mask, check_rate, keep_mask

NUM_GATES = 4


@dataclasses.dataclass(frozen=True)
class ConvLSTMConfig:
  """Keras ConvLSTM arguments shared by the cells and the ConvLSTM1D/2D/3D layers.

  `kernel_size`, `strides` and `dilation_rate` are stored as tuples of `rank` ints,
  `padding` lower-case and `data_format` None as "channels_last" (Keras's default).
  """

  rank: int
  filters: int
  kernel_size: Any
  _: dataclasses.KW_ONLY
  strides: Any = 1
  padding: str = "valid"
  data_format: str | None = None
  dilation_rate: Any = 1
  activation: Any = "tanh"
  recurrent_activation: Any = "sigmoid"
  use_bias: bool = True
  kernel_initializer: Any = "glorot_uniform"
  recurrent_initializer: Any = "orthogonal"
  bias_initializer: Any = "zeros"
  unit_forget_bias: bool = True
  kernel_regularizer: Any = None
  recurrent_regularizer: Any = None
  bias_regularizer: Any = None
  kernel_constraint: Any = None
  recurrent_constraint: Any = None
  bias_constraint: Any = None
  dropout: float = 0.0
  recurrent_dropout: float = 0.0
  seed: int | None = None
  dtype: Any = None
  param_dtype: Any = jnp.float32

  def __post_init__(self):
    rank = _conv.check_rank(self.rank)
    check_units(self.filters, "filters")
    normalized = {
        "kernel_size": _conv.int_tuple(self.kernel_size, rank, "kernel_size"),
        "strides": _conv.int_tuple(self.strides, rank, "strides"),
        "dilation_rate": _conv.int_tuple(self.dilation_rate, rank, "dilation_rate"),
        "padding": _conv.check_padding(self.padding),
        "data_format": _conv.check_data_format(self.data_format),
    }
    for name, value in normalized.items():
      object.__setattr__(self, name, value)
    if max(self.strides) > 1 and max(self.dilation_rate) > 1:
      raise ValueError(
          f"strides > 1 is not compatible with dilation_rate > 1 (as in Keras); got "
          f"strides={self.strides} and dilation_rate={self.dilation_rate}."
      )
    _activations.get(self.activation, argument="activation")
    _activations.get(self.recurrent_activation, argument="recurrent_activation")
    for name in ("kernel_initializer", "recurrent_initializer", "bias_initializer"):
      _initializers.get(getattr(self, name), argument=name)
    for name in ("use_bias", "unit_forget_bias"):
      if not isinstance(getattr(self, name), bool):
        raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}.")
    check_rate(self.dropout, "dropout")
    check_rate(self.recurrent_dropout, "recurrent_dropout")
    if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
      raise TypeError(f"seed must be an int or None, got {self.seed!r}.")
    for name in ("dtype", "param_dtype"):
      value = getattr(self, name)
      if value is not None:
        try:
          jnp.dtype(value)
        except TypeError:
          raise TypeError(f"{name} must be a dtype or dtype name, got {value!r}.") from None
    _next_post_init(self, ConvLSTMConfig)


def _fixed_rank(rank: int):
  return dataclasses.field(default=rank, init=False)


@dataclasses.dataclass(frozen=True)
class ConvLSTM1DConfig(ConvLSTMConfig):
  rank: int = _fixed_rank(1)


@dataclasses.dataclass(frozen=True)
class ConvLSTM2DConfig(ConvLSTMConfig):
  rank: int = _fixed_rank(2)


@dataclasses.dataclass(frozen=True)
class ConvLSTM3DConfig(ConvLSTMConfig):
  rank: int = _fixed_rank(3)


@dataclasses.dataclass(frozen=True)
class ConvLSTMCell(ConvLSTMConfig, Cell):
  """Convolutional LSTM cell over `rank` spatial axes (Keras's internal ConvLSTMCell).

  Params: `kernel` (*kernel_size, C, 4F), `recurrent_kernel` (*kernel_size, F, 4F),
  `bias` (4F,); gates i, f, c, o. States `(h, c)`, each (B, *S', F) (channels_last)
  or (B, F, *S'); output `h`. The states' spatial size S' depends on the inputs, so
  `initial_state` takes the per-step `input_shape=`.

  >>> import jax, jax.numpy as jnp, rnnjax as rj
  >>> cell = rj.ConvLSTM2DCell(4, 3, padding="same")
  >>> params = cell.init(jax.random.key(0), (5, 6, 2))
  >>> state = cell.initial_state(2, input_shape=(5, 6, 2))
  >>> h, (h, c) = cell(params, jnp.ones((2, 5, 6, 2)), state)
  >>> h.shape, c.shape, params["kernel"].shape
  ((2, 5, 6, 4), (2, 5, 6, 4), (3, 3, 2, 16))
  """

  # Shapes -------------------------------------------------------------------

  @property
  def state_size(self):
    """Two states `(*S', F)` (or `(F, *S')`); S' is None here, as it depends on the inputs."""
    shape = self.output_size
    return (shape, shape)

  @property
  def output_size(self):
    return _conv.join_step_shape((None,) * self.rank, self.filters, self.data_format)

  def _channel_axis(self) -> int:
    return _conv.channel_axis(self.rank, self.data_format)

  def _layout(self) -> str:
    return _conv.layout(self.rank, self.data_format)

  def _describe(self) -> str:
    return (f"{type(self).__name__}(filters={self.filters}, kernel_size={self.kernel_size}, "
            f"data_format={self.data_format!r})")

  def check_input_shape(self, input_shape) -> tuple[tuple[int, ...], int]:
    """(spatial S, channels C) of per-step `input_shape`; raises if its rank is not
    rank + 1 or it is too small for the input convolution."""
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else input_shape
    if (not isinstance(shape, tuple) or len(shape) != self.rank + 1
        or any(isinstance(d, bool) or not isinstance(d, int) for d in shape)):
      layout = self._layout()
      raise ValueError(
          f"inputs of {self._describe()} must have shape (B, T, {layout[1:]} "
          f"(per step {layout}, rank {self.rank + 1}), got a per-step shape {shape!r}."
      )
    spatial, channels = _conv.split_step_shape(shape, self.data_format)
    out = _conv.output_spatial(spatial, self.kernel_size, self.strides, self.padding,
                               self.dilation_rate)
    if min(out) <= 0:
      raise ValueError(
          f"inputs with spatial shape {spatial} are too small for the input convolution of "
          f"{self._describe()} with padding={self.padding!r}, strides={self.strides}, "
          f"dilation_rate={self.dilation_rate}: its output spatial shape would be {out}."
      )
    return spatial, channels

  def state_shape(self, input_shape) -> tuple[int, ...]:
    """Per-example state/output shape `(*S', F)` (or `(F, *S')`) for per-step `input_shape`."""
    spatial, _ = self.check_input_shape(input_shape)
    out = _conv.output_spatial(spatial, self.kernel_size, self.strides, self.padding,
                               self.dilation_rate)
    return _conv.join_step_shape(out, self.filters, self.data_format)

  def param_shapes(self, channels: int) -> dict[str, tuple[int, ...]]:
    g = NUM_GATES * self.filters
    shapes = {
        "kernel": (*self.kernel_size, channels, g),
        "recurrent_kernel": (*self.kernel_size, self.filters, g),
    }
    if self.use_bias:
      shapes["bias"] = (g,)
    return shapes

  # Parameters and states ----------------------------------------------------

  def init(self, key: jax.Array, input_shape) -> dict:
    """Params for per-step `input_shape` `(*S, C)` (or `(C, *S)`)."""
    _, channels = self.check_input_shape(input_shape)
    shapes = self.param_shapes(channels)
    k_kernel, k_rec, k_bias = jax.random.split(key, 3)
    dt = jnp.dtype(self.param_dtype)
    params = {
        "kernel": _initializers.get(self.kernel_initializer)(k_kernel, shapes["kernel"], dt),
        "recurrent_kernel": _initializers.get(self.recurrent_initializer)(
            k_rec, shapes["recurrent_kernel"], dt),
    }
    if self.use_bias:
      params["bias"] = self._init_bias(k_bias, dt)
    return params

  def _init_bias(self, key, dtype):
    init = _initializers.get(self.bias_initializer)
    f = self.filters
    if not self.unit_forget_bias:
      return init(key, (NUM_GATES * f,), dtype)
    k1, k2 = jax.random.split(key)
    return jnp.concatenate([init(k1, (f,), dtype), jnp.ones((f,), dtype), init(k2, (2 * f,), dtype)])

  def initial_state(self, batch_size: int, dtype=jnp.float32, *, input_shape=None) -> tuple:
    """Zero `(h, c)`, each (batch_size, *S', F) (or (batch_size, F, *S')).

    input_shape: the per-step input shape `(*S, C)` (or `(C, *S)`); required, since the
    state's spatial size depends on it.
    """
    if input_shape is None:
      raise ValueError(
          f"{type(self).__name__}.initial_state needs input_shape=, the per-step input shape "
          f"{self._layout()}: the state's spatial size depends on it; got input_shape=None."
      )
    shape = (batch_size, *self.state_shape(input_shape))
    return (jnp.zeros(shape, dtype), jnp.zeros(shape, dtype))

  def validate_inputs(self, params, input_shape) -> None:
    """Raises if `params` do not fit this cell or per-step `input_shape`."""
    if not isinstance(params, dict) or "kernel" not in params or "recurrent_kernel" not in params:
      raise TypeError(
          f"params must be the dict that {type(self).__name__}.init returns (keys kernel, "
          f"recurrent_kernel, bias), got {type(params).__name__}"
          + (f" with keys {sorted(params)}" if isinstance(params, dict) else "") + "."
      )
    _, channels = self.check_input_shape(input_shape)
    kernel_shape = tuple(params["kernel"].shape)
    if len(kernel_shape) == self.rank + 2 and kernel_shape[self.rank] != channels:
      raise ValueError(
          f"inputs have {channels} channels but params were built for {kernel_shape[self.rank]} "
          f"(kernel shape {kernel_shape})."
      )
    expected = self.param_shapes(channels)
    for name, shape in expected.items():
      got = tuple(params[name].shape) if name in params else None
      if got != shape:
        raise ValueError(
            f"params[{name!r}] has shape {got} but {self._describe()} on {channels} input "
            f"channels expects {shape}."
        )

  # Keras weight lists (layer.get_weights() order) -----------------------------

  def keras_weight_names(self) -> tuple[str, ...]:
    return ("kernel", "recurrent_kernel") + (("bias",) if self.use_bias else ())

  def to_keras_weights(self, params) -> list:
    return [params[name] for name in self.keras_weight_names()]

  def from_keras_weights(self, arrays: list) -> tuple[dict, list]:
    """Params from the head of a Keras weight list; returns (params, the rest of the list)."""
    names = self.keras_weight_names()
    first = arrays[0] if arrays else None
    channels = first.shape[self.rank] if getattr(first, "ndim", 0) == self.rank + 2 else 1
    shapes = self.param_shapes(channels)
    wanted = ", ".join(f"{n} {shapes[n]}" for n in names)
    if len(arrays) < len(names):
      raise ValueError(
          f"{self._describe()} needs {len(names)} Keras weight arrays [{wanted}], "
          f"got {len(arrays)}."
      )
    params = {}
    for name, array in zip(names, arrays):
      got = tuple(getattr(array, "shape", ()))
      if got != shapes[name]:
        raise ValueError(
            f"Keras weight {name!r} of {self._describe()} must have shape {shapes[name]}, "
            f"got {got}; expected [{wanted}]."
        )
      params[name] = jnp.asarray(array, dtype=jnp.dtype(self.param_dtype))
    return params, list(arrays[len(names):])

  # Computation --------------------------------------------------------------

  def compute_dtype(self, x: jax.Array):
    if self.dtype is not None:
      return jnp.dtype(self.dtype)
    return jnp.result_type(x.dtype, jnp.dtype(self.param_dtype))

  def _gate_conv(self, x, kernel, masks, **conv_kw):
    """conv(x, kernel) with `x` dropped out per gate block of the kernel's filters.

    masks: None, or (4, B, *per-example) (Keras: one mask per gate).
    """
    acc = accumulation_dtype(x.dtype)
    kw = dict(rank=self.rank, data_format=self.data_format, preferred_element_type=acc, **conv_kw)
    if masks is None:
      return _conv.conv(x, kernel, **kw)
    blocks = jnp.split(kernel, NUM_GATES, axis=-1)
    return jnp.concatenate(
        [_conv.conv(apply_mask(x, m), k, **kw) for m, k in zip(masks, blocks)],
        axis=self._channel_axis(),
    )

  def project(self, params, inputs, *, dropout: DropoutMasks | None = None):
    """The input convolution plus bias for any leading axes, e.g. the whole time-major
    sequence in one convolution: (..., *S, C) -> (..., *S', 4F) (channels_first:
    (..., C, *S) -> (..., 4F, *S'))."""
    cd = self.compute_dtype(inputs)
    masks = None if dropout is None else dropout.inputs
    z = self._gate_conv(inputs.astype(cd), params["kernel"].astype(cd), masks,
                        strides=self.strides, padding=self.padding,
                        dilation_rate=self.dilation_rate)
    return _conv.add_channel_bias(z, params.get("bias") if self.use_bias else None,
                                  self._channel_axis())

  def step(self, params, projected, states, *, training=False, constants=None, dropout=None):
    """projected: (B, *S', 4F) (or (B, 4F, *S')); states (h, c) -> (h', (h', c'))."""
    del training, constants
    h, c = states
    cd = self.compute_dtype(h)
    masks = None if dropout is None else dropout.recurrent
    recurrent = self._gate_conv(h.astype(cd), params["recurrent_kernel"].astype(cd), masks,
                                padding="same")
    z = projected + recurrent.astype(projected.dtype)
    act = _activations.get(self.activation)
    gate = _activations.get(self.recurrent_activation)
    zi, zf, zc, zo = jnp.split(z, NUM_GATES, axis=self._channel_axis())
    c_new = gate(zf) * c + gate(zi) * act(zc)
    h_new = gate(zo) * act(c_new)
    return h_new.astype(cd), (h_new, c_new)

  def __call__(self, params, inputs, states, *, training=False, constants=None, dropout=None):
    """One Keras step: inputs (B, *S, C), states (h, c) -> (output, new states)."""
    projected = self.project(params, inputs, dropout=dropout)
    return self.step(params, projected, states, training=training, constants=constants,
                     dropout=dropout)

  # Dropout ------------------------------------------------------------------

  def uses_dropout(self) -> bool:
    return self.dropout > 0.0 or self.recurrent_dropout > 0.0

  def dropout_masks(self, key, batch_size: int, input_shape, dtype) -> DropoutMasks | None:
    """Keras's 4 masks per role (one per gate): inputs (4, B, *S, C), recurrent (4, B, *S', F)."""
    if not self.uses_dropout():
      return None
    if self.seed is not None:
      key = jax.random.fold_in(key, self.seed)
    k_in, k_rec = jax.random.split(key)
    return DropoutMasks(
        keep_mask(k_in, self.dropout, (NUM_GATES, batch_size, *tuple(input_shape)), dtype),
        keep_mask(k_rec, self.recurrent_dropout,
                  (NUM_GATES, batch_size, *self.state_shape(input_shape)), dtype),
    )


@dataclasses.dataclass(frozen=True)
class ConvLSTM1DCell(ConvLSTM1DConfig, ConvLSTMCell):
  """ConvLSTMCell over one spatial axis: inputs (B, W, C), states (B, W', F).

  >>> import jax, jax.numpy as jnp, rnnjax as rj
  >>> cell = rj.ConvLSTM1DCell(3, 2, strides=2)
  >>> params = cell.init(jax.random.key(0), (7, 4))
  >>> [s.shape for s in cell.initial_state(2, input_shape=(7, 4))]
  [(2, 3, 3), (2, 3, 3)]
  """


@dataclasses.dataclass(frozen=True)
class ConvLSTM2DCell(ConvLSTM2DConfig, ConvLSTMCell):
  """ConvLSTMCell over two spatial axes: inputs (B, H, W, C), states (B, H', W', F)."""


@dataclasses.dataclass(frozen=True)
class ConvLSTM3DCell(ConvLSTM3DConfig, ConvLSTMCell):
  """ConvLSTMCell over three spatial axes: inputs (B, D, H, W, C), states (B, D', H', W', F)."""
