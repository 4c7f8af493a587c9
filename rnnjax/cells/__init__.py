"""Cells: pure per-step functions with Keras names, layouts and semantics."""

from ._base import Cell as Cell
from ._dropout import DropoutMasks as DropoutMasks
from ._gru import GRUCell as GRUCell
from ._gru import GRUConfig as GRUConfig
from ._lstm import LSTMCell as LSTMCell
from ._lstm import LSTMConfig as LSTMConfig
from ._simple_rnn import SimpleRNNCell as SimpleRNNCell
from ._simple_rnn import SimpleRNNConfig as SimpleRNNConfig
from ._stacked import StackedRNNCells as StackedRNNCells

__all__ = [
    "Cell", "DropoutMasks", "GRUCell", "GRUConfig", "LSTMCell", "LSTMConfig",
    "SimpleRNNCell", "SimpleRNNConfig", "StackedRNNCells",
]
