"""The README demo (`python -m rnnjax.demo`) runs, says which path ran in plain words,
writes a titled plot, and names the install command when the demo extra is missing."""

import sys

import pytest

from rnnjax import demo


def test_demo_runs_and_reports(tmp_path, capsys):
  history = demo.main(["--epochs", "2", "--out", str(tmp_path), "--progress", "off"])
  out = capsys.readouterr().out
  assert len(history) == 2 and history[-1][3] > 0.3          # test accuracy after 2 epochs
  assert "epoch  2" in out
  if demo.jax.default_backend() == "cpu":
    assert "LSTM ran on the CPU fast path (custom-JVP recurrence)" in out
  assert "LSTM ran on the " in out
  assert (tmp_path / "training_curve.png").stat().st_size > 10_000


def test_plain_path_names_each_implementation():
  choice = demo.rj.kernels.PathChoice
  assert demo.plain_path(choice("scan", "use_fused=False")).startswith("the generic path")
  assert "GPU fast path" in demo.plain_path(choice("fused", "fused LSTM kernel on the GPU"))
  assert "interpret mode" in demo.plain_path(
      choice("fused", "fused LSTM kernel in Pallas interpret mode (forced)"))


@pytest.mark.parametrize("module", ["tqdm", "matplotlib", "sklearn"])
def test_missing_extra_names_the_install_command(monkeypatch, module):
  monkeypatch.setitem(sys.modules, module, None)             # import raises ImportError
  with pytest.raises(SystemExit) as exit_info:
    demo.main(["--epochs", "1"])
  message = str(exit_info.value)
  assert "pip install -e '.[demo]'" in message
  assert {"sklearn": "scikit-learn"}.get(module, module) in message
