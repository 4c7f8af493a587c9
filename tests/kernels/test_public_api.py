"""The public surface of rnnjax.kernels and of rnnjax.pallas (what the dispatch calls):
exactly the documented names, all importable."""

import pytest

import rnnjax as rj
import rnnjax.pallas as pallas

DOCUMENTED = {
    "PathChoice", "force_interpret", "fused_bidirectional_lstm", "fused_gru",
    "fused_layer_apply", "fused_lstm", "interpret_forced", "max_block_h", "mosaic_gru", "mosaic_lstm",
    "which_path",
}


def test_all_is_the_documented_api():
  assert set(rj.kernels.__all__) == DOCUMENTED
  for name in DOCUMENTED:
    assert getattr(rj.kernels, name) is not None
  assert "kernels" in rj.__all__


def test_largest_supported_units():
  assert rj.kernels.max_block_h("bfloat16") == 256
  assert rj.kernels.max_block_h("float32") == 128


PALLAS = {
    "compile_envelope", "compile_envelope_reason", "dtype_reason", "force_interpret", "fused_bidirectional_lstm", "fused_gru", "fused_lstm",
    "interpret_forced", "max_block_h", "resolve_interpret", "run_gru", "run_lstm",
    "unsupported_reason",
}


def test_pallas_exports_what_the_dispatch_calls():
  assert set(pallas.__all__) == PALLAS
  assert pallas.fused_lstm is rj.kernels.fused_lstm
  assert pallas.dtype_reason("float32") is None
  assert pallas.dtype_reason("float16", "carry dtype") == (
      "carry dtype float16 (the kernel supports float32 and bfloat16)")
  assert pallas.unsupported_reason("lstm", "bfloat16") is None
  assert pallas.unsupported_reason("gru", "float64") == (
      "compute dtype float64 (the kernel supports float32 and bfloat16)")
  assert pallas.resolve_interpret(True) is True
  with pallas.force_interpret():
    assert pallas.resolve_interpret(None) is True


def test_pallas_names_check_their_arguments():
  with pytest.raises(ValueError, match=r"kind must be one of \('lstm', 'gru'\), got 'rnn'"):
    pallas.unsupported_reason("rnn", "float32")
  with pytest.raises(TypeError, match=r"kind must be a str, one of \('lstm', 'gru'\), got 4"):
    pallas.unsupported_reason(4, "float32")
  with pytest.raises(TypeError, match=r"interpret must be None or a bool, got 1"):
    pallas.resolve_interpret(1)
  with pytest.raises(TypeError, match=r"enabled must be a bool, got 'yes'"):
    with pallas.force_interpret("yes"):
      pass
