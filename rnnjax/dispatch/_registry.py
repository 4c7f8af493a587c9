"""The registry of fast paths: for each cell type, the implementations that can run it
instead of the scan, each on its platform, tried in order. The scan engine runs every
call that none of them takes.

Adding a backend (a GPU kernel, a parallel scan) is a new module with an object that has
`name`, `platform`, `where`, `declines(spec)`, `run(call)` (and optionally
`run_together(calls)`, `together_declines(specs)`), plus one line in `FAST` below.
"""

from typing import Any

from .. import _platform, pallas
from ..cells import GRUCell, LRUCell, LSTMCell, MinGRUCell, MinLSTMCell, SimpleRNNCell
from ._cpu_recurrence import CPU_GRU, CPU_LSTM, CPU_SIMPLE_RNN
from ._pallas import PALLAS_GRU, PALLAS_LSTM
from ._parallel_scan import PARALLEL_SCANS
from ._scan import SCAN

_PARALLEL = tuple(PARALLEL_SCANS.values())   # the associative scan, on each platform

FAST: dict[type, tuple[Any, ...]] = {
    LSTMCell: (CPU_LSTM, PALLAS_LSTM),
    GRUCell: (CPU_GRU, PALLAS_GRU),
    SimpleRNNCell: (CPU_SIMPLE_RNN,),
    MinGRUCell: _PARALLEL,
    MinLSTMCell: _PARALLEL,
    LRUCell: _PARALLEL,
}


def platform() -> str:
  """The platform the fast paths are chosen for: "gpu" on a GPU and when Pallas interpret
  mode is forced (a CPU then stands in for a GPU), else `jax.default_backend()`."""
  if _platform.on_gpu() or pallas.interpret_forced():
    return "gpu"
  return _platform.backend()


def context() -> tuple:
  """A hashable snapshot of what `plan` depends on beyond the call: the platform and the
  registry's contents (cached compilations key on it)."""
  return platform(), tuple(FAST.items())


def implementations(cell) -> tuple:
  """The fast implementations registered for `cell`'s exact type (a subclass may change
  the step, so it gets the scan unless registered itself)."""
  return FAST.get(type(cell), ())


def scan():
  return SCAN
