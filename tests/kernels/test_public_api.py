"""The public surface of rnnjax.kernels: exactly the documented names, all importable."""

import rnnjax as rj

DOCUMENTED = {
    "PathChoice", "force_interpret", "fused_bidirectional_lstm", "fused_gru",
    "fused_layer_apply", "fused_lstm", "interpret_forced", "max_block_h", "which_path",
}


def test_all_is_the_documented_api():
  assert set(rj.kernels.__all__) == DOCUMENTED
  for name in DOCUMENTED:
    assert getattr(rj.kernels, name) is not None
  assert "kernels" in rj.__all__


def test_largest_supported_units():
  assert rj.kernels.max_block_h("bfloat16") == 256
  assert rj.kernels.max_block_h("float32") == 128
