"""MinGRU, MinLSTM and LRU as layers among the others: Bidirectional, stacks in rj.RNN,
the Flax adapters, the dispatch's choice (`scan=`, the auto rule, reasons), the
papers' initialisations, regularizers, and bad arguments."""

import flax.nnx as nnx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax as rj

from tests import fast_jit

B, T = 3, 6


def _x(features=4, seed=0, steps=T):
  return jnp.asarray(np.random.default_rng(seed).normal(size=(B, steps, features)), jnp.float32)


@pytest.mark.parametrize("make", [lambda **kw: rj.MinGRU(5, **kw),
                                  lambda **kw: rj.LRU(4, state_units=3, **kw)],
                         ids=["min_gru", "lru"])
def test_bidirectional_parallel_equals_sequential(make):
  x = _x()
  mask = jnp.asarray(np.arange(T)[None, :] < np.array([T, 3, 1])[:, None])
  layers = [rj.Bidirectional(make(scan=s, return_sequences=True, return_state=True))
            for s in ("parallel", "sequential")]
  params = layers[0].init(jax.random.key(0), x)
  got, want = fast_jit.run(lambda p, x, m: [l.apply(p, x, mask=m) for l in layers], params, x, mask)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  assert rj.kernels.which_path(layers[0], x).path == "fused"
  assert rj.kernels.which_path(layers[1], x).path == "scan"


