"""The native CPU forward of the LSTM and the GRU (`rnnjax/recurrences/_native.py`,
`csrc/cpu_rnn_forward.cc`): built on Linux x86-64; an undifferentiated call runs it, a
first-order derivative runs it saving the tangent's coefficients, the second order does
not; equal to an independent NumPy loop (Keras mask and reset semantics) and to the scan
engine, with masks, seq_lengths, resets, initial state, both directions, input dropout,
NaN and saturating inputs, under jit, vmap, lax.map and pmap; gradients and second order
equal the scan's. Reverse mode runs the native reverse scan (`csrc/cpu_rnn_reverse.cc`),
equal to JAX's transpose of the tangent scan, and to the scan's gradient with no hoisted
part (the initial state's alone)."""

import platform
import re
import sys

import numpy as np
import pytest

import jax
import jax.numpy as jnp
import rnnjax as rj
from rnnjax import recurrences
from rnnjax.recurrences import _gru_math as gru_math
from rnnjax.recurrences import _lstm_math as lstm_math
from rnnjax.recurrences import _native
from rnnjax.recurrences import _tangent as tangent
from rnnjax.recurrences._flags import keep_flags

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
MAKERS = {"lstm": rj.LSTM, "gru": rj.GRU}
STEPS = {"lstm": numpy_reference.lstm_step, "gru": numpy_reference.gru_step}
MASKINGS = {
    "none": {},
    "mask": {"mask": HOLES},
    "reset": {"reset": RESETS},
    "mask_reset": {"mask": HOLES, "reset": RESETS},
    "seq_lengths": {"seq_lengths": LENGTHS},
}


def _rand(seed, shape, scale=1.0):
  return scale * jax.random.normal(jax.random.key(seed), shape)


def _problem(kind="lstm", **kw):
  layer = MAKERS[kind](U, return_sequences=True, return_state=True, **kw)
  x = _rand(1, (B, T, F))
  params = jax.tree.map(lambda p: p + _rand(9, p.shape, 0.4), layer.init(jax.random.key(0), x))
  state = tuple(_rand(2 + i, (B, U)) for i in range(len(layer.get_initial_state(B))))
  return layer, params, x, state


def _random_masking(masking, b, t, seed):
  """{} or a random mask (80% valid) and resets (10%) for `masking` "none" / "mask_reset"."""
  rng = np.random.default_rng(seed)
  if masking == "none":
    return {}
  return {"mask": rng.random((b, t)) > 0.2, "reset": rng.random((b, t)) > 0.9}


def _calls(f, *args) -> set[tuple[str, bool | None]]:
  """The native calls in f's program: (target, whether a forward saves the
  coefficients; None for a reverse call)."""
  calls = set()
  for line in _hlo(f, *args).splitlines():
    target, save = re.search(r"custom_call @(rnnjax_\w+)\(", line), re.search(r"save = (\w+)", line)
    if target:
      calls.add((target[1], None if save is None else save[1] == "true"))
  return calls


def _hlo(f, *args) -> str:
  return jax.jit(f).lower(*args).as_text()


def test_built_on_linux_x86_64():
  # CI installs on Linux x86-64, where the oneDNN wheel exists: the build must not fail
  # silently into the plain scan there.
  assert recurrences.native_available() == BUILT_HERE


needs_native = pytest.mark.skipif(not BUILT_HERE, reason="native scans: Linux x86-64")


@needs_native
@pytest.mark.parametrize("kind", MAKERS)
def test_which_call_each_mode_takes(kind):
  # inference: the forward; first-order derivatives: the forward saving the tangent's
  # coefficients, and reverse mode the native reverse scan; second order differentiates
  # the scans (no native call in that program)
  layer, params, x, state = _problem(kind)
  target, reverse = _native.TARGETS[kind], _native.REVERSE_TARGETS[kind]
  apply = lambda p, x: layer.apply(p, x, initial_state=state)             # noqa: E731
  loss = lambda p, x: jnp.sum(apply(p, x)[0] ** 2)                        # noqa: E731
  assert _calls(apply, params, x) == {(target, False)}
  assert _calls(jax.grad(loss), params, x) == {(target, True), (reverse, None)}
  assert _calls(lambda p, x: jax.jvp(lambda x: apply(p, x), (x,), (x,)), params, x) == {
      (target, True)}
  hvp = lambda p, x: jax.jvp(jax.grad(loss, argnums=1), (p, x), (p, x))   # noqa: E731
  assert _calls(hvp, params, x) == set()
  scan = MAKERS[kind](U, return_sequences=True, use_fused=False)
  assert _calls(scan.apply, params, x) == set()


