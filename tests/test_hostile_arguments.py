"""Hostile arguments, each a ValueError or TypeError naming the argument, what it got and
what was expected: at construction (dtypes, seeds, flags, constraint and regularizer
domains), before tracing an apply (input dtypes, single rng keys, seq_lengths in [0, T],
eager or not), and in the functions over a layer's params and in direct cell calls."""

import numpy as np
import optax
import pytest

import jax
import jax.numpy as jnp
import rnnjax as rj

from tests.test_errors import raises

B, T, F, U = 2, 5, 3, 4
X = jnp.ones((B, T, F))


@pytest.fixture(scope="module")
def lstm():
  layer = rj.LSTM(U)
  return layer, layer.init(jax.random.key(0), X)


# Construction --------------------------------------------------------------------------


@pytest.mark.parametrize("make", [rj.LSTM, rj.GRU, rj.SimpleRNN, rj.LSTMCell,
                                  lambda u, **kw: rj.ConvLSTM1D(u, 3, **kw)])
@pytest.mark.parametrize("kw, error, fragments", [
    (dict(dtype="int32"), ValueError, ["dtype must be a floating-point dtype", "got int32"]),
    (dict(dtype="complex64"), ValueError, ["dtype must be a floating-point", "complex64"]),
    (dict(param_dtype="int32"), ValueError, ["param_dtype must be a floating-point", "int32"]),
    (dict(dtype="float33"), TypeError, ["dtype must be a dtype or dtype name, got 'float33'."]),
    (dict(seed=-1), ValueError, ["seed must be in [0, 2**32)", "fold_in", "got -1."]),
    (dict(seed=2**40), ValueError, ["seed must be in [0, 2**32)", f"got {2**40}."]),
    (dict(seed="1"), TypeError, ["seed must be an int or None, got '1'."]),
    (dict(use_bias=1), TypeError, ["use_bias must be a bool, got 1."]),
])
def test_cell_options_at_construction(make, kw, error, fragments):
  with raises(error, *fragments):
    make(U, **kw)


@pytest.mark.parametrize("kw, error, fragments", [
    (dict(carry_dtype="int8"), ValueError, ["carry_dtype must be a floating-point", "int8"]),
    (dict(carry_dtype="float33"), TypeError, ["carry_dtype must be a dtype or dtype name",
                                              "'float33'"]),
    (dict(unit_forget_bias="no"), TypeError, ["unit_forget_bias must be a bool, got 'no'."]),
    (dict(unroll=2.5), TypeError, ["unroll must be a bool or a positive int, got 2.5."]),
    (dict(unroll=0), ValueError, ["unroll must be a bool or a positive int, got 0."]),
    (dict(name=3), TypeError, ["name must be a str or None, got 3."]),
    (dict(return_state="yes"), TypeError, ["return_state must be a bool, got 'yes'."]),
])
def test_layer_options_at_construction(kw, error, fragments):
  with raises(error, *fragments):
    rj.LSTM(U, **kw)


def test_sizes_are_positive_ints():
  with raises(ValueError, "units must be a positive int, got 0."):
    rj.GRU(0)
  with raises(TypeError, "units must be a positive int, got 2.5."):
    rj.SimpleRNNCell(2.5)
  with raises(ValueError, "filters must be a positive int, got 0."):
    rj.ConvLSTM2D(0, 3)
  with raises(ValueError, "kernel_size must be a positive int or a tuple of 2 positive ints",
              "got (3, 0)"):
    rj.ConvLSTM2D(2, (3, 0))
  with raises(ValueError, "strides must be a positive int or a tuple of 1 positive ints",
              "got -1"):
    rj.ConvLSTM1D(2, 3, strides=-1)


@pytest.mark.parametrize("make, error, fragments", [
    (lambda: rj.MaxNorm(-1.0), ValueError, ["max_value must be a positive finite float",
                                            "got -1.0."]),
    (lambda: rj.MaxNorm(float("inf")), ValueError, ["max_value", "got inf."]),
    (lambda: rj.MaxNorm("2"), TypeError, ["max_value must be a positive finite float",
                                          "got str '2'."]),
    (lambda: rj.MaxNorm(2.0, axis="rows"), TypeError, ["axis must be an int or a non-empty "
                                                       "tuple of ints, got 'rows'."]),
    (lambda: rj.MinMaxNorm(2.0, 1.0), ValueError, ["max_value must be a finite float >= "
                                                   "min_value (2.0), got 1.0."]),
    (lambda: rj.MinMaxNorm(-0.5), ValueError, ["min_value must be a non-negative", "-0.5"]),
    (lambda: rj.MinMaxNorm(rate=2.0), ValueError, ["rate must be a float in (0, 1], got 2.0."]),
    (lambda: rj.MinMaxNorm(rate=0.0), ValueError, ["rate must be a float in (0, 1], got 0.0."]),
    (lambda: rj.UnitNorm(axis=[]), TypeError, ["axis must be an int or a non-empty tuple"]),
    (lambda: rj.L1(float("nan")), ValueError, ["l1 must be a non-negative finite float",
                                               "nan"]),
    (lambda: rj.L2(True), TypeError, ["l2 must be a non-negative finite float, got bool True."]),
    (lambda: rj.L1L2(l2=-1), ValueError, ["l2 must be a non-negative finite float, got -1."]),
])
def test_regularizer_and_constraint_domains(make, error, fragments):
  with raises(error, *fragments):
    make()


