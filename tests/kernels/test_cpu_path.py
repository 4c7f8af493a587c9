"""The fused LSTM's CPU backend (custom-JVP scan recurrence, `rnnjax/recurrences/lstm.py`):
values and gradients equal the engine's scan (use_fused=False), the custom JVP passes
`check_grads` in both modes, reverse mode is the transposed tangent scan, and the
dispatch reports it honestly."""

import numpy as np
import pytest

import jax
import jax.numpy as jnp
from jax.test_util import check_grads
import rnnjax as rj
from rnnjax.recurrences import lstm as _xla
from rnnjax.recurrences import native_available
from tests.jaxpr_walk import equations

pytestmark = pytest.mark.skipif(jax.default_backend() != "cpu", reason="CPU path")
NATIVE = native_available()

B, T, F, U = 3, 6, 4, 5
LENGTHS = np.array([T, 2, 0])   # full, padded, empty rows in one batch


def _rand(seed, shape, scale=1.0):
  return scale * jax.random.normal(jax.random.key(seed), shape)


def _loss(layer, lengths, training=False, rng=None):
  def f(params, x, h0, c0):
    out = layer.apply(params, x, initial_state=(h0, c0), seq_lengths=lengths,
                      training=training, rng=rng)
    y, h, c = out if layer.return_sequences else (out[0][:, None], out[1], out[2])
    weights = jnp.arange(y.size, dtype=y.dtype).reshape(y.shape) / y.size
    return jnp.sum(y * weights) + jnp.sum(h ** 3) + jnp.sum(jnp.sin(c))
  return jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2, 3)))


