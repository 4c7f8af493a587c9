"""ConvLSTM1D, ConvLSTM2D and ConvLSTM3D: Keras 3 convolutional LSTM layers.

Each takes every argument of its Keras 3 namesake with the same defaults; the cell
arguments are the cell's own (one definition, shared through the config classes).
Inputs are (B, T, *S, C) with data_format "channels_last" (the default, also for
None) or (B, T, C, *S) with "channels_first"; outputs and states are (B, [T,] *S', F)
or (B, [T,] F, *S'), S' being the input convolution's output spatial shape.
"""

import dataclasses
from typing import Any

from ..cells import (ConvLSTM1DCell, ConvLSTM1DConfig, ConvLSTM2DCell, ConvLSTM2DConfig,
                     ConvLSTM3DCell, ConvLSTM3DConfig)
from ._base import SequenceLayer
from ._builtin import cell_property


@dataclasses.dataclass(frozen=True)
class ConvLSTM1D(ConvLSTM1DConfig, SequenceLayer):
  """1D convolutional LSTM (Keras `ConvLSTM1D`): inputs (B, T, W, C). Params as
  `ConvLSTM1DCell`: `kernel` (k, C, 4F), `recurrent_kernel` (k, F, 4F), `bias` (4F,).

  >>> import jax, jax.numpy as jnp, rnnjax as rj
  >>> layer = rj.ConvLSTM1D(4, 3, return_sequences=True)
  >>> x = jnp.ones((2, 5, 9, 3))
  >>> layer.apply(layer.init(jax.random.key(0), x), x).shape
  (2, 5, 7, 4)
  """

  _: dataclasses.KW_ONLY
  use_fused: Any = "auto"

  cell = cell_property(ConvLSTM1DCell)


@dataclasses.dataclass(frozen=True)
class ConvLSTM2D(ConvLSTM2DConfig, SequenceLayer):
  """2D convolutional LSTM (Keras `ConvLSTM2D`): inputs (B, T, H, W, C). Params as
  `ConvLSTM2DCell`: `kernel` (kh, kw, C, 4F), `recurrent_kernel` (kh, kw, F, 4F),
  `bias` (4F,).

  >>> import jax, jax.numpy as jnp, rnnjax as rj
  >>> layer = rj.ConvLSTM2D(4, (3, 3), padding="same", return_state=True)
  >>> x = jnp.ones((2, 5, 8, 8, 3))
  >>> out, h, c = layer.apply(layer.init(jax.random.key(0), x), x)
  >>> out.shape, c.shape
  ((2, 8, 8, 4), (2, 8, 8, 4))
  """

  _: dataclasses.KW_ONLY
  use_fused: Any = "auto"

  cell = cell_property(ConvLSTM2DCell)


@dataclasses.dataclass(frozen=True)
class ConvLSTM3D(ConvLSTM3DConfig, SequenceLayer):
  """3D convolutional LSTM (Keras `ConvLSTM3D`): inputs (B, T, D, H, W, C). Params as
  `ConvLSTM3DCell`: `kernel` (kd, kh, kw, C, 4F), `recurrent_kernel` (kd, kh, kw, F, 4F),
  `bias` (4F,).

  >>> import jax, jax.numpy as jnp, rnnjax as rj
  >>> layer = rj.ConvLSTM3D(2, 3, strides=2, padding="same", data_format="channels_first")
  >>> x = jnp.ones((2, 4, 3, 5, 6, 7))
  >>> layer.apply(layer.init(jax.random.key(0), x), x).shape
  (2, 2, 3, 3, 4)
  """

  _: dataclasses.KW_ONLY
  use_fused: Any = "auto"

  cell = cell_property(ConvLSTM3DCell)
