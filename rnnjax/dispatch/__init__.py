"""The dispatch seam: which implementation runs a prepared layer call."""

from ._dispatch import PathChoice as PathChoice
from ._dispatch import bidirectional_path as bidirectional_path
from ._dispatch import pair_ineligibility as pair_ineligibility
from ._dispatch import which_path as which_path
from ._layer import fused_layer_apply as fused_layer_apply
from ._layer import fused_layers_apply as fused_layers_apply
