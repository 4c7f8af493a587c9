# %% [markdown]
# # Custom cells in rnnjax
#
# A cell is a frozen dataclass of static configuration with four members, as in Keras:
# `state_size`, `output_size`, `init(key, input_shape) -> params` and
# `__call__(params, inputs, states, *, training=False, constants=None) -> (output, new_states)`.
# `rj.RNN(cell)` runs it over time with the same engine as the built-in layers, so masks,
# `go_backwards`, `return_state`, stateful streaming, `remat` and `jit`/`grad`/`vmap` all work.
#
# This notebook builds four cells: the Keras guide's `MinimalRNNCell`, a cell that hoists its
# input projection out of the loop, the guide's `NestedCell` with nested inputs and states
# (trained with optax), and an attention cell that reads a memory passed as `constants`.

# %%
import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

import rnnjax as rj

SMALL = os.environ.get("RNNJAX_NOTEBOOK_SMALL") == "1"
print("jax", jax.__version__, "| rnnjax", rj.__version__, "| small run" if SMALL else "")

# %% [markdown]
# ## 1. `MinimalRNNCell`
#
# The Keras guide's first custom cell: `h' = tanh(x W + h U)`. The state is a tuple with one
# array, even for a single state.

# %%
@dataclasses.dataclass(frozen=True)
class MinimalRNNCell(rj.Cell):
  units: int

  @property
  def state_size(self):
    return self.units

  @property
  def output_size(self):
    return self.units

  def init(self, key, input_shape):
    k1, k2 = jax.random.split(key)
    return {
        "kernel": jax.nn.initializers.glorot_uniform()(k1, (input_shape[-1], self.units)),
        "recurrent_kernel": jax.nn.initializers.orthogonal()(k2, (self.units, self.units)),
    }

  def __call__(self, params, inputs, states, *, training=False, constants=None):
    h = jnp.tanh(inputs @ params["kernel"] + states[0] @ params["recurrent_kernel"])
    return h, (h,)


layer = rj.RNN(MinimalRNNCell(32), return_sequences=True, return_state=True)
x = jax.random.normal(jax.random.key(0), (4, 10, 5))
params = layer.init(jax.random.key(1), x)
out, h = layer.apply(params, x)
print("outputs", out.shape, "final state", h.shape)

# %% [markdown]
# The same computation as a plain Python loop, to see that the engine adds nothing:

# %%
h_loop = jnp.zeros((4, 32))
for t in range(10):
  h_loop = jnp.tanh(x[:, t] @ params["kernel"] + h_loop @ params["recurrent_kernel"])
print("max |engine - loop| =", float(jnp.abs(h_loop - h).max()))

# %% [markdown]
# Masks follow Keras: a masked step keeps the state and outputs the incoming `h`.

# %%
lengths = jnp.array([10, 7, 3, 1])
out, h = layer.apply(params, x, seq_lengths=lengths)
print("state of the length-3 row equals its output at step 2:", bool(jnp.allclose(h[2], out[2, 2])))

# %% [markdown]
# ## 2. Hoisting the input projection
#
# The engine calls an optional `project(params, inputs)` on the whole time-major sequence
# `(T, B, F)` once, and `step(params, projected_t, states)` inside the loop. A cell that splits
# its work this way gets the input matmul out of the loop (on accelerators; on the CPU the
# engine runs `project` per step, where that is faster). Here: a layer-normalised
# LSTM-style cell with a peephole-free update.

