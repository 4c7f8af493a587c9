"""rnnjax: functional recurrent networks for JAX with the Keras 3 RNN API."""

from .cells import Cell as Cell
from .cells import ConvLSTM1DCell as ConvLSTM1DCell
from .cells import ConvLSTM2DCell as ConvLSTM2DCell
from .cells import ConvLSTM3DCell as ConvLSTM3DCell
from .cells import ConvLSTMCell as ConvLSTMCell
from .cells import GRUCell as GRUCell
from .cells import LSTMCell as LSTMCell
from .cells import SimpleRNNCell as SimpleRNNCell
from .cells import StackedRNNCells as StackedRNNCells
from .layers import ConvLSTM1D as ConvLSTM1D
from .layers import ConvLSTM2D as ConvLSTM2D
from .layers import ConvLSTM3D as ConvLSTM3D
from .layers import GRU as GRU
from .layers import LSTM as LSTM
from .layers import RNN as RNN
from .layers import SimpleRNN as SimpleRNN
from . import interop as interop
from . import kernels as kernels

__version__ = "0.1.0"

__all__ = [
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
    "LSTM",
    "LSTMCell",
    "RNN",
    "SimpleRNN",
    "SimpleRNNCell",
    "StackedRNNCells",
    "interop",
    "kernels",
]
