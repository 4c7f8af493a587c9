"""ProjectedLSTMCell: an LSTM whose output and recurrent state are projected to
`proj_size` features (Sak et al., 2014; PyTorch's `nn.LSTM(proj_size=P)`)."""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from .._validation import check_positive_int
from ..types import Array, Key, Params, PyTree, ShapeTree, State
from ._dense import accumulation_dtype
from ._lstm import LSTMCell


@dataclasses.dataclass(frozen=True)
class ProjectedLSTMCell(LSTMCell):
  """LSTM with a projection (PyTorch `nn.LSTM(..., proj_size=P)`): the gates see the
  projected state, `h = (o * tanh(c)) @ projection`.

  Params: `kernel` (F, 4U), `recurrent_kernel` (P, 4U), `bias` (4U,), gates i, f, c, o as
  `LSTMCell`, and `projection` (U, P) (PyTorch's `weight_hr` transposed), initialised
  like the kernel. States `(h, c)`: h (B, P), c (B, U). Output `h` (B, P).

  proj_size: P, a positive int smaller than `units` (as PyTorch requires).

  >>> import jax, jax.numpy as jnp, rnnjax as rj
  >>> cell = rj.ProjectedLSTMCell(8, proj_size=3)
  >>> params = cell.init(jax.random.key(0), (5,))
  >>> y, (h, c) = cell(params, jnp.ones((2, 5)), cell.initial_state(2))
  >>> y.shape, c.shape, params["recurrent_kernel"].shape, params["projection"].shape
  ((2, 3), (2, 8), (3, 32), (8, 3))
  """

  _: dataclasses.KW_ONLY
  proj_size: int = 1

  def check_config(self) -> None:
    check_positive_int(self.proj_size, "proj_size")
    if self.proj_size >= self.units:
      raise ValueError(
          f"proj_size must be smaller than units (as in PyTorch), got proj_size="
          f"{self.proj_size} and units={self.units}."
      )
    super().check_config()

  @property
  def state_size(self) -> tuple[int, int]:
    return (self.proj_size, self.units)

  def describe_cell(self) -> str:
    return f"{type(self).__name__}(units={self.units}, proj_size={self.proj_size})"

  @property
  def output_size(self) -> int:
    """The projected size P: h is (B, P)."""
    return self.proj_size

  def init(self, key: Key, input_shape: ShapeTree) -> dict:
    """Params `{"kernel": (F, 4U), "recurrent_kernel": (P, 4U), "bias": (4U,),
    "projection": (U, P)}`."""
    features = tuple(input_shape)[-1]
    g = 4 * self.units
    k_kernel, k_rec, k_bias, k_proj = jax.random.split(key, 4)
    dt = jnp.dtype(self.param_dtype)
    params = {
        "kernel": self.initializer("kernel")(k_kernel, (features, g), dt),
        "recurrent_kernel": self.initializer("recurrent")(k_rec, (self.proj_size, g), dt),
    }
    if self.use_bias:
      params["bias"] = self.init_bias(k_bias, dt)
    params["projection"] = self.initializer("kernel")(k_proj, (self.units, self.proj_size), dt)
    return params

  def keras_weight_names(self) -> tuple[str, ...]:
    return super().keras_weight_names() + ("projection",)

  def recurrent_mask_shape(self, input_shape: ShapeTree) -> tuple[int, ...]:
    del input_shape
    return (self.proj_size,)

  def step(self, params: Params, projected: Array, states: State, *, training: bool = False,
           constants: PyTree = None, dropout: Any = None) -> tuple[Array, State]:
    """projected: (B, 4U) = x @ kernel + bias; states (h (B, P), c (B, U)) -> (h', (h', c'))."""
    del training, constants
    full, c_new, cd = self.gate_step(params, projected, states, dropout)
    h_new = jnp.matmul(full.astype(cd), params["projection"].astype(cd),
                       preferred_element_type=accumulation_dtype(cd))
    return h_new.astype(cd), (h_new.astype(full.dtype), c_new)
