"""Keras-style layers over the engine."""

from ._base import RNN as RNN
from ._bidirectional import Bidirectional as Bidirectional
from ._builtin import GRU as GRU
from ._builtin import LSTM as LSTM
from ._builtin import SimpleRNN as SimpleRNN
from ._conv_lstm import ConvLSTM1D as ConvLSTM1D
from ._conv_lstm import ConvLSTM2D as ConvLSTM2D
from ._conv_lstm import ConvLSTM3D as ConvLSTM3D
from ._linear import LRU as LRU
from ._linear import MinGRU as MinGRU
from ._linear import MinLSTM as MinLSTM
from ._param_spec import param_spec as param_spec
from ._stacked_rnn import StackedRNN as StackedRNN

__all__ = [
    "Bidirectional", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D", "GRU", "LSTM", "RNN",
    "SimpleRNN", "StackedRNN", "param_spec", "LRU", "MinGRU", "MinLSTM",
]
