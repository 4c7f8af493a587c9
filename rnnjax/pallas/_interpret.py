"""Where the Pallas kernels run: compiled for the GPU, or in Pallas interpret mode on
the CPU (numerics only, slow). Tests force the fused path on the CPU with
`force_interpret()` (or the environment variable RNNJAX_FORCE_INTERPRET=1)."""

import contextlib
import contextvars
import os
from collections.abc import Iterator

from .. import _platform, _validation

_FORCED = contextvars.ContextVar("rnnjax_force_interpret", default=False)
ENV_VAR = "RNNJAX_FORCE_INTERPRET"


@contextlib.contextmanager
def force_interpret(enabled: bool = True) -> Iterator[None]:
  """Within this block, fused kernels run in Pallas interpret mode and the dispatch
  treats the CPU as a GPU (for tests: it lets `use_fused` choose the kernel on a CPU).

  >>> import rnnjax as rj
  >>> with rj.kernels.force_interpret():
  ...   rj.kernels.interpret_forced()
  True
  """
  _validation.check_bool(enabled, "enabled")
  token = _FORCED.set(enabled)
  try:
    yield
  finally:
    _FORCED.reset(token)


def interpret_forced() -> bool:
  """True inside `force_interpret()` or when RNNJAX_FORCE_INTERPRET=1."""
  return _FORCED.get() or os.environ.get(ENV_VAR, "") not in ("", "0")




def resolve_interpret(interpret) -> bool:
  """`interpret` argument of the kernels: None -> interpret unless on a GPU (or forced)."""
  if interpret is None:
    return interpret_forced() or not _platform.on_gpu()
  if not isinstance(interpret, bool):
    raise TypeError(f"interpret must be None or a bool, got {interpret!r}.")
  return interpret
