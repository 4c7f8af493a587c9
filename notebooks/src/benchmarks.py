# %% [markdown]
# # CPU benchmarks
#
# The LSTM train step of rnnjax against its peers on this machine's CPU, run by the code in
# `bench/` (`bench/cpu_lstm.py` with the peers of `bench/_lstm_peers.py`), and the memory
# and time of gradient checkpointing (`remat`) from `bench/results/remat_cpu.md`.
#
# Every peer computes the same thing: an LSTM over `(B, T, D)` inputs with `H` units, the
# loss `mean(outputs ** 2)` over the whole output sequence, its gradient and an SGD update,
# all under one `jax.jit`. The JAX peers are timed interleaved round-robin after warm-up and
# each reports its fastest round (PyTorch, in its own process, its median); the ratio is to the textbook
# `lax.scan` LSTM (`x_t @ W + h @ U` inside the loop), lower is faster. Peers that are not
# installed (Haiku, Equinox, PyTorch) are skipped.
#
# For the full tables run `python bench/cpu_lstm.py` (writes `bench/results/cpu.md`);
# this notebook runs a shorter version: fewer shapes and shorter timing loops (in CI, one
# small shape). The timings saved in this notebook are those of the machine that built it
# (the first cell prints its core count and load average); on a shared or busy machine
# they are noisy, so read the ratios as rough.

# %%
import os
import pathlib
import sys

import jax
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

BENCH = pathlib.Path.cwd().parent / "bench"   # the notebook runs in notebooks/
sys.path.insert(0, str(BENCH))

import cpu_lstm  # noqa: E402
import remat  # noqa: E402

SMALL = os.environ.get("RNNJAX_NOTEBOOK_SMALL") == "1"
print("jax", jax.__version__, "|", jax.local_device_count(), "CPU device(s) |",
      os.cpu_count(), "cores | load average", " ".join(f"{v:.1f}" for v in os.getloadavg()),
      "| small run" if SMALL else "")

# %% [markdown]
# ## LSTM train step against the peers
#
# `(B, T, D, H)`: batch, time steps, input features, units.

# %%
if SMALL:
  shapes = [(16, 16, 16, 32)]
  timing = dict(warmup=1, min_reps=3, min_time=0.1, max_reps=5)
else:
  shapes = cpu_lstm.SHAPES[:2]
  timing = dict(warmup=2, min_reps=5, min_time=1.0, max_reps=30)
peers = [*cpu_lstm.PEERS, cpu_lstm.TORCH]
rows = cpu_lstm.run(peers, shapes, ["train"], **timing)

# %%
display(Markdown(cpu_lstm.to_markdown(rows)))

# %%
names = [n for n in peers if any(n in times for _, _, times in rows)]
fig, ax = plt.subplots(figsize=(9, 3.8))
width = 0.8 / len(rows)
for i, (mode, shape, times) in enumerate(rows):
  base = times[cpu_lstm.BASELINE]
  ratios = [times[n] / base if n in times else np.nan for n in names]
  bars = ax.bar(np.arange(len(names)) + (i - (len(rows) - 1) / 2) * width, ratios, width,
                label=f"{mode} {shape}")
  ax.bar_label(bars, fmt="%.2f", fontsize=7)
ax.axhline(1.0, color="gray", lw=0.8, ls="--")
ax.set_xticks(np.arange(len(names)), names, rotation=25, ha="right")
ax.set_ylabel(f"time / {cpu_lstm.BASELINE}")
ax.set_title("LSTM train step on the CPU (lower is faster)")
ax.legend(title="mode (B, T, D, H)", fontsize=8)
fig.tight_layout()
plt.show()

assert all(cpu_lstm.BASELINE in times and "rnnjax" in times for _, _, times in rows)

# %% [markdown]
# ## Gradient checkpointing: memory against time
#
# `remat=` on any rnnjax layer trades recomputation for memory in the backward pass:
# `None` keeps every step's residuals, `"step"` keeps only the carried state per step, an
# int `k` (here 100) keeps the state every `k` steps and recomputes each segment, `"sqrt"`
# picks `k = sqrt(T)`. The table is XLA's compiled temporary memory and the measured time of
# an `LSTM(64)` gradient, written by `python bench/remat.py`.

# %%
table_path = BENCH / "results" / "remat_cpu.md"
if table_path.exists():
  display(Markdown(table_path.read_text()))
  table = remat.read_table(table_path)
  fig, (ax_mem, ax_time) = plt.subplots(1, 2, figsize=(10, 3.6))
  for label, points in table.items():
    steps, memory, seconds = np.asarray(points).T
    ax_mem.plot(steps, memory, marker="o", label=label)
    ax_time.plot(steps, seconds, marker="o", label=label)
  ax_mem.set(xscale="log", yscale="log", xlabel="time steps T", ylabel="MiB",
             title="temporary memory of the gradient")
  ax_time.set(xscale="log", yscale="log", xlabel="time steps T", ylabel="seconds",
              title="time of the gradient")
  ax_mem.legend(fontsize=8)
  fig.tight_layout()
  plt.show()
else:
  print(f"{table_path} is missing: run `python bench/remat.py` to write it.")
