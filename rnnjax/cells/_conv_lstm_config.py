"""ConvLSTMConfig: the Keras ConvLSTM arguments, shared by the ConvLSTM cells and the
ConvLSTM1D/2D/3D layers, with their checks and normalisation."""

import dataclasses
from typing import Any


from .._validation import check_positive_int
from . import _conv
from ._options import WeightOptions, check_shared_options


@dataclasses.dataclass(frozen=True)
class ConvLSTMConfig(WeightOptions):
  """Keras ConvLSTM arguments shared by the cells and the ConvLSTM1D/2D/3D layers.

  `kernel_size`, `strides` and `dilation_rate` are stored as tuples of `rank` ints,
  `padding` lower-case and `data_format` None as "channels_last" (Keras's default).
  """

  rank: int
  filters: int
  kernel_size: Any
  _: dataclasses.KW_ONLY
  strides: Any = 1
  padding: str = "valid"
  data_format: str | None = None
  dilation_rate: Any = 1
  recurrent_activation: Any = "sigmoid"
  unit_forget_bias: bool = True

  def check_config(self) -> None:
    """Validates the arguments and stores the geometry normalised (see `Cell.check_config`)."""
    rank = _conv.check_rank(self.rank)
    check_positive_int(self.filters, "filters")
    normalized = {
        "kernel_size": _conv.int_tuple(self.kernel_size, rank, "kernel_size"),
        "strides": _conv.int_tuple(self.strides, rank, "strides"),
        "dilation_rate": _conv.int_tuple(self.dilation_rate, rank, "dilation_rate"),
        "padding": _conv.check_padding(self.padding),
        "data_format": _conv.check_data_format(self.data_format),
    }
    for name, value in normalized.items():
      object.__setattr__(self, name, value)
    if max(self.strides) > 1 and max(self.dilation_rate) > 1:
      raise ValueError(
          f"strides > 1 is not compatible with dilation_rate > 1 (as in Keras); got "
          f"strides={self.strides} and dilation_rate={self.dilation_rate}."
      )
    check_shared_options(self, activations=("activation", "recurrent_activation"),
                         flags=("use_bias", "unit_forget_bias"))
    if self.initializers == "torch":
      raise ValueError(
          'initializers="torch" is not available for ConvLSTM: PyTorch has no ConvLSTM '
          'module whose defaults it could follow; use "keras" or "flax" (and give '
          "kernel_initializer, recurrent_initializer or bias_initializer to change them)."
      )


@dataclasses.dataclass(frozen=True)
class ConvLSTM1DConfig(ConvLSTMConfig):
  rank: int = dataclasses.field(default=1, init=False)


@dataclasses.dataclass(frozen=True)
class ConvLSTM2DConfig(ConvLSTMConfig):
  rank: int = dataclasses.field(default=2, init=False)


@dataclasses.dataclass(frozen=True)
class ConvLSTM3DConfig(ConvLSTMConfig):
  rank: int = dataclasses.field(default=3, init=False)
