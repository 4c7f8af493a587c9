"""Fused Pallas (Triton backend) LSTM and GRU kernels with backward passes, their
pure-JAX references, and the dispatch between the fused path and the scan.

Kernels run compiled on a GPU and in Pallas interpret mode elsewhere (numerics only);
`force_interpret()` lets tests take the fused path on a CPU.
"""

from ._dispatch import PathChoice as PathChoice
from ._dispatch import which_path as which_path
from ._interpret import force_interpret as force_interpret
from ._interpret import interpret_forced as interpret_forced
from ._layer import fused_layer_apply as fused_layer_apply
from ._tiling import max_block_h as max_block_h
from .gru._api import fused_gru as fused_gru
from .lstm._api import fused_lstm as fused_lstm
from .lstm._bidirectional import fused_bidirectional_lstm as fused_bidirectional_lstm

__all__ = [
    "PathChoice",
    "force_interpret",
    "fused_bidirectional_lstm",
    "fused_gru",
    "fused_layer_apply",
    "fused_lstm",
    "interpret_forced",
    "max_block_h",
    "which_path",
]
