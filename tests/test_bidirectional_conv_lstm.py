"""Bidirectional over ConvLSTM layers, whose state shape depends on the inputs: the state
counts come from the cells' `state_size`, and the state halves are checked with the
per-step input shape (before: `initial_state=` was rejected and a stateful layer failed
on its second chunk)."""

import numpy as np

import jax
import jax.numpy as jnp
import rnnjax as rj

B, T, W, C, FILTERS = 2, 6, 7, 3, 4


def _layer(**kw):
  return rj.Bidirectional(rj.ConvLSTM1D(FILTERS, 3, padding="same", return_sequences=True,
                                        **kw), merge_mode="concat")


def _x():
  return jnp.asarray(np.random.default_rng(0).normal(size=(B, T, W, C)), jnp.float32)


def test_initial_state_halves_are_used():
  layer, x = _layer(return_state=True), _x()
  params = layer.init(jax.random.key(0), x)
  zeros = layer.apply(params, x)
  states = [jnp.full((B, W, FILTERS), v) for v in (0.1, 0.2, -0.3, 0.4)]
  out, fh, fc, bh, bc = layer.apply(params, x, initial_state=states)
  # Each direction alone from its half equals the merged output's half.
  fwd = rj.ConvLSTM1D(FILTERS, 3, padding="same", return_sequences=True)
  want_f = fwd.apply(params["forward"], x, initial_state=states[:2])
  np.testing.assert_allclose(out[..., :FILTERS], want_f, rtol=1e-5, atol=1e-6)
  assert not np.allclose(out, zeros[0])
  assert fh.shape == fc.shape == bh.shape == bc.shape == (B, W, FILTERS)


def test_stateful_chunks_continue():
  layer, x = _layer(stateful=True), _x()
  params = layer.init(jax.random.key(0), x)
  out1, state = layer.apply(params, x[:, :3])
  out2, state = layer.apply(params, x[:, 3:], state=state)
  assert len(state) == 4 and all(s.shape == (B, W, FILTERS) for s in state)
  # The forward half of a chunked run equals the forward half of the whole run.
  whole, _ = layer.apply(params, x)
  np.testing.assert_allclose(out2[..., :FILTERS], whole[:, 3:, ..., :FILTERS],
                             rtol=1e-5, atol=1e-6)


def test_a_wrong_half_is_named():
  layer, x = _layer(), _x()
  params = layer.init(jax.random.key(0), x)
  states = [jnp.zeros((B, W, FILTERS))] * 3 + [jnp.zeros((B, W, FILTERS + 1))]
  try:
    layer.apply(params, x, initial_state=states)
  except ValueError as e:
    assert "initial_state (backward half)" in str(e)
  else:
    raise AssertionError("a misshaped backward half was accepted")
