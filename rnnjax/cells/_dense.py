"""What the Keras dense cells (SimpleRNN, GRU, LSTM) share: configuration, the
`kernel` / `recurrent_kernel` / `bias` parameters, gate-split matmuls, dropout masks
(the Keras weight list and the call are KerasCell's, shared with ConvLSTMCell)."""

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from .._validation import check_positive_int
from ..types import Array, Key, Params, ShapeTree
from ._dropout import DropoutMasks, apply_mask
from ._keras_cell import KerasCell
from ._options import WeightOptions, check_shared_options


def accumulation_dtype(compute_dtype) -> jnp.dtype:
  """Matmuls accumulate in at least float32 (bf16 inputs, f32 sums)."""
  return jnp.promote_types(compute_dtype, jnp.float32)


def add_bias(z: jax.Array, bias: jax.Array | None) -> jax.Array:
  """`z + bias` with `bias` (G,) broadcast explicitly over z's leading axes."""
  if bias is None:
    return z
  return z + bias.astype(z.dtype).reshape((1,) * (z.ndim - bias.ndim) + bias.shape)


def gate_matmul(x: jax.Array, w: jax.Array, masks: jax.Array | None, num_gates: int) -> jax.Array:
  """`x @ w`, where `x` is dropped out per gate block of `w`'s columns.

  x: (..., F); w: (F, num_gates * U); masks: None, or (N, B, F) with N = 1 (one mask
  for all gates) or N = num_gates (Keras `implementation=1`). Returns (..., num_gates * U)
  accumulated in at least float32.
  """
  acc = accumulation_dtype(x.dtype)
  if masks is None or masks.shape[0] == 1:
    x = x if masks is None else apply_mask(x, masks[0])
    return jnp.matmul(x, w, preferred_element_type=acc)
  blocks = jnp.split(w, num_gates, axis=-1)
  return jnp.concatenate(
      [jnp.matmul(apply_mask(x, m), wk, preferred_element_type=acc) for m, wk in zip(masks, blocks)],
      axis=-1,
  )


@dataclasses.dataclass(frozen=True)
class DenseConfig(WeightOptions):
  """Keras arguments shared by the dense cells and their layers (SimpleRNN, GRU, LSTM)."""

  units: int

  num_gates: ClassVar[int] = 1

  @property
  def mask_count(self) -> int:
    """Dropout masks per role: one per gate with Keras `implementation=1`, else one."""
    return 1

  def check_config(self) -> None:
    """Validates the dense arguments (see `Cell.check_config`)."""
    check_positive_int(self.units, "units")
    check_shared_options(self)


@dataclasses.dataclass(frozen=True)
class DenseCell(DenseConfig, KerasCell):
  """Base of SimpleRNNCell, GRUCell and LSTMCell (Keras layout, one fused matrix per role)."""

  @property
  def state_size(self) -> int | tuple[int, ...]:
    return self.units

  @property
  def output_size(self) -> int:
    return self.units

  def describe_cell(self) -> str:
    return f"{type(self).__name__}(units={self.units})"

  def validate_inputs(self, params: Params, input_shape: ShapeTree) -> None:
    """Raises if `params` do not fit this cell or per-step `input_shape` (F,)."""
    self.check_params_dict(params)
    if len(input_shape) != 1:
      raise ValueError(
          f"inputs must have shape (B, T, F) (one feature axis), got a per-step shape "
          f"{tuple(input_shape)}."
      )
    features = params["kernel"].shape[0]
    if input_shape[-1] != features:
      raise ValueError(
          f"inputs have {input_shape[-1]} features but params were built for {features} "
          f"(kernel shape {tuple(params['kernel'].shape)})."
      )

  # Parameters ---------------------------------------------------------------

  def init(self, key: Key, input_shape: ShapeTree) -> dict[str, Array]:
    """Params `{"kernel": (F, G*U), "recurrent_kernel": (U, G*U), "bias": ...}`."""
    features = tuple(input_shape)[-1]
    g = self.num_gates * self.units
    k_kernel, k_rec, k_bias = jax.random.split(key, 3)
    dt = jnp.dtype(self.param_dtype)
    params = {
        "kernel": self.initializer("kernel")(k_kernel, (features, g), dt),
        "recurrent_kernel": self.initializer("recurrent")(k_rec, (self.units, g), dt),
    }
    if self.use_bias:
      params["bias"] = self.init_bias(k_bias, dt)
    return params

  def initializer(self, role: str) -> Any:
    """The initializer of `role` ("kernel", "recurrent", "bias"): the given field, else
    the `initializers` preset's (see `WeightOptions`)."""
    return self.weight_initializer(role, units=self.units, blocks=self.num_gates)

  def init_bias(self, key: Key, dtype: jnp.dtype) -> Array:
    return self.initializer("bias")(key, (self.num_gates * self.units,), dtype)

  # Keras weight lists (layer.get_weights() order) ------------------------------

  def keras_weight_shapes(self, kernel: Any) -> dict[str, tuple[int, ...]]:
    """Param shapes for a Keras kernel (F, G*U) (F = 1 when it is not 2-d)."""
    features = kernel.shape[0] if getattr(kernel, "ndim", 0) == 2 else 1
    expected = jax.eval_shape(lambda: self.init(jax.random.key(0), (features,)))
    return {name: tuple(a.shape) for name, a in expected.items()}

  # Computation --------------------------------------------------------------

  def input_bias(self, params: Params) -> Array | None:
    return params.get("bias") if self.use_bias else None

  def project(self, params: Params, inputs: Array, *,
              dropout: DropoutMasks | None = None) -> Array:
    """`inputs @ kernel + input_bias` for any leading axes: (..., F) -> (..., G*U)."""
    cd = self.compute_dtype(inputs)
    masks = None if dropout is None else dropout.inputs
    z = gate_matmul(inputs.astype(cd), params["kernel"].astype(cd), masks, self.num_gates)
    return add_bias(z, self.input_bias(params))

  # Dropout ------------------------------------------------------------------

  def recurrent_mask_shape(self, input_shape: ShapeTree) -> tuple[int, ...]:
    del input_shape
    return (self.units,)
