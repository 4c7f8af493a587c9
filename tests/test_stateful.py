"""Stateful streaming as explicit carried state (DESIGN.md "Stateful streaming"): chunks run
one after another equal one run on the whole sequence, for every layer kind; resets; a
state reused as another layer's initial_state; go_backwards chunking (each chunk reversed,
as Keras); the Keras RNN guide's cross-batch statefulness and state-reuse examples
reproduced against Keras 3 with weights copied across."""

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest

import rnnjax as rj

from tests import fast_jit, keras_reference as ref
from tests.registry import LAYERS, STEP_SHAPES
from tests.test_errors import raises

B, T, F = 8, 7, 3
SPLIT = 4

# The registry's layer kinds that take (B, T, F) inputs (ConvLSTM1D takes images); the
# custom cell keeps its short test id here.
KINDS = {("custom" if name == "custom_cell" else name): make
         for name, make in LAYERS.items() if STEP_SHAPES[name] == (F,)}


def _x(seed=0, shape=(B, T, F)):
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def _mask():
  mask = ref.mixed_mask(B, T)
  mask[0, SPLIT - 1:SPLIT + 1] = False  # a gap across the chunk boundary
  return mask


@pytest.fixture(scope="module")
def chunked_vs_whole():
  """For every kind: (whole-sequence result, chunk-by-chunk results), masked, from initial
  states, with return_sequences and return_state, all in one compiled computation."""
  kw = dict(return_sequences=True, return_state=True)
  layers = {k: (make(**kw), make(stateful=True, **kw)) for k, make in KINDS.items()}
  x, mask = _x(1), _mask()
  params = {k: fast_jit.init(whole, jax.random.key(i), x) for i, (k, (whole, _)) in enumerate(layers.items())}
  starts = {k: whole.reset_state(whole.get_initial_state(B)) for k, (whole, _) in layers.items()}
  starts = jax.tree.map(lambda z: jnp.asarray(np.random.default_rng(2).normal(size=z.shape), z.dtype), starts)

  def run(params, starts, x):
    results = {}
    for k, (whole, stateful) in layers.items():
      full = whole.apply(params[k], x, initial_state=starts[k], mask=mask)
      first, state = stateful.apply(params[k], x[:, :SPLIT], initial_state=starts[k], mask=mask[:, :SPLIT])
      second, state2 = stateful.apply(params[k], x[:, SPLIT:], state=state, mask=mask[:, SPLIT:])
      results[k] = (full, first, second, state2)
    return results

  return fast_jit.run(run, params, starts, x)


@pytest.mark.parametrize("kind", KINDS)
def test_chunks_equal_the_whole_sequence(chunked_vs_whole, kind):
  full, first, second, state = chunked_vs_whole[kind]
  np.testing.assert_allclose(np.concatenate([first[0], second[0]], axis=1), full[0], atol=1e-6)
  # out is what the layer returns without stateful: (output, *states); the state is the tuple.
  assert len(second) == len(full)
  for a, b in zip(jax.tree.leaves(second[1:]), jax.tree.leaves(full[1:])):
    np.testing.assert_allclose(a, b, atol=1e-6)
  for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(full[1:])):
    np.testing.assert_allclose(a, b, atol=1e-6)
  assert jax.tree.structure(state) == jax.tree.structure(tuple(full[1:]))


def test_bidirectional_stateful_state_is_flat_and_forward_half_streams():
  """The state is (*forward_states, *backward_states). The forward half of a chunked run
  equals the whole run; the backward layer reads each chunk reversed (as Keras does), so
  it equals a forward layer on [reversed chunk 1, reversed chunk 2]."""
  x = _x(3)
  kw = dict(return_sequences=True, return_state=True)
  bidir = rj.Bidirectional(rj.LSTM(4, stateful=True, **kw), merge_mode=None)
  whole_f = rj.LSTM(4, **kw)
  params = fast_jit.init(bidir, jax.random.key(0), x)

  def run(p, x):
    (y1, r1, *_), state = bidir.apply(p, x[:, :SPLIT])
    (y2, r2, *states), state2 = bidir.apply(p, x[:, SPLIT:], state=state)
    forward = whole_f.apply(p["forward"], x)
    rev_chunks = jnp.concatenate([x[:, :SPLIT][:, ::-1], x[:, SPLIT:][:, ::-1]], axis=1)
    backward = whole_f.apply(p["backward"], rev_chunks)
    return (y1, y2, r1, r2, states, state, state2), forward, backward

  (y1, y2, r1, r2, states, state, state2), forward, backward = fast_jit.run(run, params, x)
  assert len(state) == 4 and all(s.shape == (B, 4) for s in state)
  np.testing.assert_allclose(np.concatenate([y1, y2], 1), forward[0], atol=1e-6)
  # y_rev is returned in input order within each chunk.
  np.testing.assert_allclose(r1[:, ::-1], backward[0][:, :SPLIT], atol=1e-6)
  np.testing.assert_allclose(r2[:, ::-1], backward[0][:, SPLIT:], atol=1e-6)
  for a, b in zip(state2, (*forward[1:], *backward[1:])):
    np.testing.assert_allclose(a, b, atol=1e-6)
  for a, b in zip(states, state2):
    np.testing.assert_array_equal(a, b)
  fresh = bidir.reset_state(state2)
  assert all(np.all(np.asarray(s) == 0) for s in fresh)


