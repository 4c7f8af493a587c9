"""Flax's `examples/seq2seq` on rnnjax: an LSTM encoder-decoder learns to add
("12+345" -> "=357"), character by character.

The port keeps Flax's model, data and training step and swaps `nn.LSTMCell` for
`rj.linen.LSTMCell`: the encoder is `nn.RNN(rj.linen.LSTMCell(H), return_carry=True)`,
the decoder a cell module that steps `rj.linen.LSTMCell` inside `nn.RNN`, feeding back
its own samples (`self.make_rng("lstm")` at every step, as in Flax). The LSTM carry is
rnnjax's `(h, c)`; Flax's is `(c, h)`: nothing else changes.

  python examples/seq2seq.py --small                     # a quick run (CI)
  python examples/seq2seq.py --initializers keras        # rnnjax's default (Keras) init
  python examples/seq2seq.py --compare --seeds 3         # Flax itself vs rnnjax "flax" / "keras"

`--compare` trains, for each seed on the same batches, Flax's own model (`nn.LSTMCell`),
rnnjax with `initializers="flax"` and rnnjax with the default Keras initializers, and
prints the train accuracy over the last steps: rnnjax "flax" trains like Flax. With
`--compare --steps 2000 --hidden 128 --batch 128` (3 seeds, CPU) the mean train accuracy
over the last 200 steps was 0.57 for Flax (0.37 / 0.85 / 0.50), 0.44 for rnnjax "flax"
(0.26 / 0.49 / 0.58) and 0.12 for rnnjax "keras" (0.11 / 0.15 / 0.10); see
docs/migration.md.
"""

import argparse
import functools
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

import rnnjax as rj


class CharacterTable:
  """Strings <-> one-hot token sequences: pad 0, eos 1, then the sorted characters."""

  def __init__(self, chars: str = "0123456789+= ", digits: int = 3):
    self.chars = sorted(set(chars))
    self.index = {ch: i + 2 for i, ch in enumerate(self.chars)}
    self.char = {i + 2: ch for i, ch in enumerate(self.chars)}
    self.digits = digits
    self.eos_id = 1
    self.vocab_size = len(self.chars) + 2
    self.max_input_len = 2 * digits + 2      # "digits+digits<eos>"
    self.max_output_len = digits + 3         # "=sum<eos>", the sum one digit longer

  def one_hot(self, text: str, length: int) -> np.ndarray:
    tokens = [self.index[ch] for ch in text] + [self.eos_id]
    out = np.zeros((length, self.vocab_size), np.float32)
    out[np.arange(len(tokens)), tokens] = 1.0   # rows past the end stay padding (all zero)
    out[len(tokens):, 0] = 1.0
    return out

  def decode(self, one_hot) -> str:
    text = []
    for token in np.asarray(one_hot).argmax(-1):
      if token == self.eos_id:
        break
      text.append(self.char.get(int(token), "_"))
    return "".join(text)

  def batch(self, rng: np.random.Generator, size: int) -> dict:
    """`size` sums "a+b" with a < 100 and b < 10**digits (Flax's generator), as one-hot
    `query` (B, max_input_len, V) and `answer` (B, max_output_len, V)."""
    pairs = [sorted((int(rng.integers(0, 100)), int(rng.integers(0, 10 ** self.digits))))
             for _ in range(size)]
    return {"query": np.stack([self.one_hot(f"{a}+{b}", self.max_input_len) for a, b in pairs]),
            "answer": np.stack([self.one_hot(f"={a + b}", self.max_output_len) for a, b in pairs])}


def lstm_cell(impl: str, hidden: int, initializers: str):
  """Flax's `nn.LSTMCell` or rnnjax's `rj.linen.LSTMCell` (both auto-named LSTMCell_0)."""
  if impl == "flax":
    return nn.LSTMCell(hidden)
  return rj.linen.LSTMCell(hidden, initializers=initializers)


def from_flax_params(params):
  """The params of the `impl="flax"` model for the rnnjax one: every flax LSTMCell entry
  converted with `rj.interop.from_flax` (Keras layout), the rest (Dense) unchanged."""
  if isinstance(params, dict) and set(params) == {"ii", "if", "ig", "io", "hi", "hf", "hg", "ho"}:
    return rj.interop.from_flax("lstm", params)
  if isinstance(params, dict):
    return {k: from_flax_params(v) for k, v in params.items()}
  return params