def test_constraints_still_project_as_keras_does():
  w = jnp.array([[3.0, 0.1], [4.0, 0.2]])
  np.testing.assert_allclose(rj.MaxNorm(1.0)(w)[:, 0], [0.6, 0.8], rtol=1e-6)
  assert rj.MinMaxNorm(0.5, 1.0, axis=[0]).axis == (0,)


# Apply ----------------------------------------------------------------------------------


def test_inputs_must_be_real_numbers(lstm):
  layer, params = lstm
  with raises(TypeError, "inputs must have a real floating-point, integer or bool dtype",
              "complex64"):
    layer.apply(params, X.astype(jnp.complex64))
  with raises(TypeError, "inputs must have a real", "<U1"):
    layer.apply(params, np.full((B, T, F), "a"))
  with raises(TypeError, "inputs must have a real", "key<fry>"):
    layer.apply(params, jax.random.split(jax.random.key(0), (B, T, F)))
  with raises(TypeError, "initial_state must have a real", "complex64"):
    layer.apply(params, X, initial_state=[jnp.ones((B, U), jnp.complex64)] * 2)
  # integers and bools are numbers: they run in the compute dtype
  np.testing.assert_allclose(layer.apply(params, jnp.ones((B, T, F), jnp.uint8)),
                             layer.apply(params, X), rtol=1e-6)


def test_rng_must_be_one_key(lstm):
  layer, params = lstm
  dropout = rj.LSTM(U, dropout=0.5)
  keys = jax.random.split(jax.random.key(0), 2)
  for call in (lambda: dropout.apply(params, X, training=True, rng=keys),
               lambda: layer.apply(params, X, rng=keys),   # checked even when unused
               lambda: rj.Bidirectional(dropout).apply(
                   {"forward": params, "backward": params}, X, training=True, rng=keys)):
    with raises(ValueError, "rng must be a single jax.random key (shape ())",
                "key array of shape (2,)", "keys[0]"):
      call()
  with raises(ValueError, "key must be a single jax.random key", "(2,)"):
    layer.init(keys, X)
  dropout.apply(params, X, training=True, rng=jax.random.PRNGKey(1))   # a raw key is one key


@pytest.mark.parametrize("lengths", [[9, 1], np.array([1, -1]), jnp.array([6, 5])])
@pytest.mark.parametrize("how", ["eager", "numpy", "bidirectional"])
def test_seq_lengths_outside_0_T_are_refused_not_clipped(lstm, lengths, how):
  layer, params = lstm
  bad = [i for i, n in enumerate(np.asarray(lengths)) if not 0 <= n <= T]
  fragments = [f"seq_lengths[{i}] = {np.asarray(lengths)[i]}" for i in bad]
  if how == "numpy":
    lengths = np.asarray(lengths)
  with raises(ValueError, f"seq_lengths must lie in [0, T] = [0, {T}]", *fragments):
    if how == "bidirectional":
      rj.Bidirectional(layer).apply({"forward": params, "backward": params}, X,
                                    seq_lengths=lengths)
    else:
      layer.apply(params, X, seq_lengths=lengths)


def test_seq_lengths_edges_are_valid(lstm):
  layer, params = lstm
  out = layer.apply(params, X, seq_lengths=jnp.array([0, T]))
  np.testing.assert_array_equal(out[0], 0.0)   # an empty row keeps its zero state


def test_eager_calls_check_concrete_values_before_jit(lstm, monkeypatch):
  """The eager cache traces `prepare` inside jit: the value check runs before it."""
  from rnnjax.layers import _eager
  layer, params = lstm
  calls = []
  monkeypatch.setattr(_eager, "_compiled", lambda *a: calls.append(a))
  with raises(ValueError, "seq_lengths must lie in [0, T]"):
    layer.apply(params, X, seq_lengths=jnp.array([T + 1, 0]))
  assert calls == []


def test_which_path_takes_arrays_not_shapes(lstm):
  layer, _ = lstm
  with raises(TypeError, "inputs must hold arrays, got int 4", "jax.ShapeDtypeStruct"):
    rj.kernels.which_path(layer, (4, 6, 3))
  with raises(TypeError, "inputs must have a real", "complex64"):
    rj.kernels.which_path(layer, jax.ShapeDtypeStruct((4, 6, 3), jnp.complex64))
  assert rj.kernels.which_path(layer, jax.ShapeDtypeStruct((4, 6, 3), jnp.float32)).path


