"""rnnjax: functional recurrent networks for JAX with the Keras 3 RNN API."""

from .cells import Cell as Cell
from .cells import GRUCell as GRUCell
from .cells import LSTMCell as LSTMCell
from .cells import SimpleRNNCell as SimpleRNNCell
from .cells import StackedRNNCells as StackedRNNCells
from .layers import GRU as GRU
from .layers import LSTM as LSTM
from .layers import RNN as RNN
from .layers import SimpleRNN as SimpleRNN
from . import interop as interop

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
    "Cell",
    "GRU",
    "GRUCell",
    "LSTM",
    "LSTMCell",
    "RNN",
    "SimpleRNN",
    "SimpleRNNCell",
    "StackedRNNCells",
    "checkpoint",
    "interop",
    "linen",
    "nnx",
]
