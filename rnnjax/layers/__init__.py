"""Keras-style layers over the engine."""

from ._base import RNN as RNN
from ._bidirectional import Bidirectional as Bidirectional
from ._builtin import GRU as GRU
from ._builtin import LSTM as LSTM
from ._builtin import SimpleRNN as SimpleRNN

__all__ = ["Bidirectional", "GRU", "LSTM", "RNN", "SimpleRNN"]
