"""The native CPU LSTM forward (`rnnjax/recurrences/_native.py`, `csrc/cpu_lstm_forward.cc`):
built on Linux x86-64, taken for an undifferentiated rj.LSTM call on the CPU and only
then, and equal to an independent NumPy loop (Keras mask and reset semantics) and to the
scan engine, with masks, seq_lengths, resets, initial state, both directions, input
dropout, NaN and saturating inputs, under jit, vmap, lax.map and pmap. The first-order
derivatives' forward (saving the tangent's coefficients) is native too; gradients and
second order equal the scan's."""

import platform
import re
import sys

import numpy as np
import pytest

import jax
import jax.numpy as jnp
import rnnjax as rj
from rnnjax.recurrences import _native

from . import numpy_reference

pytestmark = pytest.mark.skipif(jax.default_backend() != "cpu", reason="CPU path")

BUILT_HERE = sys.platform == "linux" and platform.machine() == "x86_64"
B, T, F, U = 4, 9, 5, 6
HOLES = np.ones((B, T), bool)
HOLES[0, :2] = HOLES[0, 5] = False     # left padding and a hole
HOLES[1, :] = False                    # a fully masked row
HOLES[2, 6:] = False                   # right padding
RESETS = np.zeros((B, T), bool)
RESETS[0, 3] = RESETS[0, 5] = True     # on a valid step, then on a masked one
RESETS[1, 2] = True                    # in the fully masked row
RESETS[2, 7] = True                    # after the last valid step
RESETS[3, 0] = RESETS[3, 4] = True     # at the first step (a no-op) and mid-sequence
LENGTHS = np.array([T, 0, 4, 7])
MASKINGS = {
    "none": {},
    "mask": {"mask": HOLES},
    "reset": {"reset": RESETS},
    "mask_reset": {"mask": HOLES, "reset": RESETS},
    "seq_lengths": {"seq_lengths": LENGTHS},
}


def _rand(seed, shape, scale=1.0):
  return scale * jax.random.normal(jax.random.key(seed), shape)


def _problem(**kw):
  layer = rj.LSTM(U, return_sequences=True, return_state=True, **kw)
  x = _rand(1, (B, T, F))
  params = jax.tree.map(lambda p: p + _rand(9, p.shape, 0.4), layer.init(jax.random.key(0), x))
  state = (_rand(2, (B, U)), _rand(3, (B, U)))
  return layer, params, x, state


def _hlo(f, *args) -> str:
  return jax.jit(f).lower(*args).as_text()


def test_built_on_linux_x86_64():
  # CI installs on Linux x86-64, where the oneDNN wheel exists: the build must not fail
  # silently into the plain scan there.
  assert _native.available() == BUILT_HERE


needs_native = pytest.mark.skipif(not BUILT_HERE, reason="native forward: Linux x86-64")


@needs_native
def test_which_call_each_mode_takes():
  # inference: the forward; first-order derivatives: the forward saving the tangent's
  # coefficients; second order differentiates the scan (no native call in that program)
  layer, params, x, state = _problem()
  apply = lambda p, x: layer.apply(p, x, initial_state=state)             # noqa: E731
  loss = lambda p, x: jnp.sum(apply(p, x)[0] ** 2)                        # noqa: E731
  calls = lambda f, *a: {t for t in (_native.TARGET, _native.SAVING_TARGET)  # noqa: E731
                         if re.search(rf"@{t}\b", _hlo(f, *a))}
  assert calls(apply, params, x) == {_native.TARGET}
  assert calls(jax.grad(loss), params, x) == {_native.SAVING_TARGET}
  assert calls(lambda p, x: jax.jvp(lambda x: apply(p, x), (x,), (x,)), params, x) == {
      _native.SAVING_TARGET}
  hvp = lambda p, x: jax.jvp(jax.grad(loss, argnums=1), (p, x), (p, x))   # noqa: E731
  assert calls(hvp, params, x) == set()
  scan = rj.LSTM(U, return_sequences=True, use_fused=False)
  assert _native.TARGET not in _hlo(scan.apply, params, x)
  gru = rj.GRU(U, return_sequences=True)
  assert _native.TARGET not in _hlo(gru.apply, gru.init(jax.random.key(0), x), x)


@needs_native
@pytest.mark.parametrize("masking", MASKINGS)
@pytest.mark.parametrize("backwards", [False, True], ids=["forward", "backwards"])
def test_equals_the_numpy_loop(masking, backwards):
  layer, params, x, state = _problem(go_backwards=backwards)
  call = MASKINGS[masking]
  mask = call.get("mask")
  if "seq_lengths" in call:
    mask = np.arange(T)[None, :] < LENGTHS[:, None]
  seq, h, c = jax.jit(lambda p, x, s: layer.apply(p, x, initial_state=s, **call))(
      params, x, state)
  want_seq, _, (want_h, want_c) = numpy_reference.run(
      numpy_reference.lstm_step, params, x, state, mask=mask, reset=call.get("reset"),
      go_backwards=backwards)
  for got, want in ((seq, want_seq), (h, want_h), (c, want_c)):
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)


