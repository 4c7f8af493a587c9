"""The LSTM's and the GRU's forward as one native XLA FFI call over oneDNN on the CPU
(`csrc/cpu_rnn_forward.cc`, built by setup.py next to this file): the same function as
`_driver.forward` with the cell's math, masks and resets included, optionally saving the
tangent's coefficients; about twice as fast as the scan (bench/results/cpu.md).

`_driver` calls it for the primal of its custom JVP (inference) and for the forward that
saves the coefficients (first-order derivatives); the second order differentiates the
scan. vmap runs the call once per vmapped element. It declines (the plain XLA scan runs)
when the extension was not built, on another dtype than float32, on empty arrays, and
for values that vary over a `shard_map`'s mesh axes or carry an explicit sharding (an
opaque call has no sharding rule). `jax.lax.platform_dependent` picks it on the CPU only.
"""

import ctypes
import functools
import importlib.metadata
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from ._carry import _varying
from ._flags import keep_flags

TARGETS = {"lstm": "rnnjax_lstm_forward", "gru": "rnnjax_gru_forward"}
_HANDLERS = {"lstm": "RnnjaxLstmForward", "gru": "RnnjaxGruForward"}
_SAVED = {"lstm": (1,) * 6, "gru": (1, 3, 1)}     # the coefficients' widths, in units


def _onednn() -> None:
  """Loads oneDNN's library (the onednn-cpu-gomp wheel) so that the extension's
  dependency on libdnnl.so.3 resolves to it, wherever the wheel put it."""
  files = importlib.metadata.distribution("onednn-cpu-gomp").files or []
  path = next(pathlib.Path(str(f.locate())) for f in files if f.name == "libdnnl.so.3")
  ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)


@functools.cache
def _registered() -> bool:
  """Loads the extension and registers its handlers once; False when it is not built
  (or is a stale build without them)."""
  built = sorted(pathlib.Path(__file__).parent.glob("_cpu_rnn_forward*.so"))
  if not built:
    return False
  try:
    _onednn()
    library = ctypes.CDLL(str(built[0]))
    handlers = {kind: getattr(library, name) for kind, name in _HANDLERS.items()}
  except (OSError, AttributeError, StopIteration, importlib.metadata.PackageNotFoundError):
    return False
  for kind, handler in handlers.items():
    jax.ffi.register_ffi_target(TARGETS[kind], jax.ffi.pycapsule(handler), platform="cpu")
  return True


def available() -> bool:
  """Whether the native CPU forward is built and loads here."""
  return _registered()


def _plain(a) -> bool:
  aval = jax.typeof(a)
  spec = getattr(getattr(aval, "sharding", None), "spec", None)
  return not _varying(aval) and (spec is None or all(s is None for s in spec))


def _flags(flags, steps_batch):
  if flags is None:
    return jnp.zeros((0,), jnp.uint8), False
  return jnp.broadcast_to(flags, steps_batch).astype(jnp.uint8), True


def forward(cell, inputs, projection, w, b_rec, state0, valid, reset, save=False):
  """A function of no arguments returning `_driver.forward`'s (hs, state, coefficients
  or None) from the native call, or None when the native call does not take these
  arguments (module docstring). Arguments as `_driver.forward`."""
  kind = getattr(cell, "native", None)
  if kind not in TARGETS or not _registered():
    return None
  arrays = [inputs, w, *state0, *(projection or ()), *([] if b_rec is None else [b_rec])]
  flags = [f for f in (valid, reset) if f is not None]
  if (any(jnp.dtype(a.dtype) != jnp.float32 for a in arrays)
      or any(0 in np.shape(a) for a in arrays)
      or not all(_plain(a) for a in arrays + flags)):
    return None
  steps, batch = inputs.shape[:2]
  units, gates = w.shape
  empty = jnp.zeros((0,), jnp.float32)
  state0 = tuple(jnp.broadcast_to(s, (batch, units)) for s in state0)
  h0, c0 = state0 if kind == "lstm" else (state0[0], empty)
  if b_rec is None:
    b_rec = jnp.zeros((gates,), jnp.float32) if kind == "gru" else empty
  kernel, bias = (jnp.zeros((0, 0), jnp.float32), empty) if projection is None else projection
  valid_u8, has_valid = _flags(valid, (steps, batch))
  keep_u8, has_keep = _flags(keep_flags(reset), (steps, batch))
  shape = jax.ShapeDtypeStruct
  outputs = ((shape((batch, steps, units), jnp.float32),)
             + (shape((batch, units), jnp.float32),) * len(state0)
             + tuple(shape((steps, batch, n * units), jnp.float32)
                     for n in (_SAVED[kind] if save else ())))
  call = jax.ffi.ffi_call(TARGETS[kind], outputs, vmap_method="sequential")

  def run():
    # batch-major x and hs: the transposes cancel against the layer's own (no copy)
    hs, *rest = call(jnp.swapaxes(inputs, 0, 1), kernel, bias, w, b_rec, h0, c0, valid_u8, keep_u8,
                     projected=projection is None, has_valid=has_valid, has_keep=has_keep,
                     save=save)
    state, coefficients = tuple(rest[:len(state0)]), tuple(rest[len(state0):])
    return jnp.swapaxes(hs, 0, 1), state, (coefficients if save else None)

  return run
