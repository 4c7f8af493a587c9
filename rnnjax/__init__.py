"""rnnjax: functional recurrent networks for JAX with the Keras 3 RNN API."""

from .cells import Cell as Cell
from .cells import ConvLSTM1DCell as ConvLSTM1DCell
from .cells import ConvLSTM2DCell as ConvLSTM2DCell
from .cells import ConvLSTM3DCell as ConvLSTM3DCell
from .cells import ConvLSTMCell as ConvLSTMCell
from .cells import GRUCell as GRUCell
from .cells import LRUCell as LRUCell
from .cells import LSTMCell as LSTMCell
from .cells import MinGRUCell as MinGRUCell
from .cells import MinLSTMCell as MinLSTMCell
from .cells import ProjectedLSTMCell as ProjectedLSTMCell
from .cells import SimpleRNNCell as SimpleRNNCell
from .cells import StackedRNNCells as StackedRNNCells
from .layers import ConvLSTM1D as ConvLSTM1D
from .layers import ConvLSTM2D as ConvLSTM2D
from .layers import ConvLSTM3D as ConvLSTM3D
from .layers import GRU as GRU
from .layers import LRU as LRU
from .layers import LSTM as LSTM
from .layers import MinGRU as MinGRU
from .layers import MinLSTM as MinLSTM
from .layers import RNN as RNN
from .layers import Bidirectional as Bidirectional
from .layers import SimpleRNN as SimpleRNN
from .layers import StackedRNN as StackedRNN
from ._regularizers import L1 as L1
from ._regularizers import L1L2 as L1L2
from ._regularizers import L2 as L2
from ._regularizers import regularization_loss as regularization_loss
from ._constraints import MaxNorm as MaxNorm
from ._constraints import MinMaxNorm as MinMaxNorm
from ._constraints import NonNeg as NonNeg
from ._constraints import UnitNorm as UnitNorm
from ._constraints import apply_constraints as apply_constraints
from ._constraints import with_constraints as with_constraints
from . import interop as interop
from . import kernels as kernels

__version__ = "0.1.0"

# Flax adapters and checkpoints load on first use: `import rnnjax` stays free of
# flax.linen, flax.nnx and orbax (`rj.linen.LSTM`, `rj.nnx.LSTM`, `rj.checkpoint.save`).
_LAZY_SUBMODULES = ("checkpoint", "linen", "nnx")


def __getattr__(name):
  if name in _LAZY_SUBMODULES:
    import importlib

    return importlib.import_module(f"{__name__}.{name}")
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
  return sorted(set(globals()) | set(_LAZY_SUBMODULES))


__all__ = [
    "Bidirectional",
    "Cell",
    "ConvLSTM1D",
    "ConvLSTM1DCell",
    "ConvLSTM2D",
    "ConvLSTM2DCell",
    "ConvLSTM3D",
    "ConvLSTM3DCell",
    "ConvLSTMCell",
    "GRU",
    "GRUCell",
    "L1",
    "L1L2",
    "L2",
    "LSTM",
    "LRU",
    "LRUCell",
    "LSTMCell",
    "MaxNorm",
    "MinGRU",
    "MinGRUCell",
    "MinLSTM",
    "MinLSTMCell",
    "MinMaxNorm",
    "NonNeg",
    "ProjectedLSTMCell",
    "RNN",
    "SimpleRNN",
    "SimpleRNNCell",
    "StackedRNN",
    "StackedRNNCells",
    "UnitNorm",
    "apply_constraints",
    "checkpoint",
    "interop",
    "kernels",
    "linen",
    "nnx",
    "regularization_loss",
    "with_constraints",
]
