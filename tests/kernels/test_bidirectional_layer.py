"""rj.Bidirectional over two LSTM layers on the one-launch fused path (Pallas interpret
mode, forced) against the same Bidirectional with use_fused=False inner layers (the scan,
Keras-parity tested elsewhere): every merge mode, return_state, seq_lengths, initial
state halves, go_backwards, time_major, input dropout, carry dtypes, stateful; gradients
w.r.t. params, inputs and initial states; the launch count; which_path's reasons."""

import dataclasses

import numpy as np
import pytest

import jax
import jax.numpy as jnp
import rnnjax as rj
import rnnjax.pallas

from tests.kernels._helpers import assert_trees_close, with_grads

B, T, F, U = 3, 6, 4, 5
LENGTHS = np.array([0, T, 3], np.int32)   # empty, full and padded rows


@pytest.fixture
def launches(monkeypatch):
  """The `directions` of every fused LSTM launch traced (one entry per launch)."""
  calls = []
  original = rnnjax.pallas.run_lstm

  def spy(*args, **kwargs):
    calls.append(kwargs["directions"])
    return original(*args, **kwargs)

  monkeypatch.setattr(rnnjax.pallas, "run_lstm", spy)
  return calls


def _inputs(time_major=False, seed=0):
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.normal(size=(T, B, F) if time_major else (B, T, F)), jnp.float32)
  states = [jnp.asarray(0.5 * rng.normal(size=(B, U)), jnp.float32) for _ in range(4)]
  return x, states


def _params(layer, x, seed=0):
  """Random non-symmetric params (biases included) for both directions."""
  rng = np.random.default_rng(seed + 1)
  params = layer.init(jax.random.key(seed), x)
  return jax.tree.map(lambda v: v + 0.3 * jnp.asarray(rng.normal(size=v.shape), v.dtype), params)


def _bidirectional(use_fused, layer_kw, bidir_kw, backward_kw=None):
  layer = rj.LSTM(U, use_fused=use_fused, **layer_kw)
  backward = None
  if backward_kw is not None:
    backward = rj.LSTM(U, use_fused=use_fused,
                       **{**layer_kw, "go_backwards": not layer.go_backwards, **backward_kw})
  return rj.Bidirectional(layer, backward_layer=backward, **bidir_kw)


