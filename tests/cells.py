"""The custom cells the tests run through the cell protocol, each defined once here:
MinimalRNNCell (the README's cell), NestedCell and DictNestedCell (the Keras RNN guide's
pytree cell), PairInputCell (pytree inputs, one flat state), ArrayParamsCell (params that
are one array), AttentionCell (a cell that reads `constants`), ScaledCell (a cell with its
own penalty and projection hooks), NoisyCell (a cell that draws from its per-step key) and
MyCell (a Cell subclass that implements nothing)."""

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import rnnjax as rj


@dataclasses.dataclass(frozen=True)
class UnitsCell(rj.Cell):
  """What most test cells share: one state (U,) and an output (U,), U = `units`."""

  units: int

  @property
  def state_size(self):
    return self.units

  @property
  def output_size(self):
    return self.units


@dataclasses.dataclass(frozen=True)
class MinimalRNNCell(UnitsCell):
  """The README's custom cell: h' = tanh(x W + h U)."""

  def init(self, key, input_shape):
    k1, k2 = jax.random.split(key)
    return {"w": jax.random.normal(k1, (input_shape[-1], self.units)) * 0.5,
            "u": jax.random.normal(k2, (self.units, self.units)) * 0.5}

  def __call__(self, params, inputs, states, *, training=False, constants=None):
    h = jnp.tanh(inputs @ params["w"] + states[0] @ params["u"])
    return h, (h,)


@dataclasses.dataclass(frozen=True)
class NestedCell(rj.Cell):
  """The Keras guide's NestedCell: inputs (x1 (B, I1), x2 (B, I2, I3)), states
  (s1 (B, U1), s2 (B, U2, U3)); output (x1 @ k1, einsum(x2, k23)), states + output."""

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
    # Keras "uniform": RandomUniform(-0.05, 0.05).
    return {"kernel_1": jax.random.uniform(k1, (i1, self.unit_1), minval=-0.05, maxval=0.05),
            "kernel_2_3": jax.random.uniform(k2, (i2, i3, self.unit_2, self.unit_3),
                                             minval=-0.05, maxval=0.05)}

  def __call__(self, params, inputs, states, *, training=False, constants=None):
    x1, x2 = inputs
    s1, s2 = states
    o1 = x1 @ params["kernel_1"]
    o23 = jnp.einsum("bij,ijkl->bkl", x2, params["kernel_2_3"])
    return (o1, o23), (s1 + o1, s2 + o23)


@dataclasses.dataclass(frozen=True)
class DictNestedCell(NestedCell):
  """The same cell with dict inputs {"video", "audio"}, dict outputs and one dict state."""

  def init(self, key, input_shape):
    return super().init(key, (input_shape["video"], input_shape["audio"]))

  def initial_state(self, batch_size, dtype=jnp.float32):
    return ({"video": jnp.zeros((batch_size, self.unit_1), dtype),
             "audio": jnp.zeros((batch_size, self.unit_2, self.unit_3), dtype)},)

  def __call__(self, params, inputs, states, *, training=False, constants=None):
    (state,) = states
    (o1, o23), (s1, s23) = super().__call__(
        params, (inputs["video"], inputs["audio"]), (state["video"], state["audio"]))
    return {"video": o1, "audio": o23}, ({"video": s1, "audio": s23},)


@dataclasses.dataclass(frozen=True)
class PairInputCell(UnitsCell):
  """Per step: x1 (F1,) and x2 (F2, F3); one state (U,); output (U,)."""

  def init(self, key, input_shape):
    (f1,), (f2, f3) = input_shape
    k1, k2, k3 = jax.random.split(key, 3)
    return {
        "kernel_1": 0.5 * jax.random.normal(k1, (f1, self.units)),
        "kernel_2": 0.5 * jax.random.normal(k2, (f2 * f3, self.units)),
        "recurrent_kernel": 0.5 * jax.random.normal(k3, (self.units, self.units)),
    }

  def __call__(self, params, inputs, states, *, training=False, constants=None):
    x1, x2 = inputs
    (h,) = states
    z = (x1 @ params["kernel_1"] + x2.reshape(x2.shape[0], -1) @ params["kernel_2"]
         + h @ params["recurrent_kernel"])
    h = jnp.tanh(z)
    return h, (h,)


