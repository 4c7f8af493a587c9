"""The kernels' plain-JAX twins (`rnnjax/pallas/_plain.py`), which forward mode and every
higher order differentiate, equal the kernels (interpret mode) on the kernel layouts:
the residual-saving forward (outputs, final states, saved gates and state sequences) and
the backward (projection gradients, extra gradients, initial states' gradients); two
directions in one launch (one reversed), ragged lengths, the hidden dimension in two
chunks, float32 and bfloat16."""

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from rnnjax.pallas import _backward, _forward, _plain
from rnnjax.pallas.gru import SPEC as GRU
from rnnjax.pallas.lstm import SPEC as LSTM

BP, T, U = 16, 6, 20


def _normal(seed, shape, dtype=jnp.float32, scale=0.5):
  return (scale * jax.random.normal(jax.random.key(seed), shape)).astype(dtype)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["f32", "bf16"])
@pytest.mark.parametrize("spec", [LSTM, GRU], ids=["lstm", "gru"])
def test_plain_twins_equal_the_kernels(spec, dtype):
  opts = spec.options(batch=BP, units=U, dtype=dtype, directions=(False, True),
                      interpret=True, block_h=16)
  hp, d = 32, 2                                   # U = 20 in two chunks of 16
  xp = _normal(1, (BP, T, d, spec.gates, hp), scale=1.0)
  w = _normal(2, (d, spec.gates, hp, hp), dtype)
  vectors = tuple(_normal(3 + i, (d, hp)) for i in range(spec.vectors))
  states = tuple(_normal(5 + i, (d, BP, hp)) for i in range(spec.states))
  lengths = jnp.array([T, 3, 0, 1] * (BP // 4), jnp.int32)
  args = (xp, w, vectors, states, lengths)

  kernel = jax.jit(lambda *a: _forward.forward(spec, *a, opts, save=True))(*args)
  plain = jax.jit(lambda *a: _plain.forward(spec, *a, opts))(*args)
  tol = 1e-5 if dtype == jnp.float32 else 2e-2
  for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(kernel), strict=True):
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b, np.float32),
                               atol=tol, rtol=tol)

  hs, _, (saved, *seqs) = kernel
  seq = hs if spec.backward_state == 0 else seqs[0]
  dhs = _normal(9, hs.shape, hs.dtype)
  dfinal = tuple(_normal(10 + i, s.shape) for i, s in enumerate(states))
  bwd_args = (dhs, dfinal, saved, seq, states[spec.backward_state],
              jnp.swapaxes(w, -1, -2), lengths)
  kernel = jax.jit(lambda *a: _backward.backward(spec, *a, opts, dz_dtype=jnp.float32))(
      *bwd_args)
  plain = jax.jit(lambda *a: _plain.backward(spec, *a, opts, dz_dtype=jnp.float32))(*bwd_args)
  for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(kernel), strict=True):
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_allclose(a, b, atol=tol, rtol=tol)
