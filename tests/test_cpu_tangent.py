"""The CPU recurrences' tangent map (`rnnjax/recurrences/_tangent.py`): the hand-written
reverse scan equals JAX's own transpose of the tangent scan for every cell, with and
without masks and resets, and reverse mode runs it (not JAX's transpose)."""

import numpy as np
import pytest

import jax
import jax.numpy as jnp
import rnnjax as rj
from rnnjax.recurrences import _driver, _flags, _tangent, dense

T, B, U = 5, 3, 4
VALID = np.array([[0, 1, 1], [1, 1, 0], [1, 0, 1], [1, 1, 1], [0, 1, 1]], bool)
RESET = np.array([[0, 0, 1], [0, 1, 0], [1, 0, 0], [0, 0, 0], [0, 1, 1]], bool)
CELLS = {"lstm": ("lstm", "tanh"), "gru": ("gru", "tanh"), "tanh": ("simple_rnn", "tanh"),
         "relu": ("simple_rnn", "relu"), "linear": ("simple_rnn", "linear")}


def _rand(seed, shape, scale=1.0):
  return scale * jax.random.normal(jax.random.key(seed), shape, jnp.float64)


@pytest.mark.parametrize("flags", ["none", "mask", "reset", "both"])
@pytest.mark.parametrize("cell", list(CELLS))
def test_reverse_scan_is_the_transpose_of_the_tangent_scan(cell, flags):
  math = dense.cell_math(*CELLS[cell])
  with jax.enable_x64(True):
    gu = math.gates * U
    w = _rand(0, (U, gu), 0.5)
    state0 = tuple(_rand(1 + i, (B, U)) for i in range(math.states))
    xs = _rand(4, (T, B, gu))
    _, _, coefficients = _driver.forward(math, xs, None, w, None, state0, None, None,
                                         save=True)
    loop = math.loop(coefficients)
    valid = VALID if flags in ("mask", "both") else None
    keep = _flags.keep_flags(jnp.asarray(RESET)) if flags in ("reset", "both") else None
    a = _rand(5, (T, B, math.hoist(coefficients, xs, None).shape[-1]))
    dstate0 = tuple(_rand(6 + i, (B, U)) for i in range(math.states))
    cts = (_rand(9, (T, B, U)), *(_rand(10 + i, (B, U)) for i in range(math.states)))

    def tangent(a, *dstate0):
      dhs, dstate = _tangent.scan(math, w, loop, a, dstate0, valid, keep)
      return (dhs, *dstate)

    derived = jax.linear_transpose(tangent, a, *dstate0)(cts)
    ct_a, ct0 = _tangent.reverse(math, w, loop, cts[0], cts[1:], valid, keep, True)
    for got, want in zip((ct_a, *ct0), derived):
      np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("make", [rj.LSTM, rj.GRU, rj.SimpleRNN])
def test_reverse_mode_runs_the_hand_written_transpose(make):
  """Under grad the tangent is one `rnnjax_linear_map`, transposed (what lowers runs its
  `transpose`, the reverse scan above); forward mode runs it untransposed."""
  layer = make(U, return_sequences=True)
  x = jax.random.normal(jax.random.key(0), (B, T, 2))
  params = layer.init(jax.random.key(1), x)
  loss = lambda p: jnp.sum(layer.apply(p, x) ** 2)   # noqa: E731

  def maps(jaxpr):
    return [(type(e.params["rule"]), e.params["transposed"]) for e in jaxpr.eqns
            if e.primitive.name == "rnnjax_linear_map"] + [
        m for e in jaxpr.eqns for k in ("jaxpr", "call_jaxpr") if k in e.params
        for m in maps(getattr(e.params[k], "jaxpr", e.params[k]))]

  assert maps(jax.make_jaxpr(jax.grad(loss))(params).jaxpr) == [(_tangent.TangentMap, True)]
  tangent = jax.tree.map(jnp.ones_like, params)
  jvp = jax.make_jaxpr(lambda p, t: jax.jvp(loss, (p,), (t,)))(params, tangent).jaxpr
  assert maps(jvp) == [(_tangent.TangentMap, False)]
