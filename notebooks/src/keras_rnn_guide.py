# %% [markdown]
# # Working with RNNs, in rnnjax
#
# The Keras guide [Working with RNNs](https://keras.io/guides/working_with_rnns/), section by
# section, with rnnjax: the same layers, arguments, parameter layouts and counts, as pure
# functions over explicit parameter pytrees (and, where the guide builds models, as
# `flax.linen` modules through `rj.linen`).
#
# | Keras guide section | here |
# |---|---|
# | Built-in RNN layers: a simple example | 1: three linen models, `nn.tabulate` shows the guide's counts |
# | Outputs and states | 2: `return_sequences`, `return_state`, encoder-decoder |
# | RNN layers and RNN cells | 3: `rj.RNN(rj.LSTMCell(u))` is `rj.LSTM(u)` |
# | Cross-batch statefulness | 4: the three paragraphs, explicit state, `reset_state` |
# | RNN state reuse | 5: a state as another layer's `initial_state` |
# | Bidirectional RNNs | 6: the guide's model, `merge_mode` |
# | Performance optimization and CuDNN kernels | 7: the scan and the fast paths (CPU recurrence, GPU kernel), `which_path`; 8: MNIST rows |
# | RNNs with list/dict inputs, or nested inputs | 9: `NestedCell` trained with optax |
#
# Every number the guide states is asserted below, so the notebook fails (in CI too) if one
# changes.

# %%
import dataclasses
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

import rnnjax as rj
from rnnjax import demo

SMALL = os.environ.get("RNNJAX_NOTEBOOK_SMALL") == "1"
KEY = jax.random.key(0)
print("jax", jax.__version__, "| rnnjax", rj.__version__, "| backend", jax.default_backend(),
      "| small run" if SMALL else "")


def n_params(tree) -> int:
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))


# %% [markdown]
# ## 1. Built-in RNN layers: a simple example
#
# The guide's first model: an `Embedding(1000, 64)`, an `LSTM(128)` and a `Dense(10)`.
# `rj.linen.LSTM` is the rnnjax layer as a `flax.linen` module (same arguments as Keras);
# its params are Keras's `kernel (64, 512)`, `recurrent_kernel (128, 512)`, `bias (512,)`, so
# the count is the guide's.

# %%
class GuideLSTM(nn.Module):
  @nn.compact
  def __call__(self, tokens):                       # (B, T) int
    x = nn.Embed(1000, 64)(tokens)                  # (B, T, 64)
    x = rj.linen.LSTM(128)(x)                       # (B, 128)
    return nn.Dense(10)(x)                          # (B, 10)


TOKENS = jnp.zeros((1, 10), jnp.int32)


def tabulate(model, *inputs, total):
  """Prints nn.tabulate's summary and checks its total against the Keras guide's."""
  table = nn.tabulate(model, KEY, console_kwargs={"width": 120, "force_terminal": False})(*inputs)
  print(table)
  assert f"Total Parameters: {total:,}" in table, f"expected {total:,} parameters"
  assert n_params(jax.eval_shape(model.init, KEY, *inputs)["params"]) == total


tabulate(GuideLSTM(), TOKENS, total=164_106)

# %% [markdown]
# The guide's second model: a `GRU(256, return_sequences=True)` whose sequence feeds a
# `SimpleRNN(128)`. Keras's GRU defaults to `reset_after=True`, so its bias is `(2, 768)`,
# and so is rnnjax's.

# %%
class GuideGRUSimpleRNN(nn.Module):
  @nn.compact
  def __call__(self, tokens):
    x = nn.Embed(1000, 64)(tokens)
    x = rj.linen.GRU(256, return_sequences=True)(x)    # (B, T, 256)
    x = rj.linen.SimpleRNN(128)(x)                     # (B, 128)
    return nn.Dense(10)(x)


tabulate(GuideGRUSimpleRNN(), TOKENS, total=361_866)

# %% [markdown]
# The same model as pure functions: `layer.init` returns the params pytree, `layer.apply`
# runs the layer. This is what the linen modules call.

# %%
gru = rj.GRU(256, return_sequences=True)
simple = rj.SimpleRNN(128)
x = jax.ShapeDtypeStruct((2, 10, 64), jnp.float32)   # shapes only: nothing is computed


def gru_simple(key, x):
  k1, k2 = jax.random.split(key)
  gru_params = gru.init(k1, x)
  seq = gru.apply(gru_params, x)                     # (B, T, 256)
  simple_params = simple.init(k2, seq)
  return (gru_params, simple_params), seq, simple.apply(simple_params, seq)


