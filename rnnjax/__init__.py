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
from . import kernels as kernels

__version__ = "0.1.0"

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
    "interop",
    "kernels",
]
