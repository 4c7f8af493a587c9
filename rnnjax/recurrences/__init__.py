"""Custom-JVP recurrences in plain XLA (no Pallas): array functions, the fast paths of
the dense cells on the CPU. Each takes time-major arrays and returns arrays; which layer
called it is none of its business. `matched_carry` gives a scan's starting carry the type
(varying mesh axes, explicit sharding) one step returns; the Pallas package's plain scans
use it too."""

from ._carry import matched as matched_carry
from .lstm import run as run_lstm

__all__ = ["matched_carry", "run_lstm"]
