"""Layers and inputs shared by the Flax adapter tests: every built-in layer, stacked
cells, and custom cells whose params are a dict, a bare array, and whose inputs are a
pytree (tests/cells.py's PairInputCell: a vector and a matrix per step)."""

import jax
import jax.numpy as jnp
import numpy as np
import rnnjax as rj
from tests.cells import ArrayParamsCell, PairInputCell

B, T, F = 3, 6, 5


def normal(seed, shape):
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def nested_inputs(seed=0):
  return (normal(seed, (B, T, 4)), normal(seed + 1, (B, T, 2, 3)))


# name -> (pure layer, inputs, NNX in_features)
CASES = {
    "lstm": (rj.LSTM(4, return_sequences=True, return_state=True), normal(0, (B, T, F)), F),
    "gru": (rj.GRU(4, go_backwards=True), normal(1, (B, T, F)), F),
    "gru_before": (rj.GRU(4, reset_after=False, return_state=True), normal(2, (B, T, F)), F),
    "simple_rnn": (rj.SimpleRNN(4, return_sequences=True, activation="relu"),
                   normal(3, (B, T, F)), F),
    "stacked": (rj.RNN([rj.LSTMCell(3), rj.GRUCell(4)], return_state=True),
                normal(4, (B, T, F)), F),
    "nested": (rj.RNN(PairInputCell(4), return_sequences=True), nested_inputs(5),
               ((4,), (2, 3))),
    "array_params": (rj.RNN(ArrayParamsCell(F)), normal(6, (B, T, F)), F),
    "conv_lstm_1d": (rj.ConvLSTM1D(2, 3, padding="same", return_state=True),
                     normal(7, (B, T, 5, F)), (5, F)),
}


def count(tree) -> int:
  return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(tree))


def assert_trees_equal(got, want):
  assert jax.tree.structure(got) == jax.tree.structure(want)
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    assert g.dtype == w.dtype
    np.testing.assert_array_equal(np.asarray(g), np.asarray(w))


def assert_trees_close(got, want, tol=1e-6):
  """Equal structure and dtypes, values within `tol` (a few float32 ulps): for results of
  separately compiled programs, where XLA may fuse differently by one rounding."""
  assert jax.tree.structure(got) == jax.tree.structure(want)
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    assert g.dtype == w.dtype
    np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=tol, atol=tol)