@dataclasses.dataclass(frozen=True)
class ArrayParamsCell(rj.Cell):
  """A diagonal linear recurrence whose params are one (2, F) array: h' = a*h + b*x."""

  features: int

  @property
  def state_size(self):
    return self.features

  def init(self, key, input_shape):
    return jax.random.uniform(key, (2, self.features), minval=0.1, maxval=0.9)

  def __call__(self, params, inputs, states, *, training=False, constants=None):
    (h,) = states
    a = params[0].reshape(1, -1)
    b = params[1].reshape(1, -1)
    h = a * h + b * inputs
    return h, (h,)


@dataclasses.dataclass(frozen=True)
class AttentionCell(UnitsCell):
  """h' = tanh(x W_x + h W_h + context W_c + b), context = softmax((h W_q) . memory) memory.

  constants: `[memory]`, memory (B, S, D) with D = memory_dim.
  """

  memory_dim: int

  def init(self, key, input_shape):
    ks = jax.random.split(key, 5)
    u, d = self.units, self.memory_dim
    shapes = {"w_x": (input_shape[-1], u), "w_h": (u, u), "w_q": (u, d), "w_c": (d, u), "b": (u,)}
    return {n: 0.5 * jax.random.normal(k, s) for k, (n, s) in zip(ks, shapes.items())}

  def validate_constants(self, params, constants, batch_size):
    if not isinstance(constants, (list, tuple)) or len(constants) != 1:
      raise TypeError(f"AttentionCell needs constants=[memory], got {type(constants).__name__} "
                      f"of length {len(jax.tree.leaves(constants))}.")
    (memory,) = constants
    if memory.ndim != 3 or memory.shape[-1] != self.memory_dim:
      raise ValueError(f"constants[0] (memory) must have shape (B, S, {self.memory_dim}), got "
                       f"{tuple(memory.shape)}.")

  def __call__(self, params, inputs, states, *, training=False, constants=None):
    (memory,) = constants
    (h,) = states
    q = h @ params["w_q"]
    attention = jax.nn.softmax(jnp.einsum("bd,bsd->bs", q, memory), axis=-1)
    context = jnp.einsum("bs,bsd->bd", attention, memory)
    b = params["b"].reshape((1, -1))
    h = jnp.tanh(inputs @ params["w_x"] + h @ params["w_h"] + context @ params["w_c"] + b)
    return h, (h,)


@dataclasses.dataclass(frozen=True)
class ScaledCell(UnitsCell):
  """A custom cell with its own penalty and projection hooks."""

  def init(self, key, input_shape):
    return {"w": jax.random.normal(key, (input_shape[-1], self.units)), "scale": jnp.full((), -2.0)}

  def weight_penalty(self, params):
    return jnp.sum(params["w"] ** 2)

  def constrain(self, params):
    return {**params, "scale": jnp.abs(params["scale"])}

  def __call__(self, params, inputs, states, *, training=False, constants=None):
    h = jnp.tanh(params["scale"] * (inputs @ params["w"]) + states[0])
    return h, (h,)


@dataclasses.dataclass(frozen=True)
class NoisyCell(UnitsCell):
  """h' = x W + noise: draws from its per-step key."""

  needs_rng: ClassVar[bool] = True

  def init(self, key, input_shape):
    return {"w": jax.random.normal(key, (input_shape[-1], self.units))}

  def __call__(self, params, inputs, states, *, training=False, constants=None, rng=None):
    h = inputs @ params["w"] + jax.random.normal(rng, (inputs.shape[0], self.units))
    return h, (h,)


class MyCell(rj.Cell):
  """A Cell subclass that implements nothing: errors must name it as the offending type
  (tests assert on the class name, so it keeps this one)."""
