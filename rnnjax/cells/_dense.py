"""What the Keras dense cells (SimpleRNN, GRU, LSTM) share: configuration, the
`kernel` / `recurrent_kernel` / `bias` parameters, gate-split matmuls, dropout masks."""

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from .. import _activations, _constraints, _initializers, _regularizers
from ._base import Cell
from ._dropout import DropoutMasks, apply_mask, check_rate, keep_mask


# Name under which cells tag their gate pre-activations (the sums of the matmuls): the
# engine may keep only these for the backward pass and recompute the gate math.
PREACTIVATION = "rnnjax_preactivation"


def check_units(units, argument: str = "units") -> None:  # noqa: D103
  if isinstance(units, bool) or not isinstance(units, int):
    raise TypeError(f"{argument} must be a positive int, got {units!r}.")
  if units <= 0:
    raise ValueError(f"{argument} must be a positive int, got {units}.")


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
class DenseConfig:
  """Keras arguments shared by the dense cells and their layers (SimpleRNN, GRU, LSTM)."""

  units: int
  _: dataclasses.KW_ONLY
  activation: Any = "tanh"
  use_bias: bool = True
  kernel_initializer: Any = "glorot_uniform"
  recurrent_initializer: Any = "orthogonal"
  bias_initializer: Any = "zeros"
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

  num_gates: ClassVar[int] = 1

  @property
  def mask_count(self) -> int:
    """Dropout masks per role: one per gate with Keras `implementation=1`, else one."""
    return 1

  def __post_init__(self):
    check_units(self.units)
    _activations.get(self.activation, argument="activation")
    for name in ("kernel_initializer", "recurrent_initializer", "bias_initializer"):
      _initializers.get(getattr(self, name), argument=name)
    for name in ("kernel_regularizer", "recurrent_regularizer", "bias_regularizer"):
      _regularizers.get(getattr(self, name), argument=name)
    for name in ("kernel_constraint", "recurrent_constraint", "bias_constraint"):
      _constraints.get(getattr(self, name), argument=name)
    check_rate(self.dropout, "dropout")
    check_rate(self.recurrent_dropout, "recurrent_dropout")
    if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
      raise TypeError(f"seed must be an int or None, got {self.seed!r}.")
    if not isinstance(self.use_bias, bool):
      raise TypeError(f"use_bias must be a bool, got {self.use_bias!r}.")
    for name in ("dtype", "param_dtype"):
      value = getattr(self, name)
      if value is not None:
        try:
          jnp.dtype(value)
        except TypeError:
          raise TypeError(f"{name} must be a dtype or dtype name, got {value!r}.") from None
    _next_post_init(self, DenseConfig)


def _next_post_init(obj, cls) -> None:
  """Cooperative __post_init__ across the config/layer mixins."""
  nxt = getattr(super(cls, obj), "__post_init__", None)
  if nxt is not None:
    nxt()


