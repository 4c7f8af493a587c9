"""rj.linen: modules give exactly the pure layers' results with the same params, keep
params in the Keras layout, show the Keras guide's parameter counts in nn.tabulate,
differentiate, jit, stream stateful carries and draw dropout from the "dropout" rng."""

import inspect
import subprocess
import sys

import flax.linen as nn
import numpy as np
import pytest

import jax
import jax.numpy as jnp
import rnnjax as rj

from tests.adapter_cases import (B, CASES, F, T, assert_trees_close, assert_trees_equal, count,
                                 normal)

KEY = jax.random.key(0)
# Equality with the pure layers -------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_module_equals_pure_layer_with_the_same_params(case):
  layer, x, _ = CASES[case]
  module = rj.linen.wrap(layer)
  variables = module.init(KEY, x)
  params = rj.linen.pure_params(variables["params"])
  # The params collection holds the pure layer's params pytree (named per top entry).
  assert jax.tree.structure(params) == jax.tree.structure(layer.init(KEY, x))
  assert_trees_equal(rj.linen.named_params(params), variables["params"])
  # One compilation for both (eager calls compile their scans one by one).
  run = jax.jit(lambda v: (module.apply(v, x), layer.apply(rj.linen.pure_params(v["params"]), x)))
  got, want = run(variables)
  assert_trees_close(got, want)


def test_keras_names_in_the_params_collection():
  class Model(nn.Module):
    @nn.compact
    def __call__(self, x):
      x = rj.linen.GRU(4, return_sequences=True)(x)
      return rj.linen.RNN([rj.LSTMCell(3), rj.SimpleRNNCell(2)])(x)

  x = normal(0, (B, T, F))
  params = Model().init(KEY, x)["params"]
  shapes = jax.tree.map(jnp.shape, params)
  assert shapes == {
      "GRU_0": {"kernel": (F, 12), "recurrent_kernel": (4, 12), "bias": (2, 12)},
      "RNN_0": {"cell_0": {"kernel": (4, 12), "recurrent_kernel": (3, 12), "bias": (12,)},
                "cell_1": {"kernel": (3, 2), "recurrent_kernel": (2, 2), "bias": (2,)}},
  }
  # Custom cells: dict keys, or one variable "cell".
  assert set(rj.linen.wrap(CASES["nested"][0]).init(KEY, CASES["nested"][1])["params"]) == {
      "kernel_1", "kernel_2", "recurrent_kernel"}
  assert set(rj.linen.wrap(CASES["array_params"][0]).init(KEY, x)["params"]) == {"cell"}


def test_call_arguments_reach_the_pure_layer():
  layer = rj.LSTM(4, return_sequences=True, return_state=True, zero_output_for_mask=True)
  module = rj.linen.LSTM(4, return_sequences=True, return_state=True, zero_output_for_mask=True)
  x = normal(1, (B, T, F))
  variables = module.init(KEY, x)
  params = variables["params"]
  h0, c0 = normal(2, (B, 4)), normal(3, (B, 4))
  mask = np.arange(T)[None, :] < np.array([T, 3, 1])[:, None]
  reset = np.zeros((B, T), bool)
  reset[:, 2] = True
  calls = ({"initial_state": (h0, c0), "mask": mask},
           {"initial_state": [h0, c0], "reset": reset},
           {"seq_lengths": np.array([2, T, 4])})

  @jax.jit
  def both(variables):
    return [(module.apply(variables, x, **kw), layer.apply(variables["params"], x, **kw))
            for kw in calls]

  for got, want in both(variables):
    assert_trees_close(got, want)


def test_constructor_mirrors_the_layer():
  sig = inspect.signature(rj.linen.LSTM)
  assert list(sig.parameters)[0] == "units"
  assert sig.parameters["units"].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
  assert sig.parameters["return_sequences"].kind is inspect.Parameter.KEYWORD_ONLY
  assert sig.parameters["unit_forget_bias"].default is True
  assert list(inspect.signature(rj.linen.RNN).parameters)[0] == "cell"
  module = rj.linen.GRU(7, reset_after=False, dropout=0.25, name="enc")
  assert module.pure_layer == rj.GRU(7, reset_after=False, dropout=0.25)
  assert module.name == "enc"
  # Lists of cells become tuples, so the module stays hashable (a valid static value).
  stacked = rj.linen.RNN([rj.LSTMCell(3), rj.GRUCell(4)])
  assert hash(stacked) == hash(rj.linen.RNN((rj.LSTMCell(3), rj.GRUCell(4))))


