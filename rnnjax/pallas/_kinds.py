"""The kernels by kind, for callers that choose a kernel before running it (the layers'
dispatch): whether the "lstm" or "gru" kernel can run in a dtype."""

from . import gru, lstm

SPECS = {"lstm": lstm.SPEC, "gru": gru.SPEC}


def unsupported_reason(kind: str, dtype) -> str | None:
  """Why the `kind` kernel ("lstm" or "gru") cannot compute in `dtype`, or None.

  >>> unsupported_reason("gru", "bfloat16") is None
  True
  """
  if not isinstance(kind, str):
    raise TypeError(f"kind must be a str, one of {tuple(SPECS)}, got {kind!r}.")
  if kind not in SPECS:
    raise ValueError(f"kind must be one of {tuple(SPECS)}, got {kind!r}.")
  return SPECS[kind].unsupported_reason(dtype)