class DecoderCell(nn.RNNCellBase):
  """One decoder step: the LSTM, logits over the vocabulary, and a sampled token that is
  the next step's input unless `teacher_force`. Carry: (LSTM carry, last prediction)."""

  hidden: int
  vocab_size: int
  teacher_force: bool
  impl: str = "rnnjax"
  initializers: str = "flax"

  @nn.compact
  def __call__(self, carry, x):
    lstm_state, last_prediction = carry
    if not self.teacher_force:
      x = last_prediction
    lstm_state, y = lstm_cell(self.impl, self.hidden, self.initializers)(lstm_state, x)
    logits = nn.Dense(self.vocab_size)(y)
    token = jax.random.categorical(self.make_rng("lstm"), logits)   # a key per step
    prediction = jax.nn.one_hot(token, self.vocab_size, dtype=jnp.float32)
    return (lstm_state, prediction), (logits, prediction)

  @property
  def num_feature_axes(self) -> int:
    return 1


class Seq2seq(nn.Module):
  """Encoder-decoder; `impl` "rnnjax" (rj.linen.LSTMCell with `initializers`) or "flax"."""

  hidden: int
  vocab_size: int
  teacher_force: bool = False
  eos_id: int = 1
  impl: str = "rnnjax"
  initializers: str = "flax"

  @nn.compact
  def __call__(self, encoder_inputs, decoder_inputs):
    encoder = nn.RNN(lstm_cell(self.impl, self.hidden, self.initializers), return_carry=True,
                     name="encoder")
    decoder = nn.RNN(DecoderCell(self.hidden, self.vocab_size, self.teacher_force, self.impl,
                                 self.initializers),
                     split_rngs={"params": False, "lstm": True}, name="decoder")
    lengths = jnp.argmax(jnp.argmax(encoder_inputs, -1) == self.eos_id, axis=-1)
    state, _ = encoder(encoder_inputs, seq_lengths=lengths)
    return decoder(decoder_inputs[:, :-1], initial_carry=(state, decoder_inputs[:, 0]))


def sequence_lengths(answers, eos_id: int):
  """Length of each one-hot sequence including the eos token (Flax's rule)."""
  eos = answers[:, :, eos_id]
  first = jnp.argmax(eos, axis=-1)
  return jnp.where(eos[jnp.arange(eos.shape[0]), first] > 0, first + 1, answers.shape[1])


def metrics(logits, labels, eos_id: int) -> dict:
  lengths = sequence_lengths(labels, eos_id)
  valid = jnp.arange(labels.shape[1])[None] < lengths[:, None]
  xe = jnp.sum(jax.nn.log_softmax(logits) * labels, axis=-1)
  loss = -jnp.mean(xe * valid)
  correct = (jnp.argmax(logits, -1) == jnp.argmax(labels, -1)) | ~valid
  return {"loss": loss, "accuracy": jnp.mean(jnp.all(correct, axis=-1))}