def test_go_backwards_chunks_are_each_reversed():
  """Decision (as Keras): a stateful go_backwards layer processes each chunk reversed and
  carries its state to the next chunk, so chunking is NOT the whole sequence reversed."""
  x = _x(4)
  back = rj.GRU(4, go_backwards=True, stateful=True, return_sequences=True)
  fwd = rj.GRU(4, return_sequences=True)
  params = fast_jit.init(fwd, jax.random.key(1), x)

  def run(p, x):
    o1, s = back.apply(p, x[:, :SPLIT])
    o2, _ = back.apply(p, x[:, SPLIT:], state=s)
    rev_chunks = jnp.concatenate([x[:, :SPLIT][:, ::-1], x[:, SPLIT:][:, ::-1]], axis=1)
    return jnp.concatenate([o1, o2], 1), fwd.apply(p, rev_chunks), fwd.apply(p, x[:, ::-1])

  chunked, want, whole_reversed = fast_jit.run(run, params, x)
  np.testing.assert_allclose(chunked, want, atol=1e-6)
  assert np.abs(np.asarray(chunked) - np.asarray(whole_reversed)).max() > 1e-3


def test_go_backwards_chunking_matches_keras_stateful():
  x = np.asarray(_x(5))
  k_layer = keras.layers.LSTM(4, stateful=True, go_backwards=True, return_sequences=True)
  weights = ref.build_for_shape(k_layer, (B, SPLIT, F), seed=3)
  want = [ref.run(k_layer, x[:, :SPLIT + 1]), ref.run(k_layer, x[:, SPLIT + 1:])]
  layer = rj.LSTM(4, stateful=True, go_backwards=True, return_sequences=True)
  params = rj.interop.from_keras(layer, weights)

  def run(p, x):
    o1, s = layer.apply(p, x[:, :SPLIT + 1])
    return o1, layer.apply(p, x[:, SPLIT + 1:], state=s)[0]

  for g, w in zip(fast_jit.run(run, params, x), want):
    np.testing.assert_allclose(g, w, atol=1e-5)


