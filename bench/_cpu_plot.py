"""cpu.png from the text of cpu.md: one panel per cell kind and mode (each peer's time
relative to the row's fastest JAX peer other than rnnjax, per shape, and the GEMM floor
on the same scale), and one for the mask / reset workloads (each peer's time relative to
its own run without a mask)."""

import _cpu_report as report

CLIP = 3.0  # y-axis limit of the ratio panels
SHORT = {"none": "none", "reset 3%": "reset 3%", "padded, mask=": "mask=",
         "padded, seq_lengths=": "seq_lengths="}


def _panels(sections):
  for kind, label in report.KINDS.items():
    rows = sections.get(report.cell_section_title(kind), [])
    for mode in dict.fromkeys(r["mode"] for r in rows):
      yield f"{label} {mode} step, (B, T, D, H)", [
          (r["(B, T, D, H)"], r) for r in rows if r["mode"] == mode]


def plot(text, path) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  sections = report.parse_sections(text)
  panels = list(_panels(sections))
  workloads = sections.get("Masks and resets", [])
  n = len(panels) + bool(workloads)
  fig, axes = plt.subplots(n, 1, figsize=(11, 3.4 * n), squeeze=False)
  for ax, (title, rows) in zip(axes[:, 0], panels):
    times = [{p: report.ms(r[p]) for p in report._peer_columns(r) if report.ms(r[p])}
             for _, r in rows]
    refs = [report.reference(t)[1] for t in times]
    names = list(dict.fromkeys(p for t in times for p in t))
    if any(report.ms(r.get("GEMM floor ms")) for _, r in rows):
      names.append("GEMM floor")
    width, top = 0.8 / len(names), 1.0
    for k, name in enumerate(names):
      xs, ys = [], []
      for i, ((_, row), t, ref) in enumerate(zip(rows, times, refs)):
        value = report.ms(row.get("GEMM floor ms")) if name == "GEMM floor" else t.get(name)
        if value and ref:
          xs.append(i + k * width)
          ys.append(value / ref)
      color = ("black" if name == "rnnjax" else "lightgrey" if name == "GEMM floor"
               else matplotlib.colormaps["tab20"](k % 20))
      ax.bar(xs, [min(y, CLIP) for y in ys], width, label=name, color=color)
      top = max([top, *(min(y, CLIP) for y in ys)])
      for x, y in zip(xs, ys):
        if y > CLIP:  # a far slower peer would flatten the rest: clipped, value written
          ax.text(x, CLIP, f"{y:.0f}", ha="center", va="bottom", fontsize=6)
    ax.set_ylim(0, top * 1.35)  # room for the legend above the bars
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(rows))], [s for s, _ in rows])
    ax.set_ylabel("time / fastest JAX peer")
    ax.set_title(f"{title}; lower is faster")
    ax.legend(fontsize=7, ncol=6, loc="upper left")
  if workloads:
    _workload_panel(axes[-1, 0], workloads)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def _workload_panel(ax, rows):
  groups = list(dict.fromkeys((r["cell"], r["mode"]) for r in rows))
  peers = list(dict.fromkeys(p for r in rows for p in report._peer_columns(r)))
  labels, width, labelled = [], 0.8 / max(1, len(peers)), set()
  for g, (cell, mode) in enumerate(groups):
    group = [r for r in rows if (r["cell"], r["mode"]) == (cell, mode)]
    none = next(r for r in group if r["workload"] == "none")
    for w, row in enumerate(group):
      x = g * (len(group) + 1) + w
      labels.append((x + 0.4 - width / 2, f"{cell} {mode}: {SHORT.get(row['workload'], row['workload'])}"))
      for k, peer in enumerate(peers):
        base, value = report.ms(none.get(peer)), report.ms(row.get(peer))
        if base and value:
          ax.bar(x + k * width, value / base, width, color=f"C{k}",
                 label=None if peer in labelled else peer)
          labelled.add(peer)
  ax.axhline(1.0, color="grey", linewidth=0.8)
  ax.axhline(1.05, color="red", linewidth=0.6, linestyle="--")
  ax.set_xticks([x for x, _ in labels], [l for _, l in labels], fontsize=6, rotation=40,
                ha="right")
  ax.set_ylabel("time / same peer, no mask")
  ax.set_title("Masks and resets (dashed: the 1.05 reset target); lower is cheaper")
  ax.legend(fontsize=7, ncol=4)
