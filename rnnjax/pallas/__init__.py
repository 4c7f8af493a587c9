"""Fused Pallas (Triton backend) LSTM and GRU kernels with backward passes and their
pure-JAX references: array functions that know nothing of layers or cells.

Kernels run compiled on a GPU and in Pallas interpret mode elsewhere (numerics only);
`force_interpret()` lets tests take them on a CPU. Only configurations that passed the
compile check (`compile_check`: Triton 3.6 and ptxas for sm_90, run on a CPU) are
chosen automatically: `compile_envelope` and `compile_envelope_reason` say which. The
two cells share one scaffold (`gated`); `lstm/` and `gru/` hold only their gate math,
bias layout and reference.
"""

from ._interpret import force_interpret as force_interpret
from ._interpret import interpret_forced as interpret_forced
from ._interpret import resolve_interpret as resolve_interpret
from ._kinds import compile_envelope as compile_envelope
from ._kinds import compile_envelope_reason as compile_envelope_reason
from ._kinds import unsupported_reason as unsupported_reason
from ._tiling import dtype_reason as dtype_reason
from ._tiling import max_block_h as max_block_h
from .gru import fused_gru as fused_gru
from .gru import run_gru as run_gru
from .lstm import fused_bidirectional_lstm as fused_bidirectional_lstm
from .lstm import fused_lstm as fused_lstm
from .lstm import run_lstm as run_lstm

__all__ = [
    "compile_envelope", "compile_envelope_reason", "dtype_reason", "force_interpret", "fused_bidirectional_lstm", "fused_gru", "fused_lstm",
    "interpret_forced", "max_block_h", "resolve_interpret", "run_gru", "run_lstm",
    "unsupported_reason",
]