def test_reset_state_all_rows_or_some():
  layer = rj.LSTM(4, stateful=True)
  x = _x(6)
  params = fast_jit.init(layer, jax.random.key(2), x)
  where = np.array([True, False] * (B // 2))

  def run(p, x):
    _, state = layer.apply(p, x)
    out_partial, _ = layer.apply(p, x, state=layer.reset_state(state, where=where))
    out_fresh, _ = layer.apply(p, x, state=layer.reset_state(state))
    out_carried, _ = layer.apply(p, x, state=state)
    return state, out_partial, out_fresh, out_carried, layer.apply(p, x)[0]

  state, partial, fresh, carried, first = fast_jit.run(run, params, x)
  np.testing.assert_allclose(fresh, first, atol=1e-6)
  np.testing.assert_allclose(partial[where], first[where], atol=1e-6)
  np.testing.assert_allclose(partial[~where], carried[~where], atol=1e-6)
  assert np.abs(np.asarray(carried) - np.asarray(first)).max() > 1e-3
  zeroed = layer.reset_state(state, where=where)
  assert np.all(np.asarray(zeroed[0])[where] == 0)
  np.testing.assert_array_equal(np.asarray(zeroed[1])[~where], np.asarray(state[1])[~where])


def test_a_stateful_state_is_another_layers_initial_state():
  x = _x(7)
  stateful = rj.GRU(4, stateful=True)
  plain = rj.GRU(4, return_state=True)
  params = fast_jit.init(plain, jax.random.key(3), x)

  def run(p, x):
    _, state = stateful.apply(p, x)
    return state, plain.apply(p, x), plain.apply(p, x, initial_state=state)

  state, (_, h), (out, h2) = fast_jit.run(run, params, x)
  assert isinstance(state, tuple) and len(state) == 1
  np.testing.assert_array_equal(state[0], h)
  assert np.abs(np.asarray(h2) - np.asarray(h)).max() > 1e-3


def test_bad_stateful_input():
  layer = rj.LSTM(4, stateful=True)
  x = _x()
  params = jax.eval_shape(layer.init, jax.random.key(0), x)
  state = layer.get_initial_state(B)
  with raises(ValueError, "state has batch size 8", "batch size 6", "(6, 4)"):
    layer.apply(params, _x(0, (6, T, F)), state=state)
  with raises(ValueError, "state must hold 2 state array(s)"):
    layer.apply(params, x, state=state[:1])
  with raises(ValueError, "where", "(B,) = (8,)", "(4,)"):
    layer.reset_state(state, where=np.ones(4, bool))
  with raises(TypeError, "state must be the state tuple", "NoneType"):
    layer.reset_state(None)
  bidir = rj.Bidirectional(rj.LSTM(4, stateful=True))
  with raises(ValueError, "state must hold 4 states", "got 2"):
    bidir.apply(jax.eval_shape(bidir.init, jax.random.key(0), x), x, state=state)


# The Keras RNN guide ---------------------------------------------------------


def test_keras_guide_cross_batch_statefulness_and_state_reuse():
  """"Cross-batch statefulness": paragraph1..3 fed in sequence to LSTM(64, stateful=True),
  then reset_states(); "RNN state reuse": the states after paragraph2 as the
  initial_state of a new LSTM(64) on paragraph3. Keras 3 runs the same, weights copied."""
  rng = np.random.default_rng(0)
  paragraphs = [rng.random((20, 10, 50)).astype(np.float32) for _ in range(3)]
  k_lstm = keras.layers.LSTM(64, stateful=True)
  k_new = keras.layers.LSTM(64)
  with jax.numpy_rank_promotion("allow"):
    k_lstm.build((20, 10, 50))
    k_new.build((20, 10, 50))
  w_lstm, w_new = ref.random_weights(k_lstm, 1, scale=0.2), ref.random_weights(k_new, 2, scale=0.2)
  k_lstm.set_weights(w_lstm)
  k_new.set_weights(w_new)
  want = [ref.run(k_lstm, p) for p in paragraphs[:2]]
  existing_state = [np.asarray(s.value) for s in k_lstm.states]
  want.append(ref.run(k_lstm, paragraphs[2]))
  want_new = ref.run(k_new, paragraphs[2], initial_state=existing_state)
  k_lstm.reset_states()
  want_after_reset = ref.run(k_lstm, paragraphs[0])

  lstm_layer = rj.LSTM(64, stateful=True)
  new_lstm_layer = rj.LSTM(64)
  p_lstm = rj.interop.from_keras(lstm_layer, w_lstm)
  p_new = rj.interop.from_keras(new_lstm_layer, w_new)

  def run(p_lstm, p_new, p1, p2, p3):
    out1, state = lstm_layer.apply(p_lstm, p1)
    out2, state = lstm_layer.apply(p_lstm, p2, state=state)
    existing = state
    out3, state = lstm_layer.apply(p_lstm, p3, state=state)
    new_output = new_lstm_layer.apply(p_new, p3, initial_state=existing)
    state = lstm_layer.reset_state(state)
    after_reset, _ = lstm_layer.apply(p_lstm, p1, state=state)
    return [out1, out2, out3], existing, new_output, after_reset

  outs, existing, new_output, after_reset = fast_jit.run(run, p_lstm, p_new, *paragraphs)
  for g, w in zip(outs, want):
    np.testing.assert_allclose(g, w, atol=1e-5)
  for g, w in zip(existing, existing_state):
    np.testing.assert_allclose(g, w, atol=1e-5)
  np.testing.assert_allclose(new_output, want_new, atol=1e-5)
  np.testing.assert_allclose(after_reset, want_after_reset, atol=1e-5)
  np.testing.assert_allclose(after_reset, outs[0], atol=1e-6)


def test_keras_guide_encoder_states_as_decoder_initial_state():
  """The guide's seq2seq: Embedding -> LSTM(64, return_state=True) encoder; its [h, c]
  start the decoder LSTM(64) over another Embedding; Dense(10) on top."""
  with jax.numpy_rank_promotion("allow"):
    enc_in = keras.Input(shape=(None,))
    enc_emb = keras.layers.Embedding(input_dim=1000, output_dim=64, name="enc_emb")(enc_in)
    _, state_h, state_c = keras.layers.LSTM(64, return_state=True, name="encoder")(enc_emb)
    dec_in = keras.Input(shape=(None,))
    dec_emb = keras.layers.Embedding(input_dim=2000, output_dim=64, name="dec_emb")(dec_in)
    dec_out = keras.layers.LSTM(64, name="decoder")(dec_emb, initial_state=[state_h, state_c])
    model = keras.Model([enc_in, dec_in], keras.layers.Dense(10, name="dense")(dec_out))
  model.set_weights(ref.random_weights(model, 4, scale=0.2))
  rng = np.random.default_rng(5)
  enc_tokens, dec_tokens = rng.integers(0, 1000, (6, 9)), rng.integers(0, 2000, (6, 7))
  want = ref.run(model, [enc_tokens, dec_tokens])

  def weights(name):
    return model.get_layer(name).get_weights()

  (enc_table,), (dec_table,) = weights("enc_emb"), weights("dec_emb")
  dense_w, dense_b = weights("dense")
  encoder = rj.LSTM(64, return_state=True)
  decoder = rj.LSTM(64)
  p_enc = rj.interop.from_keras(encoder, weights("encoder"))
  p_dec = rj.interop.from_keras(decoder, weights("decoder"))

  def run(p_enc, p_dec, enc_tokens, dec_tokens):
    _, h, c = encoder.apply(p_enc, jnp.take(enc_table, enc_tokens, axis=0))
    out = decoder.apply(p_dec, jnp.take(dec_table, dec_tokens, axis=0), initial_state=[h, c])
    return out @ dense_w + dense_b.reshape((1, 10))

  got = fast_jit.run(run, p_enc, p_dec, enc_tokens, dec_tokens)
  np.testing.assert_allclose(got, want, atol=1e-5)
