"""bench/results/cpu.md: writing it, reading it back, and the summary block that README.md,
docs/cpu_perf.md and bench/README.md quote from it (between `BEGIN` and `END` markers,
rewritten by `python bench/cpu_lstm.py --sync-docs`; tests/test_bench_cpu.py fails when a
quoted block differs from what this file's table gives).

A section is `## title`, a few lines of text, then one table; its rows are dicts of
column -> cell text. A time cell reads "12.3 (0.98)": ms, and the ratio to the row's
fastest JAX peer that is not rnnjax ("—" where a peer was not run)."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "cpu.md"
BEGIN = ("<!-- cpu-bench:begin (generated from bench/results/cpu.md by "
         "`python bench/cpu_lstm.py --sync-docs`; do not edit by hand) -->")
END = "<!-- cpu-bench:end -->"
DOCS = {"README.md": "bench/results/cpu.md", "docs/cpu_perf.md": "../bench/results/cpu.md",
        "bench/README.md": "results/cpu.md"}
NOT_REFERENCE = ("rnnjax", "torch", "keras fit")  # not "the fastest JAX peer"
KINDS = {"lstm": "LSTM", "gru": "GRU"}


def reference(times):
  """(name, seconds) of the fastest JAX peer other than rnnjax itself, or (None, None)."""
  peers = {n: s for n, s in times.items() if not n.startswith(NOT_REFERENCE)}
  if not peers:
    return None, None
  name = min(peers, key=peers.get)
  return name, peers[name]


def time_cell(seconds, ref):
  if seconds is None:
    return "—"
  return fmt_ms(seconds) + (f" ({seconds / ref:.2f})" if ref else "")


def fmt_ms(seconds):
  """Milliseconds: one decimal from 10 ms up, two from 1 ms, three below."""
  value = 1e3 * seconds
  return f"{value:.{1 if value >= 10 else 2 if value >= 1 else 3}f}"


def table(keys, rows, extra=()):
  """Markdown table: `keys` (column names of the row labels), then every peer that any
  row has, then `extra` columns. rows: [(labels, times, {extra column: text})]."""
  names = list(dict.fromkeys(n for _, times, _ in rows for n in times))
  out = ["| " + " | ".join([*keys, *names, *extra]) + " |",
         "|" + "---|" * (len(keys) + len(names) + len(extra))]
  for labels, times, more in rows:
    _, ref = reference(times)
    cells = [time_cell(times.get(n), ref) for n in names]
    out.append("| " + " | ".join([*map(str, labels), *cells, *(more.get(c, "—") for c in extra)])
               + " |")
  return "\n".join(out)


def parse_sections(text):
  """{section title: [row dict]} of every `## title` section's first table."""
  sections, title, block, done = {}, None, [], False
  for line in [*text.splitlines(), "## end"]:
    if line.startswith("## "):
      if title is not None and block:
        head = _cells(block[0])
        sections[title] = [dict(zip(head, _cells(l))) for l in block[2:]]
      title, block, done = line[3:].strip(), [], False
    elif line.startswith("|") and not done:
      block.append(line)
    elif block:
      done = True
  return sections


def _cells(line):
  return [c.strip() for c in line.strip().strip("|").split("|")]


def ms(cell):
  """Seconds from a time cell, None for "—"."""
  return None if cell in ("—", "", None) else float(cell.split()[0]) / 1e3


def cell_section_title(kind):
  return f"{KINDS[kind]} train step and forward pass"


def meta_value(text, key):
  found = re.search(rf"^- {re.escape(key)}: (.*)$", text, re.M)
  return found.group(1).strip() if found else "not recorded"


PAIRED = "rnnjax / fastest (paired)"


def summary_block(text, link):
  """The block the docs quote: for each cell kind and mode, rnnjax's default path
  against the fastest JAX peer at every shape, and the reset cost when measured."""
  sections = parse_sections(text)
  out = [BEGIN,
         f"rnnjax (default path) against the fastest JAX peer on the CPU, ms per step, from "
         f"[bench/results/cpu.md]({link}) (run: {meta_value(text, 'Run')}; load average "
         f"{meta_value(text, 'Load average')}); in brackets rnnjax / fastest peer (the median "
         f"of per-round ratios where measured, else the ratio of the minima), below 1: "
         f"rnnjax faster; PyTorch (own process) and the GEMM compute floor where measured.",
         ""]
  rows = []
  for kind, label in KINDS.items():
    for row in sections.get(cell_section_title(kind), []):
      times = {n: ms(row[n]) for n in _peer_columns(row) if ms(row[n]) is not None}
      name, ref = reference(times)
      if "rnnjax" in times and ref:
        torch = next((s for n, s in times.items() if n.startswith("torch")), None)
        floor = ms(row.get("GEMM floor ms"))
        paired = row.get(PAIRED, "—")
        ratio = float(paired) if paired != "—" else times["rnnjax"] / ref
        rows.append((f"{label} {row['mode']}", row["(B, T, D, H)"],
                     f"{fmt_ms(times['rnnjax'])} vs {fmt_ms(ref)} {name} "
                     f"({ratio:.2f})"
                     + (f"; PyTorch {fmt_ms(torch)}" if torch else "")
                     + (f"; floor {fmt_ms(floor)}" if floor else "")))
  shapes = list(dict.fromkeys(shape for _, shape, _ in rows))
  out += ["| cell, mode | " + " | ".join(shapes) + " |", "|---|" + "---|" * len(shapes)]
  for label in dict.fromkeys(label for label, _, _ in rows):
    got = {shape: text for l, shape, text in rows if l == label}
    out.append(f"| {label} | " + " | ".join(got.get(s, "—") for s in shapes) + " |")
  resets = [f"{r['cell']} {r['mode']} {r['rnnjax / rnnjax (none)']}"
            for r in sections.get("Masks and resets", []) if r.get("workload") == "reset 3%"]
  out += ["", "Reset cost, rnnjax with 3% resets / without (target ≤ 1.05): "
          + ("; ".join(resets) if resets else "not measured yet") + "."]
  return "\n".join([*out, END])


def _peer_columns(row):
  return [n for n in row if not n.startswith("GEMM floor") and "/" not in n
          and n not in ("mode", "(B, T, D, H)", "cell", "workload")]


def quoted_block(doc_text):
  """The text between the markers in a doc, markers included; None when absent."""
  start, end = doc_text.find(BEGIN), doc_text.find(END)
  return None if start < 0 or end < 0 else doc_text[start:end + len(END)]


def sync_docs(results=RESULTS, root=ROOT):
  """Rewrites the block in every doc of DOCS from `results`; returns the docs changed."""
  text, changed = pathlib.Path(results).read_text(), []
  for doc, link in DOCS.items():
    path = root / doc
    old = path.read_text()
    block = quoted_block(old)
    if block is None:
      raise ValueError(f"{doc} has no {BEGIN!r} ... {END!r} block to rewrite.")
    new = old.replace(block, summary_block(text, link))
    if new != old:
      path.write_text(new)
      changed.append(doc)
  return changed
