"""Params are checked against the layer's own `jax.eval_shape(init)` before tracing: a
missing, extra, misshaped or wrongly typed entry raises a ValueError naming the entry,
what it got and what was expected (before: a missing bias ran without bias, a (1,) bias
broadcast to every gate, use_bias=False ignored a given bias, a GRU raised KeyError)."""

import re

import numpy as np
import pytest

import jax
import jax.numpy as jnp
import rnnjax as rj

X = jnp.ones((2, 5, 3))


def _raises(layer, params, *parts):
  with pytest.raises(ValueError) as info:
    layer.apply(params, X)
  for part in parts:
    assert part in str(info.value), (part, str(info.value))


@pytest.mark.parametrize("layer", [rj.LSTM(4), rj.GRU(4), rj.SimpleRNN(4)],
                         ids=lambda l: type(l).__name__)
def test_missing_bias_is_named(layer):
  params = dict(layer.init(jax.random.key(0), X))
  del params["bias"]
  _raises(layer, params, "params must have the keys ['bias', 'kernel', 'recurrent_kernel']",
          "missing 'bias'")


def test_broadcastable_bias_is_refused():
  layer = rj.LSTM(4)
  params = {**layer.init(jax.random.key(0), X), "bias": jnp.zeros((1,))}
  _raises(layer, params, "params['bias'] must have shape (16,)", "got shape (1,)")


def test_bias_given_to_a_layer_without_bias_is_refused():
  layer = rj.GRU(4, use_bias=False)
  params = {**layer.init(jax.random.key(0), X), "bias": jnp.zeros((2, 12))}
  _raises(layer, params, "unexpected 'bias'")


def test_gru_bias_layout_is_checked():
  layer = rj.GRU(4)   # reset_after=True: bias (2, 12)
  params = {**layer.init(jax.random.key(0), X), "bias": jnp.zeros((12,))}
  _raises(layer, params, "params['bias'] must have shape (2, 12)", "got shape (12,)")


def test_wrongly_typed_entries_are_named():
  layer = rj.LSTM(4)
  params = layer.init(jax.random.key(0), X)
  _raises(layer, {**params, "bias": [0.0] * 16}, "params['bias'] must be an array of shape (16,)")
  _raises(layer, {**params, "bias": jnp.zeros((16,), jnp.int32)},
          "params['bias'] must be a floating-point array", "int32")


def test_stacked_and_bidirectional_params_are_checked_per_entry():
  stack = rj.RNN([rj.LSTMCell(4), rj.GRUCell(3)])
  params = stack.init(jax.random.key(0), X)
  bad = (params[0], {**params[1], "recurrent_kernel": jnp.zeros((3, 3))})
  _raises(stack, bad, "params[1]['recurrent_kernel'] must have shape (3, 9)")
  bidir = rj.Bidirectional(rj.LSTM(4))
  p = bidir.init(jax.random.key(0), X)
  bad = {"forward": p["forward"], "backward": {k: v for k, v in p["backward"].items()
                                               if k != "bias"}}
  with pytest.raises(ValueError, match=re.escape("missing 'bias'")):
    bidir.apply(bad, X)


def test_other_float_dtypes_and_the_exact_params_run():
  layer = rj.LSTM(4)
  params = layer.init(jax.random.key(0), X)
  want = layer.apply(params, X)
  got = layer.apply(jax.tree.map(lambda p: p.astype(jnp.float64) if jax.config.x64_enabled
                                 else p.astype(jnp.bfloat16).astype(jnp.float32), params), X)
  np.testing.assert_allclose(got, want, atol=0.05)


def test_the_check_is_cached_per_layer_and_shapes(monkeypatch):
  layer = rj.GRU(5)
  params = layer.init(jax.random.key(0), X)
  calls = []
  original = rj.GRUCell.init

  def counting(self, key, shape):
    calls.append(shape)
    return original(self, key, shape)

  monkeypatch.setattr(rj.GRUCell, "init", counting)
  for _ in range(3):
    layer.apply(params, X)
  assert len(calls) <= 1   # traced once (eval_shape), then cached
