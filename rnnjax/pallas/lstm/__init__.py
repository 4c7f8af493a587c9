"""Fused LSTM: the public functions (`_api`), the gate math (`_cell`) and the reference."""

from ._api import fused_bidirectional_lstm as fused_bidirectional_lstm
from ._api import fused_lstm as fused_lstm
from ._api import run as run_lstm
from ._cell import SPEC as SPEC

__all__ = ["SPEC", "fused_bidirectional_lstm", "fused_lstm", "run_lstm"]
