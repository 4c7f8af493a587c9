"""Boolean masks and segment resets on the fused Pallas kernels (interpret mode, forced)
against the scan path (`use_fused=False`, the engine's semantics): values and gradients
for LSTM and GRU with a holey mask (left padding, a hole, a fully masked row, NaN in the
padding), resets (one at a masked step after the last valid one, so the final state and
the last output differ), and both together; a go_backwards layer and the one-launch
Bidirectional; forward mode; and which path the dispatch reports."""

import numpy as np
import pytest

import jax
import jax.numpy as jnp
import rnnjax as rj
import rnnjax.pallas

from tests.kernels._helpers import assert_trees_close, with_grads

B, T, F, U = 4, 6, 3, 5
# rows: left padding and a hole; fully masked; full; right padding
MASK = np.array([[0, 0, 1, 1, 0, 1], [0] * 6, [1] * 6, [1, 1, 1, 1, 0, 0]], bool)
# resets: at a valid step and at masked ones (row 0, t=0: the last step read backwards;
# row 3, t=5: after the last valid step forwards), in a fully masked row, at the last step
RESET = np.array([[1, 0, 0, 1, 0, 0], [0, 0, 1, 0, 0, 0], [0, 0, 1, 0, 0, 1],
                  [1, 0, 0, 0, 0, 1]], bool)
PATTERNS = {"mask": dict(mask=MASK), "reset": dict(reset=RESET),
            "mask-reset": dict(mask=MASK, reset=RESET)}


def _problem(kind, layer, pattern, seed=0):
  """(params, x, initial state, call kwargs): random non-symmetric weights, NaN in x at
  the masked steps (zeroed before either path sees them)."""
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(B, T, F))
  kw = {k: jnp.asarray(v) for k, v in PATTERNS[pattern].items()}
  if "mask" in kw:
    x[~MASK] = np.nan
  x = jnp.asarray(x, jnp.float32)
  params = layer.init(jax.random.key(seed), jnp.zeros((B, T, F)))
  params = jax.tree.map(lambda v: v + 0.3 * jnp.asarray(rng.normal(size=v.shape), v.dtype),
                        params)
  n = (2 if kind == "lstm" else 1) * (2 if isinstance(layer, rj.Bidirectional) else 1)
  init = [jnp.asarray(0.5 * rng.normal(size=(B, U)), jnp.float32) for _ in range(n)]
  return params, x, init, kw


def _layer(kind, layout, use_fused, return_sequences=True):
  cls = rj.LSTM if kind == "lstm" else rj.GRU
  if layout == "go_backwards":
    return cls(U, go_backwards=True, return_sequences=return_sequences, return_state=True,
               use_fused=use_fused)
  inner = cls(U, return_sequences=return_sequences, return_state=True, use_fused=use_fused)
  return rj.Bidirectional(inner, merge_mode=None)


@pytest.fixture
def launches(monkeypatch):
  """(kind, directions, masked) of every fused launch traced."""
  seen = []
  for kind in ("lstm", "gru"):
    original = getattr(rnnjax.pallas, f"run_{kind}")

    def spy(*args, original=original, kind=kind, **kwargs):
      masked = kwargs.get("mask") is not None or kwargs.get("reset") is not None
      seen.append((kind, kwargs["directions"], masked))
      return original(*args, **kwargs)
    monkeypatch.setattr(rnnjax.pallas, f"run_{kind}", spy)
  return seen


@pytest.mark.parametrize("layout", ["go_backwards", "bidirectional"])
@pytest.mark.parametrize("pattern", list(PATTERNS))
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_fused_matches_scan_values_and_gradients(kind, pattern, layout, launches):
  # The last output (return_sequences=False) of a reset row differs from its final state.
  sequences = pattern != "reset"
  fused = _layer(kind, layout, True, sequences)
  scan = _layer(kind, layout, False, sequences)
  params, x, init, kw = _problem(kind, scan, pattern)

  def run(layer):
    def fn(p, x, init):
      return layer.apply(p, x, initial_state=init, **kw)
    return fn

  want = with_grads(run(scan), params, x, init)
  with rj.kernels.force_interpret():
    assert rj.kernels.which_path(fused, x, **kw).path == "fused"
    got = with_grads(run(fused), params, x, init, primal=True)
  assert_trees_close(got, want, "float32", f"{kind} {pattern} {layout}")
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(got[1]))
  directions = (True,) if layout == "go_backwards" else (False, True)
  assert set(launches) == {(kind, directions, True)}


def test_forward_mode_matches_scan():
  """jvp runs the kernels' plain-JAX twins with the step flags (`_plain`)."""
  fused, scan = _layer("lstm", "go_backwards", True), _layer("lstm", "go_backwards", False)
  params, x, init, kw = _problem("lstm", scan, "mask-reset", seed=1)
  x = jnp.where(jnp.asarray(MASK)[..., None], x, 0.0)
  tangents = jax.tree.map(lambda a: jnp.full_like(a, 0.1), (params, x, init))

  def run(layer):
    return lambda p, x, init: layer.apply(p, x, initial_state=init, **kw)

  want = jax.jvp(run(scan), (params, x, init), tangents)
  with rj.kernels.force_interpret():
    got = jax.jit(lambda *a: jax.jvp(run(fused), a, tangents))(params, x, init)
  assert_trees_close(got, want, "float32", "jvp")


