"""SimpleRNN, GRU and LSTM: Keras 3 layers over the built-in cells.

Each layer takes every argument of its Keras 3 namesake, with the same defaults,
and the cell arguments are the cell's own (one definition, shared through the
config classes)."""

import dataclasses
import functools
from typing import Any

from ..cells import GRUCell, GRUConfig, LSTMCell, LSTMConfig, SimpleRNNCell, SimpleRNNConfig
from ._base import RecurrentLayer, SequenceOptions

_FUSED_CHOICES = ("auto", True, False)


@dataclasses.dataclass(frozen=True)
class FusedOption:
  """use_fused: "auto" (the fused kernel when eligible, else the scan), True (the kernel,
  or a clear error saying why not), False (always the scan). `use_cudnn` is Keras's
  name for the same switch and is honoured when `use_fused` is left at "auto"."""

  _: dataclasses.KW_ONLY
  use_fused: Any = "auto"
  use_cudnn: Any = "auto"

  def check_fused_option(self) -> None:
    for name in ("use_fused", "use_cudnn"):
      value = getattr(self, name)
      if not any(value is c or value == c and type(value) is type(c) for c in _FUSED_CHOICES):
        raise ValueError(f'{name} must be "auto", True or False, got {value!r}.')

  @property
  def fused_request(self):
    return self.use_cudnn if self.use_fused == "auto" else self.use_fused


def _cell_of(layer, cell_type):
  """The layer's cell, built from the layer's own copies of the cell arguments."""
  names = [f.name for f in dataclasses.fields(cell_type) if f.init]
  return cell_type(**{n: getattr(layer, n) for n in names})


@dataclasses.dataclass(frozen=True)
class SimpleRNN(SimpleRNNConfig, RecurrentLayer, SequenceOptions):
  """Fully connected RNN (Keras `SimpleRNN`). Params as `SimpleRNNCell`.

  >>> import jax, jax.numpy as jnp, rnnjax as rj
  >>> layer = rj.SimpleRNN(4, return_sequences=True)
  >>> x = jnp.ones((2, 5, 3))
  >>> layer.apply(layer.init(jax.random.key(0), x), x).shape
  (2, 5, 4)
  """

  @functools.cached_property
  def cell(self) -> SimpleRNNCell:
    return _cell_of(self, SimpleRNNCell)


@dataclasses.dataclass(frozen=True)
class GRU(GRUConfig, FusedOption, RecurrentLayer, SequenceOptions):
  """Gated recurrent unit layer (Keras `GRU`). Params as `GRUCell`.

  >>> import jax, jax.numpy as jnp, rnnjax as rj
  >>> layer = rj.GRU(4, return_state=True)
  >>> x = jnp.ones((2, 5, 3))
  >>> out, h = layer.apply(layer.init(jax.random.key(0), x), x)
  >>> out.shape, h.shape
  ((2, 4), (2, 4))
  """

  def check_config(self) -> None:
    super().check_config()
    self.check_fused_option()

  @functools.cached_property
  def cell(self) -> GRUCell:
    return _cell_of(self, GRUCell)


@dataclasses.dataclass(frozen=True)
class LSTM(LSTMConfig, FusedOption, RecurrentLayer, SequenceOptions):
  """Long short-term memory layer (Keras `LSTM`). Params as `LSTMCell`.

  >>> import jax, jax.numpy as jnp, rnnjax as rj
  >>> layer = rj.LSTM(4, return_state=True)
  >>> x = jnp.ones((2, 5, 3))
  >>> out, h, c = layer.apply(layer.init(jax.random.key(0), x), x)
  >>> out.shape, h.shape, c.shape
  ((2, 4), (2, 4), (2, 4))
  """

  def check_config(self) -> None:
    super().check_config()
    self.check_fused_option()

  @functools.cached_property
  def cell(self) -> LSTMCell:
    return _cell_of(self, LSTMCell)
