"""Fused GRU (reset_after=True): public function (`_api`), reference, kernels, config, layout."""

from ._api import fused_gru as fused_gru
from ._api import run as run_gru

__all__ = ["fused_gru", "run_gru"]
