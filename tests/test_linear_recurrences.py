"""MinGRU, MinLSTM and LRU against the papers' equations (a NumPy float64 loop,
tests/linear_reference.py), the parallel scan against the sequential loop (values and
gradients, with masks, resets, go_backwards), chunked streaming against one call,
fully masked rows, and numerical stability at T = 100,000."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax as rj

from tests import fast_jit, linear_reference as ref

B, T = 4, 9
# kind -> (layer class, input features, keyword arguments, reference step)
KINDS = {
    "min_gru": (rj.MinGRU, 3, {}, ref.min_gru_step),
    "min_gru_log": (rj.MinGRU, 3, {"log_space": True},
                    lambda p, x, h: ref.min_gru_step(p, x, h, log_space=True)),
    "min_lstm": (rj.MinLSTM, 3, {}, ref.min_lstm_step),
    "min_lstm_log": (rj.MinLSTM, 3, {"log_space": True},
                     lambda p, x, h: ref.min_lstm_step(p, x, h, log_space=True)),
    "lru": (rj.LRU, 5, {"state_units": 6, "r_min": 0.5}, ref.lru_step),
}
UNITS = {"lru": 5}


def _layer(kind, **options):
  cls, _, kwargs, _ = KINDS[kind]
  return cls(UNITS.get(kind, 4), **{**kwargs, **options})


def _data(kind, seed=0, steps=T):
  rng = np.random.default_rng(seed)
  features = KINDS[kind][1]
  x = rng.normal(size=(B, steps, features)).astype(np.float32)
  mask = rng.random((B, steps)) > 0.3
  mask[1] = False                          # a fully masked row
  mask[2, 0] = False                       # a masked first step
  reset = rng.random((B, steps)) > 0.75
  reset[0, 3] = True
  mask[0, 3] = False                       # a reset on a masked step
  return jnp.asarray(x), jnp.asarray(mask), jnp.asarray(reset)


def _start(layer, seed=1):
  """A random start state in the layer's structure (positive for log space: minGRU's
  log-space states stay positive, but any sign must work)."""
  rng = np.random.default_rng(seed)
  return tuple(jnp.asarray(rng.normal(size=s.shape), jnp.float32)
               for s in layer.get_initial_state(B))


def _carried(kind, state):
  (s,) = state
  s = np.asarray(s, np.float64)
  return s[:, 0] + 1j * s[:, 1] if kind == "lru" else s


def _state_of(kind, h):
  return np.stack([h.real, h.imag], 1) if kind == "lru" else h


@pytest.mark.parametrize("scan", ["parallel", "sequential"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_matches_the_papers_equations(kind, scan):
  layer = _layer(kind, return_sequences=True, return_state=True, scan=scan)
  last_only = dataclasses.replace(layer, return_sequences=False, return_state=False)
  x, mask, reset = _data(kind)
  params = layer.init(jax.random.key(0), x)
  start = _start(layer)

  def run(params, x, start, mask, reset):
    plain = layer.apply(params, x)
    masked = layer.apply(params, x, initial_state=start, mask=mask, reset=reset)
    last = last_only.apply(params, x, initial_state=start, mask=mask, reset=reset)
    return plain, masked, last

  (y0, state0), (y, state), last = fast_jit.run(run, params, x, start, mask, reset)
  step, lru = KINDS[kind][3], kind == "lru"
  want_y, _, want_h = ref.run(step, params, x, _carried(kind, layer.get_initial_state(B)),
                              output_is_state=not lru)
  np.testing.assert_allclose(y0, want_y, rtol=2e-5, atol=2e-5)
  np.testing.assert_allclose(state0, _state_of(kind, want_h), rtol=2e-5, atol=2e-5)
  want_y, want_last, want_h = ref.run(step, params, x, _carried(kind, start), mask=mask,
                                      reset=reset, output_is_state=not lru)
  np.testing.assert_allclose(y, want_y, rtol=2e-5, atol=2e-5)
  np.testing.assert_allclose(state, _state_of(kind, want_h), rtol=2e-5, atol=2e-5)
  np.testing.assert_allclose(last, want_last, rtol=2e-5, atol=2e-5)
  # The fully masked row keeps the start state; its last output is h0 (minGRU, minLSTM,
  # whose output is the state) or zeros (the LRU holds its last valid output).
  np.testing.assert_array_equal(state[1], start[0][1])
  np.testing.assert_array_equal(last[1], np.zeros(last.shape[1:]) if lru else start[0][1])


OPTIONS = {
    "sequences": dict(go_backwards=True, zero_output_for_mask=True, time_major=True,
                      return_sequences=True),
    "last_output": dict(return_sequences=False),
}


def _loss(layer, mask, reset):
  def loss(params, x, start):
    out = layer.apply(params, x, initial_state=list(start), mask=mask, reset=reset)
    return sum(jnp.sum(jnp.sin(leaf) * (1.0 + k)) for k, leaf in enumerate(jax.tree.leaves(out)))
  return jax.value_and_grad(loss, argnums=(0, 1, 2))


@pytest.mark.parametrize("kind, option", [(kind, "sequences") for kind in KINDS]
                         + [("min_gru", "last_output"), ("lru", "last_output")])
def test_parallel_equals_sequential_values_and_gradients(kind, option):
  options = dict(OPTIONS[option], return_state=True)
  x, mask, reset = _data(kind, seed=3)
  if options.get("time_major"):
    x, mask, reset = jnp.swapaxes(x, 0, 1), mask.T, reset.T
  layers = [_layer(kind, scan=scan, **options) for scan in ("parallel", "sequential")]
  params = layers[0].init(jax.random.key(2), x)
  start = _start(layers[0])
  both = lambda *args: tuple(_loss(layer, mask, reset)(*args) for layer in layers)  # noqa: E731
  (v1, g1), (v2, g2) = fast_jit.run(both, params, x, start)
  np.testing.assert_allclose(v1, v2, rtol=1e-5, atol=1e-5)
  for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  assert all(np.isfinite(np.asarray(a)).all() for a in jax.tree.leaves(g1))


@pytest.mark.parametrize("kind", ["min_lstm_log", "lru"])
def test_chunked_stateful_equals_whole(kind):
  """Streaming in two chunks (masked steps across the boundary) equals one call."""
  x, mask, _ = _data(kind, seed=4, steps=10)
  mask = mask.at[0, 4:6].set(False)
  layer = _layer(kind, return_sequences=True, stateful=True, scan="parallel")
  params = layer.init(jax.random.key(3), x)
  start = _start(layer)
  whole, whole_state = layer.apply(params, x, mask=mask, state=start)
  first, state = layer.apply(params, x[:, :5], mask=mask[:, :5], state=start)
  second, state = layer.apply(params, x[:, 5:], mask=mask[:, 5:], state=state)
  if kind != "lru":   # the LRU's held output at masked steps does not cross chunks
    np.testing.assert_allclose(jnp.concatenate([first, second], 1), whole, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(state[0], whole_state[0], rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(jnp.concatenate([first, second], 1)[mask], whole[mask],
                             rtol=1e-5, atol=1e-5)
  assert not np.asarray(layer.reset_state(state)[0]).any()


@pytest.mark.parametrize("kind", ["min_lstm_log", "lru"])
def test_stable_at_100k_steps(kind):
  """The parallel scan over T = 100,000 against a float64 NumPy per-step loop of the same
  equations; slow decay (the LRU's ring near 1) so that the far past still counts."""
  steps, batch = 100_000, 2
  options = {"lru": dict(r_min=0.999, r_max=0.9999)}.get(kind, {})
  layer = _layer(kind, scan="parallel", return_sequences=True, **options)
  x = jnp.asarray(np.random.default_rng(5).normal(size=(batch, steps, KINDS[kind][1])),
                  jnp.float32)
  params = layer.init(jax.random.key(4), x)
  y = np.asarray(fast_jit.run(layer.apply, params, x))
  assert np.isfinite(y).all()
  a, b = ref.coefficients(kind.removesuffix("_log"), params, x, log_space=kind.endswith("_log"))
  hs = ref.affine_loop(a, b, np.zeros(b.shape[::2], b.dtype))
  if kind == "lru":
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    hs = (hs @ (p["C_re"] + 1j * p["C_im"])).real + p["D"] * np.asarray(x, np.float64)
  np.testing.assert_allclose(y, hs, rtol=1e-3, atol=1e-3)


def test_gradients_stable_at_4k_steps():
  steps = 4_096
  x = jnp.asarray(np.random.default_rng(6).normal(size=(2, steps, 5)), jnp.float32)
  layers = [rj.LRU(5, r_min=0.99, r_max=0.999, scan=scan, return_sequences=True)
            for scan in ("parallel", "sequential")]
  params = layers[0].init(jax.random.key(5), x)
  grads = fast_jit.run(lambda p, x: [jax.grad(lambda p: jnp.mean(layer.apply(p, x) ** 2))(p)
                                     for layer in layers], params, x)
  for a, b in zip(jax.tree.leaves(grads[0]), jax.tree.leaves(grads[1]), strict=True):
    assert np.isfinite(np.asarray(a)).all()
    np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-4)