(gru_params, simple_params), seq, last = jax.eval_shape(gru_simple, KEY, x)
print("GRU params", jax.tree.map(jnp.shape, gru_params))
print("SimpleRNN params", jax.tree.map(jnp.shape, simple_params))
print("GRU", seq.shape, "-> SimpleRNN", last.shape)
assert gru_params["bias"].shape == (2, 768)

# %% [markdown]
# ## 2. Outputs and states
#
# `return_sequences=True` gives the output at every step `(B, T, U)`; `return_state=True`
# also returns the final states, in Keras's order (`LSTM -> (out, h, c)`, `GRU -> (out, h)`).
# (`jax.eval_shape` runs `init` and `apply` on shapes only.)

# %%
x = jax.random.normal(KEY, (4, 10, 8))
shapes = {}
for name, layer in {
    "GRU(16)": rj.GRU(16),
    "GRU(16, return_sequences=True)": rj.GRU(16, return_sequences=True),
    "LSTM(16, return_state=True)": rj.LSTM(16, return_state=True),
    "LSTM(16, return_sequences=True, return_state=True)":
        rj.LSTM(16, return_sequences=True, return_state=True),
}.items():
  out = jax.eval_shape(lambda x: layer.apply(layer.init(KEY, x), x), x)
  shapes[name] = jax.tree.map(jnp.shape, out)
  print(f"{name:52s} -> {shapes[name]}")
assert shapes["LSTM(16, return_sequences=True, return_state=True)"] == ((4, 10, 16), (4, 16), (4, 16))

# %% [markdown]
# The guide's encoder-decoder: the encoder LSTM returns its states, which start the
# decoder LSTM (`initial_state=[h, c]`). The two inputs may have different lengths.

# %%
class GuideEncoderDecoder(nn.Module):
  @nn.compact
  def __call__(self, encoder_tokens, decoder_tokens):
    encoded = nn.Embed(1000, 64)(encoder_tokens)
    _, state_h, state_c = rj.linen.LSTM(64, return_state=True, name="encoder")(encoded)
    decoded = nn.Embed(2000, 64)(decoder_tokens)
    out = rj.linen.LSTM(64, name="decoder")(decoded, initial_state=[state_h, state_c])
    return nn.Dense(10)(out)


tabulate(GuideEncoderDecoder(), TOKENS, TOKENS[:, :7], total=258_698)

# %% [markdown]
# ## 3. RNN layers and RNN cells
#
# A cell processes one time step; `rj.RNN(cell)` runs it over the sequence. `rj.LSTM(u)` is
# `rj.RNN(rj.LSTMCell(u))` with the same params (the guide: "`keras.layers.RNN(
# keras.layers.LSTMCell(10))` produces the same result as `LSTM(10)`"). A list of cells is
# stacked (`StackedRNNCells`).

# %%
x = jax.random.normal(KEY, (4, 10, 8))
lstm = rj.LSTM(10, return_sequences=True, return_state=True)
rnn = rj.RNN(rj.LSTMCell(10), return_sequences=True, return_state=True)
params = lstm.init(jax.random.key(3), x)
assert jax.tree.map(jnp.shape, rnn.init(jax.random.key(3), x)) == jax.tree.map(jnp.shape, params)
from_layer, from_cell = jax.jit(lambda p, x: (lstm.apply(p, x), rnn.apply(p, x)))(params, x)
for a, b in zip(from_layer, from_cell):
  np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
print("rj.RNN(rj.LSTMCell(10)) == rj.LSTM(10) with the same params")

stacked = rj.RNN([rj.LSTMCell(10), rj.GRUCell(6), rj.SimpleRNNCell(4)], return_state=True)
out, *states = jax.eval_shape(lambda x: stacked.apply(stacked.init(KEY, x), x), x)
print("stacked cells: output", out.shape, "states", jax.tree.map(jnp.shape, states))

# %% [markdown]
# ## 4. Cross-batch statefulness
#
# A very long sequence (the guide: a paragraph at a time of a long text) is fed in chunks;
# a stateful layer carries its state from one chunk to the next. In rnnjax the state is a
# value, not a hidden variable: `apply(params, chunk, state=state)` returns `(out, state)`,
# and the first call starts from zeros. Streaming the three paragraphs equals one call on
# their concatenation.

# %%
rng = np.random.default_rng(0)
paragraph1, paragraph2, paragraph3 = (rng.random((20, 10, 50)).astype(np.float32)
                                      for _ in range(3))