def test_simple_rnn_and_reset_before_gru_take_the_scan():
  x = _rand(1, (B, T, F))
  for layer in (rj.SimpleRNN(U), rj.GRU(U, reset_after=False)):
    assert _calls(layer.apply, layer.init(jax.random.key(0), x), x) == set()


@needs_native
@pytest.mark.parametrize("masking", MASKINGS)
@pytest.mark.parametrize("backwards", [False, True], ids=["forward", "backwards"])
@pytest.mark.parametrize("kind", MAKERS)
def test_equals_the_numpy_loop(kind, masking, backwards):
  layer, params, x, state = _problem(kind, go_backwards=backwards)
  call = MASKINGS[masking]
  mask = call.get("mask")
  if "seq_lengths" in call:
    mask = np.arange(T)[None, :] < LENGTHS[:, None]
  seq, *final = jax.jit(lambda p, x, s: layer.apply(p, x, initial_state=s, **call))(
      params, x, state)
  want_seq, _, want_final = numpy_reference.run(
      STEPS[kind], params, x, state, mask=mask, reset=call.get("reset"),
      go_backwards=backwards)
  for got, want in zip((seq, *final), (want_seq, *want_final), strict=True):
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)


@needs_native
@pytest.mark.parametrize("masking", ["none", "mask_reset"])
@pytest.mark.parametrize("kind", MAKERS)
def test_equals_the_scan_at_a_larger_shape(kind, masking):
  # 40 steps of 32 units with 16 rows: the oneDNN matmuls' blocking, not the toy one
  b, t, f, u = 16, 40, 12, 32
  x = _rand(4, (b, t, f))
  call = _random_masking(masking, b, t, seed=5)
  fast = MAKERS[kind](u, return_sequences=True, return_state=True)
  scan = MAKERS[kind](u, return_sequences=True, return_state=True, use_fused=False)
  params = fast.init(jax.random.key(6), x)
  got = jax.jit(lambda p, x: fast.apply(p, x, **call))(params, x)
  want = jax.jit(lambda p, x: scan.apply(p, x, **call))(params, x)
  for a, w in zip(got, want, strict=True):
    np.testing.assert_allclose(a, w, rtol=1e-5, atol=1e-6)


@needs_native
@pytest.mark.parametrize("kind", MAKERS)
def test_as_close_to_a_float64_loop_as_the_scan(kind):
  # the native call rounds differently from XLA (oneDNN's sums, glibc's expf / tanhf):
  # its distance to the exact (float64) function must be the scan's, not more
  b, t, f, u = 8, 50, 16, 32
  x = _rand(11, (b, t, f))
  fast = MAKERS[kind](u, return_sequences=True)
  scan = MAKERS[kind](u, return_sequences=True, use_fused=False)
  params = jax.tree.map(lambda p: p + _rand(12, p.shape, 0.3), fast.init(jax.random.key(13), x))
  zeros = tuple(np.zeros((b, u)) for _ in fast.get_initial_state(b))
  exact = numpy_reference.run(STEPS[kind], params, x, zeros)[0]
  err = lambda layer: np.abs(np.asarray(jax.jit(layer.apply)(params, x)) - exact).max()  # noqa: E731
  assert err(fast) <= 2 * err(scan) + 1e-7, (err(fast), err(scan))


@needs_native
@pytest.mark.parametrize("kind", MAKERS)
def test_batch_sizes_and_long_sequences_equal_the_scan(kind):
  # uneven row slices between the threads, a single slice, one row; 70 steps (inputs are
  # projected 32 steps at a time); one process, so the primitives cached per shape must
  # not leak from one shape to another
  t, f, u = 70, 5, 24
  fast = MAKERS[kind](u, return_sequences=True, return_state=True)
  scan = MAKERS[kind](u, return_sequences=True, return_state=True, use_fused=False)
  for b in (1, 7, 9, 17, 33, 64, 65, 17):
    x = _rand(b, (b, t, f))
    params = fast.init(jax.random.key(b), x)
    got, want = jax.jit(fast.apply)(params, x), jax.jit(scan.apply)(params, x)
    for a, w in zip(got, want, strict=True):
      np.testing.assert_allclose(a, w, rtol=1e-5, atol=1e-6, err_msg=f"batch {b}")


