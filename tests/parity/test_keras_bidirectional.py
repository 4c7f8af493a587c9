"""Bidirectional against Keras 3's Bidirectional (JAX backend), weights copied across.

Two grids, each run as one jitted Keras computation and one jitted rnnjax computation
(compiling each case separately would take minutes):
  merge: inner LSTM / GRU x merge_mode x return_sequences, with a mask (every mask
    pattern in one batch), initial states and return_state;
  opts: inner x mask x initial_state x return_sequences, return_state, "concat";
  nostate: inner x return_sequences x merge_mode "concat" / None, return_state=False;
plus a custom backward layer with another activation and unit count.
"""

import itertools

import jax
import keras
import numpy as np
import pytest

import rnnjax as rj

from tests import keras_reference as ref

B, T, F, U = 8, 7, 5, 4
TOL = 1e-5
MERGES = ["concat", "sum", "mul", "ave", None]
INNER = {
    "lstm": (keras.layers.LSTM, rj.LSTM, 2),
    "gru": (keras.layers.GRU, rj.GRU, 1),
}


def _case(inner, merge, return_sequences, return_state, masked, initial, backward=None):
  return dict(inner=inner, merge=merge, return_sequences=return_sequences,
              return_state=return_state, masked=masked, initial=initial, backward=backward)


CASES = {}
for inner, merge, rs in itertools.product(INNER, MERGES, [False, True]):
  CASES[f"merge-{inner}-{merge}-seq{int(rs)}"] = _case(inner, merge, rs, True, True, True)
for inner, masked, initial, rs in itertools.product(INNER, [False, True], [False, True], [False, True]):
  if not (masked and initial):  # that one is in the merge grid
    CASES[f"opts-{inner}-mask{int(masked)}-init{int(initial)}-seq{int(rs)}"] = (
        _case(inner, "concat", rs, True, masked, initial))
for inner, rs, merge in itertools.product(INNER, [False, True], ["concat", None]):
  CASES[f"nostate-{inner}-seq{int(rs)}-{merge}"] = _case(inner, merge, rs, False, True, False)
CASES["custom-backward-lstm"] = _case("lstm", "concat", True, True, True, True,
                                      backward={"units": 3, "activation": "relu"})


def _layers(case):
  keras_cls, rj_cls, _ = INNER[case["inner"]]
  kw = dict(return_sequences=case["return_sequences"], return_state=case["return_state"])
  # Keras builds faster with constant initializers; its weights are replaced anyway.
  cheap = dict(kernel_initializer="zeros", recurrent_initializer="zeros")
  k_back = r_back = None
  if case["backward"]:
    back = dict(case["backward"])
    units = back.pop("units")
    k_back = keras_cls(units, go_backwards=True, **kw, **back, **cheap)
    r_back = rj_cls(units, go_backwards=True, **kw, **back)
  k_layer = keras.layers.Bidirectional(keras_cls(U, **kw, **cheap), merge_mode=case["merge"],
                                       backward_layer=k_back)
  r_layer = rj.Bidirectional(rj_cls(U, **kw), merge_mode=case["merge"], backward_layer=r_back)
  return k_layer, r_layer


def _call_args(case, seed):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(B, T, F)).astype("float32")
  kwargs = {}
  if case["masked"]:
    kwargs["mask"] = ref.mixed_mask(B, T)
  if case["initial"]:
    n = INNER[case["inner"]][2]
    back_units = case["backward"]["units"] if case["backward"] else U
    kwargs["initial_state"] = (
        [rng.normal(size=(B, U)).astype("float32") for _ in range(n)]
        + [rng.normal(size=(B, back_units)).astype("float32") for _ in range(n)])
  return x, kwargs


def _flat(out):
  return [np.asarray(a) for a in jax.tree.leaves(out)]


@pytest.fixture(scope="module")
def results():
  """{case: (keras outputs, rnnjax outputs)} for every case."""
  keras_layers, rj_layers, params, args = {}, {}, {}, {}
  for i, (name, case) in enumerate(CASES.items()):
    k_layer, r_layer = _layers(case)
    weights = ref.build_for_shape(k_layer, (B, T, F), seed=i)
    keras_layers[name], rj_layers[name] = k_layer, r_layer
    params[name] = rj.interop.from_keras(r_layer, weights)
    args[name] = _call_args(case, seed=100 + i)
  return ref.run_twins(keras_layers, rj_layers, params, args)


@pytest.mark.parametrize("name", CASES)
def test_matches_keras(results, name):
  case = CASES[name]
  expected, got = results[name]
  if case["merge"] is None or case["return_state"]:
    assert isinstance(got, tuple)
    # (y, y_rev) for merge None, then forward states, then backward states.
    n_out = 2 if case["merge"] is None else 1
    n_states = 2 * INNER[case["inner"]][2] if case["return_state"] else 0
    assert len(got) == len(expected) == n_out + n_states
  else:
    assert not isinstance(got, tuple)
  e_flat, g_flat = _flat(expected), _flat(got)
  assert [e.shape for e in e_flat] == [g.shape for g in g_flat]
  for e, g in zip(e_flat, g_flat):
    np.testing.assert_allclose(g, e, atol=TOL, rtol=TOL)


def test_output_shapes_per_merge_mode(results):
  for merge in MERGES:
    _, got = results[f"merge-lstm-{merge}-seq1"]
    if merge is None:
      assert got[0].shape == got[1].shape == (B, T, U)
    else:
      assert got[0].shape == ((B, T, 2 * U) if merge == "concat" else (B, T, U))


def test_masked_positions_are_exactly_zero_with_return_sequences(results):
  """Keras forces zero_output_for_mask on both directions: padded steps output 0."""
  mask = ref.mixed_mask(B, T)
  for inner in INNER:
    _, got = results[f"merge-{inner}-None-seq1"]
    y, y_rev = np.asarray(got[0]), np.asarray(got[1])
    assert np.all(y[~mask] == 0.0) and np.all(y_rev[~mask] == 0.0)
    assert np.abs(y[mask]).min() > 0 and np.abs(y_rev[mask]).min() > 0


def test_keras_weight_list_round_trip_and_order():
  """Keras get_weights(): forward kernel, recurrent kernel, bias, then the backward ones."""
  k_layer = keras.layers.Bidirectional(
      keras.layers.GRU(U, kernel_initializer="zeros", recurrent_initializer="zeros"),
      backward_layer=keras.layers.GRU(3, go_backwards=True, kernel_initializer="zeros",
                                      recurrent_initializer="zeros"))
  weights = ref.build_for_shape(k_layer, (B, T, F), seed=7)
  layer = rj.Bidirectional(rj.GRU(U), backward_layer=rj.GRU(3, go_backwards=True))
  params = rj.interop.from_keras(layer, weights)
  np.testing.assert_array_equal(params["forward"]["kernel"], weights[0])
  np.testing.assert_array_equal(params["backward"]["recurrent_kernel"], weights[4])
  back = rj.interop.to_keras(layer, params)
  assert [w.shape for w in back] == [w.shape for w in weights]
  for a, b in zip(back, weights):
    np.testing.assert_array_equal(a, b)
