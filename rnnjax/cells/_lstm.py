"""LSTMCell: Keras 3 LSTM, gates i, f, c, o in that order along the last axis."""

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
from jax.ad_checkpoint import checkpoint_name

from .. import _activations, _initializers
from ._dense import PREACTIVATION, DenseCell, gate_matmul
from ._gated import GatedConfig


@dataclasses.dataclass(frozen=True)
class LSTMConfig(GatedConfig):
  """Keras LSTM arguments beyond the gated ones."""

  _: dataclasses.KW_ONLY
  unit_forget_bias: bool = True

  num_gates: ClassVar[int] = 4


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
  def state_size(self):
    return (self.units, self.units)

  def init_bias(self, key, dtype):
    init = _initializers.get(self.bias_initializer)
    if not self.unit_forget_bias:
      return init(key, (4 * self.units,), dtype)
    k1, k2 = jax.random.split(key)
    u = self.units
    return jnp.concatenate(
        [init(k1, (u,), dtype), jnp.ones((u,), dtype), init(k2, (2 * u,), dtype)]
    )

  def step(self, params, projected, states, *, training=False, constants=None, dropout=None):
    """projected: (B, 4U) = x @ kernel + bias; states (h, c) -> (h', (h', c'))."""
    del training, constants
    h, c = states
    cd = self.compute_dtype(h)
    masks = None if dropout is None else dropout.recurrent
    z = projected + gate_matmul(
        h.astype(cd), params["recurrent_kernel"].astype(cd), masks, 4
    ).astype(projected.dtype)
    z = checkpoint_name(z, PREACTIVATION)
    act = _activations.get(self.activation)
    gate = _activations.get(self.recurrent_activation)
    zi, zf, zc, zo = jnp.split(z, 4, axis=-1)
    c_new = gate(zf) * c + gate(zi) * act(zc)
    h_new = gate(zo) * act(c_new)
    return h_new.astype(cd), (h_new, c_new)