@needs_native
@pytest.mark.parametrize("masking", ["none", "mask_reset"])
@pytest.mark.parametrize("kind", MAKERS)
def test_gradients_and_second_order_equal_the_scan(kind, masking):
  b, t, f, u = 8, 30, 6, 16
  x = _rand(4, (b, t, f))
  call = _random_masking(masking, b, t, seed=7)
  def derivatives(use_fused):
    layer = MAKERS[kind](u, return_sequences=True, use_fused=use_fused)
    loss = lambda p, x: jnp.sum(jnp.sin(layer.apply(p, x, **call)))       # noqa: E731
    grad = jax.grad(loss, argnums=(0, 1))
    hvp = lambda p, x: jax.jvp(grad, (p, x), (p, x))[1]                   # noqa: E731
    return jax.jit(lambda p, x: (grad(p, x), hvp(p, x)))
  params = MAKERS[kind](u).init(jax.random.key(8), x)
  got, want = derivatives("auto")(params, x), derivatives(False)(params, x)
  for a, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    np.testing.assert_allclose(a, w, rtol=2e-5, atol=2e-5)


@needs_native
@pytest.mark.parametrize("kind", MAKERS)
def test_input_dropout_projects_before_the_call(kind):
  # training with input dropout hoists the projection: the call takes projected inputs
  layer, params, x, state = _problem(kind, dropout=0.4)
  scan = MAKERS[kind](U, return_sequences=True, return_state=True, dropout=0.4,
                      use_fused=False)
  key = jax.random.key(11)
  run = lambda lay: jax.jit(lambda p, x: lay.apply(p, x, initial_state=state,   # noqa: E731
                                                   training=True, rng=key))
  assert _calls(lambda p, x: layer.apply(p, x, initial_state=state, training=True, rng=key),
                params, x) == {(_native.TARGETS[kind], False)}
  for a, w in zip(run(layer)(params, x), run(scan)(params, x), strict=True):
    np.testing.assert_allclose(a, w, rtol=1e-5, atol=1e-6)


@needs_native
@pytest.mark.parametrize("kind", MAKERS)
def test_nan_and_saturating_inputs(kind):
  layer, params, x, state = _problem(kind)
  x = x.at[0, 3, 1].set(jnp.nan).at[1].multiply(1e4)       # row 0: NaN from step 3 on
  seq, *final = jax.jit(lambda p, x: layer.apply(p, x, initial_state=state))(params, x)
  with np.errstate(over="ignore", invalid="ignore"):
    want_seq, _, want_final = numpy_reference.run(STEPS[kind], params, x, state)
  assert np.isnan(np.asarray(seq)[0, 3:]).all() and np.isfinite(np.asarray(seq)[1:]).all()
  for got, want in zip((seq, *final), (want_seq, *want_final), strict=True):
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)


@needs_native
@pytest.mark.parametrize("kind", MAKERS)
def test_vmap_lax_map_and_pmap_equal_one_call_per_example(kind):
  layer, params, x, state = _problem(kind)
  xs = jnp.stack([x, 2 * x, -x])                      # (3, B, T, F): three examples
  f = lambda x: layer.apply(params, x, initial_state=state)                # noqa: E731
  one = jax.jit(f)
  want = jax.tree.map(lambda *a: np.stack(a), *[one(xi) for xi in xs])
  assert _calls(jax.vmap(f), xs) == {(_native.TARGETS[kind], False)}
  devices = jax.local_device_count()
  for got, n in ((jax.jit(jax.vmap(f))(xs), 3), (jax.lax.map(f, xs), 3),
                 (jax.pmap(f)(xs[:devices]), devices)):
    for a, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
      np.testing.assert_allclose(a, w[:n], rtol=1e-6, atol=1e-6)
  # per-example gradients: the native forward and reverse, once per example
  g = jax.grad(lambda p, x: jnp.sum(jnp.sin(layer.apply(p, x, initial_state=state)[0])))
  assert (_native.REVERSE_TARGETS[kind], None) in _calls(jax.vmap(g, (None, 0)), params, xs)
  got = jax.jit(jax.vmap(g, (None, 0)))(params, xs)
  want = [jax.jit(g)(params, xi) for xi in xs]
  for i, w in enumerate(want):
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(w), strict=True):
      np.testing.assert_allclose(a[i], b, rtol=1e-5, atol=1e-6)


