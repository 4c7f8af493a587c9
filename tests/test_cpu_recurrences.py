"""The GRU and SimpleRNN CPU recurrences (`rnnjax/recurrences/dense.py`, the LSTM's
mechanism with their own math): the custom JVPs pass `check_grads` in float64 to second
order in both modes (with masks and resets), layers on them equal the scan
(use_fused=False) in values and gradients, reverse mode is one transposed tangent scan,
and the dispatch declines what they do not implement with a reason."""

import numpy as np
import pytest

import jax
import jax.numpy as jnp
from jax.test_util import check_grads
import rnnjax as rj
from rnnjax.recurrences import dense, native_available
from tests.jaxpr_walk import equations

pytestmark = pytest.mark.skipif(jax.default_backend() != "cpu", reason="CPU path")
NATIVE = native_available()

B, T, F, U = 3, 6, 4, 5
VALID = np.array([[0, 1], [1, 1], [1, 0], [1, 1]], bool)   # (T, B): pads first, a hole
RESET = np.array([[0, 0], [0, 1], [1, 0], [0, 0]], bool)   # one on a masked step


def _rand(seed, shape, scale=1.0):
  return scale * jax.random.normal(jax.random.key(seed), shape)


@pytest.mark.parametrize("kind", ["lstm", "gru", "simple_rnn_tanh", "simple_rnn_linear"])
def test_check_grads_second_order_both_modes(kind):
  """Every argument differentiated (inputs, kernel, biases, recurrent kernel, state) of
  the recurrence with the projection inside the loop, with masks and resets."""
  name, _, activation = kind.partition("_rnn_")
  math = dense.cell_math("simple_rnn" if activation else name, activation or "tanh")
  g = math.gates
  x, kernel, bias = _rand(5, (4, 2, 3)), _rand(6, (3, g * 3), 0.5), _rand(7, (g * 3,))
  w, b_rec = _rand(2, (3, g * 3), 0.5), _rand(8, (g * 3,), 0.5)
  state = tuple(_rand(3 + i, (2, 3)) for i in range(math.states))
  with_b_rec = kind == "gru"

  def f(x, kernel, bias, w, b_rec, *state):
    hs, final = dense.recurrence(math, x, w, state, VALID, RESET, projection=(kernel, bias),
                                 recurrent_bias=b_rec if with_b_rec else None)
    return jnp.sin(hs), sum(s * s for s in final)

  with jax.enable_x64(True):   # jit: the numerical differences run compiled
    args = [a.astype(jnp.float64) for a in (x, kernel, bias, w, b_rec, *state)]
    # eps 1e-5: the default's (1e-4) truncation error reaches 4e-6 on the LSTM
    check_grads(jax.jit(f), args, order=2, modes=["fwd", "rev"], atol=1e-6, rtol=1e-6,
                eps=1e-5)


def test_check_grads_over_projected_inputs():
  """The recurrence over projected inputs (the input-dropout path), GRU, masks and resets."""
  math = dense.cell_math("gru")
  xs, w, b_rec, h0 = _rand(1, (4, 2, 9)), _rand(2, (3, 9), 0.5), _rand(3, (9,)), _rand(4, (2, 3))

  def f(xs, w, b_rec, h0):
    hs, (h,) = dense.recurrence(math, xs, w, (h0,), VALID, RESET, recurrent_bias=b_rec)
    return jnp.sin(hs), h ** 2

  with jax.enable_x64(True):
    args = [a.astype(jnp.float64) for a in (xs, w, b_rec, h0)]
    check_grads(jax.jit(f), args, order=2, modes=["fwd", "rev"], atol=1e-6, rtol=1e-6)


def _loss(layer, **call):
  def f(params, x, h0):
    out = layer.apply(params, x, initial_state=(h0,), **call)
    y, h = out if layer.return_sequences else (out[0][:, None], out[1])
    return jnp.sum(jnp.sin(y) * jnp.arange(y.size).reshape(y.shape) / y.size) + jnp.sum(h ** 3)
  return jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2)))


