"""The public face of rnnjax's fast paths: the fused Pallas kernels as array functions
(from `rnnjax.pallas`; `mosaic_lstm` and `mosaic_gru`, the opt-in Mosaic GPU kernels for Hopper, from
`rnnjax.pallas.mosaic`), and `which_path`, which says what path a layer call takes and why
(the same decision `apply` takes, from `rnnjax.dispatch`).
"""

from ..dispatch import PathChoice as PathChoice
from ..dispatch import fused_layer_apply as fused_layer_apply
from ..dispatch import which_path as which_path
from ..pallas import force_interpret as force_interpret
from ..pallas import fused_bidirectional_lstm as fused_bidirectional_lstm
from ..pallas import fused_gru as fused_gru
from ..pallas import fused_lstm as fused_lstm
from ..pallas import interpret_forced as interpret_forced
from ..pallas import max_block_h as max_block_h
from ..pallas.mosaic import mosaic_gru as mosaic_gru
from ..pallas.mosaic import mosaic_lstm as mosaic_lstm

__all__ = [
    "PathChoice",
    "force_interpret",
    "fused_bidirectional_lstm",
    "fused_gru",
    "fused_layer_apply",
    "fused_lstm",
    "interpret_forced",
    "max_block_h",
    "mosaic_gru",
    "mosaic_lstm",
    "which_path",
]