def test_bad_arguments_raise_when_the_module_is_built():
  with pytest.raises(ValueError, match="units must be a positive int, got 0"):
    rj.linen.LSTM(0)
  with pytest.raises(ValueError, match="dropout must be in"):
    rj.linen.GRU(4, dropout=1.5)
  with pytest.raises(TypeError, match="cell must be an rnnjax Cell"):
    rj.linen.RNN("lstm")
  with pytest.raises(TypeError, match="training must be a Python bool"):
    rj.linen.LSTM(4).init(KEY, normal(0, (B, T, F)), training=jnp.array(True))
  with pytest.raises(TypeError, match="layer must be an rnnjax layer"):
    rj.linen.wrap(nn.Dense(3))


# nn.tabulate: the Keras RNN guide's models -------------------------------------------


def _tabulated_total(model, *inputs) -> str:
  table = nn.tabulate(model, KEY, console_kwargs={"width": 200})(*inputs)
  return table


class GuideLSTM(nn.Module):
  @nn.compact
  def __call__(self, tokens):
    x = nn.Embed(1000, 64)(tokens)
    return nn.Dense(10)(rj.linen.LSTM(128)(x))


class GuideGRUSimpleRNN(nn.Module):
  @nn.compact
  def __call__(self, tokens):
    x = nn.Embed(1000, 64)(tokens)
    x = rj.linen.GRU(256, return_sequences=True)(x)
    return nn.Dense(10)(rj.linen.SimpleRNN(128)(x))


class GuideEncoderDecoder(nn.Module):
  units: int = 64
  vocab: tuple = (1000, 2000)

  @nn.compact
  def __call__(self, encoder_tokens, decoder_tokens):
    encoded = nn.Embed(self.vocab[0], 64)(encoder_tokens)
    _, h, c = rj.linen.LSTM(self.units, return_state=True, name="encoder")(encoded)
    decoded = nn.Embed(self.vocab[1], 64)(decoder_tokens)
    out = rj.linen.LSTM(self.units, name="decoder")(decoded, initial_state=[h, c])
    return nn.Dense(10)(out)


class GuideBidirectional(nn.Module):
  @nn.compact
  def __call__(self, x):
    x = rj.linen.Bidirectional(rj.linen.LSTM(64, return_sequences=True))(x)
    x = rj.linen.Bidirectional(rj.linen.LSTM(32))(x)
    return nn.Dense(10)(x)


TOKENS = jnp.zeros((1, 10), jnp.int32)


@pytest.mark.parametrize("model,inputs,total", [
    (GuideLSTM(), (TOKENS,), 164_106),
    (GuideGRUSimpleRNN(), (TOKENS,), 361_866),
    (GuideEncoderDecoder(), (TOKENS, TOKENS[:, :7]), 258_698),
    (GuideBidirectional(), (jnp.zeros((1, 5, 10)),), 80_266),
])
def test_tabulate_shows_the_keras_guide_parameter_counts(model, inputs, total):
  table = _tabulated_total(model, *inputs)
  assert f"Total Parameters: {total:,}" in table
  assert count(jax.eval_shape(model.init, KEY, *inputs)["params"]) == total


def test_encoder_states_feed_the_decoder():
  model = GuideEncoderDecoder(units=6, vocab=(20, 30))
  enc, dec = jnp.arange(12).reshape(2, 6) % 20, jnp.arange(10).reshape(2, 5) % 30
  variables = jax.jit(model.init)(KEY, enc, dec)

  def by_hand(p):
    encoded = p["Embed_0"]["embedding"][enc]
    _, h, c = rj.LSTM(6, return_state=True).apply(p["encoder"], encoded)
    out = rj.LSTM(6).apply(p["decoder"], p["Embed_1"]["embedding"][dec], initial_state=[h, c])
    return out @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"].reshape(1, -1)

  got, want = jax.jit(lambda v: (model.apply(v, enc, dec), by_hand(v["params"])))(variables)
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