lstm_layer = rj.LSTM(64, stateful=True)
lstm_params = lstm_layer.init(jax.random.key(4), paragraph1)
stream = jax.jit(lstm_layer.apply)     # one compilation for every chunk of this shape

output, state = stream(lstm_params, paragraph1)
output, state = stream(lstm_params, paragraph2, state=state)
output, state = stream(lstm_params, paragraph3, state=state)
print("output", output.shape, "state", [s.shape for s in state])

whole = jax.jit(rj.LSTM(64, return_state=True).apply)(
    lstm_params, np.concatenate([paragraph1, paragraph2, paragraph3], axis=1))
for a, b in zip((output, *state), whole):
  np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
print("three streamed paragraphs == one call on the 30-step concatenation")

# %% [markdown]
# `reset_state` is Keras's `reset_states()`: a fresh (zero) state, for every row or only
# where a `(B,)` mask is True (e.g. the rows whose document ended).

# %%
fresh = lstm_layer.reset_state(state)
assert all(bool((s == 0).all()) for s in fresh)
first, _ = stream(lstm_params, paragraph1)
again, _ = stream(lstm_params, paragraph1, state=fresh)
np.testing.assert_array_equal(first, again)

done = np.arange(20) % 2 == 0
partly = lstm_layer.reset_state(state, where=done)
print("rows reset:", int((partly[0] == 0).all(axis=1).sum()), "of 20")

# %% [markdown]
# With `rj.linen`, a stateful layer keeps its state in the `"carry"` collection; a call
# with `mutable=["carry"]` returns the new one, and `rj.linen.reset_carry` resets it.

# %%
module = rj.linen.LSTM(64, stateful=True)
variables = jax.jit(module.init)(jax.random.key(4), paragraph1)
variables = {**variables, "params": lstm_params}      # the pure layer's params, as they are
linen_stream = jax.jit(lambda v, x: module.apply(v, x, mutable=["carry"]))
for paragraph in (paragraph1, paragraph2, paragraph3):
  out, updates = linen_stream(variables, paragraph)
  variables = {**variables, **updates}
np.testing.assert_allclose(out, output, rtol=1e-6, atol=1e-6)
variables = rj.linen.reset_carry(variables)
print("linen stream equals the pure stream; carry after reset:",
      [float(jnp.abs(s).max()) for s in variables["carry"]["state"]])

# %% [markdown]
# ## 5. RNN state reuse
#
# The state after paragraph 2 starts a new layer on paragraph 3 (the guide's
# `new_lstm_layer(paragraph3, initial_state=existing_state)`). A state is a tuple of arrays,
# usable as any layer's `initial_state`.

# %%
_, state = stream(lstm_params, paragraph1)
_, existing_state = stream(lstm_params, paragraph2, state=state)

new_lstm_layer = rj.LSTM(64)
new_params = new_lstm_layer.init(jax.random.key(5), paragraph3)
new_apply = jax.jit(new_lstm_layer.apply)
new_output = new_apply(new_params, paragraph3, initial_state=existing_state)
from_zero = new_apply(new_params, paragraph3, initial_state=fresh)
print("new output", new_output.shape, "| differs from a zero start by",
      f"{float(jnp.abs(new_output - from_zero).max()):.3f}")

# Same weights: continuing with the new layer is the same as continuing the stream.
continued = new_apply(lstm_params, paragraph3, initial_state=existing_state)
streamed, _ = stream(lstm_params, paragraph3, state=existing_state)
np.testing.assert_allclose(continued, streamed, rtol=1e-6, atol=1e-6)

# %% [markdown]
# ## 6. Bidirectional RNNs
#
# The guide's model: two `Bidirectional(LSTM)` layers on `(5, 10)` inputs and a `Dense(10)`.

# %%
class GuideBidirectional(nn.Module):
  @nn.compact
  def __call__(self, x):                                                  # (B, 5, 10)
    x = rj.linen.Bidirectional(rj.linen.LSTM(64, return_sequences=True))(x)  # (B, 5, 128)
    x = rj.linen.Bidirectional(rj.linen.LSTM(32))(x)                      # (B, 64)
    return nn.Dense(10)(x)


tabulate(GuideBidirectional(), jnp.zeros((1, 5, 10)), total=80_266)

# %% [markdown]
# `merge_mode` combines the two directions: `"concat"` (the default), `"sum"`, `"mul"`,
# `"ave"`, or `None` for both outputs side by side. The backward output is returned in the
# input's time order. `backward_layer=` gives the backward direction its own layer.

