"""The gated-cell scaffold: everything a cell package (`lstm/`, `gru/`) needs from the
shared kernel code, and the only module of `rnnjax.pallas` they import.

A gated cell computes, per step, G gate pre-activations z_k = x @ W_in[k] + h @ W_k (+
biases) and combines them elementwise into its new states; state 0 is h, the output.
The scaffold does the rest for any such cell: argument checks and the public functions'
branching (`one_direction`, `both_directions`), the input projection, padding and
layouts, the custom JVP (`run`), the kernels' time loop, masking, chunking and launches,
and the reference's scan (`scan`). A cell supplies a `GateSpec`: its numbers, its gate
math (a forward and a backward step, see `StepGrads`), its bias layout and its pure-JAX
reference.
"""

from ._gates import GateSpec as GateSpec
from ._gates import StepGrads as StepGrads
from ._public import both_directions as both_directions
from ._public import one_direction as one_direction
from ._recurrence import run as run
from ._reference import recurrent_product as recurrent_product
from ._reference import scan as scan

__all__ = ["GateSpec", "StepGrads", "both_directions", "one_direction", "recurrent_product",
           "run", "scan"]
