"""Boolean masks, seq_lengths and resets on the CPU fast paths (LSTM, GRU, SimpleRNN),
alone and together: values and gradients (params, inputs, initial state) equal the scan
engine's (use_fused=False), for the sequence, the last output and the final state, in
both directions. The mask has holes, left padding and a fully masked row; resets fall on
valid and on masked steps, one after a row's last valid step (then the final state is the
initial state while the last output is not)."""

import numpy as np
import pytest

import jax
import jax.numpy as jnp
import rnnjax as rj

pytestmark = pytest.mark.skipif(jax.default_backend() != "cpu", reason="CPU path")

B, T, F, U = 3, 7, 4, 5
HOLES = np.ones((B, T), bool)
HOLES[0, :2] = HOLES[0, 4] = False     # left padding and a hole
HOLES[1, :] = False                    # a fully masked row
HOLES[2, 5:] = False                   # right padding
RESETS = np.zeros((B, T), bool)
RESETS[0, 3] = RESETS[0, 4] = True     # on a valid step, then on a masked one
RESETS[1, 2] = True                    # in the fully masked row
RESETS[2, 6] = True                    # after the last valid step
LENGTHS = np.array([T, 3, 0])
MAKERS = {"lstm": rj.LSTM, "gru": rj.GRU, "simple_rnn": rj.SimpleRNN}
MASKINGS = {
    "none": {},
    "seq_lengths": {"seq_lengths": LENGTHS},
    "mask": {"mask": HOLES},
    "reset": {"reset": RESETS},
    "mask_reset": {"mask": HOLES, "reset": RESETS},
}


def _rand(seed, shape, scale=1.0):
  return scale * jax.random.normal(jax.random.key(seed), shape)


def _problem(kind, **kw):
  """(fused layers (sequence, last), scan layers, params, x, initial state)."""
  def layers(use_fused):
    return tuple(MAKERS[kind](U, return_sequences=seq, return_state=True,
                              use_fused=use_fused, **kw) for seq in (True, False))
  fused, scan = layers("auto"), layers(False)
  x = _rand(1, (B, T, F))
  params = jax.tree.map(lambda p: p + _rand(9, p.shape, 0.3),
                        fused[0].init(jax.random.key(0), x))
  state = tuple(_rand(2 + i, (B, U)) for i in range(len(fused[0].get_initial_state(B))))
  return fused, scan, params, x, state


def _results(layers, call):
  """A jitted (params, x, state) -> (outputs of both layers, gradients of a loss over them)."""
  def f(params, x, state):
    out = tuple(layer.apply(params, x, initial_state=state, **call) for layer in layers)
    loss = sum(jnp.sum(jnp.sin(leaf) * (i + 1)) for i, leaf in enumerate(jax.tree.leaves(out)))
    return loss, out
  return jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2), has_aux=True))


def _assert_close(got, want, tol=1e-5):
  # the LSTM's and GRU's forward is native (oneDNN): equal to the scan to rounding, which
  # the gradients (up to ~15 here) magnify to a few 1e-6
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("masking", MASKINGS)
@pytest.mark.parametrize("kind", MAKERS)
@pytest.mark.parametrize("backwards", [False, True], ids=["forward", "backwards"])
def test_values_and_gradients_equal_the_scan(kind, masking, backwards):
  # zero_output_for_mask rides along with go_backwards (a second option, no extra compile)
  fused, scan, params, x, state = _problem(kind, go_backwards=backwards,
                                           zero_output_for_mask=backwards)
  call = MASKINGS[masking]
  choice = rj.kernels.which_path(fused[0], x, **call)
  assert choice.path == "fused" and choice.reason.endswith("on the CPU"), choice
  got, want = _results(fused, call)(params, x, state), _results(scan, call)(params, x, state)
  _assert_close(got, want)
  if masking == "mask_reset" and not backwards:
    # the corner: row 2 resets after its last valid step
    (_, (_, (last, h, *_))), _ = got
    assert float(jnp.max(jnp.abs(last[2] - h[2]))) > 1e-3
    np.testing.assert_allclose(h[2], state[0][2], rtol=1e-6)
    np.testing.assert_allclose(last[1], state[0][1], rtol=1e-6)   # no valid step: h0


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_time_major_input_dropout_and_no_bias(kind):
  kw = dict(time_major=True, dropout=0.3, use_bias=False)
  fused, scan, params, _, state = _problem(kind, **kw)
  x = _rand(1, (T, B, F))
  call = {"mask": HOLES.T, "reset": RESETS.T, "training": True, "rng": jax.random.key(4)}
  assert rj.kernels.which_path(fused[0], x, mask=HOLES.T, reset=RESETS.T,
                               training=True).path == "fused"
  _assert_close(_results(fused, call)(params, x, state), _results(scan, call)(params, x, state))


def test_stateful_chunks_with_resets():
  """A stateful GRU over two chunks, resets and masks in each, equals the scan."""
  def run(use_fused):
    layer = rj.GRU(U, return_sequences=True, stateful=True, use_fused=use_fused)
    x = _rand(1, (B, 2 * T, F))
    params = layer.init(jax.random.key(0), x)

    @jax.jit
    def f(params, x):
      state, outs = None, []
      for k in range(2):
        chunk = slice(k * T, (k + 1) * T)
        out, state = layer.apply(params, x[:, chunk], state=state, mask=HOLES,
                                 reset=np.roll(RESETS, k, axis=1))
        outs.append(out)
      return jnp.concatenate(outs, 1), state
    return jax.value_and_grad(lambda p: jnp.sum(jnp.sin(f(p, x)[0])))(params), f(params, x)
  _assert_close(run("auto"), run(False))


def test_bidirectional_with_mask_and_resets():
  def bidir(use_fused):
    return rj.Bidirectional(rj.LSTM(U, return_sequences=True, use_fused=use_fused),
                            backward_layer=rj.GRU(U, return_sequences=True, go_backwards=True,
                                                  use_fused=use_fused))
  fused, scan = bidir("auto"), bidir(False)
  x = _rand(1, (B, T, F))
  params = fused.init(jax.random.key(0), x)
  assert rj.kernels.which_path(fused, x, mask=HOLES, reset=RESETS).path == "fused"

  def loss(layer):
    return jax.jit(jax.value_and_grad(lambda p, x: jnp.sum(jnp.sin(
        layer.apply(p, x, mask=HOLES, reset=RESETS))), argnums=(0, 1)))
  _assert_close(loss(fused)(params, x), loss(scan)(params, x))


def test_which_path_reports_the_cpu_path_for_masks_and_resets():
  x = jnp.ones((B, T, F))
  for make in MAKERS.values():
    for call in ({"mask": HOLES}, {"reset": RESETS}, {"mask": HOLES, "reset": RESETS}):
      choice = rj.kernels.which_path(make(U), x, **call)
      assert choice == ("fused", f"use_fused='auto' and eligible: fused {make.__name__} "
                        "kernel as a custom-JVP scan recurrence on the CPU"), choice
  # the Pallas kernels take them too (interpret mode stands in for a GPU)
  with rj.kernels.force_interpret():
    choice = rj.kernels.which_path(rj.LSTM(U), x, mask=HOLES, reset=RESETS)
  assert choice.path == "fused" and "interpret mode" in choice.reason, choice
