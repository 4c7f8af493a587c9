"""PyTorch `nn.LSTM` / `nn.GRU` on the CPU, for the peer benchmark: the same model
(RNN(H) -> Linear(10) on every step), train step (forward, backward, SGD on the mean
square of the (B, T, 10) output) and forward pass as the JAX peers.

cpu_lstm.py imports this when torch is importable, or runs it in a subprocess with
another interpreter (`--torch-python`), since torch need not live in the JAX venv:

    python bench/_torch_peer.py B T D H MODE [lstm|gru]   # prints the median seconds per step
"""

import statistics
import sys
import time


def median_seconds(b, t, d, h, mode, kind="lstm", min_time=2.0, min_reps=5, max_reps=50):
  import torch

  torch.manual_seed(0)
  rnn = (torch.nn.LSTM if kind == "lstm" else torch.nn.GRU)(d, h, batch_first=True)
  head = torch.nn.Linear(h, 10)
  x = torch.randn(b, t, d)
  opt = torch.optim.SGD([*rnn.parameters(), *head.parameters()], lr=1e-3)

  def train():
    opt.zero_grad(set_to_none=True)
    loss = head(rnn(x)[0]).pow(2).mean()
    loss.backward()
    opt.step()

  def forward():
    with torch.no_grad():
      head(rnn(x)[0])

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
  print(median_seconds(b, t, d, h, sys.argv[5], *sys.argv[6:7]))
