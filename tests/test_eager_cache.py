"""Eager `apply` compiles once per layer and argument shapes/dtypes (rnnjax/layers/_eager.py):
counted with JAX's own compile events. A changed param value reuses the compilation; a
changed shape, dtype, layer option or dispatch context compiles anew (no stale results);
under an outer transform the cache steps aside."""

import numpy as np
import pytest

import jax
import jax.monitoring
import jax.numpy as jnp
import rnnjax as rj

COMPILE = "/jax/core/compile/backend_compile_duration"


@pytest.fixture
def compiles():
  events = []
  jax.monitoring.register_event_duration_secs_listener(
      lambda name, *a, **k: events.append(name) if name == COMPILE else None)
  try:
    yield events
  finally:
    jax.monitoring.clear_event_listeners()


def _x(shape=(3, 6, 4), dtype=jnp.float32, seed=0):
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape), dtype)


@pytest.mark.parametrize("layer", [rj.LSTM(7, return_sequences=True), rj.GRU(7),
                                   rj.Bidirectional(rj.SimpleRNN(7))],
                         ids=lambda l: type(l).__name__)
def test_a_repeated_eager_call_compiles_once(layer, compiles):
  x, others = _x(), [_x(seed=seed) for seed in (1, 2)]
  params = layer.init(jax.random.key(0), x)
  other = jax.tree.map(lambda p: p + 0.5, params)
  del compiles[:]                        # count the applies only
  first = layer.apply(params, x)
  n = len(compiles)
  assert n >= 1
  for xi in others:
    layer.apply(params, xi)
  got = layer.apply(other, x)
  assert len(compiles) == n              # new values: no new compilation
  want = jax.jit(layer.apply)(other, x)  # and not the stale result of `params`
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
  assert not np.allclose(got, first)


def test_shapes_dtypes_and_options_compile_anew(compiles):
  layer, x = rj.LSTM(6), _x()
  x2, x16 = _x((2, 6, 4)), _x(dtype=jnp.bfloat16)
  params = layer.init(jax.random.key(0), x)
  layer.apply(params, x)
  n = len(compiles)
  layer.apply(params, x2)                                  # another batch size
  assert len(compiles) > n
  n = len(compiles)
  y16 = layer.apply(params, x16)                           # another input dtype
  assert len(compiles) > n and y16.dtype == jnp.float32
  n = len(compiles)
  seq = rj.LSTM(6, return_sequences=True).apply(params, x)  # another option
  assert len(compiles) > n and seq.shape == (3, 6, 6)
  n = len(compiles)
  with rj.kernels.force_interpret():                       # another dispatch context
    forced = layer.apply(params, x)
  assert len(compiles) > n
  np.testing.assert_allclose(forced, layer.apply(params, x), rtol=1e-5, atol=1e-5)


def test_inside_transforms_the_cache_steps_aside(compiles):
  layer, x = rj.GRU(4), _x()
  params = layer.init(jax.random.key(0), x)
  grads = jax.grad(lambda p: layer.apply(p, x).sum())(params)
  batched = jax.vmap(lambda xi: layer.apply(params, xi[None]))(x)
  assert batched.shape == (3, 1, 4) and grads["kernel"].shape == (4, 12)
  np.testing.assert_allclose(batched[:, 0], layer.apply(params, x), rtol=1e-5, atol=1e-6)


def test_errors_still_come_from_the_checks():
  layer, x = rj.LSTM(5), _x()
  params = layer.init(jax.random.key(0), x)
  with pytest.raises(ValueError, match=r"mask must have shape \(B, T\)"):
    layer.apply(params, x, mask=jnp.ones((3, 5), bool))
  with pytest.raises(ValueError, match=r"seq_lengths"):
    layer.apply(params, x, seq_lengths=jnp.array([1, 2, 9]))
