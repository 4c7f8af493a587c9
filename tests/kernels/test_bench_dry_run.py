"""bench/gpu_check.py on a CPU (--dry-run: interpret mode, tiny shapes): the same driver,
subprocesses and row format as on the GPU. A subset of cells keeps it short (one linear
recurrence cell: a row per model and the scan="auto" record); the budget and the per-cell
timeout are checked on their own."""

from bench import gpu_check
from bench._gpu_cells import Cell


def test_gpu_check_dry_run(tmp_path):
  code = gpu_check.main(["--dry-run", "--out", str(tmp_path), "--cells", "torch lstm float16",
                         "resident sanity", "reset workload", "linear train f32 short T"])
  assert code == 0
  text = (tmp_path / "gpu.md").read_text()
  assert text.startswith("# rnnjax GPU check (DRY RUN")
  env = text[text.index("## Environment"):text.index("## Cells")]
  for fact in ("jax:", "jaxlib:", "jax-cuda13-plugin:", "torch:", "jax backend: cpu",
               "torch.backends.cudnn.version()"):
    assert fact in env, fact
  rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
  linear = [r for r in rows if r.startswith("| linear train f32 short T: ")]
  rows = [r for r in rows if r not in linear]
  assert len(rows) == 3, rows
  assert rows[0].startswith("| torch lstm float16 | 17, 20, 6 | n/a: torch")
  sanity, reset = rows[1].split(" | "), rows[2].split(" | ")
  assert sanity[0] == "| fused lstm bf16 (resident sanity)" and sanity[2].endswith(" ok")
  assert "block_b 16, block_h 16" in sanity[6] and "verified" in sanity[6]
  assert "OUTSIDE" not in sanity[6]
  assert float(sanity[3]) > 0 and float(sanity[4]) > 0 and float(sanity[5]) > 0
  assert reset[2].endswith(" ok") and "3% resets; reset-free forward" in reset[6]
  assert "## Ratios" in text and (tmp_path / "gpu.png").exists()
  models = ["MinGRU parallel", "MinGRU sequential", "MinLSTM parallel", "MinLSTM sequential",
            "LRU parallel", "LRU sequential", "GRU", "LSTM", 'scan="auto"']
  assert [r.split(" | ")[0].split(": ", 1)[1] for r in linear] == models, linear
  for r in linear[:-1]:
    parts = r.split(" | ")
    assert parts[1] == "2, 8, 5" and float(parts[4]) > 0 and " tokens/s, peak " in parts[6]
  # The dry run stands in for a GPU: the rule picks the parallel scan for all three.
  assert linear[-1].count("auto picks parallel") == 3, linear[-1]
  assert "## Linear recurrences" in text and "MinGRU parallel " in text


def test_cells_past_the_budget_are_skipped(tmp_path):
  assert gpu_check.main(["--dry-run", "--out", str(tmp_path), "--budget-s", "0",
                         "--cells", "scan"]) == 0
  rows = [line for line in (tmp_path / "gpu.md").read_text().splitlines()
          if line.startswith("| scan")]
  assert rows and all("skipped: past the budget" in r for r in rows)


def test_a_timeout_costs_one_cell():
  class Args:
    dry_run, reps, warmup = True, 1, 0
  got = []
  cell = Cell("scan lstm bf16", "scan", "lstm", "bfloat16", ((17, 20, 6),))
  index = [c.name for c in gpu_check.cells(True)].index(cell.name)
  gpu_check.run_in_subprocess(cell, index, 0.5, Args, lambda s, r: got.append((s, r)))
  assert got == [((17, 20, 6), got[0][1])] and got[0][1]["error"].startswith("timeout after")


def test_priority_order_and_targets():
  names = [c.name for c in gpu_check.cells(False)]
  assert names[:4] == ["torch lstm float16", "torch lstm bfloat16", "torch gru float16",
                       "torch gru bfloat16"]
  assert names.index("fused lstm bf16 (resident sanity)") < names.index("fused lstm bf16")
  # The linear recurrences come last, after every LSTM/GRU cell.
  first_linear = names.index("linear train f32 short T")
  assert names[first_linear - 1] == "reset workload lstm bf16"
  assert all(n.startswith("linear train f32") for n in names[first_linear:])
  assert [c.shapes for c in gpu_check.cells(False)[first_linear:]] == [
      ((8, 256, 1024),), ((8, 256, 8192),), ((8, 256, 65536),)]
  fused = gpu_check.cells(False)[names.index("fused lstm bf16")]
  assert fused.shapes == ((64, 256, 512), (256, 512, 512))
  assert gpu_check.cells(False)[first_linear - 1].shapes == ((128, 256, 128),)


def test_refuses_to_time_on_cpu():
  assert gpu_check.main([]) == 2