@dataclasses.dataclass(frozen=True)
class DenseCell(DenseConfig, Cell):
  """Base of SimpleRNNCell, GRUCell and LSTMCell (Keras layout, one fused matrix per role)."""

  accepts_constants: ClassVar[bool] = False

  @property
  def state_size(self):
    return self.units

  def validate_inputs(self, params, input_shape) -> None:
    """Raises if `params` do not fit this cell or per-step `input_shape` (F,)."""
    if not isinstance(params, dict) or "kernel" not in params or "recurrent_kernel" not in params:
      raise TypeError(
          f"params must be the dict that {type(self).__name__}.init returns (keys kernel, "
          f"recurrent_kernel, bias), got {type(params).__name__}"
          + (f" with keys {sorted(params)}" if isinstance(params, dict) else "") + "."
      )
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

  @property
  def output_size(self):
    return self.units

  # Parameters ---------------------------------------------------------------

  def init(self, key: jax.Array, input_shape) -> dict:
    """Params `{"kernel": (F, G*U), "recurrent_kernel": (U, G*U), "bias": ...}`."""
    features = tuple(input_shape)[-1]
    g = self.num_gates * self.units
    k_kernel, k_rec, k_bias = jax.random.split(key, 3)
    dt = jnp.dtype(self.param_dtype)
    params = {
        "kernel": _initializers.get(self.kernel_initializer)(k_kernel, (features, g), dt),
        "recurrent_kernel": _initializers.get(self.recurrent_initializer)(
            k_rec, (self.units, g), dt
        ),
    }
    if self.use_bias:
      params["bias"] = self.init_bias(k_bias, dt)
    return params

  # Keras weight lists (layer.get_weights() order) ------------------------------

  def keras_weight_names(self) -> tuple[str, ...]:
    return ("kernel", "recurrent_kernel") + (("bias",) if self.use_bias else ())

  def to_keras_weights(self, params) -> list:
    return [params[name] for name in self.keras_weight_names()]

  def from_keras_weights(self, arrays: list) -> tuple[dict, list]:
    """Params from the head of a Keras weight list; returns (params, the rest of the list)."""
    names = self.keras_weight_names()
    first = arrays[0] if arrays else None
    features = first.shape[0] if getattr(first, "ndim", 0) == 2 else 1
    expected = jax.eval_shape(lambda: self.init(jax.random.key(0), (features,)))
    shapes = {n: tuple(expected[n].shape) for n in names}
    wanted = ", ".join(f"{n} {shapes[n]}" for n in names)
    if len(arrays) < len(names):
      raise ValueError(
          f"{type(self).__name__}(units={self.units}) needs {len(names)} Keras weight arrays "
          f"[{wanted}], got {len(arrays)}."
      )
    params = {}
    for name, array in zip(names, arrays):
      if tuple(getattr(array, "shape", ())) != shapes[name]:
        raise ValueError(
            f"Keras weight {name!r} of {type(self).__name__}(units={self.units}) must have shape "
            f"{shapes[name]}, got {tuple(getattr(array, 'shape', ()))}; expected [{wanted}]."
        )
      params[name] = jnp.asarray(array, dtype=jnp.dtype(self.param_dtype))
    return params, list(arrays[len(names):])

  def init_bias(self, key: jax.Array, dtype) -> jax.Array:
    return _initializers.get(self.bias_initializer)(key, (self.num_gates * self.units,), dtype)

  # Computation --------------------------------------------------------------

  def compute_dtype(self, x: jax.Array):
    if self.dtype is not None:
      return jnp.dtype(self.dtype)
    return jnp.result_type(x.dtype, jnp.dtype(self.param_dtype))

  def input_bias(self, params) -> jax.Array | None:
    return params.get("bias") if self.use_bias else None

  def project(self, params, inputs, *, dropout: DropoutMasks | None = None):
    """`inputs @ kernel + input_bias` for any leading axes: (..., F) -> (..., G*U)."""
    cd = self.compute_dtype(inputs)
    masks = None if dropout is None else dropout.inputs
    z = gate_matmul(inputs.astype(cd), params["kernel"].astype(cd), masks, self.num_gates)
    return add_bias(z, self.input_bias(params))

  def __call__(self, params, inputs, states, *, training=False, constants=None, dropout=None):
    """One Keras step: inputs (B, F), states tuple of (B, U) -> (output (B, U), new states)."""
    projected = self.project(params, inputs, dropout=dropout)
    return self.step(params, projected, states, training=training, constants=constants,
                     dropout=dropout)

  # Dropout ------------------------------------------------------------------

  def uses_dropout(self) -> bool:
    return self.dropout > 0.0 or self.recurrent_dropout > 0.0

  def dropout_masks(self, key, batch_size: int, input_shape, dtype) -> DropoutMasks | None:
    if not self.uses_dropout():
      return None
    if self.seed is not None:
      key = jax.random.fold_in(key, self.seed)
    k_in, k_rec = jax.random.split(key)
    n = self.mask_count
    return DropoutMasks(
        keep_mask(k_in, self.dropout, (n, batch_size, *tuple(input_shape)), dtype),
        keep_mask(k_rec, self.recurrent_dropout, (n, batch_size, self.units), dtype),
    )