@pytest.mark.parametrize("make", [
    lambda **kw: rj.GRU(U, use_bias=False, **kw),
    lambda **kw: rj.SimpleRNN(U, activation="relu", **kw),
    lambda **kw: rj.SimpleRNN(U, activation=None, time_major=True, **kw),
], ids=["gru_no_bias", "simple_relu", "simple_linear_time_major"])
def test_layer_options_equal_the_scan(make):
  fused = make(return_sequences=True, return_state=True)
  scan = make(return_sequences=True, return_state=True, use_fused=False)
  x = _rand(1, (T, B, F) if fused.time_major else (B, T, F))
  assert rj.kernels.which_path(fused, x).path == "fused"
  params = jax.tree.map(lambda p: p + _rand(9, p.shape, 0.3), fused.init(jax.random.key(0), x))
  h0 = _rand(2, (B, U))
  lengths = np.array([T, 2, 0])
  got, want = _loss(fused, seq_lengths=lengths)(params, x, h0), _loss(
      scan, seq_lengths=lengths)(params, x, h0)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    np.testing.assert_allclose(a, b, rtol=2e-6, atol=2e-6)


def test_gru_input_dropout_in_training_equals_the_scan():
  kw = dict(return_sequences=True, return_state=True, dropout=0.3, implementation=1)
  fused, scan = rj.GRU(U, **kw), rj.GRU(U, use_fused=False, **kw)
  x = _rand(1, (B, T, F))
  assert rj.kernels.which_path(fused, x, training=True).path == "fused"
  params = fused.init(jax.random.key(0), x)
  call = dict(training=True, rng=jax.random.key(7))
  got, want = _loss(fused, **call)(params, x, _rand(2, (B, U))), _loss(scan, **call)(
      params, x, _rand(2, (B, U)))
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    np.testing.assert_allclose(a, b, rtol=2e-6, atol=2e-6)


def test_the_dispatch_declines_what_the_recurrences_do_not_implement():
  x = jnp.ones((B, T, F))
  for layer in (rj.GRU(U), rj.SimpleRNN(U), rj.SimpleRNN(U, activation="relu")):
    assert rj.kernels.which_path(layer, x).path == "fused", layer
  cases = [
      (rj.GRU(U, reset_after=False), "reset_after=False (the CPU recurrence implements "
       "reset_after=True, as cuDNN does)"),
      (rj.SimpleRNN(U, activation="sigmoid"), "activation='sigmoid' (the CPU recurrence "
       "implements tanh, relu and linear)"),
      (rj.SimpleRNN(U, dtype="bfloat16"), "compute dtype bfloat16 (the CPU custom-JVP "
       "recurrence supports float32 only)"),
      (rj.SimpleRNN(U, unroll=2), "unroll=2: unroll is a scan-only knob"),
      (rj.GRU(U, recurrent_activation="hard_sigmoid"), "recurrent_activation='hard_sigmoid'"),
  ]
  for layer, reason in cases:
    choice = rj.kernels.which_path(layer, x)
    assert choice.path == "scan" and reason in choice.reason, choice
  strict = rj.GRU(U, reset_after=False, use_fused=True)
  with pytest.raises(ValueError, match=r"GRU\(use_fused=True\) cannot use the fused kernel: "
                     r"reset_after=False"):
    strict.apply(strict.init(jax.random.key(0), x), x)


@pytest.mark.parametrize("make", [rj.GRU, rj.SimpleRNN])
def test_reverse_mode_is_one_transposed_tangent_scan(make):
  """Under grad, with masks and resets: the forward scan (its projection and recurrent
  matmuls) and ONE reverse scan with ONE matmul per step; weight gradients outside."""
  layer = make(U, return_sequences=True)
  x = _rand(1, (B, T, F))
  params = layer.init(jax.random.key(0), x)
  mask, reset = np.ones((B, T), bool), np.zeros((B, T), bool)
  mask[1, 3:] = False
  reset[0, 2] = True
  jaxpr = jax.make_jaxpr(jax.grad(lambda p: jnp.sum(layer.apply(p, x, mask=mask, reset=reset))))(
      params)
  scans = [e for e in equations(jaxpr.jaxpr) if e.primitive.name == "scan"]
  # each scan is the fallback of a native call where that is built
  assert [e.params["reverse"] for e in scans] == [False, True]
  native = [e.params["target_name"] for e in equations(jaxpr.jaxpr)
            if e.primitive.name == "ffi_call"]
  assert native == (["rnnjax_gru_forward", "rnnjax_gru_reverse"] if NATIVE and make is rj.GRU
                    else []), native
  for scan in scans:
    dots = [e for e in equations(scan.params["jaxpr"].jaxpr) if e.primitive.name == "dot_general"]
    assert len(dots) == (1 if scan.params["reverse"] else 2), dots
