"""Flax's `examples/sst2` on rnnjax: a bidirectional LSTM text classifier with
attention, on a small synthetic sentiment data set made here (no download).

The port keeps Flax's model (word dropout, embedding, a forward and a backward LSTM
scanned with `nn.scan`, keys-only MLP attention, an MLP) and its training (SGD with
momentum, weight decay, sigmoid cross-entropy); the LSTM cell inside `nn.scan` is
`rj.linen.LSTMCell(H, initializers="flax")` in place of `nn.OptimizedLSTMCell(H)`.

The data: sentences of neutral filler words and sentiment words ("good", "awful", ...),
some negated ("not good"); the label is whether the (negation-aware) sentiment sum is
positive, so word order matters.

  python examples/sst2.py --small      # a quick run (CI)
  python examples/sst2.py              # more data, larger model, more epochs
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

PAD, UNK = 0, 1
POSITIVE = ["good", "great", "fine", "lovely", "superb", "fun", "charming", "moving"]
NEGATIVE = ["bad", "awful", "dull", "boring", "weak", "poor", "tedious", "bland"]
FILLER = ["the", "a", "film", "movie", "plot", "actors", "was", "is", "and", "it", "story",
          "quite", "very", "this", "that", "of", "with", "music", "script", "ending"]
NEGATION = ["not", "never"]
VOCAB = ["<pad>", "<unk>"] + POSITIVE + NEGATIVE + FILLER + NEGATION
INDEX = {w: i for i, w in enumerate(VOCAB)}


def make_dataset(size: int, seed: int, max_length: int = 16) -> dict:
  """`size` synthetic sentences: token_ids (N, max_length) padded with 0, length (N,),
  label (N,) 1.0 for positive. Ties are redrawn, so every label is defined."""
  rng = np.random.default_rng(seed)
  tokens = np.zeros((size, max_length), np.int32)
  lengths = np.zeros(size, np.int32)
  labels = np.zeros(size, np.float32)
  n = 0
  while n < size:
    length = int(rng.integers(4, max_length + 1))
    words, score, negate = [], 0, False
    for _ in range(length):
      kind = rng.random()
      if kind < 0.25:
        word = str(rng.choice(POSITIVE))
        score += -1 if negate else 1
      elif kind < 0.5:
        word = str(rng.choice(NEGATIVE))
        score += 1 if negate else -1
      elif kind < 0.6:
        words.append(str(rng.choice(NEGATION)))
        negate = True
        continue
      else:
        word = str(rng.choice(FILLER))
      negate = False
      words.append(word)
    words = words[:max_length]
    if score == 0 or not words:
      continue
    tokens[n, :len(words)] = [INDEX[w] for w in words]
    lengths[n], labels[n] = len(words), float(score > 0)
    n += 1
  return {"token_ids": tokens, "length": lengths, "label": labels}


def flip_sequences(inputs, lengths):
  """Reverses each row's first `length` steps, padding stays at the end (Flax's helper)."""
  return jax.vmap(lambda x, n: jnp.flip(jnp.roll(x, x.shape[0] - n, axis=0), axis=0))(
      inputs, lengths)


class WordDropout(nn.Module):
  """Replaces input words by <unk> with probability `rate` while training."""

  rate: float

  @nn.compact
  def __call__(self, token_ids, deterministic: bool):
    if deterministic or self.rate == 0.0:
      return token_ids
    drop = jax.random.bernoulli(self.make_rng("dropout"), self.rate, token_ids.shape)
    return jnp.where(drop, UNK, token_ids)


class SimpleLSTM(nn.Module):
  """One direction: `rj.linen.LSTMCell` scanned over time with `nn.scan`, as Flax's
  SimpleLSTM scans `nn.OptimizedLSTMCell`."""

  hidden: int

  @functools.partial(nn.transforms.scan, variable_broadcast="params", in_axes=1, out_axes=1,
                     split_rngs={"params": False})
  @nn.compact
  def __call__(self, carry, x):
    return rj.linen.LSTMCell(self.hidden, initializers="flax")(carry, x)

  def initialize_carry(self, input_shape):
    return rj.linen.LSTMCell(self.hidden, parent=None).initialize_carry(None, input_shape)


class TextClassifier(nn.Module):
  """Word dropout, embedding, bidirectional LSTM, keys-only MLP attention, MLP."""

  vocab_size: int
  embedding_size: int
  hidden: int
  dropout: float
  word_dropout: float

  @nn.compact
  def __call__(self, token_ids, lengths, deterministic: bool):
    token_ids = WordDropout(self.word_dropout)(token_ids, deterministic)
    x = nn.Embed(self.vocab_size, self.embedding_size,
                 embedding_init=nn.initializers.normal(0.1))(token_ids)
    x = nn.Dropout(self.dropout)(x, deterministic=deterministic)
    forward, backward = SimpleLSTM(self.hidden), SimpleLSTM(self.hidden)
    _, out_f = forward(forward.initialize_carry(x[:, 0].shape), x)
    _, out_b = backward(backward.initialize_carry(x[:, 0].shape), flip_sequences(x, lengths))
    encoded = jnp.concatenate([out_f, flip_sequences(out_b, lengths)], axis=-1)
    encoded = nn.Dropout(self.dropout)(encoded, deterministic=deterministic)
    mask = jnp.arange(encoded.shape[1])[None] < lengths[:, None]
    scores = nn.Dense(1, use_bias=False)(jnp.tanh(nn.Dense(self.hidden, use_bias=False)(encoded)))
    attention = jax.nn.softmax(jnp.where(mask, scores[..., 0], -jnp.inf), axis=-1)
    context = jnp.einsum("bt,btf->bf", attention, encoded)
    context = nn.Dropout(self.dropout)(context, deterministic=deterministic)
    hidden = nn.Dropout(self.dropout)(jnp.tanh(nn.Dense(self.hidden)(context)),
                                      deterministic=deterministic)
    return nn.Dense(1, use_bias=False)(hidden)[:, 0]


def train_and_evaluate(*, train_size=4000, eval_size=1000, epochs=10, batch=64, embedding=64,
                       hidden=64, dropout=0.3, word_dropout=0.1, learning_rate=0.1,
                       momentum=0.9, weight_decay=3e-6, seed=0, log=True):
  """Trains on the synthetic set; returns the eval accuracy after each epoch."""
  train_set, eval_set = make_dataset(train_size, seed), make_dataset(eval_size, seed + 1)
  model = TextClassifier(len(VOCAB), embedding, hidden, dropout, word_dropout)
  key = jax.random.key(seed)
  params = model.init(key, jnp.ones((2, 3), jnp.int32), jnp.ones((2,), jnp.int32),
                      deterministic=True)["params"]
  optimizer = optax.chain(optax.sgd(learning_rate, momentum=momentum),
                          optax.add_decayed_weights(weight_decay))
  opt_state = optimizer.init(params)

  @jax.jit
  def step(params, opt_state, batch, dropout_key):
    def loss_fn(params):
      logits = model.apply({"params": params}, batch["token_ids"], batch["length"],
                           deterministic=False, rngs={"dropout": dropout_key})
      return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, batch["label"]))

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  @jax.jit
  def accuracy(params, data):
    logits = model.apply({"params": params}, data["token_ids"], data["length"],
                         deterministic=True)
    return jnp.mean((logits >= 0) == (data["label"] > 0.5))

  order = np.random.default_rng(seed)
  history = []
  for epoch in range(1, epochs + 1):
    perm = order.permutation(train_size)
    losses = []
    for i in range(train_size // batch):
      rows = perm[i * batch:(i + 1) * batch]
      batch_data = {k: v[rows] for k, v in train_set.items()}
      params, opt_state, loss = step(params, opt_state, batch_data,
                                     jax.random.fold_in(key, epoch * 100_000 + i))
      losses.append(float(loss))
    history.append(float(accuracy(params, eval_set)))
    if log:
      print(f"  epoch {epoch:3d}  train loss {np.mean(losses):.4f}  eval accuracy "
            f"{100 * history[-1]:.1f}%", flush=True)
  return history


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--small", action="store_true", help="a quick run (CI size)")
  parser.add_argument("--epochs", type=int, default=None)
  args = parser.parse_args(argv)
  sizes = (dict(train_size=1600, eval_size=500, epochs=4, embedding=32, hidden=32)
           if args.small else dict(train_size=8000, eval_size=2000, epochs=10))
  if args.epochs is not None:
    sizes["epochs"] = args.epochs
  print(f"sst2-style sentiment (synthetic): {sizes}", flush=True)
  begin = time.perf_counter()
  history = train_and_evaluate(**sizes)
  print(f"final eval accuracy {100 * history[-1]:.1f}%; done in "
        f"{time.perf_counter() - begin:.0f} s")


if __name__ == "__main__":
  main()