# Bidirectional (needs rj.Bidirectional) ------------------------------------------------


def test_bidirectional_equals_pure_bidirectional():
  x = normal(7, (B, T, F))
  for module, pure in [
      (rj.linen.Bidirectional(rj.linen.LSTM(4, return_sequences=True)),
       rj.Bidirectional(rj.LSTM(4, return_sequences=True))),
      (rj.linen.Bidirectional(rj.linen.GRU(3, return_state=True), merge_mode="sum",
                              backward_layer=rj.linen.GRU(3, return_state=True,
                                                          go_backwards=True)),
       rj.Bidirectional(rj.GRU(3, return_state=True), merge_mode="sum",
                        backward_layer=rj.GRU(3, return_state=True, go_backwards=True))),
  ]:
    variables = module.init(KEY, x)
    assert set(variables["params"]) == {"forward", "backward"}
    assert jax.tree.structure(variables["params"]) == jax.tree.structure(pure.init(KEY, x))
    assert_trees_close(module.apply(variables, x), pure.apply(variables["params"], x))


# Transforms ---------------------------------------------------------------------------


def test_grad_through_model_apply_equals_grad_of_the_pure_layer():
  layer = rj.LSTM(4, return_sequences=True)
  module = rj.linen.wrap(layer)
  x = normal(8, (B, T, F))
  params = module.init(KEY, x)["params"]

  def module_loss(p):
    return jnp.sum(jnp.sin(module.apply({"params": p}, x)))

  def pure_loss(p):
    return jnp.sum(jnp.sin(layer.apply(p, x)))

  got = jax.jit(jax.grad(module_loss))(params)
  want = jax.grad(pure_loss)(params)
  for name in ("kernel", "recurrent_kernel", "bias"):
    assert np.abs(np.asarray(got[name])).min() >= 0 and np.abs(np.asarray(got[name])).max() > 0
    np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6)


def test_jit_of_apply_equals_eager_and_traces_once():
  module = rj.linen.GRU(4, return_state=True)
  x = normal(9, (B, T, F))
  variables = module.init(KEY, x)
  traces = []

  @jax.jit
  def run(variables, x):
    traces.append(1)
    return module.apply(variables, x)

  assert_trees_close(run(variables, x), module.apply(variables, x))
  run(variables, x + 1.0)
  assert len(traces) == 1


# Stateful streaming -------------------------------------------------------------------


@pytest.mark.parametrize("cls", ["LSTM", "GRU"])
def test_streaming_through_mutable_carry_equals_one_call(cls):
  module = getattr(rj.linen, cls)(4, stateful=True, return_sequences=True)
  whole_layer = getattr(rj, cls)(4, return_sequences=True, return_state=True)
  x = normal(10, (B, 7, F))
  variables = module.init(KEY, x[:, :3])
  # init stores a zero state, not the state after init's inputs.
  for s in jax.tree.leaves(variables["carry"]):
    np.testing.assert_array_equal(s, np.zeros((B, 4)))

  step = jax.jit(lambda v, chunk: module.apply(v, chunk, mutable=["carry"]))
  outs = []
  for chunk in (x[:, :3], x[:, 3:4], x[:, 4:]):
    out, updates = step(variables, chunk)
    variables = {**variables, **updates}
    outs.append(out)
  want_out, *want_state = whole_layer.apply(variables["params"], x)
  np.testing.assert_allclose(np.concatenate(outs, axis=1), want_out, rtol=1e-5, atol=1e-6)
  got_state = variables["carry"]["state"]
  assert isinstance(got_state, tuple) and len(got_state) == len(want_state)
  for g, w in zip(got_state, want_state):
    np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_reset_carry_all_rows_or_some():
  class Model(nn.Module):
    @nn.compact
    def __call__(self, x):
      x = rj.linen.GRU(4, stateful=True, return_sequences=True)(x)
      return rj.linen.LSTM(3, stateful=True)(x)

  model = Model()
  x = normal(11, (B, T, F))
  variables = model.init(KEY, x)
  _, updates = model.apply(variables, x, mutable=["carry"])
  variables = {**variables, **updates}
  carry = variables["carry"]
  assert all(np.abs(np.asarray(s)).max() > 0 for s in jax.tree.leaves(carry))

  where = np.array([True, False, True])
  partial = rj.linen.reset_carry(variables, where=where)
  assert partial["params"] is variables["params"]
  for got, before in zip(jax.tree.leaves(partial["carry"]), jax.tree.leaves(carry)):
    np.testing.assert_array_equal(got[where], 0.0)
    np.testing.assert_array_equal(got[~where], before[~where])
  # Continuing after a full reset equals starting fresh.
  fresh = rj.linen.reset_carry(variables)
  assert all(np.all(np.asarray(s) == 0) for s in jax.tree.leaves(fresh["carry"]))
  again = model.apply(fresh, x, mutable=["carry"])[0]
  first = model.apply(model.init(KEY, x), x, mutable=["carry"])[0]
  np.testing.assert_array_equal(again, first)
  with pytest.raises(ValueError, match=r"where must be a bool array of shape \(B,\) = \(3,\)"):
    rj.linen.reset_carry(variables, where=np.array([True, False]))


