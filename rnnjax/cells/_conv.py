"""N-d convolution geometry for the convolutional cells: Keras's argument rules
(`kernel_size`, `strides`, `dilation_rate`, `padding`, `data_format`), its output
size formula, and one `lax.conv_general_dilated` over any leading axes.

Axis letters: B batch, S spatial (W for 1-D; H, W for 2-D; D, H, W for 3-D),
C input channels, F filters. Kernels are `(*window, C, F)` for both data formats,
as in Keras.
"""

import math

import jax

SPATIAL_LETTERS = {1: ("W",), 2: ("H", "W"), 3: ("D", "H", "W")}
DATA_FORMATS = ("channels_last", "channels_first")
PADDINGS = ("valid", "same")


def check_rank(rank) -> int:
  if isinstance(rank, bool) or not isinstance(rank, int) or rank not in SPATIAL_LETTERS:
    raise ValueError(f"rank must be 1, 2 or 3 (the number of spatial axes), got {rank!r}.")
  return rank


def int_tuple(value, rank: int, argument: str) -> tuple[int, ...]:
  """An int or `rank` positive ints as a tuple of `rank` ints (Keras `standardize_tuple`)."""
  expected = f"a positive int or a tuple of {rank} positive ints"
  if isinstance(value, int) and not isinstance(value, bool):
    values = (value,) * rank
  elif isinstance(value, (tuple, list)):
    values = tuple(value)
    if len(values) != rank or any(isinstance(v, bool) or not isinstance(v, int) for v in values):
      raise ValueError(f"{argument} must be {expected}, got {value!r}.")
  else:
    raise TypeError(f"{argument} must be {expected}, got {value!r}.")
  if any(v <= 0 for v in values):
    raise ValueError(f"{argument} must be {expected}, got {value!r}.")
  return values


def check_padding(padding) -> str:
  """"valid" or "same", case-insensitive (Keras), returned lower-case."""
  if not isinstance(padding, str):
    raise TypeError(f'padding must be "valid" or "same", got {padding!r}.')
  if padding.lower() not in PADDINGS:
    raise ValueError(f'padding must be "valid" or "same" (case-insensitive), got {padding!r}.')
  return padding.lower()


def check_data_format(data_format) -> str:
  """None (channels_last, Keras's default image_data_format) or one of DATA_FORMATS."""
  if data_format is None:
    return "channels_last"
  if data_format not in DATA_FORMATS:
    raise ValueError(
        f'data_format must be None, "channels_last" or "channels_first", got {data_format!r}.'
    )
  return data_format


def output_spatial(spatial: tuple[int, ...], kernel_size, strides, padding: str,
                   dilation_rate) -> tuple[int, ...]:
  """Keras's conv output size per axis (may be <= 0 for inputs too small for "valid").

  valid: floor((n - d (k - 1) - 1) / s) + 1; same: ceil(n / s).

  >>> output_spatial((5, 6), (3, 2), (2, 1), "valid", (1, 1))
  (2, 5)
  >>> output_spatial((5, 6), (3, 3), (2, 2), "same", (1, 1))
  (3, 3)
  """
  if padding == "same":
    return tuple(-(-n // s) for n, s in zip(spatial, strides))
  return tuple((n - d * (k - 1) - 1) // s + 1
               for n, k, s, d in zip(spatial, kernel_size, strides, dilation_rate))


def split_step_shape(step_shape: tuple[int, ...], data_format: str | None):
  """(spatial, channels) of a per-example shape `(*S, C)` or `(C, *S)`."""
  if data_format == "channels_first":
    return tuple(step_shape[1:]), step_shape[0]
  return tuple(step_shape[:-1]), step_shape[-1]


def join_step_shape(spatial: tuple[int | None, ...], channels: int, data_format: str | None):
  """The per-example shape `(*S, C)` or `(C, *S)`."""
  if data_format == "channels_first":
    return (channels, *spatial)
  return (*spatial, channels)


def layout(rank: int, data_format: str | None) -> str:
  """The per-example layout in words, e.g. "(H, W, C)"."""
  letters = SPATIAL_LETTERS[rank]
  axes = ("C", *letters) if data_format == "channels_first" else (*letters, "C")
  return "(" + ", ".join(axes) + ")"


def channel_axis(rank: int, data_format: str | None) -> int:
  """The channel axis counted from the end of a (..., per-example) array."""
  return -(rank + 1) if data_format == "channels_first" else -1


def _dimension_numbers(rank: int, data_format: str):
  spatial = "DHW"[3 - rank:]
  io = (("N" + spatial + "C") if data_format == "channels_last" else ("NC" + spatial))
  return io, spatial + "IO", io


def conv(x: jax.Array, kernel: jax.Array, *, rank: int, data_format: str, strides=None,
         padding: str = "same", dilation_rate=None, preferred_element_type=None) -> jax.Array:
  """Convolution of `x` (..., *per-example) with `kernel` (*window, C, F) over the last
  `rank + 1` axes; any leading axes (B, or T and B) are folded into one batch axis, so
  a whole sequence is one `conv_general_dilated`.

  Returns (..., *S', F) for channels_last or (..., F, *S') for channels_first.
  """
  lead = x.shape[:x.ndim - rank - 1]
  folded = x.reshape((math.prod(lead),) + x.shape[len(lead):])
  ones = (1,) * rank
  y = jax.lax.conv_general_dilated(
      folded, kernel,
      window_strides=ones if strides is None else strides,
      padding=padding.upper(),
      rhs_dilation=ones if dilation_rate is None else dilation_rate,
      dimension_numbers=_dimension_numbers(rank, data_format),
      preferred_element_type=preferred_element_type,
  )
  return y.reshape(lead + y.shape[1:])


def add_channel_bias(z: jax.Array, bias: jax.Array | None, axis: int) -> jax.Array:
  """`z + bias` with `bias` (F,) broadcast explicitly along the channel `axis` (< 0) of z."""
  if bias is None:
    return z
  shape = [1] * z.ndim
  shape[axis] = bias.shape[0]
  return z + bias.astype(z.dtype).reshape(shape)
