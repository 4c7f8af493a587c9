"""Custom cells through the cell protocol, with nested (pytree) inputs, outputs and states:
the Keras RNN guide's `NestedCell` (a video frame and its audio as one time step) checked
against a plain Python loop, trained with optax, in a dict variant and inside
Bidirectional. Keras 3 cannot run this example (it dropped nested inputs)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import rnnjax as rj

from tests import fast_jit
from tests.cells import DictNestedCell, NestedCell

B, T = 4, 5
I1, I2, I3 = 32, 64, 32        # the guide's input sizes: (B, T, 32) and (B, T, 64, 32)
U1, U2, U3 = 10, 20, 30        # the guide's NestedCell(10, 20, 30)


def _inputs(seed=0, batch=B, steps=T):
  rng = np.random.default_rng(seed)
  return (jnp.asarray(rng.random((batch, steps, I1)), jnp.float32),
          jnp.asarray(rng.random((batch, steps, I2, I3)), jnp.float32))


def naive_loop(params, x, *, mask=None, go_backwards=False, held_state=False):
  """NumPy loop over time (float64). A masked step keeps the state; its output is the
  last valid output (zeros before any), the engine's rule for outputs shaped unlike the
  first state; with `held_state`, the incoming first state (Keras's rule, which the engine
  follows whenever the first state has the output's structure and shapes)."""
  k1 = np.asarray(params["kernel_1"], np.float64)
  k23 = np.asarray(params["kernel_2_3"], np.float64)
  x1, x2 = (np.asarray(a, np.float64) for a in x)
  s1, s2 = np.zeros((x1.shape[0], U1)), np.zeros((x1.shape[0], U2, U3))
  last1, last2 = np.zeros_like(s1), np.zeros_like(s2)
  outs1, outs2 = [], []
  steps = range(x1.shape[1] - 1, -1, -1) if go_backwards else range(x1.shape[1])
  for t in steps:
    o1 = x1[:, t] @ k1
    o23 = np.einsum("bij,ijkl->bkl", x2[:, t], k23)
    m = np.ones(x1.shape[0], bool) if mask is None else np.asarray(mask)[:, t]
    prev1, prev2 = s1, s2
    s1 = np.where(m[:, None], s1 + o1, s1)
    s2 = np.where(m[:, None, None], s2 + o23, s2)
    held1, held2 = (prev1, prev2) if held_state else (last1, last2)
    last1 = np.where(m[:, None], o1, last1)
    last2 = np.where(m[:, None, None], o23, last2)
    outs1.append(np.where(m[:, None], o1, held1))
    outs2.append(np.where(m[:, None, None], o23, held2))
  return (np.stack(outs1, 1), np.stack(outs2, 1)), (last1, last2), (s1, s2)


def _close(got, want, atol=1e-4):
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    assert np.shape(g) == np.shape(w)
    np.testing.assert_allclose(np.asarray(g), w, atol=atol, rtol=1e-5)


MASK = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [0, 1, 0, 1, 0]], bool)


@pytest.mark.parametrize("masked,go_backwards", [(False, False), (True, False), (True, True)])
def test_nested_cell_matches_a_python_loop(masked, go_backwards):
  cell = NestedCell(U1, U2, U3)
  mask = MASK if masked else None
  seq = rj.RNN(cell, return_sequences=True, return_state=True, go_backwards=go_backwards)
  last = rj.RNN(cell, go_backwards=go_backwards)
  x = _inputs(1)
  params = fast_jit.init(seq, jax.random.key(0), x)
  (outs, s1, s2), final = fast_jit.run(
      lambda p, x: (seq.apply(p, x, mask=mask), last.apply(p, x, mask=mask)), params, x)
  want_outs, want_last, want_states = naive_loop(params, x, mask=mask, go_backwards=go_backwards)
  assert outs[0].shape == (B, T, U1) and outs[1].shape == (B, T, U2, U3)
  assert s1.shape == (B, U1) and s2.shape == (B, U2, U3)
  _close(outs, want_outs)
  _close(final, want_last)
  _close((s1, s2), want_states)


def test_keras_guide_shapes_and_training_with_optax():
  """The guide's model: RNN(NestedCell(10, 20, 30)) on ((B, T, 32), (B, T, 64, 32)),
  mean squared error on both outputs; the loss goes down under optax."""
  layer = rj.RNN(NestedCell(U1, U2, U3))
  x = _inputs(2, batch=8)
  rng = np.random.default_rng(3)
  targets = (jnp.asarray(rng.random((8, U1)), jnp.float32),
             jnp.asarray(rng.random((8, U2, U3)), jnp.float32))
  params = fast_jit.init(layer, jax.random.key(1), x)
  assert params["kernel_2_3"].shape == (I2, I3, U2, U3)
  optimizer = optax.adam(1e-3)

  def loss_fn(params):
    out = layer.apply(params, x)
    return sum(jnp.mean((o - t) ** 2) for o, t in zip(out, targets))

  def train(params):
    def step(carry, _):
      params, state = carry
      loss, grads = jax.value_and_grad(loss_fn)(params)
      updates, state = optimizer.update(grads, state, params)
      return (optax.apply_updates(params, updates), state), loss
    _, losses = jax.lax.scan(step, (params, optimizer.init(params)), None, length=15)
    return losses

  losses = np.asarray(fast_jit.run(train, params))
  assert np.isfinite(losses).all()
  assert losses[-1] < 0.5 * losses[0]


def test_dict_inputs_outputs_and_states():
  """Here the one state is a dict shaped like the output, so a masked step outputs the
  incoming state, as Keras's "the first state is the previous output" rule says."""
  cell = DictNestedCell(U1, U2, U3)
  layer = rj.RNN(cell, return_sequences=True, return_state=True)
  x1, x2 = _inputs(4)
  x = {"video": x1, "audio": x2}
  params = fast_jit.init(layer, jax.random.key(2), x)
  outs, state = fast_jit.run(lambda p, x: layer.apply(p, x, mask=MASK), params, x)
  want_outs, _, want_states = naive_loop(params, (x1, x2), mask=MASK, held_state=True)
  assert set(outs) == {"video", "audio"} and set(state) == {"video", "audio"}
  _close((outs["video"], outs["audio"]), want_outs)
  _close((state["video"], state["audio"]), want_states)


def test_bidirectional_over_a_nested_cell_merges_leaf_by_leaf():
  layer = rj.Bidirectional(rj.RNN(NestedCell(U1, U2, U3), return_sequences=True))
  x = _inputs(5)
  params = fast_jit.init(layer, jax.random.key(3), x)
  o1, o23 = fast_jit.run(layer.apply, params, x)
  assert o1.shape == (B, T, 2 * U1) and o23.shape == (B, T, U2, 2 * U3)
  want_f, _, _ = naive_loop(params["forward"], x)
  want_b, _, _ = naive_loop(params["backward"], x, go_backwards=True)
  _close((o1[..., :U1], o23[..., :U3]), want_f)
  _close((o1[..., U1:], o23[..., U3:]), tuple(w[:, ::-1] for w in want_b))


def test_custom_cell_errors():
  layer = rj.RNN(NestedCell(U1, U2, U3))
  x = _inputs()
  params = jax.eval_shape(layer.init, jax.random.key(0), x)
  with pytest.raises(ValueError, match=r"inputs must share batch and time sizes.*\(4, 5\) and \(4, 3\)"):
    layer.apply(params, (x[0], x[1][:, :3]))
  with pytest.raises(ValueError, match=r"initial_state must hold 2 state array\(s\)"):
    layer.apply(params, x, initial_state=[jnp.zeros((B, U1))])