@needs_native
def test_bidirectional_equals_the_numpy_loop():
  x = _rand(1, (B, T, F))
  layer = rj.Bidirectional(rj.LSTM(U, return_sequences=True), merge_mode="concat")
  params = layer.init(jax.random.key(0), x)
  assert _calls(lambda p, x: layer.apply(p, x, mask=HOLES), params, x) == {
      (_native.TARGETS["lstm"], False)}
  got = jax.jit(lambda p, x: layer.apply(p, x, mask=HOLES))(params, x)
  zeros = (np.zeros((B, U)), np.zeros((B, U)))
  # Bidirectional zeroes masked steps' outputs (Keras: zero_output_for_mask)
  outs = [numpy_reference.run(numpy_reference.lstm_step, p, x, zeros, mask=HOLES,
                              go_backwards=back, zero_output_for_mask=True)[0]
          for p, back in ((params["forward"], False), (params["backward"], True))]
  want = np.concatenate([outs[0], outs[1][:, ::-1]], -1)
  np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)


@needs_native
@pytest.mark.parametrize("masking", ["none", "mask", "reset", "mask_reset"])
@pytest.mark.parametrize("kind", MAKERS)
def test_reverse_equals_jax_transpose_of_the_tangent_scan(kind, masking):
  # the native reverse scan against JAX's own transpose of the tangent scan (no native
  # code in it), on random coefficients; batch sizes over one, two and uneven slices, and
  # sequences of one step, of a few, and of more than two chunks
  cell = {"lstm": lstm_math.LSTM, "gru": gru_math.GRU}[kind]
  for b, t in ((1, 1), (7, 5), (9, 3), (33, 70), (64, 28)):
    u = 8
    rng = np.random.default_rng(b * 100 + t)
    widths = (1,) * 6 if kind == "lstm" else (1, 3)
    # coefficients in (0, 1), as the gates' products are
    loop = tuple(jnp.asarray(rng.uniform(size=(t, b, n * u)), jnp.float32) for n in widths)
    w = jnp.asarray(rng.normal(size=(u, cell.gates * u)) * 0.3, jnp.float32)
    flags = _random_masking("mask_reset", b, t, seed=b + t)
    valid = jnp.asarray(flags["mask"].T) if "mask" in masking else None
    keep = keep_flags(jnp.asarray(flags["reset"].T)) if "reset" in masking else None
    ct_hs = jnp.asarray(rng.normal(size=(t, b, u)), jnp.float32)
    ct_final = tuple(jnp.asarray(rng.normal(size=(b, u)), jnp.float32)
                     for _ in range(cell.states))
    a_width = cell.gates * u if kind == "lstm" else u
    like = (jnp.zeros((t, b, a_width), jnp.float32),) + tuple(jnp.zeros_like(c) for c in ct_final)
    scan = lambda a, *d0: tangent.scan(cell, w, loop, a, d0, valid, keep)  # noqa: E731
    want = jax.jit(lambda ct: jax.linear_transpose(scan, *like)(ct))((ct_hs, ct_final))
    native = _native.reverse(cell, w, loop, ct_hs, ct_final, valid, keep, with_a=True)
    ct_a, ct0 = jax.jit(native)()
    for got, ref in zip((ct_a, *ct0), want, strict=True):
      scale = float(np.abs(ref).max())      # float32 rounding relative to the values' size
      np.testing.assert_allclose(got, ref, rtol=1e-5, atol=2e-6 * scale, err_msg=f"{(b, t)}")


@needs_native
@pytest.mark.parametrize("kind", MAKERS)
def test_gradient_of_the_initial_state_alone_equals_the_scan(kind):
  # weights and inputs constant: the tangent has no hoisted part (the reverse's with_a
  # is False) and only the initial state's cotangents come back
  layer, params, x, state = _problem(kind)
  def grad(use_fused):
    layer = MAKERS[kind](U, return_sequences=True, use_fused=use_fused)
    return jax.jit(jax.grad(lambda s: jnp.sum(jnp.sin(layer.apply(params, x, initial_state=s,
                                                                  **MASKINGS["mask_reset"])))))
  assert (_native.REVERSE_TARGETS[kind], None) in _calls(grad("auto"), state)
  for a, w in zip(grad("auto")(state), grad(False)(state), strict=True):
    np.testing.assert_allclose(a, w, rtol=1e-5, atol=1e-6)
