"""Properties that hold for every layer kind in tests/registry.py, checked with
hypothesis over random data, masks, lengths and chunkings.

Compilation dominates the cost, so shapes come from a few fixed choices (each layer
configuration and shape compiles once, through the jitted `run`, and is reused across
examples), examples are few, and runs are derandomized for a stable CI. Every property runs for
every kind (pytest parametrization), hypothesis varying the data within a kind."""

import functools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jax
import jax.numpy as jnp
import rnnjax as rj

from tests.registry import LAYERS, STEP_SHAPES

B, T = 4, 6
ATOL = 1e-5
SETTINGS = settings(max_examples=4, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

seeds = st.integers(0, 2**16)


@functools.partial(jax.jit, static_argnums=0)
def run(layer, params, x, mask=None, state=None):
  kwargs = {} if state is None else {"state": state}
  return layer.apply(params, x, mask=mask, **kwargs)


@functools.cache
def params_for(kind, seed):
  layer = LAYERS[kind]()
  x = jnp.zeros((1, 1, *STEP_SHAPES[kind]))
  return layer.init(jax.random.key(seed % 4), x)   # few distinct sets


def inputs(kind, seed, steps=T, batch=B):
  shape = (batch, steps, *STEP_SHAPES[kind])
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def assert_trees_close(a, b):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(x, y, atol=ATOL, rtol=ATOL)


@pytest.mark.parametrize("kind", LAYERS)
@SETTINGS
@given(seed=seeds, steps=st.sampled_from([1, T]), go_backwards=st.booleans())
def test_an_all_true_mask_equals_no_mask(kind, seed, steps, go_backwards):
  layer = LAYERS[kind](return_sequences=True, return_state=True, go_backwards=go_backwards)
  x = inputs(kind, seed, steps)
  params = params_for(kind, seed)
  assert_trees_close(run(layer, params, x, jnp.ones((B, steps), bool)), run(layer, params, x))


@pytest.mark.parametrize("kind", LAYERS)
@SETTINGS
@given(seed=seeds, go_backwards=st.booleans(),
       lengths=st.lists(st.sampled_from([1, 2, T]), min_size=B, max_size=B))
def test_right_padding_gives_the_trimmed_sequences_results(kind, seed, go_backwards, lengths):
  """A right-padded row ends in the state (and last output) of its trimmed sequence, and its
  valid steps output what the trimmed sequence outputs (in processing order)."""
  layer = LAYERS[kind](return_sequences=True, return_state=True, go_backwards=go_backwards)
  last_only = LAYERS[kind](go_backwards=go_backwards)
  x = inputs(kind, seed)
  params = params_for(kind, seed)
  mask = jnp.arange(T)[None, :] < jnp.asarray(lengths)[:, None]
  padded_out, *padded_states = run(layer, params, x, mask)
  padded_last = run(last_only, params, x, mask)
  for length in set(lengths):
    rows = np.flatnonzero(np.asarray(lengths) == length)
    out, *states = run(layer, params, x[rows, :length])
    valid = slice(T - length, T) if go_backwards else slice(0, length)
    np.testing.assert_allclose(padded_out[rows, valid], out, atol=ATOL)
    assert_trees_close(jax.tree.map(lambda s: s[rows], padded_states), states)
    np.testing.assert_allclose(padded_last[rows], out[:, -1], atol=ATOL)


@pytest.mark.parametrize("kind", LAYERS)
@SETTINGS
@given(seed=seeds)
def test_go_backwards_is_the_forward_run_on_the_reversed_sequence(kind, seed):
  """Outputs in processing order: out[:, k] is the output after reading x[:, T-1-k]; with a
  mask (row 0 unmasked, the others random), the mask is reversed with the inputs."""
  backward = LAYERS[kind](return_sequences=True, return_state=True, go_backwards=True)
  forward = LAYERS[kind](return_sequences=True, return_state=True)
  x = inputs(kind, seed)
  params = params_for(kind, seed)
  mask = np.random.default_rng(seed + 1).random((B, T)) < 0.7
  mask[0] = True
  mask = jnp.asarray(mask)
  assert_trees_close(run(backward, params, x, mask), run(forward, params, x[:, ::-1], mask[:, ::-1]))


@pytest.mark.parametrize("kind", LAYERS)
@SETTINGS
@given(seed=seeds, split=st.sampled_from([(3, 3), (1, 5), (2, 2, 2)]))
def test_chunked_stateful_runs_equal_one_run(kind, seed, split):
  stateful = LAYERS[kind](return_sequences=True, stateful=True)
  whole = LAYERS[kind](return_sequences=True, return_state=True)
  x = inputs(kind, seed)
  params = params_for(kind, seed)
  outs, state, start = [], None, 0
  for size in split:
    out, state = run(stateful, params, x[:, start:start + size], None, state)
    outs.append(out)
    start += size
  out, *states = run(whole, params, x)
  np.testing.assert_allclose(jnp.concatenate(outs, axis=1), out, atol=ATOL)
  assert_trees_close(state, tuple(states))


def test_long_sequences_stay_finite_with_default_initializers():
  """T = 10,000 steps, default Keras initializers: outputs and gradients are finite."""
  steps = 10_000
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, steps, 3)), jnp.float32)
  for layer in (rj.LSTM(8, return_sequences=True), rj.GRU(8, return_sequences=True)):
    params = layer.init(jax.random.key(0), x)

    def loss(p, x):
      out = layer.apply(p, x)
      return jnp.mean(out**2), out

    grads, out = jax.jit(jax.grad(loss, argnums=(0, 1), has_aux=True))(params, x)
    assert np.isfinite(np.asarray(out)).all(), type(layer).__name__
    assert np.abs(np.asarray(out[:, -1])).max() > 1e-3          # still carrying signal
    for g in jax.tree.leaves(grads):
      assert np.isfinite(np.asarray(g)).all(), type(layer).__name__
    assert np.abs(np.asarray(grads[1][:, 0])).max() > 0         # the first step gets a gradient
