"""GRUCell: Keras 3 GRU, gates z, r, h; `reset_after` picks where the reset gate applies."""

import dataclasses
from typing import Any, ClassVar

import jax.numpy as jnp

from .. import _activations
from .._validation import check_bool
from ..types import Array, Key, Params, PyTree, State
from ._dense import DenseCell, accumulation_dtype, add_bias, gate_matmul
from ._dropout import apply_mask
from ._gated import GatedConfig


@dataclasses.dataclass(frozen=True)
class GRUConfig(GatedConfig):
  """Keras GRU arguments beyond the gated ones."""

  _: dataclasses.KW_ONLY
  reset_after: bool = True

  num_gates: ClassVar[int] = 3

  def check_config(self) -> None:
    check_bool(self.reset_after, "reset_after")
    super().check_config()


@dataclasses.dataclass(frozen=True)
class GRUCell(GRUConfig, DenseCell):
  """Gated recurrent unit (Cho et al., 2014), Keras 3 layout.

  Params: `kernel` (F, 3U), `recurrent_kernel` (U, 3U), and `bias` (2, 3U) with
  `reset_after=True` (row 0 input bias, row 1 recurrent bias) or (3U,) otherwise.
  Gates z, r, h. `reset_after=True` (default, cuDNN-compatible):
  `hh = act(x W_h + b_h + r * (h U_h + b'_h))`; `False` (Cho v1): `hh = act(x W_h + b_h + (r * h) U_h)`.
  Then `h' = z * h + (1 - z) * hh`. State: `(h,)`, (B, U).

  >>> import jax, jax.numpy as jnp, rnnjax as rj
  >>> cell = rj.GRUCell(4)
  >>> params = cell.init(jax.random.key(0), (3,))
  >>> params["bias"].shape
  (2, 12)
  """

  def init_bias(self, key: Key, dtype: jnp.dtype) -> Array:
    shape = (2, 3 * self.units) if self.reset_after else (3 * self.units,)
    return self.initializer("bias")(key, shape, dtype)

  def input_bias(self, params: Params) -> Array | None:
    if not self.use_bias:
      return None
    return params["bias"][0] if self.reset_after else params["bias"]

  def step(self, params: Params, projected: Array, states: State, *, training: bool = False,
           constants: PyTree = None, dropout: Any = None) -> tuple[Array, State]:
    """projected: (B, 3U) = x @ kernel + input bias; states (h,) -> (h', (h',))."""
    del training, constants
    (h,) = states
    cd = self.compute_dtype(h)
    acc = accumulation_dtype(cd)
    u = self.units
    masks = None if dropout is None else dropout.recurrent
    rec = params["recurrent_kernel"].astype(cd)
    hc = h.astype(cd)
    act = _activations.get(self.activation)
    gate = _activations.get(self.recurrent_activation)
    xz, xr, xh = jnp.split(projected, 3, axis=-1)
    if self.reset_after:
      inner = gate_matmul(hc, rec, masks, 3)
      if self.use_bias:
        inner = add_bias(inner, params["bias"][1])
      hz, hr, hh = jnp.split(inner, 3, axis=-1)
      z = gate(xz + hz)
      r = gate(xr + hr)
      candidate = act(xh + r * hh)
    else:
      zr_masks = None if masks is None else masks[:2] if masks.shape[0] == 3 else masks
      hz, hr = jnp.split(gate_matmul(hc, rec[:, : 2 * u], zr_masks, 2), 2, axis=-1)
      z = gate(xz + hz)
      r = gate(xr + hr)
      h_for_candidate = hc if masks is None else apply_mask(hc, masks[-1])
      candidate = act(
          xh + jnp.matmul((r * h_for_candidate).astype(cd), rec[:, 2 * u :], preferred_element_type=acc)
      )
    h_new = z * h + (1.0 - z) * candidate
    return h_new.astype(cd), (h_new,)