@pytest.mark.parametrize("kw", [
    dict(return_sequences=True),
    dict(return_sequences=True, go_backwards=True, zero_output_for_mask=True),
    dict(return_sequences=False, time_major=True, use_bias=False),
])
@pytest.mark.parametrize("lengths", [None, LENGTHS])
def test_values_and_gradients_match_the_scan(kw, lengths):
  layer = rj.LSTM(U, return_state=True, **kw)
  assert rj.kernels.which_path(layer, jnp.ones((B, T, F))).path == "fused"
  scan = rj.LSTM(U, return_state=True, use_fused=False, **kw)
  x = _rand(1, (T, B, F) if kw.get("time_major") else (B, T, F))
  params = layer.init(jax.random.key(0), x)
  params = jax.tree.map(lambda p: p + _rand(9, p.shape, 0.3), params)   # non-trivial bias
  h0, c0 = _rand(2, (B, U)), _rand(3, (B, U))
  v_fused, g_fused = _loss(layer, lengths)(params, x, h0, c0)
  v_scan, g_scan = _loss(scan, lengths)(params, x, h0, c0)
  np.testing.assert_allclose(v_fused, v_scan, rtol=1e-5, atol=1e-5)
  for a, b in zip(jax.tree.leaves(g_fused), jax.tree.leaves(g_scan)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_outputs_and_states_match_the_scan():
  x = _rand(1, (B, T, F))
  layer = rj.LSTM(U, return_sequences=True, return_state=True)
  params = layer.init(jax.random.key(0), x)
  fused = layer.apply(params, x, seq_lengths=LENGTHS)
  scan = rj.LSTM(U, return_sequences=True, return_state=True, use_fused=False).apply(
      params, x, seq_lengths=LENGTHS)
  for a, b in zip(fused, scan):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
  # the empty row keeps its (zero) initial state
  np.testing.assert_array_equal(fused[1][2], 0.0)


def test_input_dropout_in_training_matches_the_scan():
  kw = dict(return_sequences=True, return_state=True, dropout=0.3)
  layer, scan = rj.LSTM(U, **kw), rj.LSTM(U, use_fused=False, **kw)
  x = _rand(1, (B, T, F))
  assert rj.kernels.which_path(layer, x, training=True).path == "fused"
  params = layer.init(jax.random.key(0), x)
  h0, c0 = _rand(2, (B, U)), _rand(3, (B, U))
  rng = jax.random.key(7)
  v_fused, g_fused = _loss(layer, None, True, rng)(params, x, h0, c0)
  v_scan, g_scan = _loss(scan, None, True, rng)(params, x, h0, c0)
  np.testing.assert_allclose(v_fused, v_scan, rtol=1e-5)
  for a, b in zip(jax.tree.leaves(g_fused), jax.tree.leaves(g_scan)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("masked", [False, True])
def test_recurrence_check_grads(masked):
  xs, w = _rand(1, (4, 2, 12)), _rand(2, (3, 12), 0.5)
  h0, c0 = _rand(3, (2, 3)), _rand(4, (2, 3))
  valid = _xla.valid_steps(jnp.array([4, 2]), 4, False) if masked else None

  def f(xs, w, h0, c0):
    hs, h, c = _xla.recurrence(xs, w, h0, c0, valid)
    return jnp.sum(jnp.sin(hs)) + jnp.sum(h * c) + jnp.sum(c ** 2)

  x, kernel, bias = _rand(5, (4, 2, 3)), _rand(6, (3, 12), 0.5), _rand(7, (12,))

  def g(x, kernel, bias, w, h0, c0):
    hs, h, c = _xla.projected_recurrence(x, kernel, bias, w, h0, c0, valid)
    return jnp.sum(jnp.sin(hs)) + jnp.sum(h * c) + jnp.sum(c ** 2)

  jax.config.update("jax_enable_x64", True)
  try:
    args = [a.astype(jnp.float64) for a in (xs, w, h0, c0)]
    check_grads(f, args, order=1, modes=["rev"], atol=1e-6, rtol=1e-6)
    args = [a.astype(jnp.float64) for a in (x, kernel, bias, w, h0, c0)]
    check_grads(g, args, order=1, modes=["rev"], atol=1e-6, rtol=1e-6)
  finally:
    jax.config.update("jax_enable_x64", False)


def test_dispatch_reports_the_cpu_path_and_its_limits():
  x = jnp.ones((B, T, F))
  choice = rj.kernels.which_path(rj.LSTM(8), x)
  assert choice == ("fused", "use_fused='auto' and eligible: fused LSTM kernel as a "
                    "custom-JVP scan recurrence on the CPU")
  # no units limit on the CPU (the GPU kernel's single-CTA limit does not apply)
  assert rj.kernels.which_path(rj.LSTM(300), x).path == "fused"
  bf16 = rj.kernels.which_path(rj.LSTM(8, dtype="bfloat16"), x)
  assert bf16.path == "scan"
  assert "compute dtype bfloat16 (the CPU custom-JVP recurrence supports float32 only)" \
      in bf16.reason
  for layer, kw in [(rj.LSTM(8, recurrent_dropout=0.2), {"training": True}),
                    (rj.LSTM(8, unroll=True), {}), (rj.LSTM(8, remat="step"), {}),
                    (rj.LSTM(8, use_fused=False), {})]:
    assert rj.kernels.which_path(layer, x, **kw).path == "scan", (layer, kw)
  # boolean masks and resets run on it (tests/test_cpu_masks_resets.py)
  for kw in [{"mask": jnp.ones((B, T), bool)}, {"reset": jnp.zeros((B, T), bool)}]:
    assert rj.kernels.which_path(rj.LSTM(8), x, **kw).path == "fused", kw
  with pytest.raises(ValueError, match="float32 only"):
    rj.kernels.which_path(rj.LSTM(8, use_fused=True, dtype="bfloat16"), x)


def test_bidirectional_directions_match_the_scan():
  """Both directions of an LSTM Bidirectional take the CPU path (two recurrences, no
  Pallas launch) and equal the scan, values and gradients."""
  def bidir(use_fused):
    return rj.Bidirectional(rj.LSTM(U, return_sequences=True, use_fused=use_fused),
                            merge_mode="concat")
  fused, scan = bidir("auto"), bidir(False)
  x = _rand(1, (B, T, F))
  params = jax.tree.map(lambda p: p + _rand(9, p.shape, 0.3),
                        fused.init(jax.random.key(0), x))

  def loss(layer):
    def f(p, x):
      y = layer.apply(p, x, seq_lengths=LENGTHS)
      return jnp.sum(y * jnp.cos(jnp.arange(y.size).reshape(y.shape)))
    return jax.jit(jax.value_and_grad(f, argnums=(0, 1)))

  assert rj.kernels.which_path(fused, x).path == "fused"
  (v_f, g_f), (v_s, g_s) = loss(fused)(params, x), loss(scan)(params, x)
  np.testing.assert_allclose(v_f, v_s, rtol=1e-5, atol=1e-5)
  for a, b in zip(jax.tree.leaves(g_f), jax.tree.leaves(g_s)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_recurrence_check_grads_forward_mode_and_second_order():
  """The custom JVPs in both modes to second order (jvp of jvp, grad of grad, and the
  mixed orders) against finite differences, every argument differentiated, with masked
  steps (reversed lengths: pads first)."""
  xs, w = _rand(1, (4, 2, 12)), _rand(2, (3, 12), 0.5)
  h0, c0 = _rand(3, (2, 3)), _rand(4, (2, 3))
  x, kernel, bias = _rand(5, (4, 2, 3)), _rand(6, (3, 12), 0.5), _rand(7, (12,))
  valid = _xla.valid_steps(jnp.array([4, 2]), 4, True)

  def f(xs, w, h0, c0):
    hs, h, c = _xla.recurrence(xs, w, h0, c0, valid)
    return jnp.sin(hs), h * c, c ** 2

  def g(x, kernel, bias, w, h0, c0):
    hs, h, c = _xla.projected_recurrence(x, kernel, bias, w, h0, c0, valid)
    return jnp.sin(hs), h * c, c ** 2

  with jax.enable_x64(True):   # jit: the numerical differences run compiled
    args = [a.astype(jnp.float64) for a in (xs, w, h0, c0)]
    check_grads(jax.jit(f), args, order=2, modes=["fwd", "rev"], atol=1e-6, rtol=1e-6)
    args = [a.astype(jnp.float64) for a in (x, kernel, bias, w, h0, c0)]
    check_grads(jax.jit(g), args, order=2, modes=["fwd", "rev"], atol=1e-6, rtol=1e-6)


def test_reverse_mode_is_the_transposed_tangent_scan():
  """What the custom JVP turns into under grad: the forward scan and ONE reverse scan
  (the transposed tangent scan), with one matmul per step in each loop; the weight
  gradients are matmuls outside the loops."""
  layer = rj.LSTM(U, return_sequences=True)
  x = _rand(1, (B, T, F))
  params = layer.init(jax.random.key(0), x)
  jaxpr = jax.make_jaxpr(jax.grad(lambda p: jnp.sum(layer.apply(p, x, seq_lengths=LENGTHS))))(
      params)
  scans = [e for e in equations(jaxpr.jaxpr) if e.primitive.name == "scan"]
  # each scan is the fallback of a native call where that is built
  assert [e.params["reverse"] for e in scans] == [False, True]
  native = [e.params["target_name"] for e in equations(jaxpr.jaxpr)
            if e.primitive.name == "ffi_call"]
  assert native == (["rnnjax_lstm_forward", "rnnjax_lstm_reverse"] if NATIVE else []), native
  for scan in scans:
    body = scan.params["jaxpr"].jaxpr
    dots = [e for e in equations(body) if e.primitive.name == "dot_general"]
    # the forward loop also projects x_t @ kernel inside it (the CPU path's choice)
    assert len(dots) == (1 if scan.params["reverse"] else 2), dots
