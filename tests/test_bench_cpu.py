"""bench/cpu_lstm.py: the docs quote the summary that bench/results/cpu.md gives (one
generated source for the numbers), the peers compute the same function, and a smoke run
of the GRU and mask / reset tables writes a complete cpu.md."""

import pathlib
import sys

import pytest

BENCH = pathlib.Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import _cpu_report as report  # noqa: E402
import _peer_checks  # noqa: E402
import _timing  # noqa: E402
import cpu_lstm  # noqa: E402


@pytest.mark.parametrize("doc", sorted(report.DOCS))
def test_docs_quote_the_results_table(doc):
  quoted = report.quoted_block((report.ROOT / doc).read_text())
  assert quoted is not None, f"{doc} lost its generated block"
  expected = report.summary_block(report.RESULTS.read_text(), report.DOCS[doc])
  assert quoted == expected, (
      f"{doc} quotes other numbers than bench/results/cpu.md; run "
      "`python bench/cpu_lstm.py --sync-docs`")


def test_summary_follows_the_table():
  """A changed time in cpu.md changes the summary, so the test above can fail; the
  summary reads rnnjax against the fastest JAX peer other than rnnjax."""
  rows = [("train", (2, 3, 4, 5), {"rnnjax": 0.004, "rnnjax scan (use_fused=False)": 0.003,
                                   "scan (per-step x@W)": 0.005, "flax GRUCell": 0.008,
                                   "torch nn.GRU": 0.001}, None),
          ("forward", (2, 3, 4, 5), {"rnnjax": 0.002, "scan (per-step x@W)": 0.0025}, 0.93)]
  workloads = [("gru", "train", w, {"rnnjax": s}, cost) for w, s, cost in
               (("none", 0.010, 1.0), ("reset 3%", 0.0107, 1.04))]
  meta = {"title_note": "", "facts": {"Run": "today", "Load average": "0.1 at start"},
          "method": ""}
  text = cpu_lstm.document(meta, {"gru": rows}, workloads, {}, (2, 3, 4, 5))
  block = report.summary_block(text, "x")
  assert "| GRU train | 4.00 vs 5.00 scan (per-step x@W) (0.80); PyTorch 1.00 |" in block
  # the paired ratio (median of per-round ratios) when measured, not 2.00 / 2.50
  assert "| GRU forward | 2.00 vs 2.50 scan (per-step x@W) (0.93) |" in block
  assert "GRU train 1.040" in block and "run: today; load average 0.1 at start" in block
  assert report.summary_block(text.replace("4.00 (", "4.50 ("), "x") != block


def test_peers_compute_the_same_function():
  gru = _peer_checks.check_cells("gru")
  checked = {k for k, v in gru.items() if isinstance(v, float)}
  assert {"rnnjax", "scan (per-step x@W)", "flax GRUCell", "keras stateless"} <= checked, gru
  workloads = _peer_checks.check_workloads("lstm")
  assert len(workloads) == 9 and all(isinstance(v, float) for v in workloads.values())
  for result in (gru, workloads):
    assert _peer_checks.agree(result), result


def test_quick_run_writes_every_table(tmp_path, monkeypatch):
  monkeypatch.setattr(cpu_lstm, "QUICK_SHAPES", [(4, 6, 3, 8)])
  monkeypatch.setattr(cpu_lstm, "QUICK_WORKLOAD_SHAPE", (4, 8, 3, 8))
  out = tmp_path / "cpu.md"
  assert cpu_lstm.main(["--quick", "--no-checks", "--out", str(out), "--kinds", "gru",
                        "--mode", "train",
                        "--peers", "rnnjax", "scan (per-step x@W)", "scan (where)"]) == 0
  text = out.read_text()
  assert "SMOKE RUN" in text and (tmp_path / "cpu.png").exists()
  sections = report.parse_sections(text)
  (row,) = sections["GRU train step and forward pass"]
  assert report.ms(row["rnnjax"]) > 0 and report.ms(row["GEMM floor ms"]) > 0
  workloads = sections["Masks and resets"]
  assert [r["workload"] for r in workloads] == list(cpu_lstm._workload_peers.WORKLOADS)
  assert all(report.ms(r["rnnjax"]) > 0 for r in workloads)
  assert float(workloads[1]["rnnjax / rnnjax (none)"]) > 0
  assert "GRU train" in report.summary_block(text, "x")


def test_paired_ratio_is_the_median_of_per_round_ratios():
  rounds = {"a": [2.0, 4.0, 9.0], "b": [1.0, 2.0, 3.0]}   # ratios 2, 2, 3; minima 2 / 1
  assert _timing.paired_ratio(rounds, "a", "b") == 2.0
  assert _timing.paired_ratio({"a": [1.0, 3.0], "b": [1.0, 1.0]}, "a", "b") == 2.0
