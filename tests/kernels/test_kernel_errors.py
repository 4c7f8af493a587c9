"""Bad input to the public kernel functions: clear errors naming the argument, what it
got and what was expected, raised before tracing."""

import numpy as np
import pytest

import jax.numpy as jnp
import rnnjax as rj

from tests.kernels._helpers import Case, problem

PARAMS, X, STATES, _ = problem("lstm", Case(b=2, t=3, u=4, f=5))
GRU_PARAMS, _, _, _ = problem("gru", Case(b=2, t=3, u=4, f=5))


def lstm(**kw):
  args = {"params": PARAMS, "inputs": X, **kw}
  return rj.kernels.fused_lstm(args.pop("params"), args.pop("inputs"), **args)


@pytest.mark.parametrize("kw, error, message", [
    ({"params": [1]}, TypeError, r"params must be a dict with keys kernel, recurrent_kernel"),
    ({"params": {"kernel": 1}}, TypeError, r"got a dict with keys \['kernel'\]"),
    ({"params": {**PARAMS, "recurrent_kernel": jnp.ones((4, 12))}}, ValueError,
     r"params\['recurrent_kernel'\] must have shape \(U, 4U\), got \(4, 12\)"),
    ({"params": {**PARAMS, "kernel": jnp.ones((5, 12))}}, ValueError,
     r"params\['kernel'\] must have shape \(F, 4U\) = \(F, 16\), got \(5, 12\)"),
    ({"params": {**PARAMS, "bias": jnp.ones((2, 16))}}, ValueError,
     r"params\['bias'\] must have shape \(16,\), got an array of shape \(2, 16\)"),
    ({"inputs": jnp.ones((2, 3))}, ValueError,
     r"inputs must have shape \(B, T, F\) with F = 5 \(the kernel's rows\), got shape \(2, 3\)"),
    ({"inputs": jnp.ones((2, 3, 6))}, ValueError, r"with F = 5 .*got shape \(2, 3, 6\)"),
    ({"inputs": jnp.ones((2, 0, 5))}, ValueError, r"at least one row and one time step"),
    ({"inputs": jnp.ones((2, 3, 5), jnp.int32)}, TypeError, r"inputs must be a floating-point"),
    ({"inputs": [[1.0]]}, TypeError, r"inputs must be an array of shape \(B, T, F\), got list"),
    ({"initial_state": STATES[0]}, ValueError,
     r"initial_state must be a tuple of 2 arrays of shape \(B, U\) = \(2, 4\)"),
    ({"initial_state": (STATES[0], jnp.ones((3, 4)))}, ValueError,
     r"initial_state must hold arrays of shape \(B, U\) = \(2, 4\), got an array of shape "
     r"\(3, 4\)"),
    ({"seq_lengths": np.array([1, 2, 3])}, ValueError,
     r"seq_lengths must have shape \(B,\) = \(2,\), got shape \(3,\)"),
    ({"seq_lengths": np.array([1.0, 2.0])}, TypeError, r"seq_lengths must be an integer array"),
    ({"go_backwards": 1}, TypeError, r"go_backwards must be a bool, got 1"),
    ({"implementation": "cuda"}, ValueError,
     r"implementation must be one of \('auto', 'pallas', 'reference'\), got 'cuda'"),
    ({"block_b": 24}, ValueError, r"block_b must be a power of two >= 16, got 24"),
    ({"block_b": 16.0}, TypeError, r"block_b must be None or an int, got 16.0"),
    ({"block_h": 48}, ValueError, r"block_h must be a power of two >= 16, got 48"),
    ({"block_h": True}, TypeError, r"block_h must be None or an int, got True"),
    ({"block_h": 256}, ValueError,
     r"block_h must be at most 128 for float32 \(one gate block on chip\), got 256"),
    ({"interpret": "yes"}, TypeError, r"interpret must be None or a bool, got 'yes'"),
    ({"dtype": "float16", "implementation": "pallas"}, ValueError,
     r"implementation='pallas' cannot run this call: compute dtype float16 \(the kernel "
     r"supports float32 and bfloat16\)"),
    ({"dtype": "not-a-dtype"}, TypeError, r"dtype must be None or a dtype"),
])
def test_fused_lstm_errors(kw, error, message):
  with pytest.raises(error, match=message):
    lstm(**kw)


def test_units_over_one_chunk_run_tiled():
  """Units over the largest chunk (128 in float32) are tiled, not refused: units=130 runs
  as two 128-unit chunks (Hp = 256) and equals the reference."""
  params, x, _, _ = problem("lstm", Case(b=2, t=2, u=130, f=3))
  out, (h, c) = rj.kernels.fused_lstm(params, x, implementation="pallas")
  want, (h_ref, c_ref) = rj.kernels.fused_lstm(params, x, implementation="reference")
  assert out.shape == (2, 2, 130)
  np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(c, c_ref, rtol=1e-5, atol=1e-5)


def test_fused_gru_errors():
  with pytest.raises(ValueError, match=r"params\['bias'\] must have shape \(2, 12\), got an "
                     r"array of shape \(12,\)"):
    rj.kernels.fused_gru({**GRU_PARAMS, "bias": jnp.ones((12,))}, X)
  with pytest.raises(ValueError, match=r"initial_state must be a tuple of 1 arrays"):
    rj.kernels.fused_gru(GRU_PARAMS, X, initial_state=(STATES[0], STATES[0]))
  _, h = rj.kernels.fused_gru(GRU_PARAMS, X, initial_state=STATES[0])   # a bare h is fine
  assert h.shape == (2, 4)
