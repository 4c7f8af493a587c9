"""Regularizers and constraints: `rj.regularization_loss` against Keras's `layer.losses`,
`rj.apply_constraints` against Keras's constraint functions on the same weights, both in
an optax training loop (`rj.with_constraints`), custom-cell hooks, and bad input."""

import jax
import jax.numpy as jnp
import keras
import numpy as np
import optax
import pytest

import rnnjax as rj

from tests import fast_jit, keras_reference as ref
from tests.cells import ScaledCell
from tests.test_errors import raises

B, T, F, U = 8, 6, 3, 4
CHEAP = dict(kernel_initializer="zeros", recurrent_initializer="zeros")


def _x(seed=0):
  return np.random.default_rng(seed).normal(size=(B, T, F)).astype("float32")


def _keras_losses(k_layer, x, **call):
  weights = ref.build_for_shape(k_layer, x.shape, seed=1)
  ref.run(k_layer, x, **call)
  return weights, float(sum(np.asarray(l) for l in k_layer.losses))


PENALTY_CASES = {
    "lstm_all_roles_and_activity_with_states": (
        lambda: keras.layers.LSTM(U, kernel_regularizer="l2", recurrent_regularizer="l1",
                                  bias_regularizer=keras.regularizers.L1L2(0.01, 0.02),
                                  activity_regularizer="l2", return_state=True, **CHEAP),
        lambda: rj.LSTM(U, kernel_regularizer="l2", recurrent_regularizer="l1",
                        bias_regularizer=rj.L1L2(0.01, 0.02), activity_regularizer="l2",
                        return_state=True)),
    "gru_l1_l2_documented_default": (
        lambda: keras.layers.GRU(U, kernel_regularizer=keras.regularizers.L1L2(0.01, 0.01),
                                 bias_regularizer=keras.regularizers.L2(0.3),
                                 activity_regularizer="l1", return_sequences=True, **CHEAP),
        lambda: rj.GRU(U, kernel_regularizer="l1_l2", bias_regularizer=rj.L2(0.3),
                       activity_regularizer="l1", return_sequences=True)),
    "bidirectional": (
        lambda: keras.layers.Bidirectional(
            keras.layers.LSTM(U, kernel_regularizer="l2", recurrent_regularizer="l2",
                              return_sequences=True, **CHEAP), activity_regularizer="l2"),
        lambda: rj.Bidirectional(rj.LSTM(U, kernel_regularizer="l2", recurrent_regularizer="l2",
                                         return_sequences=True), activity_regularizer="l2")),
    "stacked_cells": (
        lambda: keras.layers.RNN([keras.layers.LSTMCell(3, kernel_regularizer="l2", **CHEAP),
                                  keras.layers.GRUCell(U, recurrent_regularizer="l1",
                                                       bias_regularizer="l1", **CHEAP)]),
        lambda: rj.RNN([rj.LSTMCell(3, kernel_regularizer="l2"),
                        rj.GRUCell(U, recurrent_regularizer="l1", bias_regularizer="l1")])),
}


@pytest.mark.parametrize("name", PENALTY_CASES)
def test_penalty_equals_keras_layer_losses(name):
  make_keras, make_rj = PENALTY_CASES[name]
  x = _x(1)
  mask = ref.mixed_mask(B, T)
  weights, want = _keras_losses(make_keras(), x, mask=mask)
  layer = make_rj()
  params = rj.interop.from_keras(layer, weights)
  got = fast_jit.run(lambda p: rj.regularization_loss(layer, p, layer.apply(p, x, mask=mask)), params)
  np.testing.assert_allclose(got, want, rtol=1e-5)
  weights_only = fast_jit.run(lambda p: rj.regularization_loss(layer, p), params)
  assert 0 < weights_only <= got


