"""One test body for every implementation of the fused LSTM and GRU: the pure-JAX
reference and the Pallas kernel (interpret mode on the CPU). Each is compared, forward
and gradient (through the custom_vjp for the kernel), with the rnnjax scan engine,
which the parity tests check against Keras. Shapes are odd on purpose: U not a power of
two, B not a multiple of the batch tile, T = 1, a long T, lengths 0, 1 and T; and the
hidden dimension tiled in chunks (`block_h`), with units padded to a multiple of it."""

import functools

import pytest

import jax.numpy as jnp
import rnnjax as rj

from tests.kernels._helpers import Case, assert_trees_close, problem, scan_oracle, with_grads

LSTM_CASES = [
    Case(b=16, t=1, u=16, lengths=False, init=False),   # exactly one tile: no padding
    Case(b=17, t=9, u=48),
    Case(b=17, t=9, u=48, backwards=True, zero_output=True, bias=False, time_major=True),
    Case(b=40, t=6, u=100, block_b=32),               # units padded to 128: streamed W
    Case(b=17, t=9, u=40, block_h=16),                # 3 hidden chunks, Hp = 48
    Case(b=5, t=7, u=50, block_h=16, dtype="bfloat16", backwards=True, zero_output=True),
    Case(b=5, t=513, u=20, backwards=True),           # long
    Case(b=17, t=33, u=20, dtype="bfloat16", backwards=True, zero_output=True),
    Case(b=3, t=257, u=48, dtype="bfloat16"),         # long, bf16
]

GRU_CASES = [
    Case(b=3, t=1, u=20, lengths=False, init=False),
    Case(b=17, t=9, u=48, backwards=True),
    Case(b=17, t=9, u=48, zero_output=True, bias=False, time_major=True),
    Case(b=5, t=513, u=20),                           # long
    Case(b=17, t=9, u=40, block_h=16, backwards=True),   # 3 hidden chunks, Hp = 48
    Case(b=5, t=7, u=50, block_h=16, dtype="bfloat16", zero_output=True),
    Case(b=17, t=33, u=20, dtype="bfloat16", backwards=True, zero_output=True),
]

FUNCTIONS = {"lstm": rj.kernels.fused_lstm, "gru": rj.kernels.fused_gru}
# Cases whose forward is also run without differentiation (the inference kernel).
PRIMAL_CASES = (LSTM_CASES[2], LSTM_CASES[4], GRU_CASES[5], GRU_CASES[6])


def _states(kind, case, states):
  if states is not None:
    return states
  return tuple(jnp.zeros((case.b, case.u)) for _ in range(2 if kind == "lstm" else 1))


@functools.cache
def _oracle(kind, case):
  """Outputs and gradients of the scan engine (computed once per case, shared by the
  implementations)."""
  params, x, states, lengths = problem(kind, case)

  def oracle(params, x, states):
    out, final = scan_oracle(kind, params, x, states, lengths, go_backwards=case.backwards,
                             zero_output_for_mask=case.zero_output,
                             time_major=case.time_major, dtype=case.dtype)
    return out, final if kind == "lstm" else final[0]

  return with_grads(oracle, params, x, _states(kind, case, states))


class _RecurrenceTests:
  """The shared body; subclasses fix `implementation`."""

  implementation: str

  def check(self, kind, case: Case):
    params, x, states, lengths = problem(kind, case)
    states = _states(kind, case, states)
    fused = FUNCTIONS[kind]

    def run(params, x, states):
      return fused(params, x, initial_state=states, seq_lengths=lengths,
                   go_backwards=case.backwards, zero_output_for_mask=case.zero_output,
                   time_major=case.time_major, dtype=case.dtype,
                   implementation=self.implementation, block_b=case.block_b,
                   block_h=case.block_h)

    got, got_grads = with_grads(run, params, x, states, primal=case in PRIMAL_CASES)
    want, want_grads = _oracle(kind, case)
    out = got[0]
    assert out.dtype == jnp.dtype(case.dtype)
    assert out.shape == ((case.t, case.b, case.u) if case.time_major else (case.b, case.t, case.u))
    assert_trees_close(got, want, case.dtype, "forward")
    assert_trees_close(got_grads, want_grads, case.dtype, "gradient")

  @pytest.mark.parametrize("case", LSTM_CASES, ids=str)
  def test_lstm_matches_scan(self, case):
    self.check("lstm", case)

  @pytest.mark.parametrize("case", GRU_CASES, ids=str)
  def test_gru_matches_scan(self, case):
    self.check("gru", case)


class TestReference(_RecurrenceTests):
  implementation = "reference"


class TestPallasInterpret(_RecurrenceTests):
  implementation = "pallas"
