"""What the gated Keras cells (GRU, LSTM) add to the dense base: a recurrent
activation and Keras's `implementation` switch (1: one dropout mask per gate)."""

import dataclasses
from typing import Any

from .. import _activations
from ._dense import DenseConfig


@dataclasses.dataclass(frozen=True)
class GatedConfig(DenseConfig):
  _: dataclasses.KW_ONLY
  recurrent_activation: Any = "sigmoid"
  implementation: int = 2

  def check_config(self) -> None:
    """The gated arguments, then the dense ones (see `Cell.check_config`)."""
    _activations.get(self.recurrent_activation, argument="recurrent_activation")
    if self.implementation not in (1, 2):
      raise ValueError(f"implementation must be 1 or 2, got {self.implementation!r}.")
    super().check_config()

  @property
  def mask_count(self) -> int:
    # Keras: recurrent dropout forces implementation 1, which draws one mask per gate.
    if self.implementation == 1 or self.recurrent_dropout > 0.0:
      return self.num_gates
    return 1
