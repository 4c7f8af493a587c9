"""bench/gpu_lstm.py imports and its CPU-safe path runs (interpret mode, tiny shapes):
the numerics check passes and the result table lists every implementation."""

from bench import gpu_lstm


def test_gpu_benchmark_dry_run(tmp_path):
  code = gpu_lstm.main(["--dry-run", "--skip-f32", "--kinds", "lstm", "--out", str(tmp_path)])
  assert code == 0
  (md,) = tmp_path.glob("*.md")
  text = md.read_text()
  assert "| lstm bfloat16 |" in text and "PASS" in text and "FAIL" not in text
  for name in ("rnnjax lstm fused bf16", "rnnjax lstm scan bf16",
               "jax.experimental.rnn.lstm cuDNN f32 | n/a: needs a GPU",
               "torch.nn.LSTM cuDNN fp16", "torch.nn.LSTM cuDNN bf16"):
    assert name in text
  assert list(tmp_path.glob("*.png"))


def test_gpu_benchmark_refuses_to_time_on_cpu():
  assert gpu_lstm.main([]) == 2