# %%
@dataclasses.dataclass(frozen=True)
class LayerNormLSTMCell(rj.Cell):
  units: int

  @property
  def state_size(self):
    return (self.units, self.units)

  @property
  def output_size(self):
    return self.units

  def init(self, key, input_shape):
    k1, k2 = jax.random.split(key)
    u = self.units
    return {
        "kernel": jax.nn.initializers.glorot_uniform()(k1, (input_shape[-1], 4 * u)),
        "recurrent_kernel": jax.nn.initializers.orthogonal()(k2, (u, 4 * u)),
        "scale": jnp.ones((4 * u,)),
        "bias": jnp.zeros((4 * u,)).at[u:2 * u].set(1.0),
    }

  def project(self, params, inputs, *, dropout=None):
    return inputs @ params["kernel"]                      # (..., F) -> (..., 4U), time-parallel

  def step(self, params, projected, states, *, training=False, constants=None, dropout=None):
    h, c = states
    z = projected + h @ params["recurrent_kernel"]
    z = (z - z.mean(-1, keepdims=True)) * jax.lax.rsqrt(z.var(-1, keepdims=True) + 1e-5)
    z = z * params["scale"][None] + params["bias"][None]
    i, f, g, o = jnp.split(z, 4, axis=-1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    h = jax.nn.sigmoid(o) * jnp.tanh(c)
    return h, (h, c)

  def __call__(self, params, inputs, states, *, training=False, constants=None):
    return self.step(params, self.project(params, inputs), states)


ln_layer = rj.RNN(LayerNormLSTMCell(16), return_state=True)
ln_params = ln_layer.init(jax.random.key(2), x)
out, h, c = ln_layer.apply(ln_params, x)
print(out.shape, h.shape, c.shape)

# %% [markdown]
# ## 3. Nested inputs and states: the guide's `NestedCell`
#
# One time step carries a video frame feature vector `(32,)` and an audio spectrogram slice
# `(64, 32)`; the cell keeps a state of shape `(10,)` and one of shape `(20, 30)`. Keras 3
# cannot run this any more (its RNN layer takes a single tensor); rnnjax maps over the
# pytrees. `state_size = (10, (20, 30))`: an int is a vector state, a tuple is a state of that
# shape.

# %%
@dataclasses.dataclass(frozen=True)
class NestedCell(rj.Cell):
  unit_1: int
  unit_2: int
  unit_3: int

  @property
  def state_size(self):
    return (self.unit_1, (self.unit_2, self.unit_3))

  @property
  def output_size(self):
    return (self.unit_1, (self.unit_2, self.unit_3))

  def init(self, key, input_shape):
    (i1,), (i2, i3) = input_shape
    k1, k2 = jax.random.split(key)
    init = jax.nn.initializers.lecun_normal()
    return {"kernel_1": init(k1, (i1, self.unit_1)),
            "kernel_2_3": init(k2, (i2, i3, self.unit_2, self.unit_3))}

  def __call__(self, params, inputs, states, *, training=False, constants=None):
    x1, x2 = inputs                                    # (B, i1), (B, i2, i3)
    s1, s2 = states                                    # (B, unit_1), (B, unit_2, unit_3)
    out1 = x1 @ params["kernel_1"] + s1
    out2 = jnp.einsum("bij,ijkl->bkl", x2, params["kernel_2_3"]) + s2
    return (out1, out2), (out1, out2)


steps = 4 if SMALL else 10
nested = rj.RNN(NestedCell(10, 20, 30), return_sequences=False)
key_x1, key_x2, key_p = jax.random.split(jax.random.key(3), 3)
x1 = jax.random.normal(key_x1, (8, steps, 32))
x2 = jax.random.normal(key_x2, (8, steps, 64, 32))
nested_params = nested.init(key_p, (x1, x2))
(o1, o2) = nested.apply(nested_params, (x1, x2))
print("outputs", o1.shape, o2.shape)

# %% [markdown]
# Training it with optax on a toy regression target (`jit` over the whole step):

# %%
target1 = jax.random.normal(jax.random.key(4), (8, 10))
target2 = jax.random.normal(jax.random.key(5), (8, 20, 30))


def loss_fn(p):
  o1, o2 = nested.apply(p, (x1, x2))
  return jnp.mean((o1 - target1) ** 2) + jnp.mean((o2 - target2) ** 2)


optimizer = optax.adam(1e-2)
opt_state = optimizer.init(nested_params)


@jax.jit
def train_step(p, s):
  loss, grads = jax.value_and_grad(loss_fn)(p)
  updates, s = optimizer.update(grads, s, p)
  return optax.apply_updates(p, updates), s, loss


losses = []
for _ in range(20 if SMALL else 100):
  nested_params, opt_state, loss = train_step(nested_params, opt_state)
  losses.append(float(loss))
print(f"loss {losses[0]:.3f} -> {losses[-1]:.3f}")

# %% [markdown]
# ## 4. Constants: an attention cell
#
# `apply(..., constants=memory)` hands a static input to the cell at every step (Keras 2's
# `constants`, which Keras 3 dropped). Here each step attends over a memory `(B, S, D)`.

# %%
@dataclasses.dataclass(frozen=True)
class AttentionGRUCell(rj.Cell):
  units: int

  @property
  def state_size(self):
    return self.units

  @property
  def output_size(self):
    return self.units

  def init(self, key, input_shape):
    k_cell, k_query = jax.random.split(key)
    gru = rj.GRUCell(self.units)
    return {"gru": gru.init(k_cell, (input_shape[-1] + self.units,)),
            "query": jax.nn.initializers.glorot_uniform()(k_query, (self.units, self.units))}

  def __call__(self, params, inputs, states, *, training=False, constants=None):
    (memory,) = constants                              # (B, S, U)
    query = states[0] @ params["query"]                # (B, U)
    weights = jax.nn.softmax(jnp.einsum("bu,bsu->bs", query, memory), axis=-1)
    context = jnp.einsum("bs,bsu->bu", weights, memory)
    return rj.GRUCell(self.units)(params["gru"], jnp.concatenate([inputs, context], -1), states)


attention = rj.RNN(AttentionGRUCell(12), return_sequences=True)
memory = jax.random.normal(jax.random.key(6), (4, 7, 12))
att_params = attention.init(jax.random.key(7), x)
att_out = attention.apply(att_params, x, constants=(memory,))
print("attention outputs", att_out.shape)
grad_memory = jax.grad(lambda m: attention.apply(att_params, x, constants=(m,)).sum())(memory)
print("gradient w.r.t. the memory:", grad_memory.shape, "finite:", bool(jnp.isfinite(grad_memory).all()))

# %% [markdown]
# ## 5. Stacking and streaming custom cells
#
# A list of cells is a `StackedRNNCells`; a stateful layer carries its state explicitly.

# %%
stack = rj.RNN([MinimalRNNCell(16), LayerNormLSTMCell(8)], return_state=True, stateful=True)
stack_params = stack.init(jax.random.key(8), x)
whole, _ = stack.apply(stack_params, x)
first, state = stack.apply(stack_params, x[:, :6])
second, state = stack.apply(stack_params, x[:, 6:], state=state)
print("chunked equals whole:", all(bool(jnp.allclose(a, b, atol=1e-5))
                                   for a, b in zip(jax.tree.leaves(second), jax.tree.leaves(whole))))
