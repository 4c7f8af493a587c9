"""PyTorch `nn.LSTM` on the CPU, for the peer benchmark: the same train step (forward,
backward, SGD on mean(outputs^2)) and forward pass as the JAX peers.

cpu_lstm.py imports this when torch is importable, or runs it in a subprocess with
another interpreter (`--torch-python`), since torch need not live in the JAX venv:

    python bench/_torch_peer.py B T D H MODE    # prints the median seconds per step
"""

import statistics
import sys
import time


def median_seconds(b, t, d, h, mode, min_time=2.0, min_reps=5, max_reps=50):
  import torch

  torch.manual_seed(0)
  lstm = torch.nn.LSTM(d, h, batch_first=True)
  x = torch.randn(b, t, d)
  opt = torch.optim.SGD(lstm.parameters(), lr=1e-3)

  def train():
    opt.zero_grad(set_to_none=True)
    loss = lstm(x)[0].pow(2).mean()
    loss.backward()
    opt.step()

  def forward():
    with torch.no_grad():
      lstm(x)

  fn = train if mode == "train" else forward
  for _ in range(2):
    fn()
  times, start = [], time.perf_counter()
  while len(times) < min_reps or (time.perf_counter() - start < min_time and len(times) < max_reps):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


if __name__ == "__main__":
  b, t, d, h = (int(a) for a in sys.argv[1:5])
  print(median_seconds(b, t, d, h, sys.argv[5]))
