"""Fused LSTM: public function (`_api`), reference, forward/backward kernels, config, layout."""

from ._api import fused_lstm as fused_lstm
from ._api import run as run_lstm
from ._bidirectional import fused_bidirectional_lstm as fused_bidirectional_lstm

__all__ = ["fused_bidirectional_lstm", "fused_lstm", "run_lstm"]