# %%
x = jax.random.normal(KEY, (4, 5, 10))
bidir = rj.Bidirectional(rj.LSTM(8, return_sequences=True))
bidir_params = bidir.init(KEY, x)
print("params:", {d: {k: v.shape for k, v in p.items()} for d, p in bidir_params.items()})
for mode in ("concat", "sum", "mul", "ave", None):
  layer = rj.Bidirectional(rj.LSTM(8, return_sequences=True), merge_mode=mode)
  print(f"merge_mode={mode!r:9s} ->",
        jax.tree.map(jnp.shape, jax.eval_shape(layer.apply, bidir_params, x)))


@jax.jit
def directions(p, x):
  forward, backward = rj.Bidirectional(rj.LSTM(8, return_sequences=True),
                                       merge_mode=None).apply(p, x)
  by_hand = rj.LSTM(8, return_sequences=True).apply(p["backward"], x[:, ::-1])[:, ::-1]
  return bidir.apply(p, x), forward, backward, by_hand


concat, forward, backward, by_hand = directions(bidir_params, x)
np.testing.assert_allclose(backward, by_hand, rtol=1e-6, atol=1e-6)
np.testing.assert_allclose(concat, jnp.concatenate([forward, backward], -1))
print("backward output == LSTM on the reversed sequence, reversed back")

custom = rj.Bidirectional(rj.LSTM(8, return_sequences=True),
                          backward_layer=rj.GRU(8, return_sequences=True, go_backwards=True))
print("LSTM forwards, GRU backwards:",
      jax.eval_shape(lambda x: custom.apply(custom.init(KEY, x), x), x).shape)

# %% [markdown]
# ## 7. Performance: the scan and the fast paths
#
# Keras picks cuDNN when the layer's configuration allows it. rnnjax has one `lax.scan`
# engine that runs every layer, and fast paths where they pay: for `LSTM` and `GRU` a fused
# Pallas kernel on the GPU, and for float32 `LSTM`, `GRU` and `SimpleRNN` on the CPU a
# custom-JVP recurrence (its transpose, the backward, computes the weight gradients as
# single matrix products after the loop). Both take boolean masks and `reset=` segment
# starts. `use_fused="auto"` (the default) takes a fast path when the call is eligible.
# Every path takes the same params and gives the same results. `rj.kernels.which_path` says
# which one a call takes and why.

# %%
x = jax.random.normal(KEY, (4, 10, 8))
for layer, kwargs in [
    (rj.LSTM(32), {}),
    (rj.LSTM(32, activation="relu", recurrent_dropout=0.2), dict(training=True)),
    (rj.GRU(32, reset_after=False), {}),
    (rj.LSTM(32), dict(mask=jnp.ones((4, 10), bool))),
    (rj.LSTM(32, use_fused=False), {}),
]:
  choice = rj.kernels.which_path(layer, x, **kwargs)
  print(f"{choice.path:5s} <- {choice.reason}\n")
if jax.default_backend() == "cpu":
  assert "on the CPU" in rj.kernels.which_path(rj.LSTM(32), x).reason
  assert rj.kernels.which_path(rj.GRU(32), x).path == "fused"
  assert rj.kernels.which_path(rj.GRU(32, reset_after=False), x).path == "scan"

# %% [markdown]
# This notebook ran on a CPU: the plain LSTM and the masked LSTM take the CPU fast path
# (the custom-JVP recurrence); the other calls take the scan, each for the reason given (a
# ReLU activation and training with recurrent dropout are outside the fast paths, the fast
# GRU needs `reset_after=True` as cuDNN does, and `use_fused=False` asks for the scan).
#
# `rj.kernels.force_interpret()` runs the GPU's Pallas kernel in interpret mode on the CPU
# (slow, for checking numbers). So all three implementations can be compared here, at a
# tiny size: the same params give the same outputs, states and gradients.

# %%
x = jax.random.normal(KEY, (3, 6, 4))
lengths = jnp.array([6, 4, 1])
scan_layer = rj.LSTM(16, return_sequences=True, return_state=True, use_fused=False)
fused_layer = rj.LSTM(16, return_sequences=True, return_state=True, use_fused=True)
params = scan_layer.init(jax.random.key(6), x)


def outputs_and_grads(layer, p):
  """(out, h, c) and the gradient of a loss over all three w.r.t. the params."""
  def loss(p):
    out, h, c = layer.apply(p, x, seq_lengths=lengths)
    return jnp.sum(out ** 2) + jnp.sum(h * c), (out, h, c)

  (_, outs), grads = jax.value_and_grad(loss, has_aux=True)(p)
  return outs, grads


