"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?"): GRU and LSTM with
the gates computed from x_t alone, so that the state update is affine in the state.

Params (Keras layout, one fused matrix): `kernel` (F, G*U) and `bias` (G*U,), gates in
the order below; initialised as the paper's code (PyTorch `nn.Linear`: U(+-1/sqrt(F))).

minGRU, gates (z, h~):   z = sigmoid(x W_z + b_z),  h~ = x W_h + b_h
                         h = (1 - z) * h_prev + z * h~
minLSTM, gates (f, i, h~): f = sigmoid(x W_f + b_f),  i = sigmoid(x W_i + b_i),
                         h~ = x W_h + b_h,  f' = f / (f + i),  i' = i / (f + i)
                         h = f' * h_prev + i' * h~

`log_space=True` is the paper's log-space variant: the candidate is g(h~) with
g(v) = v + 1/2 for v >= 0 and sigmoid(v) otherwise (positive, so b > 0), and the
coefficients are handed over as logarithms, log z = -softplus(-k), log(1 - z) =
-softplus(k), log f' = -softplus(d), log i' = -softplus(-d) with
d = softplus(-k_f) - softplus(-k_i); the parallel scan then composes in log space.
"""

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from .. import _constraints, _regularizers
from .._validation import check_bool, check_positive_int
from ..types import Array, Key, Params, ShapeTree
from ._dense import accumulation_dtype, add_bias
from ._dropout import DropoutMasks
from ._linear import LINEAR_UNIFORM, LinearCell, LinearOptions, initializer


def g(v: Array) -> Array:
  """The paper's positive candidate activation: v + 1/2 for v >= 0, sigmoid(v) below."""
  return jnp.where(v >= 0, v + 0.5, jax.nn.sigmoid(v))


def log_g(v: Array) -> Array:
  """log(g(v)), computed without forming g (stable for very negative v)."""
  return jnp.where(v >= 0, jnp.log(jnp.maximum(v, 0.0) + 0.5), -jax.nn.softplus(-v))


@dataclasses.dataclass(frozen=True)
class MinRNNConfig(LinearOptions):
  """Arguments of minGRU and minLSTM (cells and layers)."""

  units: int
  _: dataclasses.KW_ONLY
  log_space: bool = False
  use_bias: bool = True
  kernel_initializer: Any = LINEAR_UNIFORM
  bias_initializer: Any = LINEAR_UNIFORM
  kernel_regularizer: Any = None
  bias_regularizer: Any = None
  kernel_constraint: Any = None
  bias_constraint: Any = None

  num_gates: ClassVar[int] = 2

  def check_config(self) -> None:
    check_positive_int(self.units, "units")
    check_bool(self.log_space, "log_space")
    check_bool(self.use_bias, "use_bias")
    for role in ("kernel", "bias"):
      initializer(getattr(self, f"{role}_initializer"), 1, f"{role}_initializer")
      _regularizers.get(getattr(self, f"{role}_regularizer"), argument=f"{role}_regularizer")
      _constraints.get(getattr(self, f"{role}_constraint"), argument=f"{role}_constraint")
    self.check_options()


@dataclasses.dataclass(frozen=True)
class MinGRUConfig(MinRNNConfig):
  """minGRU's arguments."""


@dataclasses.dataclass(frozen=True)
class MinLSTMConfig(MinRNNConfig):
  """minLSTM's arguments."""

  num_gates: ClassVar[int] = 3


