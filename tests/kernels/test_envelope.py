"""The verified envelope (rnnjax.pallas.compile_envelope*, from the compile check's
committed table): the tiling the kernels choose is verified wherever the dispatch can take
the fused path, the dispatch declines what is outside (which_path says why), a smaller
verified tiling is taken when the first is not, and the forward's prefetch of the next
step's projection changes no number."""

import dataclasses

import numpy as np
import pytest

import jax
import jax.numpy as jnp
import rnnjax as rj
from rnnjax import pallas
from rnnjax.pallas import _envelope, _forward, _kinds, _tiling

X = jnp.ones((2, 5, 3))
PROBLEMS = [(kind, dtype, precision) for kind in ("lstm", "gru")
            for dtype, precision in (("bfloat16", None), ("float32", None),
                                     ("float32", "highest"))]


def _units_up_to(limit):
  """Every units up to `limit` where the padding or the tiling can change."""
  edges = {1, limit}
  for p in (16, 32, 64, 128, 256, 512, 768, 1024):
    edges |= {p - 1, p, p + 1}
  return sorted(u for u in edges if 1 <= u <= limit)


@pytest.mark.parametrize("kind, dtype, precision", PROBLEMS)
def test_every_chosen_tiling_inside_the_envelope_is_verified(kind, dtype, precision):
  spec = _kinds.SPECS[kind]
  for directions in (1, 2):
    limit = pallas.compile_envelope(kind, dtype, directions=directions, precision=precision)
    for units in _units_up_to(limit):
      assert pallas.compile_envelope_reason(kind, units, dtype, directions=directions,
                                            precision=precision) is None, units
      opts = spec.options(batch=4, units=units, dtype=dtype,
                          directions=(False,) * directions, interpret=False,
                          precision=precision)
      tiling = _tiling.Tiling(opts.block_h, opts.num_warps, opts.num_stages, opts.resident,
                              opts.prefetch)
      hp = _tiling.units_pad(units, opts.block_h)
      pclass = _envelope.precision_class(precision, dtype)
      assert not _envelope.failures(kind, dtype, pclass, hp, directions, tiling), units
      if not opts.resident:
        assert opts.num_stages == 1   # streamed blocks: no pipeliner buffers
    above = pallas.compile_envelope_reason(kind, limit + 1, dtype, directions=directions,
                                           precision=precision)
    assert "outside the compile-verified envelope" in above
    assert f"units <= {limit} verified" in above if limit else "no units verified" in above


def test_envelope_covers_the_resident_sizes():
  """The sizes whose recurrent weights stay on chip pass in every kernel (the check's
  results; the streamed sizes above them spill registers on sm_90)."""
  for kind in ("lstm", "gru"):
    assert pallas.compile_envelope(kind, "bfloat16") >= 128
    assert pallas.compile_envelope(kind, "float32") >= 64
    assert pallas.compile_envelope(kind, "bfloat16", directions=2) >= 128


def test_dispatch_declines_outside_the_envelope_and_says_why():
  big = pallas.compile_envelope("lstm", "bfloat16") + 1
  layer = rj.LSTM(big, dtype="bfloat16")
  with rj.kernels.force_interpret():
    choice = rj.kernels.which_path(layer, X)
    assert choice.path == "scan"
    assert "outside the compile-verified envelope of the LSTM kernel" in choice.reason
    assert rj.kernels.which_path(rj.LSTM(64, dtype="bfloat16"), X).path == "fused"
    with pytest.raises(ValueError, match="outside the compile-verified envelope"):
      rj.kernels.which_path(rj.LSTM(big, dtype="bfloat16", use_fused=True), X)
    gru = rj.kernels.which_path(rj.GRU(4096), X)
    assert gru.path == "scan" and "of the GRU kernel" in gru.reason


def test_dispatch_follows_the_matmul_precision():
  """Under jax.default_matmul_precision("highest") float32 calls run IEEE dots: the
  dispatch reads that envelope."""
  limit = pallas.compile_envelope("lstm", "float32", precision="highest")
  layer = rj.LSTM(limit + 1)
  with rj.kernels.force_interpret():
    if pallas.compile_envelope("lstm", "float32") > limit:
      assert rj.kernels.which_path(layer, X).path == "fused"
    with jax.default_matmul_precision("highest"):
      choice = rj.kernels.which_path(layer, X)
  assert choice.path == "scan" and "highest precision dots" in choice.reason


