"""Keras-style layers over the engine."""

from ._base import RNN as RNN
from ._builtin import GRU as GRU
from ._builtin import LSTM as LSTM
from ._builtin import SimpleRNN as SimpleRNN

__all__ = ["GRU", "LSTM", "RNN", "SimpleRNN"]
