"""The Mosaic GPU cell of bench/gpu_check.py on a CPU (--dry-run: interpret mode, a tiny
shape): the cells run the opt-in kernels through the same subprocess and row format as
the Triton cells, checked against the float32 HIGHEST scan."""

from bench import gpu_check


def test_mosaic_cell_dry_run(tmp_path):
  code = gpu_check.main(["--dry-run", "--out", str(tmp_path), "--cells", "mosaic"])
  assert code == 0
  rows = [line.split(" | ") for line in (tmp_path / "gpu.md").read_text().splitlines()
          if line.startswith("| mosaic")]
  assert [r[0] for r in rows] == ["| mosaic lstm bf16 (W_hh in SMEM)",
                                  "| mosaic gru bf16 (W_hh in SMEM)"], rows
  for row in rows:
    assert row[2].endswith(" ok")
    assert "Mosaic GPU, opt-in: cluster 1, batch tile 64" in row[6] and "/ 6 bwd" in row[6]
    assert float(row[3]) > 0 and float(row[4]) > 0


def test_mosaic_cell_follows_the_fused_sanity_cell():
  names = [c.name for c in gpu_check.cells(False)]
  mosaic = names.index("mosaic lstm bf16 (W_hh in SMEM)")
  assert mosaic == names.index("fused lstm bf16 (resident sanity)") + 1
  assert gpu_check.cells(False)[mosaic].shapes == ((64, 128, 512), (64, 256, 512),
                                                    (256, 512, 512))
  gru = names.index("mosaic gru bf16 (W_hh in SMEM)")
  assert gru == names.index("fused gru bf16") + 1
