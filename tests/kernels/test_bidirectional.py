"""fused_bidirectional_lstm (both implementations) against two runs of the rnnjax scan
engine, forward (go_backwards=False) and backward (go_backwards=True), forward values and
gradients."""

import functools

import pytest

import rnnjax as rj

from tests.kernels._helpers import Case, assert_trees_close, problem, scan_oracle, with_grads

CASES = [
    Case(b=17, t=9, u=20, zero_output=True),
    Case(b=5, t=12, u=20, dtype="bfloat16", time_major=True),
    Case(b=6, t=7, u=40, block_h=16),   # 3 hidden chunks per direction
]


def _problem(case):
  pf, x, (hf, cf), lengths = problem("lstm", case, seed=5)
  pb, _, (hb, cb), _ = problem("lstm", case, seed=6)
  return pf, pb, x, (hf, cf, hb, cb), lengths


@functools.cache
def _two_scans(case):
  """Outputs and gradients of two scan-engine runs (once per case)."""
  pf, pb, x, states, lengths = _problem(case)

  def two_scans(pf, pb, x, states):
    kw = dict(zero_output_for_mask=case.zero_output, time_major=case.time_major,
              dtype=case.dtype)
    yf, sf = scan_oracle("lstm", pf, x, states[:2], lengths, **kw)
    yb, sb = scan_oracle("lstm", pb, x, states[2:], lengths, go_backwards=True, **kw)
    return yf, yb, sf, sb

  return with_grads(two_scans, pf, pb, x, states)


@pytest.mark.parametrize("implementation", ["reference", "pallas"])
@pytest.mark.parametrize("case", CASES, ids=str)
def test_bidirectional_matches_two_scans(implementation, case):
  pf, pb, x, states, lengths = _problem(case)

  def fused(pf, pb, x, states):
    return rj.kernels.fused_bidirectional_lstm(
        pf, pb, x, initial_state=states, seq_lengths=lengths,
        zero_output_for_mask=case.zero_output, time_major=case.time_major, dtype=case.dtype,
        implementation=implementation, block_h=case.block_h)

  got, got_grads = with_grads(fused, pf, pb, x, states, primal=implementation == "pallas")
  want, want_grads = _two_scans(case)
  assert got[1].shape == x.shape[:2] + (case.u,)
  assert_trees_close(got, want, case.dtype, "forward")
  assert_trees_close(got_grads, want_grads, case.dtype, "gradient")


def test_bidirectional_rejects_mismatched_directions():
  pf, x, _, _ = problem("lstm", Case(b=2, t=3, u=4))
  pb, _, _, _ = problem("lstm", Case(b=2, t=3, u=6))
  with pytest.raises(ValueError, match=r"backward_params must have the same \(F, U\)"):
    rj.kernels.fused_bidirectional_lstm(pf, pb, x)