def test_stacks_in_rnn_equal_the_layers_one_after_another():
  x = _x()
  stack = rj.RNN([rj.MinGRUCell(4), rj.LRUCell(4, state_units=3), rj.MinLSTMCell(2)],
                 return_sequences=True, return_state=True)
  params = stack.init(jax.random.key(0), x)
  y, *states = stack.apply(params, x)
  h = x
  for cell, p, s in zip(stack.cell.cells, params, states, strict=True):
    layer = {rj.MinGRUCell: rj.MinGRU, rj.LRUCell: rj.LRU, rj.MinLSTMCell: rj.MinLSTM}[type(cell)]
    h, state = layer(cell.units, **({"state_units": 3} if layer is rj.LRU else {}),
                     return_sequences=True, return_state=True).apply(p, h)
    np.testing.assert_allclose(state, s[0], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(y, h, rtol=1e-5, atol=1e-6)


def test_flax_adapters():
  x = _x(3)
  module = rj.linen.MinGRU(4, return_sequences=True, scan="parallel")
  variables = module.init(jax.random.key(0), x)
  np.testing.assert_allclose(module.apply(variables, x),
                             rj.MinGRU(4, return_sequences=True).apply(variables["params"], x),
                             rtol=1e-5, atol=1e-6)
  assert type(rj.linen.wrap(rj.LRU(3))) is rj.linen.LRU
  assert rj.linen.MinLSTM(4).apply(rj.linen.MinLSTM(4).init(jax.random.key(0), x), x).shape == (B, 4)
  model = rj.nnx.MinLSTM(3, 4, stateful=True, rngs=nnx.Rngs(0))
  assert model(x).shape == (B, 4) and model.carry.get_value()[0].shape == (B, 4)
  lru = rj.nnx.wrap(rj.LRU(3, state_units=5, return_state=True), 3, rngs=nnx.Rngs(0))
  out, state = lru(x)
  assert type(lru) is rj.nnx.LRU and out.shape == (B, 3) and state.shape == (B, 2, 5)
  assert rj.nnx.MinGRU(3, 4, rngs=nnx.Rngs(0))(x).shape == (B, 4)


def test_scan_switch_and_the_auto_rule():
  x = _x(3)
  assert rj.MinGRU(4).fused_request == "auto"
  assert rj.MinGRU(4, scan="parallel").fused_request is True
  assert rj.MinGRU(4, scan="sequential").fused_request is False
  auto = rj.kernels.which_path(rj.MinGRU(4), x)
  assert auto.path == "scan" and "on the CPU the sequential loop" in auto.reason
  assert auto.reason.startswith("scan='auto'")
  parallel = rj.kernels.which_path(rj.MinLSTM(4, scan="parallel"), x, mask=jnp.ones((B, T), bool),
                                   reset=jnp.zeros((B, T), bool))
  assert parallel.path == "fused" and "parallel associative scan" in parallel.reason
  # Messages name the option as written, not the dispatch's request (True / False).
  assert parallel.reason.startswith("scan='parallel' and eligible")
  sequential = rj.kernels.which_path(rj.MinGRU(4, scan="sequential"), x)
  assert sequential.reason == "scan='sequential' (the scan is requested)"
  with pytest.raises(ValueError, match=r"MinGRU\(scan='parallel'\) cannot.*unroll=2.*"
                                       r"remat='step'.*Set scan='auto' to fall back"):
    rj.kernels.which_path(rj.MinGRU(4, scan="parallel", unroll=2, remat="step"), x)
  sharded = rj.kernels.which_path(rj.MinGRU(4, sequence_axis="time"), x)
  assert sharded.reason.startswith("sequence_axis='time' and eligible")
  with pytest.raises(ValueError, match=r"MinGRU\(sequence_axis='time'\) cannot.*remat=2: .*loop\.$"):
    rj.kernels.which_path(rj.MinGRU(4, sequence_axis="time", remat=2), x)
  # "auto" takes the parallel scan where a GPU is (here: Pallas interpret mode forced).
  with rj.kernels.force_interpret():
    assert rj.kernels.which_path(rj.LRU(3), x).path == "fused"


def test_initialisations_follow_the_papers():
  features, units, n = 64, 32, 4096
  params = rj.MinLSTMCell(units).init(jax.random.key(0), (features,))
  bound = 1 / np.sqrt(features)                          # PyTorch nn.Linear: U(+-1/sqrt(F))
  for name in ("kernel", "bias"):
    w = np.asarray(params[name])
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
  cell = rj.LRUCell(8, state_units=n, r_min=0.4, r_max=0.9, max_phase=np.pi / 10)
  p = cell.init(jax.random.key(1), (8,))
  radius = np.exp(-np.exp(np.asarray(p["nu_log"], np.float64)))
  phase = np.exp(np.asarray(p["theta_log"], np.float64))
  assert radius.min() >= 0.4 - 1e-6 and radius.max() <= 0.9 + 1e-6
  # Uniform on the ring by area: |lambda|^2 is uniform on [r_min^2, r_max^2].
  assert abs(np.mean(radius**2) - (0.4**2 + 0.9**2) / 2) < 0.01
  assert phase.min() >= 0 and phase.max() <= np.pi / 10
  np.testing.assert_allclose(np.exp(2 * np.asarray(p["gamma_log"], np.float64)), 1 - radius**2,
                             rtol=1e-4)
  np.testing.assert_allclose(np.std(p["B_re"]), 1 / np.sqrt(2 * 8), rtol=0.05)
  np.testing.assert_allclose(np.std(p["C_im"]), 1 / np.sqrt(n), rtol=0.05)
  np.testing.assert_allclose(np.std(p["D"]), 1.0, rtol=0.15)


def test_log_space_candidate_and_normalised_gates():
  """minLSTM's normalised gates sum to 1; the log-space candidate g is positive and
  continuous at 0; the log-space state stays positive from a positive start."""
  cell = rj.MinLSTMCell(3, log_space=True)
  params = cell.init(jax.random.key(0), (2,))
  projected = cell.project(params, _x(2)[:, 0])
  la, lb = cell.coefficients(params, projected)
  a, b = rj.MinLSTMCell(3).coefficients(params, projected)
  kf, ki, v = np.split(np.asarray(projected, np.float64), 3, axis=-1)
  f, i = 1 / (1 + np.exp(-kf)), 1 / (1 + np.exp(-ki))
  np.testing.assert_allclose(a, f / (f + i), rtol=1e-5)
  np.testing.assert_allclose(np.exp(la), f / (f + i), rtol=1e-5)
  g = np.where(v >= 0, v + 0.5, 1 / (1 + np.exp(-v)))
  np.testing.assert_allclose(np.exp(lb), i / (f + i) * g, rtol=1e-5)
  np.testing.assert_allclose(b, i / (f + i) * v, rtol=1e-5, atol=1e-7)
  layer = rj.MinLSTM(3, log_space=True, return_sequences=True, scan="parallel")
  assert bool((layer.apply(params, _x(2, steps=40) * 5) > 0).all())


def test_regularizers_and_constraints_reach_the_linear_cells():
  layer = rj.MinGRU(4, kernel_regularizer="l2", bias_constraint="non_neg")
  params = layer.init(jax.random.key(0), _x(3))
  np.testing.assert_allclose(rj.regularization_loss(layer, params),
                             0.01 * jnp.sum(params["kernel"] ** 2), rtol=1e-6)
  assert bool((rj.apply_constraints(layer, params)["bias"] >= 0).all())


def test_dropout_is_one_variational_mask_on_the_inputs():
  x = _x(3)
  layers = [rj.MinGRU(4, dropout=0.5, return_sequences=True, scan=s) for s in ("parallel", "sequential")]
  params = layers[0].init(jax.random.key(0), x)
  key = jax.random.key(7)
  a, b = (layer.apply(params, x, training=True, rng=key) for layer in layers)
  np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  assert not np.allclose(a, layers[0].apply(params, x))
  with pytest.raises(ValueError, match="needs rng="):
    layers[0].apply(params, x, training=True)


@pytest.mark.parametrize("make, match", [
    (lambda: rj.MinGRU(4, scan="fast"), 'scan must be "auto", "parallel" or "sequential"'),
    (lambda: rj.MinGRU(0), "units must be a positive int"),
    (lambda: rj.MinLSTM(4, log_space=1), "log_space must be a bool"),
    (lambda: rj.MinGRU(4, kernel_initializer="nope"), "kernel_initializer"),
    (lambda: rj.LRU(4, r_min=0.9, r_max=0.5), "0 <= r_min < r_max <= 1"),
    (lambda: rj.LRU(4, max_phase=0.0), "max_phase must be > 0"),
    (lambda: rj.LRUCell(4, state_units=-1), "state_units must be a positive int"),
    (lambda: rj.MinGRU(4, sequence_axis=3), "sequence_axis must be a mesh axis name"),
    (lambda: rj.MinGRU(4, dropout=1.5), "dropout must be in"),
])
def test_bad_arguments(make, match):
  with pytest.raises((ValueError, TypeError), match=match):
    make()


def test_bidirectional_refuses_what_time_sharding_would_get_wrong():
  """A time-sharded backward half can only be flipped per device chunk, and its segment
  starts need the next chunk's first reset: both refused with what to do instead."""
  with pytest.raises(ValueError, match=r"sequence_axis='time' with return_sequences=True.*"
                                       r"Use return_sequences=False"):
    rj.Bidirectional(rj.MinGRU(4, return_sequences=True, sequence_axis="time"))
  with pytest.raises(ValueError, match="sequence_axis='time' with return_sequences=True"):
    rj.Bidirectional(rj.LRU(4, return_sequences=True),
                     backward_layer=rj.LRU(4, return_sequences=True, go_backwards=True,
                                           sequence_axis="time"))
  layer = rj.Bidirectional(rj.MinGRU(4, sequence_axis="time"))
  x = _x(3)
  params = layer.init(jax.random.key(0), x)
  with pytest.raises(ValueError, match=r"reset= with a time-sharded layer \(sequence_axis="
                                       r"'time'\).*Pass reset=None"):
    layer.apply(params, x, reset=jnp.zeros((B, T), bool))


def test_bad_calls_name_what_they_got():
  layer = rj.LRU(4)
  with pytest.raises(ValueError, match="got inputs with 3 features"):
    layer.init(jax.random.key(0), _x(3))
  params = layer.init(jax.random.key(0), _x(4))
  with pytest.raises(ValueError, match="got inputs with 3 features"):
    layer.apply(params, _x(3))
  with pytest.raises(ValueError, match=r"initial_state"):
    layer.apply(params, _x(4), initial_state=[jnp.zeros((B, 4))])
  with pytest.raises(ValueError, match="constants"):
    rj.MinGRU(4).apply(rj.MinGRU(4).init(jax.random.key(0), _x(3)), _x(3), constants=[_x(3)])


def test_readme_section_runs():
  """The README's linear-recurrence example runs as written."""
  import pathlib
  text = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
  section = text.split("## Linear recurrences: MinGRU, MinLSTM, LRU", 1)[1].split("\n## ", 1)[0]
  code = section.split("```python\n", 1)[1].split("```", 1)[0]
  namespace: dict = {}
  exec(compile(code, "README.md: Linear recurrences", "exec"), namespace)
  assert namespace["state"].shape == (8, 2, 128) and namespace["h"].shape == (8, 64)
