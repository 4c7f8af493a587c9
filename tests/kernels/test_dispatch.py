"""which_path and the layers' use_fused switch: every reason the kernel declines, the
error of use_fused=True (raised before tracing), use_cudnn as Keras's alias, and the
test-only interpret switch."""


import numpy as np
import pytest

import jax
import jax.numpy as jnp
import rnnjax as rj
from rnnjax.dispatch import REGISTRY
from rnnjax.pallas import _interpret

X = jnp.ones((2, 5, 3))
X16 = jnp.ones((2, 5, 3), jnp.bfloat16)


def path(layer, inputs=X, **kw):
  return rj.kernels.which_path(layer, inputs, **kw)


def test_cpu_declines_with_no_gpu_reason(monkeypatch):
  # A cell with only a GPU kernel registered (the built-in dense cells have a CPU backend
  # as well: tests/kernels/test_cpu_path.py).
  monkeypatch.setitem(REGISTRY, rj.GRUCell, REGISTRY[rj.GRUCell][-1:])
  choice = path(rj.GRU(8))
  assert choice == rj.kernels.PathChoice("scan", choice.reason)
  assert "no GPU (jax.default_backend() is 'cpu')" in choice.reason


def test_forced_interpret_makes_an_eligible_call_fused():
  with rj.kernels.force_interpret():
    for layer in (rj.LSTM(8), rj.GRU(8), rj.LSTM(8, use_fused=True), rj.GRU(8, use_cudnn=True)):
      choice = path(layer, seq_lengths=np.array([1, 5]), initial_state=(X[:, 0], X[:, 0]))
      assert choice.path == "fused", choice
      assert "interpret" in choice.reason
  assert path(rj.GRU(8)).reason.endswith("on the CPU")   # the CPU recurrence again


def test_env_var_forces_interpret(monkeypatch):
  monkeypatch.setenv(_interpret.ENV_VAR, "1")
  assert "interpret" in path(rj.GRU(8)).reason
  monkeypatch.setenv(_interpret.ENV_VAR, "0")
  assert path(rj.GRU(8)).reason.endswith("on the CPU")


@pytest.mark.parametrize("layer, kw, reason", [
    (rj.LSTM(8, activation="relu"), {}, "activation='relu' (the kernel implements tanh)"),
    (rj.GRU(8, recurrent_activation="hard_sigmoid"), {},
     "recurrent_activation='hard_sigmoid' (the kernel implements sigmoid)"),
    (rj.LSTM(8, recurrent_dropout=0.2), {"training": True},
     "recurrent_dropout=0.2 with training=True"),
    (rj.LSTM(8, unroll=True), {}, "unroll=True: unroll is a scan-only knob"),
    (rj.GRU(8, unroll=4), {}, "unroll=4: unroll is a scan-only knob"),
    (rj.GRU(8, reset_after=False), {}, "reset_after=False"),
    (rj.GRU(8), {"constants": jnp.ones((2, 3))}, "constants given"),
    (rj.LSTM(8, dtype="float16"), {}, "compute dtype float16 (the kernel supports float32 and "
     "bfloat16)"),
    (rj.LSTM(8, carry_dtype="float16"), {}, "carry dtype float16"),
])
def test_each_reason_declines_even_when_forced(layer, kw, reason):
  with rj.kernels.force_interpret():
    choice = path(layer, **kw)
  assert choice.path == "scan"
  assert reason in choice.reason
  assert "no GPU" not in choice.reason


def test_eligible_configurations_beyond_keras_cudnn_rules():
  """use_bias=False, input dropout in training, recurrent dropout at inference, bf16 params
  and time_major are all fused (units inside the compile-verified envelope: see
  test_envelope.py for the units limit)."""
  with rj.kernels.force_interpret():
    for layer, kw in [(rj.LSTM(8, use_bias=False), {}),
                      (rj.GRU(8, dropout=0.3), {"training": True}),
                      (rj.LSTM(8, recurrent_dropout=0.3), {"training": False}),
                      (rj.LSTM(128, param_dtype="bfloat16"), {"inputs": X16}),
                      (rj.LSTM(100, dtype="bfloat16"), {}),   # units padded to 128
                      (rj.GRU(60), {}),
                      (rj.GRU(8, time_major=True, go_backwards=True), {})]:
      inputs = kw.pop("inputs", X)
      assert path(layer, inputs, **kw).path == "fused", layer


def test_all_reasons_are_listed_together():
  layer = rj.GRU(8, activation="relu", unroll=True, reset_after=False)
  choice = path(layer, constants=jnp.ones((2, 3)))
  assert choice.path == "scan"
  assert choice.reason.startswith("use_fused='auto' falls back to the scan: ")
  for part in ("activation='relu'", "unroll=True", "reset_after=False", "constants given"):
    assert part in choice.reason
  with rj.kernels.force_interpret():
    choice = path(layer, constants=jnp.ones((2, 3)))
  for part in ("activation='relu'", "unroll=True", "reset_after=False", "constants given"):
    assert part in choice.reason


def test_use_fused_false_and_layers_without_kernel():
  with rj.kernels.force_interpret():
    assert path(rj.LSTM(8, use_fused=False)) == ("scan", "use_fused=False (the scan is requested)")
    assert path(rj.GRU(8, use_cudnn=False)).reason == "use_cudnn=False (the scan is requested)"
    assert path(rj.SimpleRNN(8)).reason.endswith(
        "SimpleRNN has no fused kernel on the GPU (its fast path runs on the CPU)")
    assert path(rj.RNN(rj.LSTMCell(8))).reason.startswith("RNN has no fused kernel")


def test_use_fused_true_raises_every_reason_before_tracing():
  layer = rj.GRU(8, use_fused=True, activation="relu")
  params = layer.init(jax.random.key(0), X)
  msg = (r"GRU\(use_fused=True\) cannot use the fused kernel: activation='relu' \(the "
         r"kernel implements tanh\)\. Set use_fused='auto'")
  with pytest.raises(ValueError, match=msg):
    layer.apply(params, X)
  with pytest.raises(ValueError, match=msg):
    rj.kernels.which_path(layer, X)
  # Raised at trace time, from Python, also under jit.
  with pytest.raises(ValueError, match=msg):
    jax.jit(layer.apply)(params, X)


def test_use_cudnn_true_is_keras_alias():
  layer = rj.GRU(8, use_cudnn=True, reset_after=False)
  with pytest.raises(ValueError,
                     match=r"GRU\(use_cudnn=True\) cannot use the fused kernel: reset_after"):
    path(layer)
  # use_fused wins over use_cudnn when set.
  assert path(rj.GRU(8, use_cudnn=True, use_fused=False)).path == "scan"


def test_forced_boolean_mask_and_reset_with_use_fused_true_take_the_kernel():
  """(Values against the scan: test_masked_kernels.py.)"""
  layer = rj.LSTM(8, use_fused=True)
  params = layer.init(jax.random.key(0), X)
  with rj.kernels.force_interpret():
    out = layer.apply(params, X, mask=jnp.ones((2, 5), bool), reset=jnp.zeros((2, 5), bool))
  assert out.shape == (2, 8)


def test_force_interpret_checks_its_argument():
  with pytest.raises(TypeError, match="enabled must be a bool, got 1"):
    with rj.kernels.force_interpret(1):
      pass


def test_remat_is_a_scan_knob():
  with rj.kernels.force_interpret():
    choice = path(rj.LSTM(8, remat="sqrt"))
  assert choice.path == "scan"
  assert "remat='sqrt': gradient checkpointing is a scan-only" in choice.reason
