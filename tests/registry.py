"""One table of every layer kind under test: the property and transform tests run over
all of them. An entry builds the layer from sequence options (return_sequences, ...);
STEP_SHAPES gives its per-step input shape (F,) unless the kind needs another.
Bidirectional is not here: chunked streaming, go_backwards reversal and trimming do not
hold for a layer that reads the sequence both ways (tests/test_bidirectional.py and
tests/test_stateful.py cover it)."""

import rnnjax as rj

from tests.cells import MinimalRNNCell

F = 3   # input features of every entry

LAYERS = {
    "simple_rnn": lambda **kw: rj.SimpleRNN(4, **kw),
    "gru": lambda **kw: rj.GRU(4, **kw),
    "gru_reset_before": lambda **kw: rj.GRU(4, reset_after=False, **kw),
    "lstm": lambda **kw: rj.LSTM(4, **kw),
    "stacked": lambda **kw: rj.RNN([rj.LSTMCell(3), rj.GRUCell(4)], **kw),
    "custom_cell": lambda **kw: rj.RNN(MinimalRNNCell(4), **kw),
    # ConvLSTM2D/3D share ConvLSTMCell with 1D (and tests/test_conv_lstm.py covers them).
    "conv_lstm_1d": lambda **kw: rj.ConvLSTM1D(2, 3, padding="same", **kw),
}

# Per-step input shapes, without batch and time axes.
STEP_SHAPES = {name: (F,) for name in LAYERS} | {"conv_lstm_1d": (5, F)}
