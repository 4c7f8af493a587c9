"""The single scan engine."""

from ._remat import check_remat as check_remat
from ._scan import RNNResult as RNNResult
from ._scan import as_tuples as as_tuples
from ._scan import rnn as rnn
from ._scan import zero_masked as zero_masked

__all__ = ["RNNResult", "as_tuples", "check_remat", "rnn", "zero_masked"]
