"""MinGRU, MinLSTM and LRU: sequence layers over the linear-recurrence cells, with every
sequence option of LSTM (they are `SequenceLayer`s) and the `scan=` switch.

scan: "parallel" (an associative scan over time, `rnnjax.recurrences.linear_scan`),
"sequential" (the engine's loop), or "auto" (the faster on the backend: the parallel
scan on GPUs and TPUs, the loop on the CPU; see bench/results/linear.md). Both give the
same numbers, forward and backward. In the dispatch's words, "parallel" is the fast
path requested (`use_fused=True`), "sequential" the scan (False); messages name the
option as written (`scan='parallel'`, or `sequence_axis='time'` when that forces it).

sequence_axis: the mesh axis that splits time when the layer runs inside
`jax.shard_map` on a time-sharded sequence (sequence parallelism). It needs the parallel
scan, so the layer then always takes it (and says why not when it cannot).
"""

import dataclasses
from typing import TYPE_CHECKING, Any

from .. import dispatch
from ..cells import LRUCell, LRUConfig, MinGRUCell, MinGRUConfig, MinLSTMCell, MinLSTMConfig
from ._base import SequenceLayer
from ._builtin import cell_property
from ..types import Inputs

SCAN_CHOICES = ("auto", "parallel", "sequential")
_REQUEST: dict[str, bool | str] = {"parallel": True, "sequential": False, "auto": "auto"}


@dataclasses.dataclass(frozen=True)
class LinearRecurrence(SequenceLayer):
  """A sequence layer over a linear-recurrence cell, with the `scan=` switch."""

  _: dataclasses.KW_ONLY
  scan: str = "auto"

  if TYPE_CHECKING:  # a field of the config classes (LinearOptions)
    @property
    def sequence_axis(self) -> str | None: ...

  def __post_init__(self) -> None:
    if not isinstance(self.scan, str) or self.scan not in SCAN_CHOICES:
      raise ValueError(f'scan must be "auto", "parallel" or "sequential", got {self.scan!r}.')
    if self.scan == "sequential" and self.sequence_axis is not None:
      raise ValueError(
          f"scan='sequential' cannot run a time-sharded sequence (sequence_axis="
          f"{self.sequence_axis!r}): the chunks are combined by the parallel scan; use "
          "scan='parallel' or 'auto'.")
    super().__post_init__()

  @property
  def fused_request(self) -> bool | str:
    """The dispatch request: "parallel" -> True, "sequential" -> False, "auto" -> "auto"
    (True whenever `sequence_axis` is set)."""
    return True if self.sequence_axis is not None else _REQUEST[self.scan]

  @property
  def request_label(self) -> str:
    """The option behind `fused_request`, as written: "scan='parallel'", or
    "sequence_axis='time'" (which asks for the parallel scan whatever `scan`)."""
    if self.sequence_axis is not None:
      return f"sequence_axis={self.sequence_axis!r}"
    return f"scan={self.scan!r}"

  def call_spec(self, inputs: Inputs, **call: Any) -> dispatch.CallSpec:
    """`SequenceLayer.call_spec` with the switch named as the user wrote it in messages."""
    spec = super().call_spec(inputs, **call)
    return spec._replace(request_name="scan", request_label=self.request_label)


@dataclasses.dataclass(frozen=True)
class MinGRU(MinGRUConfig, LinearRecurrence):
  """minGRU layer (Feng et al. 2024); params and equations as `MinGRUCell`.

  >>> import jax, jax.numpy as jnp, rnnjax as rj
  >>> layer = rj.MinGRU(4, return_sequences=True, scan="parallel")
  >>> x = jnp.ones((2, 5, 3))
  >>> params = layer.init(jax.random.key(0), x)
  >>> y = layer.apply(params, x)
  >>> sequential = rj.MinGRU(4, return_sequences=True, scan="sequential")
  >>> y.shape, bool(jnp.allclose(y, sequential.apply(params, x), atol=1e-6))
  ((2, 5, 4), True)
  """

  cell = cell_property(MinGRUCell)


@dataclasses.dataclass(frozen=True)
class MinLSTM(MinLSTMConfig, LinearRecurrence):
  """minLSTM layer (Feng et al. 2024); params and equations as `MinLSTMCell`.

  >>> import jax, jax.numpy as jnp, rnnjax as rj
  >>> x = jnp.ones((2, 5, 3))
  >>> params = rj.MinLSTM(4).init(jax.random.key(0), x)
  >>> [rj.MinLSTM(4, return_state=True).apply(params, x)[1].shape]
  [(2, 4)]
  """

  cell = cell_property(MinLSTMCell)


@dataclasses.dataclass(frozen=True)
class LRU(LRUConfig, LinearRecurrence):
  """Linear Recurrent Unit layer (Orvieto et al. 2023); params as `LRUCell`. It maps
  width U to width U (inputs (B, T, U)); the state is (B, 2, N), real and imaginary parts.

  >>> import jax, jax.numpy as jnp, rnnjax as rj
  >>> layer = rj.LRU(4, state_units=8, return_sequences=True, return_state=True)
  >>> x = jnp.ones((2, 5, 4))
  >>> y, state = layer.apply(layer.init(jax.random.key(0), x), x)
  >>> y.shape, state.shape
  ((2, 5, 4), (2, 2, 8))
  """

  cell = cell_property(LRUCell)