@needs_native
@pytest.mark.parametrize("masking", ["none", "mask_reset"])
def test_equals_the_scan_at_a_larger_shape(masking):
  # 40 steps of 32 units with 16 rows: the oneDNN matmuls' blocking, not the toy one
  b, t, f, u = 16, 40, 12, 32
  x = _rand(4, (b, t, f))
  rng = np.random.default_rng(5)
  call = {"none": {}, "mask_reset": {"mask": rng.random((b, t)) > 0.2,
                                     "reset": rng.random((b, t)) > 0.9}}[masking]
  fast = rj.LSTM(u, return_sequences=True, return_state=True)
  scan = rj.LSTM(u, return_sequences=True, return_state=True, use_fused=False)
  params = fast.init(jax.random.key(6), x)
  got = jax.jit(lambda p, x: fast.apply(p, x, **call))(params, x)
  want = jax.jit(lambda p, x: scan.apply(p, x, **call))(params, x)
  for a, w in zip(got, want, strict=True):
    np.testing.assert_allclose(a, w, rtol=1e-5, atol=1e-6)


@needs_native
@pytest.mark.parametrize("masking", ["none", "mask_reset"])
def test_gradients_and_second_order_equal_the_scan(masking):
  b, t, f, u = 8, 30, 6, 16
  x = _rand(4, (b, t, f))
  rng = np.random.default_rng(7)
  call = {"none": {}, "mask_reset": {"mask": rng.random((b, t)) > 0.2,
                                     "reset": rng.random((b, t)) > 0.9}}[masking]
  def derivatives(use_fused):
    layer = rj.LSTM(u, return_sequences=True, use_fused=use_fused)
    loss = lambda p, x: jnp.sum(jnp.sin(layer.apply(p, x, **call)))       # noqa: E731
    grad = jax.grad(loss, argnums=(0, 1))
    hvp = lambda p, x: jax.jvp(grad, (p, x), (p, x))[1]                   # noqa: E731
    return jax.jit(lambda p, x: (grad(p, x), hvp(p, x)))
  params = rj.LSTM(u).init(jax.random.key(8), x)
  got, want = derivatives("auto")(params, x), derivatives(False)(params, x)
  for a, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    np.testing.assert_allclose(a, w, rtol=2e-5, atol=2e-5)


@needs_native
def test_input_dropout_projects_before_the_call():
  # training with input dropout hoists the projection: the call takes projected inputs
  layer, params, x, state = _problem(dropout=0.4)
  scan = rj.LSTM(U, return_sequences=True, return_state=True, dropout=0.4, use_fused=False)
  key = jax.random.key(11)
  run = lambda lay: jax.jit(lambda p, x: lay.apply(p, x, initial_state=state,   # noqa: E731
                                                   training=True, rng=key))
  assert _native.TARGET in _hlo(lambda p, x: layer.apply(p, x, initial_state=state,
                                                         training=True, rng=key), params, x)
  for a, w in zip(run(layer)(params, x), run(scan)(params, x), strict=True):
    np.testing.assert_allclose(a, w, rtol=1e-5, atol=1e-6)


@needs_native
def test_nan_and_saturating_inputs():
  layer, params, x, state = _problem()
  x = x.at[0, 3, 1].set(jnp.nan).at[1].multiply(1e4)       # row 0: NaN from step 3 on
  seq, h, c = jax.jit(lambda p, x: layer.apply(p, x, initial_state=state))(params, x)
  with np.errstate(over="ignore", invalid="ignore"):
    want_seq, _, (want_h, want_c) = numpy_reference.run(
        numpy_reference.lstm_step, params, x, state)
  assert np.isnan(np.asarray(seq)[0, 3:]).all() and np.isfinite(np.asarray(seq)[1:]).all()
  for got, want in ((seq, want_seq), (h, want_h), (c, want_c)):
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)


@needs_native
def test_vmap_lax_map_and_pmap_equal_one_call_per_example():
  layer, params, x, state = _problem()
  xs = jnp.stack([x, 2 * x, -x])                      # (3, B, T, F): three examples
  f = lambda x: layer.apply(params, x, initial_state=state)                # noqa: E731
  one = jax.jit(f)
  want = jax.tree.map(lambda *a: np.stack(a), *[one(xi) for xi in xs])
  assert _native.TARGET in _hlo(jax.vmap(f), xs)
  devices = jax.local_device_count()
  for got, n in ((jax.jit(jax.vmap(f))(xs), 3), (jax.lax.map(f, xs), 3),
                 (jax.pmap(f)(xs[:devices]), devices)):
    for a, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
      np.testing.assert_allclose(a, w[:n], rtol=1e-6, atol=1e-6)


@needs_native
def test_bidirectional_equals_the_numpy_loop():
  x = _rand(1, (B, T, F))
  layer = rj.Bidirectional(rj.LSTM(U, return_sequences=True), merge_mode="concat")
  params = layer.init(jax.random.key(0), x)
  assert _native.TARGET in _hlo(lambda p, x: layer.apply(p, x, mask=HOLES), params, x)
  got = jax.jit(lambda p, x: layer.apply(p, x, mask=HOLES))(params, x)
  zeros = (np.zeros((B, U)), np.zeros((B, U)))
  # Bidirectional zeroes masked steps' outputs (Keras: zero_output_for_mask)
  outs = [numpy_reference.run(numpy_reference.lstm_step, p, x, zeros, mask=HOLES,
                              go_backwards=back, zero_output_for_mask=True)[0]
          for p, back in ((params["forward"], False), (params["backward"], True))]
  want = np.concatenate([outs[0], outs[1][:, ::-1]], -1)
  np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)
