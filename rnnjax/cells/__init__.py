"""Cells: pure per-step functions with Keras names, layouts and semantics."""

from ._base import Cell as Cell
from ._base import initial_state_of as initial_state_of
from ._conv_lstm import ConvLSTM1DCell as ConvLSTM1DCell
from ._conv_lstm_config import ConvLSTM1DConfig as ConvLSTM1DConfig
from ._conv_lstm import ConvLSTM2DCell as ConvLSTM2DCell
from ._conv_lstm_config import ConvLSTM2DConfig as ConvLSTM2DConfig
from ._conv_lstm import ConvLSTM3DCell as ConvLSTM3DCell
from ._conv_lstm_config import ConvLSTM3DConfig as ConvLSTM3DConfig
from ._conv_lstm import ConvLSTMCell as ConvLSTMCell
from ._conv_lstm_config import ConvLSTMConfig as ConvLSTMConfig
from ._dropout import DropoutMasks as DropoutMasks
from ._gru import GRUCell as GRUCell
from ._gru import GRUConfig as GRUConfig
from ._lru import LRUCell as LRUCell
from ._lru import LRUConfig as LRUConfig
from ._lstm import LSTMCell as LSTMCell
from ._lstm import LSTMConfig as LSTMConfig
from ._min_rnn import MinGRUCell as MinGRUCell
from ._min_rnn import MinGRUConfig as MinGRUConfig
from ._min_rnn import MinLSTMCell as MinLSTMCell
from ._min_rnn import MinLSTMConfig as MinLSTMConfig
from ._projected_lstm import ProjectedLSTMCell as ProjectedLSTMCell
from ._simple_rnn import SimpleRNNCell as SimpleRNNCell
from ._simple_rnn import SimpleRNNConfig as SimpleRNNConfig
from ._stacked import StackedRNNCells as StackedRNNCells

__all__ = [
    "Cell", "initial_state_of", "ConvLSTM1DCell", "ConvLSTM1DConfig", "ConvLSTM2DCell", "ConvLSTM2DConfig",
    "ConvLSTM3DCell", "ConvLSTM3DConfig", "ConvLSTMCell", "ConvLSTMConfig", "DropoutMasks", "GRUCell", "GRUConfig", "LSTMCell", "LSTMConfig",
    "ProjectedLSTMCell", "SimpleRNNCell", "SimpleRNNConfig", "StackedRNNCells",
    "LRUCell", "LRUConfig", "MinGRUCell", "MinGRUConfig", "MinLSTMCell", "MinLSTMConfig",
]
