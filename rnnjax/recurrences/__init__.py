"""Custom-JVP recurrences in plain XLA (no Pallas): array functions, the fast paths of
the dense cells on the CPU (`dense`: LSTM, GRU, SimpleRNN, with masks and resets; the
LSTM's and GRU's forward and reverse scans native where `native_available()`), and
the parallel prefix scan of the linear recurrences. Each takes time-major arrays and
returns arrays; which layer called it is none of its business. `matched_carry` gives a
scan's starting carry the type (varying mesh axes, explicit sharding) one step returns;
the Pallas package's plain scans use it too."""

from ._carry import matched as matched_carry
from ._native import available as native_available
from .dense import cell_math as cell_math
from .dense import run as run_dense
from .linear import latch as latch
from .linear import linear_scan as linear_scan
from .linear import varying as varying
from .lstm import run as run_lstm

__all__ = ["cell_math", "latch", "linear_scan", "matched_carry", "native_available",
           "run_dense", "run_lstm", "varying"]