def test_reset_state_method_of_a_stateful_module():
  module = rj.linen.LSTM(4, stateful=True)
  x = normal(12, (B, T, F))
  variables = module.init(KEY, x)
  _, updates = module.apply(variables, x, mutable=["carry"])
  _, reset = module.apply({**variables, **updates}, method="reset_state", mutable=["carry"],
                          where=np.array([False, True, False]))
  h, c = reset["carry"]["state"]
  np.testing.assert_array_equal(h[1], 0.0)
  np.testing.assert_array_equal(h[0], updates["carry"]["state"][0][0])
  with pytest.raises(ValueError, match="no carried state to reset"):
    rj.linen.LSTM(4).apply(rj.linen.LSTM(4).init(KEY, x), method="reset_state",
                           mutable=["carry"])


def test_stateful_call_without_mutable_carry_says_how():
  module = rj.linen.GRU(4, stateful=True)
  x = normal(13, (B, T, F))
  variables = module.init(KEY, x)
  with pytest.raises(ValueError, match=r"mutable=\['carry'\]"):
    module.apply(variables, x)
  with pytest.raises(ValueError, match="batch size 2 but the inputs have batch size 3"):
    module.apply({**variables, "carry": {"state": (jnp.zeros((2, 4)),)}}, x, mutable=["carry"])


# Dropout -------------------------------------------------------------------------------


def test_dropout_draws_from_the_dropout_rng_as_the_pure_layer_would():
  # The module draws one key per call from the "dropout" stream; a probe module at the
  # same path draws the same key, which the pure layer then gets as rng=.
  class Probe(nn.Module):
    @nn.compact
    def __call__(self):
      return self.make_rng("dropout")

  module = rj.linen.LSTM(8, dropout=0.5, return_sequences=True)
  pure = module.pure_layer
  x = normal(14, (B, T, F))
  variables = jax.jit(module.init)(KEY, x)
  train = jax.jit(lambda v, k: module.apply(v, x, training=True, rngs={"dropout": k}))
  k1, k2 = jax.random.key(1), jax.random.key(2)
  out1, out2 = train(variables, k1), train(variables, k2)
  drawn = Probe().apply({}, rngs={"dropout": k1})
  want, eval_out = jax.jit(lambda p: (pure.apply(p, x, training=True, rng=drawn),
                                      module.apply({"params": p}, x)))(variables["params"])
  assert_trees_close(out1, want)
  assert np.abs(np.asarray(out1 - eval_out)).max() > 1e-2
  assert np.abs(np.asarray(out1 - out2)).max() > 1e-2
  grads = jax.jit(jax.grad(lambda p: jnp.sum(module.apply({"params": p}, x, training=True,
                                                          rngs={"dropout": k1}))))(
      variables["params"])
  assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(grads))
  with pytest.raises(ValueError, match=r"training=True but no 'dropout' rng: pass rngs="):
    module.apply(variables, x, training=True)


# Import cost ---------------------------------------------------------------------------


def test_import_rnnjax_does_not_import_flax_or_orbax():
  code = ("import sys, rnnjax; "
          "print(sorted(m for m in sys.modules if m.split('.')[0] in ('flax', 'orbax')))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "[]"
