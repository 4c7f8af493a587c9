"""The Keras RNN guide's MNIST-rows classifier, in rnnjax: each image row is a time step.

    python -m rnnjax.demo                    # scikit-learn's bundled digits (8 x 8), no download
    python -m rnnjax.demo --data mnist.npz   # a local Keras-format MNIST file (28 x 28)

Model: LSTM(64) -> LayerNorm -> Dense(10), trained with optax (Adam), as pure functions
over a params pytree. Shows a progress bar (on a terminal), prints loss and accuracy per
epoch, which RNN implementation ran and the step time, and saves the training curve as a
PNG. Needs the demo extra: pip install -e ".[demo]" (tqdm, matplotlib, scikit-learn).
"""

import argparse
import importlib
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import rnnjax as rj

INSTALL_HINT = "pip install -e '.[demo]'   (from a clone; or: pip install 'rnnjax[demo]')"


def require_demo_packages(*, sklearn: bool = True) -> None:
  """Exits with the install command when a package of the demo extra is missing."""
  names = {"tqdm": "tqdm", "matplotlib": "matplotlib"} | (
      {"sklearn": "scikit-learn"} if sklearn else {})
  missing = []
  for module, package in names.items():
    try:
      importlib.import_module(module)
    except ImportError:
      missing.append(package)
  if missing:
    raise SystemExit(f"The demo needs {', '.join(missing)} (the demo extra), which is not "
                     f"installed. Install it with:\n  {INSTALL_HINT}")


def load_data(path: str | None, seed: int = 0):
  """((x_train, y_train), (x_test, y_test)) with x of shape (N, rows, cols) in [0, 1]."""
  if path:
    with np.load(path) as f:
      return ((f["x_train"] / 255.0).astype("float32"), f["y_train"].astype("int32")), (
          (f["x_test"] / 255.0).astype("float32"), f["y_test"].astype("int32"))
  from sklearn.datasets import load_digits
  from sklearn.model_selection import train_test_split

  digits = load_digits()
  x = (digits.images / 16.0).astype("float32")
  y = digits.target.astype("int32")
  x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y)
  return (x_tr, y_tr), (x_te, y_te)


LSTM = rj.LSTM(64)


def init_model(key, x):
  k_rnn, k_dense = jax.random.split(key)
  dense_init = jax.nn.initializers.glorot_uniform()
  return {
      "lstm": LSTM.init(k_rnn, x),
      "norm": {"scale": jnp.ones(64), "offset": jnp.zeros(64)},
      "dense": {"kernel": dense_init(k_dense, (64, 10)), "bias": jnp.zeros(10)},
  }


def logits_fn(params, x):
  """x (B, rows, cols) -> logits (B, 10)."""
  h = LSTM.apply(params["lstm"], x)
  mean = h.mean(-1, keepdims=True)
  var = h.var(-1, keepdims=True)
  h = (h - mean) * jax.lax.rsqrt(var + 1e-5) * params["norm"]["scale"][None] + params["norm"]["offset"][None]
  return h @ params["dense"]["kernel"] + params["dense"]["bias"][None]


def loss_fn(params, x, y):
  logits = logits_fn(params, x)
  return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), logits


def make_train_step(optimizer):
  @jax.jit
  def train_step(params, opt_state, x, y):
    (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, x, y)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    correct = jnp.sum(jnp.argmax(logits, -1) == y)
    return optax.apply_updates(params, updates), opt_state, loss, correct

  return train_step


@jax.jit
def evaluate(params, x, y):
  loss, logits = loss_fn(params, x, y)
  return loss, jnp.mean(jnp.argmax(logits, -1) == y)


def plain_path(choice: rj.kernels.PathChoice) -> str:
  """The implementation a PathChoice names, in plain words."""
  if choice.path == "scan":
    return "the generic path (jax.lax.scan over the cell)"
  if "interpret mode" in choice.reason:
    return "the fused Pallas kernel, in interpret mode (a CPU standing in for a GPU)"
  if "on the CPU" in choice.reason:
    return "the CPU fast path (custom-JVP recurrence)"
  if "on the GPU" in choice.reason:
    return "the GPU fast path (fused Pallas kernel)"
  return "a fast path"


