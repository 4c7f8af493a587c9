"""SimpleRNN, GRU and LSTM: Keras 3 layers over the built-in cells.

A layer is its cell's config (every argument of its Keras 3 namesake, with the same
defaults, one definition shared with the cell) plus the sequence options; `cell` is built
from the layer's own copies of the cell arguments.

use_fused: "auto" (a fast path when one takes the call, else the scan), True
(a fast path, or a ValueError naming every reason none can), False (always the scan).
On GRU and LSTM, `use_cudnn` is Keras's name for the same switch, honoured when
`use_fused` is "auto". Which fast paths exist is the dispatch registry's business
(`rnnjax.dispatch.REGISTRY`); a layer whose cell has none runs the scan.
"""

import dataclasses
import functools
from typing import Any

from ..cells import GRUCell, GRUConfig, LSTMCell, LSTMConfig, SimpleRNNCell, SimpleRNNConfig
from ._base import SequenceLayer


def cell_property(cell_type):
  """A cached `cell` property: `cell_type` built from the layer's cell arguments."""
  def cell(self):
    names = [f.name for f in dataclasses.fields(cell_type) if f.init]
    return cell_type(**{n: getattr(self, n) for n in names})

  cell.__doc__ = f"The layer's {cell_type.__name__}, from its own cell arguments."
  return functools.cached_property(cell)


@dataclasses.dataclass(frozen=True)
class SimpleRNN(SimpleRNNConfig, SequenceLayer):
  """Fully connected RNN (Keras `SimpleRNN`). Params as `SimpleRNNCell`.

  >>> import jax, jax.numpy as jnp, rnnjax as rj
  >>> layer = rj.SimpleRNN(4, return_sequences=True)
  >>> x = jnp.ones((2, 5, 3))
  >>> layer.apply(layer.init(jax.random.key(0), x), x).shape
  (2, 5, 4)
  """

  _: dataclasses.KW_ONLY
  use_fused: Any = "auto"

  cell = cell_property(SimpleRNNCell)


@dataclasses.dataclass(frozen=True)
class GRU(GRUConfig, SequenceLayer):
  """Gated recurrent unit layer (Keras `GRU`). Params as `GRUCell`.

  >>> import jax, jax.numpy as jnp, rnnjax as rj
  >>> x = jnp.ones((2, 5, 3))
  >>> [rj.GRU(4, reset_after=r).init(jax.random.key(0), x)["bias"].shape for r in (True, False)]
  [(2, 12), (12,)]
  >>> rj.GRU(4, return_state=True).apply(rj.GRU(4).init(jax.random.key(0), x), x)[1].shape
  (2, 4)
  """

  _: dataclasses.KW_ONLY
  use_fused: Any = "auto"
  use_cudnn: Any = "auto"

  cell = cell_property(GRUCell)


@dataclasses.dataclass(frozen=True)
class LSTM(LSTMConfig, SequenceLayer):
  """Long short-term memory layer (Keras `LSTM`). Params as `LSTMCell`.

  >>> import jax, jax.numpy as jnp, rnnjax as rj
  >>> layer = rj.LSTM(4, return_state=True)
  >>> x = jnp.ones((2, 5, 3))
  >>> out, h, c = layer.apply(layer.init(jax.random.key(0), x), x)
  >>> out.shape, h.shape, c.shape
  ((2, 4), (2, 4), (2, 4))
  """

  _: dataclasses.KW_ONLY
  use_fused: Any = "auto"
  use_cudnn: Any = "auto"

  cell = cell_property(LSTMCell)
