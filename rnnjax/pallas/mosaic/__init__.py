"""Fused LSTM and GRU kernels for Hopper GPUs on the Pallas Mosaic GPU backend
(`jax.experimental.pallas.mosaic_gpu`), designed for the step chain: W_hh resident in
shared memory for all steps (loaded once by TMA), swap-AB wgmma (units on M, batch on N),
the projection prefetched by TMA through a ring, gate math with the state in registers,
h double-buffered in shared memory with one barrier per step among warpgroups; for the
LSTM, W_hh split over a cluster of CTAs when it does not fit one (h exchanged, and the
backward's partial dh reduced, every step behind a cluster barrier). The GRU
(`mosaic_gru`, `run_gru`) runs in one CTA.

Opt-in only (`mosaic_lstm`, `mosaic_gru`, `run_lstm`, `run_gru`): the dispatch never
picks these kernels (no GPU measurement exists). Verified on a CPU in Mosaic GPU
interpret mode and by lowering for an abstract H100 (`lowered_text`); see
docs/kernels.md for what is and is not verified.
"""

from ._api import mosaic_lstm as mosaic_lstm
from ._gru import mosaic_gru as mosaic_gru
from ._gru import plans as gru_plans
from ._gru import run as run_gru
from ._lowering import lowered_text as lowered_text
from ._lstm import plans as plans
from ._lstm import run as run_lstm
from ._lstm import unsupported_reason as unsupported_reason
from ._plan import SMEM_LIMIT as SMEM_LIMIT

__all__ = ["SMEM_LIMIT", "gru_plans", "lowered_text", "mosaic_gru", "mosaic_lstm", "plans",
           "run_gru", "run_lstm", "unsupported_reason"]
