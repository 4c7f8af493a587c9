"""The dispatch seam: a new fast path for a cell is one object in the registry. Here a
toy implementation for SimpleRNNCell (a Python loop over the cell, the test oracle of
STYLE.md) is registered for this platform; `apply` and `which_path` both take it, it
declines with its own reasons, and `use_fused=True` reports them."""

import numpy as np
import pytest

import jax
import jax.numpy as jnp
import rnnjax as rj
from rnnjax import engine
from rnnjax.dispatch import REGISTRY

X = jnp.asarray(np.random.default_rng(0).normal(size=(3, 6, 4)), jnp.float32)


class PythonLoop:
  """Runs a SimpleRNN call step by step in Python (no scan)."""

  name = "python_loop"
  platform = jax.default_backend()
  where = "as a Python loop (test backend)"

  def __init__(self):
    self.runs = 0

  def declines(self, spec):
    return ["return_sequences=False (the loop only returns sequences)"] \
        if not spec.options.return_sequences else []

  def run(self, call):
    self.runs += 1
    cell, state, ys = call.spec.cell, call.start, []
    for t in range(call.inputs.shape[1]):
      y, state = cell(call.params, call.inputs[:, t], state)
      ys.append(y)
    return engine.RNNResult(jnp.stack(ys, 1), ys[-1], tuple(state))


@pytest.fixture
def loop(monkeypatch):
  impl = PythonLoop()
  monkeypatch.setitem(REGISTRY, rj.SimpleRNNCell, (impl,))
  return impl


def test_a_registered_backend_is_planned_and_run(loop):
  layer = rj.SimpleRNN(5, return_sequences=True)
  params = layer.init(jax.random.key(0), X)
  assert rj.kernels.which_path(layer, X) == (
      "fused", "use_fused='auto' and eligible: fused SimpleRNN kernel as a Python loop "
      "(test backend)")
  got = layer.apply(params, X)
  assert loop.runs == 1
  want = rj.SimpleRNN(5, return_sequences=True, use_fused=False).apply(params, X)
  assert loop.runs == 1
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_its_reasons_decline_and_use_fused_true_names_them(loop):
  layer = rj.SimpleRNN(5)
  choice = rj.kernels.which_path(layer, X)
  assert choice == ("scan", "use_fused='auto' falls back to the scan: return_sequences=False "
                    "(the loop only returns sequences)")
  strict = rj.SimpleRNN(5, use_fused=True)
  with pytest.raises(ValueError, match=r"SimpleRNN\(use_fused=True\) cannot use the fused "
                     r"kernel: return_sequences=False \(the loop only returns sequences\)"):
    strict.apply(strict.init(jax.random.key(0), X), X)
  assert loop.runs == 0


def test_without_a_registered_backend_the_scan_runs(monkeypatch):
  monkeypatch.delitem(REGISTRY, rj.SimpleRNNCell)
  assert rj.kernels.which_path(rj.SimpleRNN(5), X).reason.startswith(
      "SimpleRNN has no fused kernel")
  assert rj.kernels.which_path(rj.RNN(rj.SimpleRNNCell(5)), X).reason.startswith(
      "RNN has no fused kernel")
