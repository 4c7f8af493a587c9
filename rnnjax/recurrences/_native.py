"""The LSTM's inference forward as one native XLA FFI call over oneDNN on the CPU
(`csrc/cpu_lstm_forward.cc`, built by setup.py next to this file): the same function as
`_driver.forward` with the LSTM's math, masks and resets included, about twice as fast
at small shapes (bench/results/cpu.md).

It replaces only the primal of the custom JVP (`_driver.recurrence`), so it runs where
nothing differentiates the call; jvp, grad and every higher order run the rule (plain
XLA). vmap runs the call once per vmapped element. It declines (the plain XLA scan runs)
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

TARGET = "rnnjax_lstm_forward"
SAVING_TARGET = "rnnjax_lstm_forward_saving"


def _onednn() -> None:
  """Loads oneDNN's library (the onednn-cpu-gomp wheel) so that the extension's
  dependency on libdnnl.so.3 resolves to it, wherever the wheel put it."""
  files = importlib.metadata.distribution("onednn-cpu-gomp").files or []
  path = next(pathlib.Path(str(f.locate())) for f in files if f.name == "libdnnl.so.3")
  ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)


@functools.cache
def _registered() -> bool:
  """Loads the extension and registers its handler once; False when it is not built."""
  built = sorted(pathlib.Path(__file__).parent.glob("_cpu_lstm_forward*.so"))
  if not built:
    return False
  try:
    _onednn()
    library = ctypes.CDLL(str(built[0]))
  except (OSError, AttributeError, StopIteration, importlib.metadata.PackageNotFoundError):
    return False
  for name, handler in ((TARGET, library.RnnjaxLstmForward),
                        (SAVING_TARGET, library.RnnjaxLstmForwardSaving)):
    jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(handler), platform="cpu")
  return True


def available() -> bool:
  """Whether the native CPU LSTM forward is built and loads here."""
  return _registered()


def _plain(a) -> bool:
  aval = jax.typeof(a)
  spec = getattr(getattr(aval, "sharding", None), "spec", None)
  return not _varying(aval) and (spec is None or all(s is None for s in spec))


def _flags(flags, steps_batch):
  if flags is None:
    return jnp.zeros((0,), jnp.uint8), False
  return jnp.broadcast_to(flags, steps_batch).astype(jnp.uint8), True


def lstm_forward(cell, inputs, projection, w, b_rec, state0, valid, reset, save=False):
  """A function of no arguments returning `_driver.forward`'s (hs, state, coefficients
  or None) from the native call, or None when the native call does not take these
  arguments (module docstring). Arguments as `_driver.forward`."""
  if getattr(cell, "native", None) != "lstm" or b_rec is not None or not _registered():
    return None
  arrays = [inputs, w, *state0, *(projection or ())]
  flags = [f for f in (valid, reset) if f is not None]
  if (any(jnp.dtype(a.dtype) != jnp.float32 for a in arrays)
      or any(0 in np.shape(a) for a in arrays)
      or not all(_plain(a) for a in arrays + flags)):
    return None
  steps, batch = inputs.shape[:2]
  units = w.shape[0]
  h0, c0 = (jnp.broadcast_to(s, (batch, units)) for s in state0)
  if projection is None:
    kernel, bias = jnp.zeros((0, 0), jnp.float32), jnp.zeros((0,), jnp.float32)
  else:
    kernel, bias = projection
  valid_u8, has_valid = _flags(valid, (steps, batch))
  keep_u8, has_keep = _flags(keep_flags(reset), (steps, batch))
  sequence = jax.ShapeDtypeStruct((steps, batch, units), jnp.float32)
  last = jax.ShapeDtypeStruct((batch, units), jnp.float32)
  call = jax.ffi.ffi_call(SAVING_TARGET if save else TARGET,
                          (sequence, last, last) + (sequence,) * (6 if save else 0),
                          vmap_method="sequential")

  def run():
    hs, h, c, *coefficients = call(inputs, kernel, bias, w, h0, c0, valid_u8, keep_u8,
                                   projected=projection is None, has_valid=has_valid,
                                   has_keep=has_keep)
    return hs, (h, c), (tuple(coefficients) if save else None)

  return run