def describe_path(x) -> str:
  """Which RNN implementation the LSTM layer runs for `x`, in plain words, and why."""
  choice = rj.kernels.which_path(LSTM, x)
  return f"{plain_path(choice)}; why: {choice.reason}"


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data", help="a Keras-format mnist.npz (default: scikit-learn digits)")
  parser.add_argument("--epochs", type=int, default=12)
  parser.add_argument("--batch-size", type=int, default=64)
  parser.add_argument("--learning-rate", type=float, default=3e-3)
  parser.add_argument("--out", default="demo_out", help="folder for the training-curve plot")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--progress", choices=("auto", "on", "off"), default="auto",
                      help="the progress bar: auto shows it on a terminal only")
  args = parser.parse_args(argv)
  require_demo_packages(sklearn=not args.data)
  from tqdm import tqdm

  (x_train, y_train), (x_test, y_test) = load_data(args.data, args.seed)
  source = args.data or "scikit-learn digits"
  print(f"data: {source}, {len(x_train)} train / {len(x_test)} test sequences of "
        f"{x_train.shape[1]} steps x {x_train.shape[2]} features")
  path = describe_path(x_train[: args.batch_size])

  params = init_model(jax.random.key(args.seed), x_train[: args.batch_size])
  optimizer = optax.adam(args.learning_rate)
  opt_state = optimizer.init(params)
  train_step = make_train_step(optimizer)
  n_params = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))
  print(f"model: LSTM(64) -> LayerNorm -> Dense(10), {n_params:,} parameters")

  rng = np.random.default_rng(args.seed)
  steps_per_epoch = len(x_train) // args.batch_size
  history, step_times = [], []
  started = time.perf_counter()
  # One bar for the whole run, redrawn in place at most twice a second; the epoch lines
  # print above it. "auto" shows it on a terminal only, so logs get the epoch lines alone.
  bar = tqdm(total=args.epochs * steps_per_epoch, unit="step", dynamic_ncols=True,
             mininterval=0.5, leave=False, file=sys.stderr,
             disable={"auto": None, "on": False, "off": True}[args.progress])
  with bar:
    for epoch in range(1, args.epochs + 1):
      order = rng.permutation(len(x_train))
      total_loss, total_correct = 0.0, 0
      bar.set_description(f"epoch {epoch}/{args.epochs}")
      for i in range(steps_per_epoch):
        idx = order[i * args.batch_size:(i + 1) * args.batch_size]
        start = time.perf_counter()
        params, opt_state, loss, correct = train_step(params, opt_state, x_train[idx],
                                                      y_train[idx])
        loss = float(loss)
        if epoch > 1:  # epoch 1 includes compilation
          step_times.append(time.perf_counter() - start)
        total_loss += loss
        total_correct += int(correct)
        bar.update()
        bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
      seen = steps_per_epoch * args.batch_size
      test_loss, test_acc = (float(v) for v in evaluate(params, x_test, y_test))
      history.append((total_loss / steps_per_epoch, total_correct / seen, test_loss, test_acc))
      bar.write(f"epoch {epoch:2d}  loss {history[-1][0]:.4f}  acc {history[-1][1]:.3f}  "
                f"test loss {test_loss:.4f}  test acc {test_acc:.3f}", file=sys.stdout)

  print(f"LSTM ran on {path}")
  timing = f"{time.perf_counter() - started:.1f} s for {args.epochs} epochs"
  if step_times:
    timing += (f", {1e3 * float(np.median(step_times)):.2f} ms per train step (median, "
               f"batch {args.batch_size}, jitted, {jax.devices()[0].platform})")
  print(f"time: {timing}")
  title = (f"rnnjax demo: LSTM(64) on {source}, {x_train.shape[1]} steps x "
           f"{x_train.shape[2]} features (test accuracy {history[-1][3]:.1%})")
  print(f"plot: {save_plot(history, pathlib.Path(args.out), title)}")
  return history


def save_plot(history, out: pathlib.Path, title: str = "rnnjax demo") -> pathlib.Path:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  out.mkdir(parents=True, exist_ok=True)
  h = np.asarray(history)
  epochs = np.arange(1, len(h) + 1)
  fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.5))
  ax_loss.plot(epochs, h[:, 0], label="train")
  ax_loss.plot(epochs, h[:, 2], label="test")
  ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
  ax_acc.plot(epochs, h[:, 1], label="train")
  ax_acc.plot(epochs, h[:, 3], label="test")
  ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
  for ax in (ax_loss, ax_acc):
    ax.legend()
    ax.grid(alpha=0.3)
  fig.suptitle(title)
  fig.tight_layout()
  path = out / "training_curve.png"
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


if __name__ == "__main__":
  main()
