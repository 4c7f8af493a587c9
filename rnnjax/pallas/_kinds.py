"""The kernels by kind, for callers that choose a kernel before running it (the layers'
dispatch): whether the "lstm" or "gru" kernel can run in a dtype, and whether the
compile check verified the kernels a problem would launch (`compile_envelope_reason`)."""

from . import _envelope, gru, lstm

SPECS = {"lstm": lstm.SPEC, "gru": gru.SPEC}


def _spec(kind: str):
  if not isinstance(kind, str):
    raise TypeError(f"kind must be a str, one of {tuple(SPECS)}, got {kind!r}.")
  if kind not in SPECS:
    raise ValueError(f"kind must be one of {tuple(SPECS)}, got {kind!r}.")
  return SPECS[kind]


def unsupported_reason(kind: str, dtype) -> str | None:
  """Why the `kind` kernel ("lstm" or "gru") cannot compute in `dtype`, or None.

  >>> unsupported_reason("gru", "bfloat16") is None
  True
  """
  return _spec(kind).unsupported_reason(dtype)


def compile_envelope_reason(kind: str, units: int, dtype, *, directions: int = 1,
                            precision=None, masked: bool = False) -> str | None:
  """Why the compile check has not verified the `kind` kernels ("lstm" or "gru") that a
  problem of `units` in `dtype` would launch (forward, residual-saving forward and
  backward; `directions` 2: both directions in one launch), or None. `precision` is the
  kernel's dot precision (None: TF32 for float32 dots, unless
  `jax.default_matmul_precision` says otherwise when this is called). `masked`: the
  kernels that take boolean masks and resets (step flags), verified separately.

  >>> compile_envelope_reason("lstm", 64, "bfloat16") is None
  True
  >>> "outside the compile-verified envelope" in compile_envelope_reason("lstm", 4096, "bfloat16")
  True
  """
  if directions not in (1, 2):
    raise ValueError(f"directions must be 1 or 2, got {directions!r}.")
  return _spec(kind).envelope_reason(units, dtype, directions=directions, precision=precision,
                                     masked=masked)


def compile_envelope(kind: str, dtype, *, directions: int = 1, precision=None,
                     masked: bool = False) -> int:
  """The largest units up to which the compile check verified every `kind` kernel in
  `dtype` (0: none): the fused path's units limit on a GPU.

  >>> compile_envelope("lstm", "bfloat16") >= 128
  True
  """
  spec = _spec(kind)
  return _envelope.max_units(kind, dtype, directions=directions, precision=precision,
                             gates=spec.gates, masked=masked)
