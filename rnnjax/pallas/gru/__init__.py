"""Fused GRU (reset_after=True): the public function (`_api`), the gate math (`_cell`)
and the reference."""

from ._api import fused_gru as fused_gru
from ._api import run as run_gru
from ._cell import SPEC as SPEC

__all__ = ["SPEC", "fused_gru", "run_gru"]
