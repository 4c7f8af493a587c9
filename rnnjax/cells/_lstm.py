"""LSTMCell: Keras 3 LSTM, gates i, f, c, o in that order along the last axis. The gate
math and the bias layout are functions that ConvLSTMCell uses too."""

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from .. import _activations, _initializers
from .._validation import check_bool
from ..types import Array, Key, Params, PyTree, State
from ._dense import DenseCell, gate_matmul
from ._gated import GatedConfig


def lstm_gates(z: jax.Array, c: jax.Array, activation, recurrent_activation, axis: int = -1):
  """One LSTM state update from the summed pre-activations.

  z: (..., 4U, ...) with gates i, f, c, o split along `axis`; c: the cell state, z's
  shape with U along `axis`; activation, recurrent_activation: callables.
  Returns (h_new, c_new), each shaped like c.

  >>> z = jnp.zeros((2, 8))
  >>> h, c = lstm_gates(z, jnp.ones((2, 2)), jnp.tanh, jax.nn.sigmoid)
  >>> c.tolist()
  [[0.5, 0.5], [0.5, 0.5]]
  """
  zi, zf, zc, zo = jnp.split(z, 4, axis=axis)
  c_new = recurrent_activation(zf) * c + recurrent_activation(zi) * activation(zc)
  h_new = recurrent_activation(zo) * activation(c_new)
  return h_new, c_new


def lstm_bias(initializer, key: jax.Array, units: int, dtype, unit_forget_bias: bool) -> jax.Array:
  """The (4U,) bias, gates i, f, c, o, from `initializer`; with `unit_forget_bias` the
  forget block is ones (Keras)."""
  init = _initializers.get(initializer)
  if not unit_forget_bias:
    return init(key, (4 * units,), dtype)
  k1, k2 = jax.random.split(key)
  return jnp.concatenate(
      [init(k1, (units,), dtype), jnp.ones((units,), dtype), init(k2, (2 * units,), dtype)]
  )


@dataclasses.dataclass(frozen=True)
class LSTMConfig(GatedConfig):
  """Keras LSTM arguments beyond the gated ones."""

  _: dataclasses.KW_ONLY
  unit_forget_bias: bool = True

  num_gates: ClassVar[int] = 4

  def check_config(self) -> None:
    check_bool(self.unit_forget_bias, "unit_forget_bias")
    super().check_config()

  @property
  def forget_bias_ones(self) -> bool:
    """Whether the forget gate's bias starts at 1: Keras's `unit_forget_bias`, under the
    "keras" preset only (Flax's LSTMCell and PyTorch's nn.LSTM have no such scheme)."""
    return self.unit_forget_bias and self.initializers == "keras"


@dataclasses.dataclass(frozen=True)
class LSTMCell(LSTMConfig, DenseCell):
  """Long short-term memory cell (Hochreiter & Schmidhuber, 1997), Keras 3 layout.

  Params: `kernel` (F, 4U), `recurrent_kernel` (U, 4U), `bias` (4U,); gates i, f, c, o.
  States: `(h, c)`, each (B, U). Output: `h`.

  >>> import jax, jax.numpy as jnp, rnnjax as rj
  >>> cell = rj.LSTMCell(4)
  >>> params = cell.init(jax.random.key(0), (3,))
  >>> h, (h, c) = cell(params, jnp.ones((2, 3)), cell.initial_state(2))
  >>> h.shape, c.shape
  ((2, 4), (2, 4))
  """

  @property
  def state_size(self) -> tuple[int, int]:
    return (self.units, self.units)

  def init_bias(self, key: Key, dtype: jnp.dtype) -> Array:
    return lstm_bias(self.initializer("bias"), key, self.units, dtype, self.forget_bias_ones)

  def step(self, params: Params, projected: Array, states: State, *, training: bool = False,
           constants: PyTree = None, dropout: Any = None) -> tuple[Array, State]:
    """projected: (B, 4U) = x @ kernel + bias; states (h, c) -> (h', (h', c'))."""
    del training, constants
    h_new, c_new, cd = self.gate_step(params, projected, states, dropout)
    return h_new.astype(cd), (h_new, c_new)

  def gate_step(self, params: Params, projected: Array, states: State,
                dropout: Any = None) -> tuple[Array, Array, Any]:
    """(h', c', compute dtype) from z = projected + h @ recurrent_kernel (with recurrent
    dropout on h), the step that ProjectedLSTMCell then projects."""
    h, c = states
    cd = self.compute_dtype(h)
    masks = None if dropout is None else dropout.recurrent
    z = projected + gate_matmul(
        h.astype(cd), params["recurrent_kernel"].astype(cd), masks, 4
    ).astype(projected.dtype)
    h_new, c_new = lstm_gates(z, c, _activations.get(self.activation),
                              _activations.get(self.recurrent_activation))
    return h_new, c_new, cd