# (layer kwargs, Bidirectional kwargs, backward_layer kwargs or None, call options, dtype)
CASES = {
    "concat-seq-state-lengths-init": (
        dict(return_sequences=True, return_state=True), dict(merge_mode="concat"), None,
        dict(lengths=True, init=True), "float32"),
    # The wrapped layer goes backwards: the kernel's directions are (True, False).
    "none-timemajor-gobackwards-dropout": (
        dict(return_sequences=True, return_state=True, time_major=True, go_backwards=True,
             dropout=0.3),
        dict(merge_mode=None), None, dict(lengths=True, init=True, training=True), "float32"),
    # A backward_layer without bias; bfloat16 compute with float32 carries; last outputs.
    "mul-last-bf16-carryf32-nobias": (
        dict(return_state=True, dtype="bfloat16", carry_dtype="float32"),
        dict(merge_mode="mul"), dict(use_bias=False), dict(lengths=False, init=False),
        "bfloat16"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_fused_bidirectional_layer_matches_scan_layer(name, launches):
  layer_kw, bidir_kw, backward_kw, call, dtype = CASES[name]
  x, states = _inputs(layer_kw.get("time_major", False))
  params = _params(_bidirectional(False, layer_kw, bidir_kw, backward_kw), x)
  lengths = LENGTHS if call["lengths"] else None
  init = states if call["init"] else None
  kw = dict(seq_lengths=lengths, training=call.get("training", False),
            rng=jax.random.key(3) if call.get("training") else None)

  def apply(use_fused):
    layer = _bidirectional(use_fused, layer_kw, bidir_kw, backward_kw)
    if init is None:
      return lambda p, x: layer.apply(p, x, **kw)
    return lambda p, x, s: layer.apply(p, x, initial_state=s, **kw)

  args = (params, x) if init is None else (params, x, init)
  with rj.kernels.force_interpret():
    got, got_grads = with_grads(apply("auto"), *args, primal=True)
  backwards = layer_kw.get("go_backwards", False)
  # Only one-launch calls, the kernel's directions being (forward's, backward's) go_backwards.
  assert launches and set(launches) == {(backwards, not backwards)}
  taken = len(launches)
  want, want_grads = with_grads(apply(False), *args)
  assert len(launches) == taken
  assert jax.tree.structure(got) == jax.tree.structure(want)
  assert jax.tree.map(lambda a: a.dtype, got) == jax.tree.map(lambda a: a.dtype, want)
  if layer_kw.get("carry_dtype") == "float32":
    assert [s.dtype for s in got[1:]] == [jnp.float32] * 4
  if lengths is not None and layer_kw.get("return_sequences"):   # forced zero outputs
    sequences = got[:2] if bidir_kw["merge_mode"] is None else got[:1]
    for y in sequences:
      y = jnp.swapaxes(y, 0, 1) if layer_kw.get("time_major") else y
      assert not np.any(np.asarray(y)[0]) and not np.any(np.asarray(y)[2, 3:])
  assert_trees_close(got, want, dtype, "forward")
  assert_trees_close(got_grads, want_grads, dtype, "gradient")


def test_sum_and_ave_merges_and_stateful(launches):
  x, states = _inputs()
  layer_kw = dict(return_sequences=True, stateful=True)

  def both(use_fused):
    layers = [_bidirectional(use_fused, layer_kw, dict(merge_mode=m)) for m in ("sum", "ave")]

    def fn(p, x, s):
      return [layer.apply(p, x, state=s, seq_lengths=LENGTHS) for layer in layers]
    return layers[0], fn

  layer, fn = both(False)
  params = _params(layer, x)
  with rj.kernels.force_interpret():
    got = jax.jit(both("auto")[1])(params, x, states)
  assert len(launches) == 2 and set(launches) == {(False, True)}
  want = jax.jit(fn)(params, x, states)
  assert len(launches) == 2
  assert [(out.shape, len(new)) for out, new in got] == [((B, T, U), 4)] * 2
  assert_trees_close(got, want, "float32", "sum/ave stateful")


X = jnp.ones((2, 5, 3))


def _path(layer, inputs=X, **kw):
  return rj.kernels.which_path(layer, inputs, **kw)


def _traced_launches(layer, launches, inputs=X, **kw):
  """The launches one traced (not compiled) call makes."""
  del launches[:]
  params = jax.eval_shape(layer.init, jax.random.key(0), inputs)
  jax.eval_shape(lambda p, x: layer.apply(p, x, **kw), params, inputs)
  return list(launches)


def test_which_path_one_launch_and_apply_agree(launches):
  bidir = rj.Bidirectional(rj.LSTM(8, return_sequences=True))
  # On the CPU each direction runs the fused LSTM's custom-JVP recurrence, no Pallas launch.
  assert _path(bidir) == (
      "fused", "each direction takes its own fused kernel (two launches), not the one-launch "
      "bidirectional LSTM kernel: on the CPU each direction runs its own custom-JVP scan "
      "recurrence (the one-launch kernel is the GPU's)")
  assert _traced_launches(bidir, launches) == []
  gru = _path(rj.Bidirectional(rj.GRU(8)))
  assert gru.path == "fused" and "each direction runs its own custom-JVP scan" in gru.reason
  gru = _path(rj.Bidirectional(rj.GRU(8, reset_after=False)))
  assert gru.path == "scan"
  assert gru.reason.startswith("not every direction takes the fused kernel; forward "
                               "layer: use_fused='auto' falls back to the scan: reset_after")
  assert "; backward layer: use_fused='auto' falls back to the scan: reset_after" in gru.reason
  with rj.kernels.force_interpret():
    assert _path(bidir, seq_lengths=jnp.array([5, 2])) == (
        "fused", "both directions eligible: one-launch fused bidirectional LSTM kernel "
        "(grid axis 0 = direction) in Pallas interpret mode (forced)")
    assert _traced_launches(bidir, launches, seq_lengths=jnp.array([5, 2])) == [(False, True)]
    # A boolean mask takes the one launch too (the kernels that read step flags).
    masked = _path(bidir, mask=jnp.ones((2, 5), bool))
    assert masked.path == "fused" and "one-launch fused bidirectional" in masked.reason
    assert _traced_launches(bidir, launches, mask=jnp.ones((2, 5), bool)) == [(False, True)]
    # Recurrent dropout in training is scan-only.
    rd = rj.Bidirectional(rj.LSTM(8, recurrent_dropout=0.2))
    assert _path(rd, training=True).path == "scan"
    assert _path(rd).path == "fused"


def test_two_launches_when_directions_cannot_share_one(launches):
  with rj.kernels.force_interpret():
    cases = [
        (rj.Bidirectional(rj.LSTM(8), backward_layer=rj.LSTM(6, go_backwards=True)),
         "units differs (8 forward, 6 backward)"),
        (rj.Bidirectional(rj.LSTM(8), backward_layer=rj.LSTM(8, go_backwards=True,
                                                             dtype="bfloat16")),
         "compute dtypes differ (float32 forward, bfloat16 backward)"),
        (rj.Bidirectional(rj.LSTM(8), backward_layer=rj.GRU(8, go_backwards=True),
                          merge_mode="concat"),
         "the directions run different kernels (LSTM and GRU)"),
    ]
    for bidir, why in cases:
      choice = _path(bidir)
      assert choice == ("fused", "each direction takes its own fused kernel (two launches), "
                        "not the one-launch bidirectional LSTM kernel: " + why)
    for bidir, _ in cases[:2]:
      assert sorted(_traced_launches(bidir, launches)) == [(False,), (True,)]


def test_mixed_and_kernelless_directions_take_the_scan(launches):
  with rj.kernels.force_interpret():
    mixed = rj.Bidirectional(rj.LSTM(8), backward_layer=rj.LSTM(8, go_backwards=True,
                                                                 use_fused=False))
    choice = _path(mixed)
    assert choice.path == "scan"
    assert choice.reason.endswith("backward layer: use_fused=False (the scan is requested)")
    assert "forward layer: use_fused='auto' and eligible: fused LSTM kernel" in choice.reason
    assert _traced_launches(mixed, launches) == [(False,)]
    simple = _path(rj.Bidirectional(rj.SimpleRNN(8)))
    assert simple.path == "scan" and "SimpleRNN has no fused kernel on the GPU" in simple.reason


def test_use_fused_true_inner_layer_still_raises():
  bidir = rj.Bidirectional(rj.GRU(8, use_fused=True, activation="relu"))
  params = bidir.init(jax.random.key(0), X)
  msg = (r"GRU\(use_fused=True\) cannot use the fused kernel: activation='relu' \(the "
         r"kernel implements tanh\)\. Set use_fused='auto'")
  with pytest.raises(ValueError, match=msg):
    _path(bidir)
  with pytest.raises(ValueError, match=msg):
    bidir.apply(params, X)


def test_direction_layers_are_the_layers_apply_runs():
  bidir = rj.Bidirectional(rj.LSTM(8, return_sequences=True))
  forward, backward = bidir.direction_layers
  assert forward is bidir.forward_layer and not forward.go_backwards and backward.go_backwards
  assert forward.zero_output_for_mask and backward.zero_output_for_mask
  assert dataclasses.replace(backward, zero_output_for_mask=False) == bidir.backward_layer


@pytest.fixture
def gru_launches(monkeypatch):
  """The `directions` of every fused GRU launch traced (one entry per launch)."""
  calls = []
  original = rnnjax.pallas.run_gru

  def spy(*args, **kwargs):
    calls.append(kwargs["directions"])
    return original(*args, **kwargs)

  monkeypatch.setattr(rnnjax.pallas, "run_gru", spy)
  return calls


@pytest.mark.parametrize("use_bias", [True, False])
def test_gru_directions_share_one_launch_and_match_the_scan(gru_launches, use_bias):
  """Two GRU directions run in one launch of the fused GRU kernel (grid axis 0 =
  direction), equal to the scan, values and gradients, with seq_lengths."""
  x, states = _inputs()

  def bidir(use_fused):
    return rj.Bidirectional(rj.GRU(U, use_fused=use_fused, use_bias=use_bias,
                                   return_sequences=True, return_state=True))

  params = _params(bidir(False), x)
  init = [states[0], states[2]]

  def fn(layer):
    return lambda p, x, s: layer.apply(p, x, initial_state=s, seq_lengths=LENGTHS)

  with rj.kernels.force_interpret():
    choice = _path(bidir("auto"), x, seq_lengths=LENGTHS)
    assert choice == ("fused", "both directions eligible: one-launch fused bidirectional GRU "
                      "kernel (grid axis 0 = direction) in Pallas interpret mode (forced)")
    got, got_grads = with_grads(fn(bidir("auto")), params, x, init)
  assert gru_launches and set(gru_launches) == {(False, True)}
  want, want_grads = with_grads(fn(bidir(False)), params, x, init)
  assert_trees_close(got, want, "float32", "forward")
  assert_trees_close(got_grads, want_grads, "float32", "gradient")