results = {}
with rj.kernels.force_interpret():        # the path is chosen when the call is traced
  print("Pallas kernel:", rj.kernels.which_path(fused_layer, x, seq_lengths=lengths).reason)
  results["Pallas kernel"] = jax.jit(lambda p: outputs_and_grads(fused_layer, p))(params)
print("default path: ", rj.kernels.which_path(fused_layer, x, seq_lengths=lengths).reason)
results["default path"] = jax.jit(lambda p: outputs_and_grads(fused_layer, p))(params)
print("scan:         ", rj.kernels.which_path(scan_layer, x).reason)
scan_out, scan_grad = jax.jit(lambda p: outputs_and_grads(scan_layer, p))(params)
for name, (out, grad) in results.items():
  differences = {
      "outputs": max(float(jnp.abs(a - b).max()) for a, b in zip(out, scan_out)),
      "gradients": max(float(jnp.abs(grad[k] - scan_grad[k]).max()) for k in params),
  }
  print(f"max |{name} - scan|:", differences)
  assert all(v < 1e-4 for v in differences.values())

# %% [markdown]
# ## 8. The MNIST-rows model
#
# The guide classifies MNIST digits by reading each image row as a time step. `rnnjax.demo`
# (run it with `python -m rnnjax.demo`) holds the model, LSTM(64) -> LayerNorm -> Dense(10)
# (the guide uses BatchNormalization; a LayerNorm keeps the model a pure function without
# batch statistics), and, without a download, scikit-learn's 8 x 8 digits as data: 8 steps
# of 8 features.

# %%
(x_train, y_train), (x_test, y_test) = demo.load_data(None)
print(f"{len(x_train)} train / {len(x_test)} test images of {x_train.shape[1:]}")
print("RNN path:", demo.describe_path(x_train[:64]))

batch_size = 64
epochs = 2 if SMALL else 12
params = demo.init_model(jax.random.key(0), x_train[:batch_size])
print(f"{n_params(params):,} parameters")
optimizer = optax.adam(3e-3)
opt_state = optimizer.init(params)
train_step = demo.make_train_step(optimizer)

