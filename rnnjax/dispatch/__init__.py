"""The dispatch seam: a layer prepares its call once (`Call`, `CallSpec`) and hands it
here; `plan` picks the implementation from the registry (`_registry.FAST`: cell type ->
fast paths, each on its platform; the scan engine otherwise), `run` executes it, and
`which_path` reports the same decision."""

from ._call import Call as Call
from ._call import CallSpec as CallSpec
from ._call import RunOptions as RunOptions
from ._plan import PathChoice as PathChoice
from ._plan import Plan as Plan
from ._plan import fused_layer_apply as fused_layer_apply
from ._plan import plan as plan
from ._plan import plan_together as plan_together
from ._plan import run as run
from ._plan import run_together as run_together
from ._plan import which_path as which_path
from ._registry import FAST as REGISTRY
from ._registry import context as context

__all__ = [
    "Call", "CallSpec", "PathChoice", "Plan", "REGISTRY", "RunOptions", "context",
    "fused_layer_apply", "plan", "plan_together", "run", "run_together", "which_path",
]
