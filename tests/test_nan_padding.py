"""Garbage in the padding (NaN, Inf beyond `seq_lengths` or at masked steps) reaches
neither the values nor the gradients, on every path: the scan engine, the CPU custom-JVP
recurrence and the Pallas kernels (interpret mode). Values and gradients (params, inputs,
initial state) equal those with clean padding, and the inputs' gradient is 0 there."""

import numpy as np
import pytest

import jax
import jax.numpy as jnp
import rnnjax as rj

from tests.registry import LAYERS, STEP_SHAPES

B, T, F, U = 3, 5, 3, 4
LENGTHS = np.array([T, 2, 0], np.int32)          # full, padded and empty rows
HOLES = np.array([[1, 0, 1, 1, 0], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0]], bool)   # masked steps


def padding_of(lengths=None, mask=None, time_major=False):
  """(B, T) True at the steps to fill with garbage ((T, B) when time_major)."""
  valid = (np.arange(T)[None, :] < lengths[:, None]) if mask is None else mask
  return ~valid.T if time_major else ~valid


def fill(x, pad, value):
  """`x` with `value` at the padded steps (pad broadcast over the feature axes)."""
  return jnp.where(pad.reshape(pad.shape + (1,) * (x.ndim - 2)), value, x)


def compiled_grads(layer, x, lengths=None, mask=None, *, carry=True):
  """A jitted `x -> (value, outputs, gradients)`: the gradients of a loss over every output
  with respect to params, inputs and initial state. One compilation serves clean and
  garbage padding alike."""
  params = layer.init(jax.random.key(0), x)
  params = jax.tree.map(lambda p: p + 0.3 * jax.random.normal(jax.random.key(9), p.shape),
                        params)
  batch = x.shape[1] if getattr(layer, "time_major", False) else x.shape[0]
  state = layer.get_initial_state(batch, input_shape=x.shape[2:]) if carry else None
  state = jax.tree.map(lambda s: s + 0.1, state)

  def loss(params, x, state):
    out = layer.apply(params, x, initial_state=state, mask=mask, seq_lengths=lengths)
    return sum(jnp.sum(jnp.sin(leaf)) for leaf in jax.tree.leaves(out)), out

  run = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True))
  return lambda x: run(params, x, state)


def assert_padding_is_harmless(layer, x, pad, **call):
  run = compiled_grads(layer, x, **call)
  clean = run(fill(x, pad, 0.0))
  for garbage in (jnp.nan, jnp.inf, -jnp.inf):
    dirty = run(fill(x, pad, garbage))
    for a, b in zip(jax.tree.leaves(dirty), jax.tree.leaves(clean), strict=True):
      assert bool(jnp.isfinite(a).all()), f"non-finite values or gradients with {garbage}"
      np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    x_grad = dirty[1][1]
    np.testing.assert_array_equal(fill(x_grad, ~pad, 0.0), jnp.zeros_like(x_grad))


def inputs(shape, seed=1):
  return jax.random.normal(jax.random.key(seed), shape)


# The scan -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize("masking", ["seq_lengths", "mask"])
def test_scan_every_layer_kind(kind, masking):
  kw = dict(use_fused=False) if kind in ("lstm", "gru", "gru_reset_before", "simple_rnn") else {}
  layer = LAYERS[kind](return_sequences=True, return_state=True, **kw)
  x = inputs((B, T, *STEP_SHAPES[kind]))
  assert rj.kernels.which_path(layer, x).path == "scan"
  if masking == "seq_lengths":
    assert_padding_is_harmless(layer, x, padding_of(LENGTHS), lengths=LENGTHS)
  else:
    assert_padding_is_harmless(layer, x, padding_of(mask=HOLES), mask=jnp.asarray(HOLES))


@pytest.mark.parametrize("kw", [dict(go_backwards=True), dict(time_major=True),
                                dict(zero_output_for_mask=True, return_sequences=True),
                                dict(unroll=True), dict(remat="step")])
def test_scan_sequence_options(kw):
  layer = rj.GRU(U, return_state=True, **kw)
  tm = kw.get("time_major", False)
  x = inputs((T, B, F) if tm else (B, T, F))
  assert_padding_is_harmless(layer, x, padding_of(LENGTHS, time_major=tm), lengths=LENGTHS)