def test_bidirectional_shares_a_launch_only_when_verified(monkeypatch):
  with rj.kernels.force_interpret():
    bi = rj.Bidirectional(rj.LSTM(8, return_sequences=True))
    assert "one-launch" in rj.kernels.which_path(bi, X).reason
    real = pallas.compile_envelope_reason

    def no_pairs(kind, units, dtype, *, directions=1, precision=None, masked=False):
      if directions == 2:
        return "not verified for two directions (test)"
      return real(kind, units, dtype, directions=directions, precision=precision,
                  masked=masked)
    monkeypatch.setattr(pallas, "compile_envelope_reason", no_pairs)
    choice = rj.kernels.which_path(bi, X)
  assert choice.path == "fused"
  assert "two launches" in choice.reason and "not verified for two directions" in choice.reason


def test_a_smaller_verified_tiling_is_chosen_when_the_first_fails(monkeypatch):
  first, second = _tiling.candidates(units=256, gates=4, dtype="bfloat16")[:3:2]
  assert second.block_h < first.block_h or second.prefetch != first.prefetch
  rows = {}
  for kernel in _envelope.KERNELS:
    for tiling, passed in ((first, False), (second, True)):
      hp = _tiling.units_pad(256, tiling.block_h)
      rows[_envelope.row_key("lstm", "bfloat16", "default", hp, 1, kernel, tiling)] = {
          "passed": passed, "why": "" if passed else "register spills (test)"}
  monkeypatch.setattr(_envelope, "_rows_by_key", lambda: rows)
  _envelope._max_units.cache_clear()
  try:
    opts = _envelope.choose(kind="lstm", units=256, gates=4, dtype="bfloat16",
                            directions=(False,), interpret=True)
    assert (opts.block_h, opts.prefetch) == (second.block_h, second.prefetch)
    assert _envelope.envelope_reason("lstm", 256, "bfloat16", gates=4) is None
  finally:
    _envelope._max_units.cache_clear()


def test_auto_takes_the_reference_outside_the_envelope():
  units = pallas.compile_envelope("lstm", "bfloat16") + 1
  params = rj.LSTM(units).init(jax.random.key(0), X)

  def jaxpr(implementation):
    return str(jax.make_jaxpr(lambda p, x: rj.kernels.fused_lstm(
        p, x, dtype="bfloat16", implementation=implementation))(params, X))
  with rj.kernels.force_interpret():
    assert "pallas_call" not in jaxpr("auto")
    assert "pallas_call" in jaxpr("pallas")   # an explicit request runs it anyway


@pytest.mark.parametrize("kind, units, dtype, backwards", [
    ("lstm", 20, "float32", False), ("gru", 40, "bfloat16", True), ("lstm", 48, "float32", True)])
def test_prefetch_changes_no_number(kind, units, dtype, backwards):
  """The forward with the next step's projection carried through the loop equals the one
  that loads it in the step, bit for bit, in interpret mode (resident and streamed)."""
  spec = _kinds.SPECS[kind]
  rng = np.random.default_rng(0)
  b, t, d = 16, 7, 1
  opts = spec.options(batch=b, units=units, dtype=dtype, directions=(backwards,),
                      interpret=True, block_h=32 if units == 48 else None)
  hp = _tiling.units_pad(units, opts.block_h)
  xp = jnp.asarray(rng.normal(size=(b, t, d, spec.gates, hp)), jnp.float32)
  w = jnp.asarray(0.3 * rng.normal(size=(d, spec.gates, hp, hp)), dtype)
  vectors = tuple(jnp.asarray(rng.normal(size=(d, hp)), jnp.float32)
                  for _ in range(spec.vectors))
  states = tuple(jnp.asarray(rng.normal(size=(d, b, hp)), jnp.float32)
                 for _ in range(spec.states))
  lengths = jnp.asarray(rng.integers(0, t + 1, size=b), jnp.int32)
  outs = [_forward.forward(spec, xp, w, vectors, states, lengths,
                           dataclasses.replace(opts, prefetch=p), save=True)
          for p in (True, False)]
  for a, c in zip(jax.tree.leaves(outs[0]), jax.tree.leaves(outs[1])):
    np.testing.assert_array_equal(np.asarray(a, np.float32), np.asarray(c, np.float32))