def test_keras_regularizer_objects_and_callables_are_accepted():
  x = _x(2)
  layer = rj.SimpleRNN(U, kernel_regularizer=keras.regularizers.L2(0.5),
                       recurrent_regularizer=lambda w: 3.0 * jnp.sum(jnp.abs(w)))
  params = fast_jit.init(layer, jax.random.key(0), x)
  want = 0.5 * np.sum(np.square(params["kernel"])) + 3.0 * np.sum(np.abs(params["recurrent_kernel"]))
  with jax.numpy_rank_promotion("allow"):
    np.testing.assert_allclose(rj.regularization_loss(layer, params), want, rtol=1e-5)
  assert rj.regularization_loss(rj.SimpleRNN(U), params) == 0.0


CONSTRAINTS = {
    "max_norm": lambda: keras.constraints.get("max_norm"),
    "non_neg": lambda: keras.constraints.get("non_neg"),
    "unit_norm": lambda: keras.constraints.get("unit_norm"),
    "min_max_norm": lambda: keras.constraints.get("min_max_norm"),
    "MaxNorm": lambda: keras.constraints.get("MaxNorm"),
}


@pytest.mark.parametrize("name", CONSTRAINTS)
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_constraint_projections_equal_keras_constraints(name, kind):
  rng = np.random.default_rng(3)
  roles = dict(kernel_constraint=name, recurrent_constraint=name, bias_constraint=name)
  layer = rj.LSTM(U, **roles) if kind == "lstm" else rj.GRU(U, **roles)
  params = jax.eval_shape(layer.init, jax.random.key(0), jax.ShapeDtypeStruct((B, T, F), jnp.float32))
  params = {k: jnp.asarray(rng.normal(size=v.shape), jnp.float32) for k, v in params.items()}
  got = rj.apply_constraints(layer, params)
  keras_fn = CONSTRAINTS[name]()
  for weight in ("kernel", "recurrent_kernel", "bias"):  # GRU bias is (2, 3U)
    with jax.numpy_rank_promotion("allow"):
      want = np.asarray(keras_fn(params[weight]))
    np.testing.assert_allclose(got[weight], want, rtol=1e-6, atol=1e-7, err_msg=weight)
    if name != "non_neg":
      assert not np.allclose(want, params[weight])


def test_non_default_constraint_arguments_equal_keras():
  w = jnp.asarray(np.random.default_rng(4).normal(size=(5, 12)), jnp.float32)
  pairs = [(rj.MaxNorm(1.5, axis=1), keras.constraints.MaxNorm(1.5, axis=1)),
           (rj.MinMaxNorm(0.5, 0.8, rate=0.5, axis=[0, 1]), keras.constraints.MinMaxNorm(0.5, 0.8, 0.5, [0, 1])),
           (rj.UnitNorm(axis=1), keras.constraints.UnitNorm(axis=1))]
  for mine, theirs in pairs:
    with jax.numpy_rank_promotion("allow"):
      np.testing.assert_allclose(mine(w), np.asarray(theirs(w)), rtol=1e-6, atol=1e-7)


def test_structures_and_custom_cell_hooks():
  layer = rj.Bidirectional(rj.RNN([ScaledCell(3), rj.GRUCell(U, kernel_constraint="non_neg",
                                                                kernel_regularizer=rj.L1(0.5))]))
  params = fast_jit.init(layer, jax.random.key(1), _x())
  projected = rj.apply_constraints(layer, params)
  assert jax.tree.structure(projected) == jax.tree.structure(params)
  for direction in ("forward", "backward"):
    scaled, gru = params[direction]
    assert projected[direction][0]["scale"] == 2.0
    np.testing.assert_array_equal(projected[direction][1]["kernel"], np.maximum(gru["kernel"], 0))
    np.testing.assert_array_equal(projected[direction][1]["recurrent_kernel"], gru["recurrent_kernel"])
  want = sum(float(np.sum(np.square(params[d][0]["w"])) + 0.5 * np.sum(np.abs(params[d][1]["kernel"])))
             for d in ("forward", "backward"))
  np.testing.assert_allclose(rj.regularization_loss(layer, params), want, rtol=1e-5)