def test_which_path_reports_the_fused_kernel_for_masks_and_resets(launches):
  x = jnp.ones((2, 5, 3))
  mask, reset = jnp.ones((2, 5), bool), jnp.zeros((2, 5), bool)
  with rj.kernels.force_interpret():
    for layer in (rj.LSTM(8), rj.GRU(8, go_backwards=True), rj.LSTM(8, use_fused=True)):
      for kw in (dict(mask=mask), dict(reset=reset), dict(mask=mask, reset=reset)):
        choice = rj.kernels.which_path(layer, x, **kw)
        assert choice.path == "fused" and "interpret mode (forced)" in choice.reason
    bidir = rj.kernels.which_path(rj.Bidirectional(rj.GRU(8)), x, mask=mask, reset=reset)
    assert bidir == ("fused", "both directions eligible: one-launch fused bidirectional GRU "
                     "kernel (grid axis 0 = direction) in Pallas interpret mode (forced)")
    # The masked kernels have their own rows in the compile check: IEEE float32 dots are
    # not among them, so such a call takes the scan and says why.
    with jax.default_matmul_precision("highest"):
      ieee = rj.kernels.which_path(rj.LSTM(8), x, mask=mask)
    assert ieee.path == "scan" and "masked or reset" in ieee.reason
    assert rj.kernels.which_path(rj.LSTM(8), x).path == "fused"   # unmasked: verified


def test_masked_envelope():
  for kind in ("lstm", "gru"):
    for dtype, units in (("bfloat16", 128), ("float32", 64)):
      assert rnnjax.pallas.compile_envelope(kind, dtype, masked=True) == units
      assert rnnjax.pallas.compile_envelope(kind, dtype, directions=2, masked=True) == units
      assert rnnjax.pallas.compile_envelope_reason(kind, units, dtype, masked=True) is None
    assert rnnjax.pallas.compile_envelope(kind, "float32", precision=jax.lax.Precision.HIGHEST,
                                       masked=True) == 0


def test_seq_lengths_with_resets_match_scan():
  """seq_lengths and resets together: the lengths become the kernel's mask."""
  fused, scan = _layer("gru", "go_backwards", True, False), _layer("gru", "go_backwards",
                                                                    False, False)
  params, x, init, _ = _problem("gru", scan, "reset")
  kw = dict(seq_lengths=jnp.array([0, 6, 2, 4]), reset=jnp.asarray(RESET))
  want = scan.apply(params, x, initial_state=init, **kw)
  with rj.kernels.force_interpret():
    got = jax.jit(lambda p, x, i: fused.apply(p, x, initial_state=i, **kw))(params, x, init)
  assert_trees_close(got, want, "float32", "seq_lengths + reset")


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_public_functions_take_masks_and_resets(kind):
  """fused_lstm / fused_gru (go_backwards) and fused_bidirectional_lstm with mask= and
  reset=: the kernel and the reference against the scan engine, values and gradients."""
  cell = (rj.LSTMCell if kind == "lstm" else rj.GRUCell)(U)
  layer = _layer(kind, "go_backwards", False)
  params, x, init, kw = _problem(kind, layer, "mask-reset", seed=2)
  mask, reset = kw["mask"], kw["reset"]

  def engine(p, x, init, go_backwards):
    r = rj.engine.rnn(cell, p, x, tuple(init), mask=mask, reset=reset,
                      go_backwards=go_backwards)
    return r.outputs, tuple(r.final_state)

  def fused(implementation):
    fn = rj.kernels.fused_lstm if kind == "lstm" else rj.kernels.fused_gru

    def run(p, x, init):
      out, state = fn(p, x, initial_state=tuple(init), mask=mask, reset=reset,
                      go_backwards=True, implementation=implementation)
      return out, state if kind == "lstm" else (state,)
    return run

  want = with_grads(lambda p, x, i: engine(p, x, i, True), params, x, init)
  for implementation in ("reference", "pallas"):
    got = with_grads(fused(implementation), params, x, init)
    assert_trees_close(got, want, "float32", f"{kind} {implementation}")
  if kind == "lstm":
    other = jax.tree.map(lambda v: v[::-1], params)
    yf, yb, sf, sb = rj.kernels.fused_bidirectional_lstm(
        params, other, x, initial_state=(*init, *init), mask=mask, reset=reset,
        implementation="pallas")
    want = (engine(params, x, init, False), engine(other, x, init, True))
    assert_trees_close(((yf, sf), (yb, sb)), want, "float32", "bidirectional")


def test_time_major_mask_and_reset_match_scan():
  """(T, B) masks and resets of a time-major layer, zero_output_for_mask."""
  def layer(use_fused):
    return rj.LSTM(U, time_major=True, zero_output_for_mask=True, return_sequences=True,
                   return_state=True, use_fused=use_fused)
  params, x, init, kw = _problem("lstm", layer(False), "mask-reset", seed=3)
  x, kw = jnp.swapaxes(x, 0, 1), {k: v.T for k, v in kw.items()}

  def run(layer):
    return lambda p, x, i: layer.apply(p, x, initial_state=i, **kw)

  want = with_grads(run(layer(False)), params, x, init)
  with rj.kernels.force_interpret():
    got = with_grads(run(layer(True)), params, x, init)
  assert_trees_close(got, want, "float32", "time_major")


def test_kernel_functions_check_mask_and_reset():
  params = rj.LSTM(U).init(jax.random.key(0), jnp.zeros((B, T, F)))
  x = jnp.zeros((B, T, F))
  with pytest.raises(ValueError, match=r"mask must have shape \(B, T\) = \(4, 6\)"):
    rj.kernels.fused_lstm(params, x, mask=jnp.ones((T, B), bool))
  with pytest.raises(TypeError, match="reset must be a bool"):
    rj.kernels.fused_lstm(params, x, reset=jnp.zeros((B, T), jnp.float32))
