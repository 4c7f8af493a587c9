"""Keras 2 compatibility: the Keras 2 `hard_sigmoid` (`clip(0.2 x + 0.5, 0, 1)`) as
"keras2_hard_sigmoid", `reset_after=False` GRUs (Keras 2's default before TF 2), and
`implementation` 1 / 2 with Keras's meaning (the same function; 1 splits per gate), all
against a NumPy oracle written without rnnjax."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax as rj

from tests import fast_jit, keras_reference, numpy_reference as npref

B, T, F, U = 8, 6, 3, 4


def keras2_hard_sigmoid(x):
  return np.clip(0.2 * x + 0.5, 0.0, 1.0)


def lstm_step(gate):
  def step(p, x, state):
    h, c = state
    z = x @ p["kernel"] + h @ p["recurrent_kernel"] + p["bias"]
    i, f, g, o = np.split(z, 4, axis=-1)
    c = gate(f) * c + gate(i) * np.tanh(g)
    h = gate(o) * np.tanh(c)
    return h, (h, c)
  return step


def gru_step(gate, reset_after):
  def step(p, x, state):
    (h,) = state
    bias = p["bias"] if reset_after else np.stack([p["bias"], np.zeros_like(p["bias"])])
    xz, xr, xh = np.split(x @ p["kernel"] + bias[0], 3, axis=-1)
    rec_z, rec_r, rec_h = np.split(p["recurrent_kernel"], 3, axis=-1)
    z = gate(xz + h @ rec_z + np.split(bias[1], 3)[0])
    r = gate(xr + h @ rec_r + np.split(bias[1], 3)[1])
    if reset_after:
      hh = np.tanh(xh + r * (h @ rec_h + np.split(bias[1], 3)[2]))
    else:
      hh = np.tanh(xh + (r * h) @ rec_h)  # Cho et al. v1: reset before the matmul
    h = z * h + (1 - z) * hh
    return h, (h,)
  return step


def _setup(layer, seed):
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.normal(size=(B, T, F)), jnp.float32)
  params = fast_jit.init(layer, jax.random.key(seed), x)
  # Random biases as well, scaled up so that the hard sigmoid's clipping is exercised.
  params = {k: 2.0 * v + jnp.asarray(rng.normal(size=v.shape), v.dtype) for k, v in params.items()}
  state = [rng.normal(size=(B, U)).astype("float32")
           for _ in range(2 if isinstance(layer, rj.LSTM) else 1)]
  return x, params, state


CASES = {
    "lstm": (lambda **kw: rj.LSTM(U, **kw), lambda gate: lstm_step(gate)),
    "gru": (lambda **kw: rj.GRU(U, **kw), lambda gate: gru_step(gate, True)),
    "gru_reset_before": (lambda **kw: rj.GRU(U, reset_after=False, **kw),
                         lambda gate: gru_step(gate, False)),
}


@pytest.mark.parametrize("kind", CASES)
def test_keras2_hard_sigmoid_and_implementations_match_numpy(kind):
  make, oracle = CASES[kind]
  kw = dict(recurrent_activation="keras2_hard_sigmoid", return_sequences=True, return_state=True)
  layers = [make(implementation=1, **kw), make(implementation=2, **kw),
            make(**dict(kw, recurrent_activation="hard_sigmoid"))]
  x, params, state = _setup(layers[0], seed=len(kind))
  mask = keras_reference.mixed_mask(B, T)
  impl1, impl2, keras3 = fast_jit.run(
      lambda p: [l.apply(p, x, initial_state=state, mask=mask) for l in layers], params)
  want_seq, _, want_state = npref.run(oracle(keras2_hard_sigmoid), params, x, state, mask=mask)
  for got in (impl1, impl2):
    np.testing.assert_allclose(got[0], want_seq, atol=1e-5)
    for g, w in zip(got[1:], want_state):
      np.testing.assert_allclose(g, w, atol=1e-5)
  # implementation is a dropout-mask layout switch: same function, same numbers.
  for a, b in zip(impl1, impl2):
    np.testing.assert_allclose(a, b, atol=1e-6)
  # Keras 3's "hard_sigmoid" (relu6(x + 3) / 6) is another function.
  assert np.abs(np.asarray(keras3[0]) - want_seq).max() > 1e-3


def test_reset_before_gru_layout_and_keras2_weights():
  layer = rj.GRU(U, reset_after=False)
  rng = np.random.default_rng(0)
  weights = [rng.normal(size=s).astype("float32") for s in [(F, 3 * U), (U, 3 * U), (3 * U,)]]
  params = rj.interop.from_keras(layer, weights)
  assert params["bias"].shape == (3 * U,)
  x = rng.normal(size=(B, T, F)).astype("float32")
  got = fast_jit.run(lambda p: layer.apply(p, x), params)
  _, want_last, _ = npref.run(gru_step(lambda z: 1 / (1 + np.exp(-z)), False),
                              params, x, [np.zeros((B, U))])
  np.testing.assert_allclose(got, want_last, atol=1e-5)
  with pytest.raises(ValueError, match=r"'bias'.*\(12,\).*got \(2, 12\)"):
    rj.interop.from_keras(layer, weights[:2] + [np.zeros((2, 3 * U))])


def test_implementation_values():
  assert rj.LSTM(U, implementation=1).cell.mask_count == 4
  assert rj.GRU(U, implementation=2, recurrent_dropout=0.1).cell.mask_count == 3  # Keras forces 1
  assert rj.GRU(U, implementation=2, dropout=0.1).cell.mask_count == 1
  with pytest.raises(ValueError, match="implementation must be 1 or 2, got 0"):
    rj.GRU(U, implementation=0)
