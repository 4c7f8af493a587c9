"""The LSTM's and the GRU's forward and reverse scans as native XLA FFI calls over oneDNN
on the CPU (`csrc/cpu_rnn_forward.cc`, `csrc/cpu_rnn_reverse.cc`, built by setup.py next
to this file as `_cpu_rnn`).

- `forward`: the same function as `_driver.forward` with the cell's math, masks and
  resets included, optionally saving the tangent's coefficients. `_driver` calls it for
  the primal of its custom JVP (inference) and for the forward that saves the
  coefficients (first-order derivatives); the second order differentiates the scan.
- `reverse`: the same function as `_tangent.reverse`, the transpose of the tangent scan
  (what reverse mode runs); `_tangent.TangentMap.transpose` calls it. Higher orders
  differentiate JAX's transpose of the tangent scan instead (`_linear_map`).

vmap runs a call once per vmapped element. Each declines (the plain XLA scan runs) when
the extension was not built, on another dtype than float32, on empty arrays, and for
values that vary over a `shard_map`'s mesh axes or carry an explicit sharding (an opaque
call has no sharding rule). `jax.lax.platform_dependent` picks them on the CPU only.
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
REVERSE_TARGETS = {"lstm": "rnnjax_lstm_reverse", "gru": "rnnjax_gru_reverse"}
_HANDLERS = {"rnnjax_lstm_forward": "RnnjaxLstmForward", "rnnjax_gru_forward": "RnnjaxGruForward",
             "rnnjax_lstm_reverse": "RnnjaxLstmReverse", "rnnjax_gru_reverse": "RnnjaxGruReverse"}
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
  built = sorted(pathlib.Path(__file__).parent.glob("_cpu_rnn.*.so"))
  if not built:
    return False
  try:
    _onednn()
    library = ctypes.CDLL(str(built[0]))
    handlers = {target: getattr(library, name) for target, name in _HANDLERS.items()}
  except (OSError, AttributeError, StopIteration, importlib.metadata.PackageNotFoundError):
    return False
  for target, handler in handlers.items():
    jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(handler), platform="cpu")
  return True


def available() -> bool:
  """Whether the native CPU forward and reverse scans are built and load here."""
  return _registered()


def _plain(a) -> bool:
  aval = jax.typeof(a)
  spec = getattr(getattr(aval, "sharding", None), "spec", None)
  return not _varying(aval) and (spec is None or all(s is None for s in spec))


def _flags(flags, steps_batch):
  if flags is None:
    return jnp.zeros((0,), jnp.uint8), False
  return jnp.broadcast_to(flags, steps_batch).astype(jnp.uint8), True


def _kind(cell, arrays, flags):
  """The cell's native kind ("lstm", "gru") when the native calls take these arrays and
  (T, B) flags (None entries: absent), else None."""
  kind = getattr(cell, "native", None)
  flags = [f for f in flags if f is not None]
  if (kind not in TARGETS or not _registered()
      or any(jnp.dtype(a.dtype) != jnp.float32 for a in arrays)
      or any(0 in np.shape(a) for a in arrays)
      or not all(_plain(a) for a in arrays + flags)):
    return None
  return kind


def forward(cell, inputs, projection, w, b_rec, state0, valid, reset, save=False):
  """A function of no arguments returning `_driver.forward`'s (hs, state, coefficients
  or None) from the native call, or None when the native call does not take these
  arguments (module docstring). Arguments as `_driver.forward`."""
  kind = _kind(cell, [inputs, w, *state0, *(projection or ()),
                      *([] if b_rec is None else [b_rec])], [valid, reset])
  if kind is None:
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


def reverse(cell, w, loop, ct_hs, ct_final, valid, keep, with_a: bool):
  """A function of no arguments returning `_tangent.reverse`'s (ct_a or None, initial
  state cotangents) from the native call, or None when it does not take these arguments.

  Args as `_tangent.reverse`: w (U, GU); loop: `cell.loop(coefficients)` (the LSTM's six
  (T, B, U), the GRU's z (T, B, U) and C (T, B, 3U)); ct_hs (T, B, U); ct_final the final
  state's cotangents; valid, keep (T, B) bool or None (keep: `keep_flags` of the resets);
  with_a: whether to return ct_a, (T, B, 4U) for the LSTM, (T, B, U) for the GRU (the
  call computes it either way)."""
  loop = tuple(jax.tree.leaves(loop))
  kind = _kind(cell, [w, ct_hs, *loop, *ct_final], [valid, keep])
  if kind is None:
    return None
  steps, batch, units = ct_hs.shape
  valid_u8, has_valid = _flags(valid, (steps, batch))
  keep_u8, has_keep = _flags(keep, (steps, batch))
  shape = jax.ShapeDtypeStruct
  width = 4 * units if kind == "lstm" else units
  outputs = ((shape((steps, batch, width), jnp.float32),)
             + (shape((batch, units), jnp.float32),) * len(ct_final))
  call = jax.ffi.ffi_call(REVERSE_TARGETS[kind], outputs, vmap_method="sequential")

  def run():
    # batch-major ct_hs, as the layer's output: the transposes cancel
    ct_a, *ct0 = call(w, jnp.swapaxes(ct_hs, 0, 1), valid_u8, keep_u8, *loop, *ct_final,
                      has_valid=has_valid, has_keep=has_keep)
    return (ct_a if with_a else None), tuple(ct0)

  return run
