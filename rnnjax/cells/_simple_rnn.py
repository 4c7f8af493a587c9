"""SimpleRNNCell: Keras 3 fully connected recurrence `h' = act(x W + b + h U)`."""

import dataclasses
from typing import Any

from .. import _activations
from ..types import Array, Params, PyTree, State
from ._dense import DenseCell, DenseConfig, gate_matmul


@dataclasses.dataclass(frozen=True)
class SimpleRNNConfig(DenseConfig):
  """Keras SimpleRNN arguments (exactly the dense ones)."""


@dataclasses.dataclass(frozen=True)
class SimpleRNNCell(SimpleRNNConfig, DenseCell):
  """Params: `kernel` (F, U), `recurrent_kernel` (U, U), `bias` (U,). State `(h,)`, (B, U).

  >>> import jax, jax.numpy as jnp, rnnjax as rj
  >>> cell = rj.SimpleRNNCell(4, activation="relu")
  >>> params = cell.init(jax.random.key(0), (3,))
  >>> out, (h,) = cell(params, jnp.ones((2, 3)), cell.initial_state(2))
  >>> bool((out >= 0).all())
  True
  """

  def step(self, params: Params, projected: Array, states: State, *, training: bool = False,
           constants: PyTree = None, dropout: Any = None) -> tuple[Array, State]:
    """projected: (B, U) = x @ kernel + bias; states (h,) -> (h', (h',))."""
    del training, constants
    (h,) = states
    cd = self.compute_dtype(h)
    masks = None if dropout is None else dropout.recurrent
    z = projected + gate_matmul(h.astype(cd), params["recurrent_kernel"].astype(cd), masks, 1)
    h_new = _activations.get(self.activation)(z)
    return h_new.astype(cd), (h_new,)