# Functions over a layer's params --------------------------------------------------------


def test_regularization_and_constraints_take_the_layers_own_params(lstm):
  _, params = lstm
  layer = rj.LSTM(U, kernel_regularizer="l2", kernel_constraint="non_neg")
  for fn in (rj.regularization_loss, rj.apply_constraints):
    with raises(TypeError, "params must be the dict that LSTMCell.init returns",
                "got dict with keys ['params']"):
      fn(layer, {"params": params})
    with raises(ValueError, "params['recurrent_kernel'] must have shape (4, 16)",
                "got shape (1, 16)"):
      fn(layer, jax.tree.map(lambda p: p[:1], params))
    with raises(ValueError, "params['bias'] must be a floating-point array", "int32"):
      fn(layer, {**params, "bias": params["bias"].astype(jnp.int32)})
    with raises(TypeError, "params must be the dict that LSTMCell.init returns"):
      fn(rj.Bidirectional(layer), {"forward": params, "backward": {"params": params}})
  with raises(TypeError, "outputs must be what layer.apply returned", "got int 3"):
    rj.regularization_loss(layer, params, outputs=[3])


def test_with_constraints_needs_an_optimizer(lstm):
  layer, _ = lstm
  with raises(TypeError, "optimizer must be an optax GradientTransformation", "got str 'adam'"):
    rj.with_constraints("adam", layer)
  rj.with_constraints(optax.adam(1e-3), layer)


# Direct cell calls ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def cell_params():
  return {name: cell.init(jax.random.key(0), (F,)) for name, cell in
          (("lstm", rj.LSTMCell(U)), ("gru", rj.GRUCell(U)))}


def test_cells_check_their_call(cell_params):
  lstm, gru = rj.LSTMCell(U), rj.GRUCell(U)
  h = jnp.zeros((B, U))
  with raises(ValueError, "states must hold 2 state array(s) of shapes ((2, 4), (2, 4))",
              "got ((2, 4),)"):
    lstm(cell_params["lstm"], X[:, 0], (h,))
  with raises(ValueError, "inputs have 7 features but params were built for 3"):
    gru(cell_params["gru"], jnp.ones((B, 7)), (h,))
  with raises(ValueError, "states has batch size 3 but the inputs have batch size 2"):
    gru(cell_params["gru"], X[:, 0], (jnp.zeros((3, U)),))
  with raises(ValueError, "GRUCell(units=4) must be one time step with a batch axis",
              "got shape (3,)"):
    gru(cell_params["gru"], X[0, 0], (h,))
  with raises(TypeError, "params must be the dict that GRUCell.init returns"):
    gru({"params": cell_params["gru"]}, X[:, 0], (h,))
  with raises(TypeError, "inputs must have a real", "complex64"):
    gru(cell_params["gru"], X[:, 0].astype(jnp.complex64), (h,))
  with raises(TypeError, "states must be a tuple of 1 arrays", "got str 'h'"):
    gru(cell_params["gru"], X[:, 0], "h")
  out, (h_new,) = gru(cell_params["gru"], X[:, 0], h)   # a bare array for one state, as Keras
  assert out.shape == h_new.shape == (B, U)


def test_conv_lstm_cell_checks_its_states():
  cell = rj.ConvLSTM1DCell(2, 3)
  params = cell.init(jax.random.key(0), (5, F))
  with raises(ValueError, "states must hold state arrays of shapes ((2, 3, 2), (2, 3, 2))",
              "got ((2, 5, 2), (2, 5, 2))"):
    cell(params, jnp.ones((B, 5, F)), (jnp.zeros((B, 5, 2)),) * 2)


def test_stacked_cells_check_their_call(cell_params):
  stack = rj.StackedRNNCells([rj.LSTMCell(U), rj.GRUCell(3)])
  params = stack.init(jax.random.key(0), (F,))
  states = stack.initial_state(B)
  with raises(ValueError, "inputs have 7 features but params were built for 3"):
    stack(params, jnp.ones((B, 7)), states)
  with raises(ValueError, "states of StackedRNNCells must hold one state tuple per cell (2)",
              "got 1 entries"):
    stack(params, X[:, 0], states[:1])
  with raises(ValueError, "states must hold state arrays of shapes ((2, 3),)", "got ((2, 5),)"):
    stack(params, X[:, 0], (states[0], (jnp.zeros((B, 5)),)))
  with raises(TypeError, "params of StackedRNNCells must be a tuple with one entry per cell"):
    stack(params[0], X[:, 0], states)
  out, _ = stack(params, X[:, 0], states)
  assert out.shape == (B, 3)
