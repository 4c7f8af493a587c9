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
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from .. import _activations
from . import _conv
from ._conv_lstm_config import ConvLSTM1DConfig, ConvLSTM2DConfig, ConvLSTM3DConfig, ConvLSTMConfig
from ..types import Array, DTypeLike, Key, Params, PyTree, ShapeTree, State
from ._dense import accumulation_dtype
from ._dropout import DropoutMasks, apply_mask
from ._keras_cell import KerasCell
from ._lstm import lstm_bias, lstm_gates

NUM_GATES = 4


@dataclasses.dataclass(frozen=True)
class ConvLSTMCell(ConvLSTMConfig, KerasCell):
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
  def state_size(self) -> tuple[Any, Any]:
    """Two states `(*S', F)` (or `(F, *S')`); S' is None here, as it depends on the inputs."""
    shape = self.output_size
    return (shape, shape)

  @property
  def output_size(self) -> Any:
    return _conv.join_step_shape((None,) * self.rank, self.filters, self.data_format)

  def _channel_axis(self) -> int:
    return _conv.channel_axis(self.rank, self.data_format)

  def _layout(self) -> str:
    return _conv.layout(self.rank, self.data_format)

  def describe_cell(self) -> str:
    return (f"{type(self).__name__}(filters={self.filters}, kernel_size={self.kernel_size}, "
            f"data_format={self.data_format!r})")

  def check_input_shape(self, input_shape: ShapeTree) -> tuple[tuple[int, ...], int]:
    """(spatial S, channels C) of per-step `input_shape`; raises if its rank is not
    rank + 1 or it is too small for the input convolution."""
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else input_shape
    if (not isinstance(shape, tuple) or len(shape) != self.rank + 1
        or any(isinstance(d, bool) or not isinstance(d, int) for d in shape)):
      layout = self._layout()
      raise ValueError(
          f"inputs of {self.describe_cell()} must have shape (B, T, {layout[1:]} "
          f"(per step {layout}, rank {self.rank + 1}), got a per-step shape {shape!r}."
      )
    spatial, channels = _conv.split_step_shape(shape, self.data_format)
    out = _conv.output_spatial(spatial, self.kernel_size, self.strides, self.padding,
                               self.dilation_rate)
    if min(out) <= 0:
      raise ValueError(
          f"inputs with spatial shape {spatial} are too small for the input convolution of "
          f"{self.describe_cell()} with padding={self.padding!r}, strides={self.strides}, "
          f"dilation_rate={self.dilation_rate}: its output spatial shape would be {out}."
      )
    return spatial, channels

  def state_shape(self, input_shape: ShapeTree) -> tuple[int, ...]:
    """Per-example state/output shape `(*S', F)` (or `(F, *S')`) for per-step `input_shape`."""
    spatial, _ = self.check_input_shape(input_shape)
    out = _conv.output_spatial(spatial, self.kernel_size, self.strides, self.padding,
                               self.dilation_rate)
    return _conv.join_step_shape(out, self.filters, self.data_format)

  def call_state_shapes(self, input_shape: ShapeTree) -> tuple[tuple[int, ...], ...]:
    """(h, c) shapes per example for per-step `input_shape` (see KerasCell.check_call)."""
    return (self.state_shape(input_shape),) * 2

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

  def init(self, key: Key, input_shape: ShapeTree) -> dict[str, Array]:
    """Params for per-step `input_shape` `(*S, C)` (or `(C, *S)`)."""
    _, channels = self.check_input_shape(input_shape)
    shapes = self.param_shapes(channels)
    k_kernel, k_rec, k_bias = jax.random.split(key, 3)
    dt = jnp.dtype(self.param_dtype)
    def initializer(role):
      return self.weight_initializer(role, units=self.filters, blocks=NUM_GATES, conv=True)

    params = {
        "kernel": initializer("kernel")(k_kernel, shapes["kernel"], dt),
        "recurrent_kernel": initializer("recurrent")(k_rec, shapes["recurrent_kernel"], dt),
    }
    if self.use_bias:
      # Keras's unit_forget_bias; Flax's ConvLSTMCell adds the same 1 to its forget gate.
      params["bias"] = lstm_bias(initializer("bias"), k_bias, self.filters, dt,
                                 self.unit_forget_bias)
    return params

  def initial_state(self, batch_size: int, dtype: DTypeLike = jnp.float32, *,
                    input_shape: ShapeTree = None) -> tuple[Array, Array]:
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

  def validate_inputs(self, params: Params, input_shape: ShapeTree) -> None:
    """Raises if `params` do not fit this cell or per-step `input_shape`."""
    self.check_params_dict(params)
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
            f"params[{name!r}] has shape {got} but {self.describe_cell()} on {channels} input "
            f"channels expects {shape}."
        )

  # Keras weight lists (layer.get_weights() order) -----------------------------

  def keras_weight_shapes(self, kernel: Any) -> dict[str, tuple[int, ...]]:
    """Param shapes for a Keras kernel (*kernel_size, C, 4F) (C = 1 when its rank differs)."""
    channels = kernel.shape[self.rank] if getattr(kernel, "ndim", 0) == self.rank + 2 else 1
    return self.param_shapes(channels)

  # Computation --------------------------------------------------------------

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

  def project(self, params: Params, inputs: Array, *,
              dropout: DropoutMasks | None = None) -> Array:
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

  def step(self, params: Params, projected: Array, states: State, *, training: bool = False,
           constants: PyTree = None, dropout: Any = None) -> tuple[Array, State]:
    """projected: (B, *S', 4F) (or (B, 4F, *S')); states (h, c) -> (h', (h', c'))."""
    del training, constants
    h, c = states
    cd = self.compute_dtype(h)
    masks = None if dropout is None else dropout.recurrent
    recurrent = self._gate_conv(h.astype(cd), params["recurrent_kernel"].astype(cd), masks,
                                padding="same")
    z = projected + recurrent.astype(projected.dtype)
    h_new, c_new = lstm_gates(z, c, _activations.get(self.activation),
                              _activations.get(self.recurrent_activation),
                              axis=self._channel_axis())
    return h_new.astype(cd), (h_new, c_new)

  # Dropout ------------------------------------------------------------------

  # Keras draws 4 masks per role (one per gate): inputs (4, B, *S, C), recurrent
  # (4, B, *S', F).
  mask_count: ClassVar[int] = NUM_GATES

  def recurrent_mask_shape(self, input_shape: ShapeTree) -> tuple[int, ...]:
    return self.state_shape(input_shape)


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