def test_training_loop_with_penalty_and_constraints():
  """Adam on MSE + regularization_loss, constraints projected after every update: the
  loss goes down, the constraints hold at every step, and the L2 penalty shrinks the
  kernel compared with the same training without it."""
  x = jnp.asarray(_x(5))
  target = jnp.asarray(np.random.default_rng(6).normal(size=(B, U)), jnp.float32)
  constrained = rj.LSTM(U, kernel_constraint="non_neg", recurrent_constraint=rj.MaxNorm(1.0),
                        kernel_regularizer=rj.L2(0.5))
  free = rj.LSTM(U, kernel_constraint="non_neg", recurrent_constraint=rj.MaxNorm(1.0))
  params = fast_jit.init(free, jax.random.key(2), x)

  def train(layer, params):
    opt = rj.with_constraints(optax.adam(0.05), layer)

    def step(carry, _):
      params, state = carry

      def loss_fn(p):
        return jnp.mean((layer.apply(p, x) - target) ** 2) + rj.regularization_loss(layer, p)

      loss, grads = jax.value_and_grad(loss_fn)(params)
      updates, state = opt.update(grads, state, params)
      new = optax.apply_updates(params, updates)
      exact = rj.apply_constraints(layer, new)
      gap = jax.tree.map(lambda a, b: jnp.max(jnp.abs(a - b)), new, exact)
      return (new, state), (loss, jnp.min(new["kernel"]),
                            jnp.max(jnp.linalg.norm(new["recurrent_kernel"], axis=0)), gap)

    (final, _), trace = jax.lax.scan(step, (params, opt.init(params)), None, length=25)
    return final, trace

  (final, (losses, kmin, rnorm, gap)), (free_final, _) = fast_jit.run(
      lambda p: (train(constrained, p), train(free, p)), params)
  assert losses[-1] < 0.7 * losses[0]
  assert np.all(np.asarray(kmin) >= 0.0)
  assert np.all(np.asarray(rnorm) <= 1.0 + 1e-5)
  assert max(float(v.max()) for v in jax.tree.leaves(gap)) < 1e-6
  assert np.sum(np.square(final["kernel"])) < 0.8 * np.sum(np.square(free_final["kernel"]))


def test_bad_regularizers_and_constraints():
  with raises(ValueError, "kernel_regularizer='l3'", "not a known regularizer", "l1_l2"):
    rj.LSTM(U, kernel_regularizer="l3")
  with raises(TypeError, "bias_regularizer", "callable", "int"):
    rj.GRU(U, bias_regularizer=3)
  with raises(ValueError, "activity_regularizer='l22'"):
    rj.RNN(rj.LSTMCell(U), activity_regularizer="l22")
  with raises(ValueError, "activity_regularizer='x'"):
    rj.Bidirectional(rj.LSTM(U), activity_regularizer="x")
  with raises(ValueError, "recurrent_constraint='maxnorm'", "max_norm", "non_neg"):
    rj.SimpleRNN(U, recurrent_constraint="maxnorm")
  with raises(TypeError, "kernel_constraint", "callable", "float"):
    rj.LSTMCell(U, kernel_constraint=1.0)
  with raises(ValueError, "l1", "non-negative", "-0.1"):
    rj.L1(-0.1)
  layer = rj.LSTM(U, kernel_constraint="non_neg")
  params = jax.eval_shape(layer.init, jax.random.key(0), jax.ShapeDtypeStruct((B, T, F), jnp.float32))
  opt = rj.with_constraints(optax.sgd(0.1), layer)
  with raises(ValueError, "with_constraints needs params", "update(grads, state, params)"):
    opt.update(params, opt.init(params))
  with raises(TypeError, "params of Bidirectional", "['forward', 'backward']"):
    rj.regularization_loss(rj.Bidirectional(layer), params)
  assert hash(rj.LSTM(U, kernel_regularizer="l2")) == hash(rj.LSTM(U, kernel_regularizer="l2"))