@functools.lru_cache(maxsize=None)
def train_step(model: "Seq2seq", learning_rate: float):
  """(optimizer, the jitted step) for `model`, built once per configuration, so that
  runs with other seeds reuse the compilation."""
  optimizer = optax.adam(learning_rate)

  @jax.jit
  def step(params, opt_state, batch, step_key):
    labels = batch["answer"][:, 1:]

    def loss_fn(params):
      logits, _ = model.apply({"params": params}, batch["query"], batch["answer"],
                              rngs={"lstm": step_key})
      return metrics(logits, labels, model.eos_id)["loss"], logits

    (_, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = optimizer.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state, metrics(logits, labels,
                                                                    model.eos_id)

  return optimizer, step


def train(*, impl="rnnjax", initializers="flax", seed=0, steps=2000, hidden=512, batch=128,
          learning_rate=0.003, digits=3, params=None, log=None):
  """Trains as Flax's example does (Adam, teacher_force=False); returns the per-step
  metrics {"loss": (steps,), "accuracy": (steps,)} and the final params. The batches
  depend only on `seed`, so runs with different `impl` / `initializers` see the same
  data; `params` replaces the initial params (e.g. Flax's, converted)."""
  table = CharacterTable(digits=digits)
  model = Seq2seq(hidden, table.vocab_size, impl=impl, initializers=initializers)
  data = np.random.default_rng(seed)
  init_key, lstm_key = jax.random.split(jax.random.key(seed))
  query = jnp.ones((1, table.max_input_len, table.vocab_size))
  answer = jnp.ones((1, table.max_output_len, table.vocab_size))
  if params is None:
    params = model.init({"params": init_key, "lstm": lstm_key}, query, answer)["params"]
  optimizer, step = train_step(model, learning_rate)
  opt_state = optimizer.init(params)
  history = {"loss": [], "accuracy": []}
  for i in range(steps):
    params, opt_state, m = step(params, opt_state, table.batch(data, batch),
                                jax.random.fold_in(lstm_key, i))
    for name in history:
      history[name].append(float(m[name]))
    if log is not None and (i + 1) % log == 0:
      print(f"  step {i + 1:5d}  loss {np.mean(history['loss'][-log:]):.4f}  "
            f"train accuracy {np.mean(history['accuracy'][-log:]):.3f}", flush=True)
  return {k: np.asarray(v) for k, v in history.items()}, params


def decode(params, queries, *, hidden, initializers="flax", impl="rnnjax", digits=3, seed=0):
  """Greedy-free decoding as Flax's example: start from "=" and feed back samples."""
  table = CharacterTable(digits=digits)
  start = table.one_hot("=", table.max_output_len)[:1]
  inputs = jnp.tile(start, (queries.shape[0], table.max_output_len, 1))
  model = Seq2seq(hidden, table.vocab_size, teacher_force=False, impl=impl,
                  initializers=initializers)
  _, predictions = model.apply({"params": params}, queries, inputs,
                               rngs={"lstm": jax.random.key(seed)})
  return [table.decode(p) for p in predictions]


def compare(seeds, **sizes):
  """Flax's own model vs rnnjax with Flax's and with Keras's initializers, per seed on
  the same batches: the mean train accuracy and loss over the last tenth of the steps."""
  runs = {"flax nn.LSTMCell": dict(impl="flax"),
          'rnnjax initializers="flax"': dict(impl="rnnjax", initializers="flax"),
          'rnnjax initializers="keras"': dict(impl="rnnjax", initializers="keras")}
  window = max(1, sizes["steps"] // 10)
  results = {}
  for label, options in runs.items():
    accuracy, loss = [], []
    for seed in seeds:
      history, _ = train(seed=seed, **options, **sizes)
      accuracy.append(history["accuracy"][-window:].mean())
      loss.append(history["loss"][-window:].mean())
    results[label] = (np.array(accuracy), np.array(loss))
    print(f"{label:30s} train accuracy {' '.join(f'{a:.2f}' for a in accuracy)}  "
          f"(mean {np.mean(accuracy):.2f})  loss {np.mean(loss):.4f}", flush=True)
  return results


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--small", action="store_true", help="a quick run (CI size)")
  parser.add_argument("--steps", type=int, default=None)
  parser.add_argument("--hidden", type=int, default=None)
  parser.add_argument("--batch", type=int, default=None)
  parser.add_argument("--initializers", choices=("keras", "flax", "torch"), default="flax")
  parser.add_argument("--compare", action="store_true",
                      help="train Flax's own model and rnnjax (flax, keras init) per seed")
  parser.add_argument("--seeds", type=int, default=3)
  args = parser.parse_args(argv)
  small = dict(steps=300, hidden=64, batch=64) if args.small else dict(steps=2000, hidden=512,
                                                                       batch=128)
  sizes = {k: getattr(args, k) if getattr(args, k) is not None else v for k, v in small.items()}
  print(f"seq2seq addition: {sizes['steps']} steps, hidden {sizes['hidden']}, batch "
        f"{sizes['batch']}", flush=True)
  begin = time.perf_counter()
  if args.compare:
    compare(range(args.seeds), **sizes)
  else:
    history, params = train(initializers=args.initializers, log=max(1, sizes["steps"] // 5),
                            **sizes)
    table = CharacterTable()
    batch = table.batch(np.random.default_rng(123), 5)
    answers = decode(params, jnp.asarray(batch["query"]), hidden=sizes["hidden"],
                     initializers=args.initializers)
    for query, answer, truth in zip(batch["query"], answers, batch["answer"]):
      golden = table.decode(truth[1:])
      print(f"  {table.decode(query)} {answer} "
            f"{'(correct)' if answer == golden else f'(wrong, {golden})'}")
  print(f"done in {time.perf_counter() - begin:.0f} s")


if __name__ == "__main__":
  main()