def test_the_engine_itself():
  """`rnnjax.engine.rnn` called directly cleans its inputs too."""
  cell = rj.LSTMCell(U)
  params = cell.init(jax.random.key(0), (F,))
  mask = jnp.asarray(HOLES)

  def loss(params, x):
    result = rj.engine.rnn(cell, params, x, cell.initial_state(B), mask=mask)
    return jnp.sum(result.outputs) + jnp.sum(result.final_state[1])

  x = inputs((B, T, F))
  pad = padding_of(mask=HOLES)
  clean = jax.grad(loss, argnums=(0, 1))(params, fill(x, pad, 0.0))
  dirty = jax.grad(loss, argnums=(0, 1))(params, fill(x, pad, jnp.nan))
  for a, b in zip(jax.tree.leaves(dirty), jax.tree.leaves(clean), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_bidirectional_on_the_scan():
  layer = rj.Bidirectional(rj.GRU(U, return_sequences=True, return_state=True))
  x = inputs((B, T, F))
  assert_padding_is_harmless(layer, x, padding_of(LENGTHS), lengths=LENGTHS, carry=False)
  assert_padding_is_harmless(layer, x, padding_of(mask=HOLES), mask=jnp.asarray(HOLES),
                             carry=False)


# The fast paths ---------------------------------------------------------------------------


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the CPU recurrence")
@pytest.mark.parametrize("kw", [dict(return_sequences=True), dict(go_backwards=True),
                                dict(time_major=True, zero_output_for_mask=True)])
def test_cpu_lstm_recurrence(kw):
  layer = rj.LSTM(U, return_state=True, **kw)
  tm = kw.get("time_major", False)
  x = inputs((T, B, F) if tm else (B, T, F))
  choice = rj.kernels.which_path(layer, x, seq_lengths=LENGTHS)
  assert choice.path == "fused" and "CPU" in choice.reason
  assert_padding_is_harmless(layer, x, padding_of(LENGTHS, time_major=tm), lengths=LENGTHS)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the CPU recurrence")
@pytest.mark.parametrize("make", [rj.LSTM, rj.GRU, rj.SimpleRNN], ids=["lstm", "gru", "simple"])
def test_cpu_recurrences_with_a_boolean_mask(make):
  """Holes, left padding and an empty row (a boolean mask, not lengths)."""
  layer = make(U, return_sequences=True, return_state=True, go_backwards=True)
  x = inputs((B, T, F))
  choice = rj.kernels.which_path(layer, x, mask=jnp.asarray(HOLES))
  assert choice.path == "fused" and "CPU" in choice.reason
  assert_padding_is_harmless(layer, x, padding_of(mask=HOLES), mask=jnp.asarray(HOLES))


@pytest.mark.parametrize("make", [lambda **kw: rj.LSTM(U, **kw), lambda **kw: rj.GRU(U, **kw)],
                         ids=["lstm", "gru"])
@pytest.mark.parametrize("kw", [dict(return_sequences=True), dict(go_backwards=True)])
def test_pallas_kernels_in_interpret_mode(make, kw):
  layer = make(return_state=True, **kw)
  x = inputs((B, T, F))
  with rj.kernels.force_interpret():
    choice = rj.kernels.which_path(layer, x, seq_lengths=LENGTHS)
    assert choice.path == "fused" and "CPU" not in choice.reason   # the Pallas kernel
    assert_padding_is_harmless(layer, x, padding_of(LENGTHS), lengths=LENGTHS)


def test_pallas_bidirectional_in_one_launch():
  layer = rj.Bidirectional(rj.LSTM(U, return_sequences=True, return_state=True))
  x = inputs((B, T, F))
  with rj.kernels.force_interpret():
    choice = rj.kernels.which_path(layer, x, seq_lengths=LENGTHS)
    assert choice.path == "fused" and "one-launch" in choice.reason
    assert_padding_is_harmless(layer, x, padding_of(LENGTHS), lengths=LENGTHS, carry=False)