order_rng = np.random.default_rng(0)
history = []
for epoch in range(1, epochs + 1):
  order = order_rng.permutation(len(x_train))
  losses = []
  for i in range(len(x_train) // batch_size):
    idx = order[i * batch_size:(i + 1) * batch_size]
    params, opt_state, loss_value, _ = train_step(params, opt_state, x_train[idx], y_train[idx])
    losses.append(float(loss_value))
  test_loss, test_acc = (float(v) for v in demo.evaluate(params, x_test, y_test))
  history.append((np.mean(losses), test_loss, test_acc))
  print(f"epoch {epoch:2d}  train loss {history[-1][0]:.3f}  test loss {test_loss:.3f}  "
        f"test accuracy {test_acc:.3f}")
assert history[-1][0] < history[0][0]

# %% [markdown]
# The guide then runs the trained weights in a model without the cuDNN kernel. Here: the
# same LSTM params in `rj.RNN(rj.LSTMCell(64))` (a layer with no fused kernel) give the same
# predictions.

# %%
cell_model = rj.RNN(rj.LSTMCell(64))
assert rj.kernels.which_path(cell_model, x_test).path == "scan"
np.testing.assert_allclose(cell_model.apply(params["lstm"], x_test),
                           demo.LSTM.apply(params["lstm"], x_test), rtol=1e-5, atol=1e-5)

predictions = np.asarray(jnp.argmax(demo.logits_fn(params, x_test[:8]), -1))
fig, axes = plt.subplots(1, 9, figsize=(11, 2.2),
                         gridspec_kw={"width_ratios": [1] * 8 + [2.5]})
for ax, image, label, guess in zip(axes, x_test, y_test, predictions):
  ax.imshow(image, cmap="gray_r")
  ax.set_title(f"{guess}" + ("" if guess == label else f" ({label})"), fontsize=10)
  ax.axis("off")
h = np.asarray(history)
axes[-1].plot(np.arange(1, len(h) + 1), h[:, 2], marker="o")
axes[-1].set(xlabel="epoch", title="test accuracy")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 9. Nested inputs and outputs
#
# The guide's `NestedCell`: one time step is a video frame feature vector `(32,)` and its
# audio `(64, 32)`; the states are `(10,)` and `(20, 30)`. Inputs, outputs and states are
# pytrees; `rj.RNN` maps over them. (Keras 3's RNN layer no longer takes nested inputs.)

# %%
@dataclasses.dataclass(frozen=True)
class NestedCell(rj.Cell):
  unit_1: int
  unit_2: int
  unit_3: int

  @property
  def state_size(self):
    return (self.unit_1, (self.unit_2, self.unit_3))    # states (B, 10) and (B, 20, 30)

  @property
  def output_size(self):
    return (self.unit_1, (self.unit_2, self.unit_3))

  def init(self, key, input_shape):                     # input_shape ((32,), (64, 32))
    (i1,), (i2, i3) = input_shape
    k1, k2 = jax.random.split(key)
    uniform = jax.nn.initializers.uniform(0.1)          # Keras "uniform": U(-0.05, 0.05)
    return {"kernel_1": uniform(k1, (i1, self.unit_1)) - 0.05,
            "kernel_2_3": uniform(k2, (i2, i3, self.unit_2, self.unit_3)) - 0.05}

  def __call__(self, params, inputs, states, *, training=False, constants=None):
    input_1, input_2 = inputs                           # (B, 32), (B, 64, 32)
    state_1, state_2_3 = states                         # (B, 10), (B, 20, 30)
    output_1 = input_1 @ params["kernel_1"]
    output_2_3 = jnp.einsum("bij,ijkl->bkl", input_2, params["kernel_2_3"])
    return (output_1, output_2_3), (state_1 + output_1, state_2_3 + output_2_3)


unit_1, unit_2, unit_3 = 10, 20, 30
i1, i2, i3 = 32, 64, 32
batch_size, timestep = (8, 5) if SMALL else (64, 50)

rnn = rj.RNN(NestedCell(unit_1, unit_2, unit_3), return_state=True)
k1, k2 = jax.random.split(jax.random.key(7))
input_1 = jax.random.normal(k1, (batch_size, timestep, i1))
input_2 = jax.random.normal(k2, (batch_size, timestep, i2, i3))
nested_params = rnn.init(jax.random.key(8), (input_1, input_2))
(output_1, output_2), state_1, state_2 = jax.jit(rnn.apply)(nested_params, (input_1, input_2))
print("inputs ", input_1.shape, input_2.shape)
print("outputs", output_1.shape, output_2.shape)
print("states ", state_1.shape, state_2.shape)
assert (output_1.shape, output_2.shape) == ((batch_size, 10), (batch_size, 20, 30))
assert (state_1.shape, state_2.shape) == ((batch_size, 10), (batch_size, 20, 30))

# %% [markdown]
# The guide trains it for one epoch on random data with a mean-squared error; here with
# optax, `jit` over the whole step.

# %%
model = rj.RNN(NestedCell(unit_1, unit_2, unit_3))
num_batches = 2 if SMALL else 10
data_key, target_key = jax.random.split(jax.random.key(9))
data = (jax.random.normal(data_key, (num_batches, batch_size, timestep, i1)),
        jax.random.normal(jax.random.fold_in(data_key, 1),
                          (num_batches, batch_size, timestep, i2, i3)))
targets = (jax.random.normal(target_key, (num_batches, batch_size, unit_1)),
           jax.random.normal(jax.random.fold_in(target_key, 1),
                             (num_batches, batch_size, unit_2, unit_3)))


@jax.jit
def mse(p, inputs, target):
  out_1, out_2 = model.apply(p, inputs)
  return jnp.mean((out_1 - target[0]) ** 2) + jnp.mean((out_2 - target[1]) ** 2)


optimizer = optax.rmsprop(1e-3)
opt_state = optimizer.init(nested_params)


@jax.jit
def nested_train_step(p, s, inputs, target):
  value, grads = jax.value_and_grad(mse)(p, inputs, target)
  updates, s = optimizer.update(grads, s, p)
  return optax.apply_updates(p, updates), s, value


before = float(mse(nested_params, (data[0][0], data[1][0]), (targets[0][0], targets[1][0])))
for b in range(num_batches):
  nested_params, opt_state, value = nested_train_step(
      nested_params, opt_state, (data[0][b], data[1][b]), (targets[0][b], targets[1][b]))
  print(f"batch {b + 1}/{num_batches}: loss {float(value):.3f}")
after = float(mse(nested_params, (data[0][0], data[1][0]), (targets[0][0], targets[1][0])))
print(f"loss on batch 1: {before:.3f} -> {after:.3f}")
assert after < before
