"""Stacked cells (`RNN([cell1, cell2, ...])` / `StackedRNNCells`) against Keras 3, weights
copied across: returned states nested per cell exactly as Keras nests them, with masks,
initial states, go_backwards and zero_output_for_mask. All cases run as one jitted Keras
computation and one jitted rnnjax computation."""

import itertools

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest

import rnnjax as rj

from tests import fast_jit, keras_reference as ref
from tests.test_errors import raises

B, T, F = 8, 7, 5
TOL = 1e-5
CHEAP = dict(kernel_initializer="zeros", recurrent_initializer="zeros")

STACKS = {
    # (keras cell class, rnnjax cell class, units, number of states)
    "lstm4-gru6": [(keras.layers.LSTMCell, rj.LSTMCell, 4, 2), (keras.layers.GRUCell, rj.GRUCell, 6, 1)],
    "simple3-lstm4-gru5": [(keras.layers.SimpleRNNCell, rj.SimpleRNNCell, 3, 1),
                           (keras.layers.LSTMCell, rj.LSTMCell, 4, 2),
                           (keras.layers.GRUCell, rj.GRUCell, 5, 1)],
}

CASES = {}
for stack, masked, initial, rs, gb in itertools.product(
    STACKS, [False, True], [False, True], [False, True], [False, True]):
  CASES[f"{stack}-mask{int(masked)}-init{int(initial)}-seq{int(rs)}-back{int(gb)}"] = dict(
      stack=stack, masked=masked, initial=initial, return_sequences=rs, go_backwards=gb,
      zero_output_for_mask=False)
for stack in STACKS:
  CASES[f"{stack}-zero-output"] = dict(stack=stack, masked=True, initial=True, return_sequences=True,
                                       go_backwards=True, zero_output_for_mask=True)


def _initial_states(stack, rng):
  """Keras's nesting: one list per cell, e.g. [[h1, c1], [h2]]."""
  return [[rng.normal(size=(B, units)).astype("float32") for _ in range(n)]
          for _, _, units, n in STACKS[stack]]


@pytest.fixture(scope="module")
def results():
  keras_layers, rj_layers, params, args = {}, {}, {}, {}
  for i, (name, case) in enumerate(CASES.items()):
    kw = dict(return_sequences=case["return_sequences"], return_state=True,
              go_backwards=case["go_backwards"], zero_output_for_mask=case["zero_output_for_mask"])
    k_layer = keras.layers.RNN([k(units, **CHEAP) for k, _, units, _ in STACKS[case["stack"]]], **kw)
    weights = ref.build_for_shape(k_layer, (B, T, F), seed=i)
    r_layer = rj.RNN([r(units) for _, r, units, _ in STACKS[case["stack"]]], **kw)
    keras_layers[name], rj_layers[name] = k_layer, r_layer
    params[name] = rj.interop.from_keras(r_layer, weights)
    rng = np.random.default_rng(100 + i)
    call = {}
    if case["masked"]:
      call["mask"] = ref.mixed_mask(B, T)
    if case["initial"]:
      call["initial_state"] = _initial_states(case["stack"], rng)
    args[name] = (rng.normal(size=(B, T, F)).astype("float32"), call)
  return ref.run_twins(keras_layers, rj_layers, params, args)


@pytest.mark.parametrize("name", CASES)
def test_matches_keras_with_states_nested_per_cell(results, name):
  expected, got = results[name]
  cells = STACKS[CASES[name]["stack"]]
  # Keras: (out, [h1, c1], [h2]); rnnjax: (out, (h1, c1), (h2,)).
  assert isinstance(got, tuple) and len(got) == len(expected) == 1 + len(cells)
  for (_, _, units, n), k_states, r_states in zip(cells, expected[1:], got[1:]):
    assert isinstance(r_states, tuple) and len(r_states) == len(k_states) == n
    for k, r in zip(k_states, r_states):
      assert r.shape == (B, units)
      np.testing.assert_allclose(r, k, atol=TOL, rtol=TOL)
  np.testing.assert_allclose(got[0], expected[0], atol=TOL, rtol=TOL)


def test_a_bare_array_stands_for_a_one_state_cell():
  layer = rj.RNN([rj.LSTMCell(4), rj.GRUCell(6)], return_state=True)
  x = jnp.asarray(np.random.default_rng(0).normal(size=(B, T, F)), jnp.float32)
  params = fast_jit.init(layer, jax.random.key(0), x)
  rng = np.random.default_rng(1)
  h1, c1, h2 = (rng.normal(size=(B, u)).astype("float32") for u in (4, 4, 6))
  nested, bare = fast_jit.run(lambda p, x: (
      layer.apply(p, x, initial_state=[[h1, c1], [h2]]),
      layer.apply(p, x, initial_state=((h1, c1), h2))), params, x)
  for a, b in zip(jax.tree.leaves(nested), jax.tree.leaves(bare)):
    np.testing.assert_array_equal(a, b)


def test_stack_state_errors_name_the_nesting():
  layer = rj.RNN([rj.LSTMCell(4), rj.GRUCell(6)])
  x = jnp.ones((B, T, F))
  params = jax.eval_shape(layer.init, jax.random.key(0), x)
  h = jnp.zeros((B, 4))
  with raises(ValueError, "initial_state", "3 state array(s)", "((8, 4), (8, 4)), ((8, 6),)"):
    layer.apply(params, x, initial_state=[h, h])
  with raises(ValueError, "initial_state", "(8, 5)"):
    layer.apply(params, x, initial_state=[[h, h], [jnp.zeros((B, 5))]])


def test_stacked_params_and_keras_weight_order():
  layer = rj.RNN([rj.SimpleRNNCell(3), rj.GRUCell(2, reset_after=False)])
  params = jax.eval_shape(layer.init, jax.random.key(0), jax.ShapeDtypeStruct((B, T, F), jnp.float32))
  assert isinstance(params, tuple) and len(params) == 2
  assert params[0]["kernel"].shape == (F, 3) and params[1]["kernel"].shape == (3, 6)
  shapes = [w.shape for w in layer.cell.to_keras_weights(params)]
  assert shapes == [(F, 3), (3, 3), (3,), (3, 6), (2, 6), (6,)]