@dataclasses.dataclass(frozen=True)
class _MinCell(MinRNNConfig, LinearCell):
  """What minGRU and minLSTM share: params, projection, output = state = h (B, U)."""

  @property
  def state_size(self) -> int:
    return self.units

  @property
  def output_size(self) -> int:
    return self.units

  def init(self, key: Key, input_shape: ShapeTree) -> dict[str, Array]:
    """Params `{"kernel": (F, G*U), "bias": (G*U,)}` (no bias without `use_bias`)."""
    features = tuple(input_shape)[-1]
    k_kernel, k_bias = jax.random.split(key)
    dt = jnp.dtype(self.param_dtype)
    g_units = self.num_gates * self.units
    params = {"kernel": initializer(self.kernel_initializer, features, "kernel_initializer")(
        k_kernel, (features, g_units), dt)}
    if self.use_bias:
      params["bias"] = initializer(self.bias_initializer, features, "bias_initializer")(
          k_bias, (g_units,), dt)
    return params

  def validate_inputs(self, params: Params, input_shape: ShapeTree) -> None:
    self.check_params_dict(params, ("kernel", "bias") if self.use_bias else ("kernel",))
    self.check_rank(input_shape)
    features = params["kernel"].shape[0]
    if input_shape[-1] != features:
      raise ValueError(
          f"inputs have {input_shape[-1]} features but params were built for {features} "
          f"(kernel shape {tuple(params['kernel'].shape)}).")

  def project(self, params: Params, inputs: Array, *,
              dropout: DropoutMasks | None = None) -> Array:
    """`inputs @ kernel + bias` for any leading axes: (..., F) -> (..., G*U), in float32
    or wider."""
    cd = self.compute_dtype(inputs)
    x = self.dropped(inputs.astype(cd), dropout)
    z = jnp.matmul(x, params["kernel"].astype(cd), preferred_element_type=accumulation_dtype(cd))
    return add_bias(z, params.get("bias") if self.use_bias else None)

  def readout(self, params: Params, projected: Array, h: Array) -> Array:
    del params, projected
    return h

  def candidate(self, v: Array) -> Array:
    """h~ (linear mode) or log g(h~) (log space)."""
    return log_g(v) if self.log_space else v


@dataclasses.dataclass(frozen=True)
class MinGRUCell(MinGRUConfig, _MinCell):
  """minGRU (Feng et al. 2024): `h = (1 - z) * h_prev + z * h~`, z and h~ from x_t only.

  Params: `kernel` (F, 2U) and `bias` (2U,), gates z, h~. State: `(h,)`, (B, U); the
  output is h. `log_space=True`: the paper's log-space variant (candidate g(h~)).

  >>> import jax, jax.numpy as jnp, rnnjax as rj
  >>> cell = rj.MinGRUCell(4)
  >>> params = cell.init(jax.random.key(0), (3,))
  >>> out, (h,) = cell(params, jnp.ones((2, 3)), cell.initial_state(2))
  >>> params["kernel"].shape, out.shape
  ((3, 8), (2, 4))
  """

  def coefficients(self, params: Params, projected: Array) -> tuple[Array, Array]:
    """(a, b) = (1 - z, z * h~), or their logarithms in log space; each (..., U)."""
    del params
    k, v = jnp.split(projected, 2, axis=-1)
    if self.log_space:
      return -jax.nn.softplus(k), -jax.nn.softplus(-k) + self.candidate(v)
    z = jax.nn.sigmoid(k)
    return jax.nn.sigmoid(-k), z * v


@dataclasses.dataclass(frozen=True)
class MinLSTMCell(MinLSTMConfig, _MinCell):
  """minLSTM (Feng et al. 2024): `h = f' * h_prev + i' * h~` with the normalised gates
  f' = f / (f + i), i' = i / (f + i); f, i, h~ from x_t only.

  Params: `kernel` (F, 3U) and `bias` (3U,), gates f, i, h~. State: `(h,)`, (B, U); the
  output is h. `log_space=True`: the paper's log-space variant (candidate g(h~)).

  >>> import jax, jax.numpy as jnp, rnnjax as rj
  >>> cell = rj.MinLSTMCell(4, log_space=True)
  >>> params = cell.init(jax.random.key(0), (3,))
  >>> [params["kernel"].shape, cell(params, jnp.ones((2, 3)), cell.initial_state(2))[0].shape]
  [(3, 12), (2, 4)]
  """

  def coefficients(self, params: Params, projected: Array) -> tuple[Array, Array]:
    """(a, b) = (f', i' * h~), or their logarithms in log space; each (..., U)."""
    del params
    kf, ki, v = jnp.split(projected, 3, axis=-1)
    # d = log i - log f; f' = sigmoid(-d), i' = sigmoid(d): the normalisation, stably.
    d = jax.nn.softplus(-kf) - jax.nn.softplus(-ki)
    if self.log_space:
      return -jax.nn.softplus(d), -jax.nn.softplus(-d) + self.candidate(v)
    return jax.nn.sigmoid(-d), jax.nn.sigmoid(d) * v
