"""Custom-JVP recurrences in plain XLA (no Pallas): array functions, the fast paths of
the dense cells on the CPU. Each takes time-major arrays and returns arrays; which layer
called it is none of its business."""

from .lstm import run as run_lstm

__all__ = ["run_lstm"]
