"""The single scan engine."""

from ._scan import RNNResult as RNNResult
from ._scan import rnn as rnn

__all__ = ["RNNResult", "rnn"]
