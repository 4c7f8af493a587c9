"""Parameter initializers with Keras 3's names and distributions.

An initializer is a function `(key, shape, dtype) -> array`, the
`jax.nn.initializers` convention, so those can be passed directly. `get` also
accepts the Keras names, in snake_case or CamelCase (`"glorot_uniform"`,
`"GlorotUniform"`, `"orthogonal"`, ...).
"""

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

Initializer = Callable[[jax.Array, tuple[int, ...], jnp.dtype], jax.Array]


def compute_fans(shape: tuple[int, ...]) -> tuple[int, int]:
  """Keras's fan-in and fan-out; conv kernels `(*window, in, out)` count the window."""
  if len(shape) == 0:
    return 1, 1
  if len(shape) == 1:
    return shape[0], shape[0]
  if len(shape) == 2:
    return shape[0], shape[1]
  receptive_field = math.prod(shape[:-2])
  return shape[-2] * receptive_field, shape[-1] * receptive_field


def variance_scaling(scale: float, mode: str, distribution: str) -> Initializer:
  """Keras `VarianceScaling`: uniform, truncated normal or normal with variance scale / n."""

  def init(key, shape, dtype=jnp.float32):
    fan_in, fan_out = compute_fans(tuple(shape))
    n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
    variance = scale / max(1.0, n)
    if distribution == "uniform":
      limit = math.sqrt(3.0 * variance)
      return jax.random.uniform(key, shape, dtype, -limit, limit)
    if distribution == "truncated_normal":
      # 0.879... is the std of a unit normal truncated to [-2, 2].
      stddev = math.sqrt(variance) / 0.87962566103423978
      return stddev * jax.random.truncated_normal(key, -2.0, 2.0, shape, dtype)
    return math.sqrt(variance) * jax.random.normal(key, shape, dtype)

  return init


def orthogonal(gain: float = 1.0) -> Initializer:
  """Keras `Orthogonal`: QR of a normal matrix over the flattened `(prod(shape[:-1]), shape[-1])`."""

  def init(key, shape, dtype=jnp.float32):
    if len(shape) < 2:
      raise ValueError(f"orthogonal initializer needs a shape of rank >= 2, got {shape}.")
    rows, cols = math.prod(shape[:-1]), shape[-1]
    a = jax.random.normal(key, (max(rows, cols), min(rows, cols)), jnp.float32)
    q, r = jnp.linalg.qr(a)
    q = q * jnp.sign(jnp.diag(r))[None, :]
    if rows < cols:
      q = q.T
    return (gain * q.reshape(shape)).astype(dtype)

  return init


def constant(value: float) -> Initializer:
  def init(key, shape, dtype=jnp.float32):
    del key
    return jnp.full(shape, value, dtype)

  return init


def random_normal(mean: float = 0.0, stddev: float = 0.05) -> Initializer:
  def init(key, shape, dtype=jnp.float32):
    return mean + stddev * jax.random.normal(key, shape, dtype)

  return init


def random_uniform(minval: float = -0.05, maxval: float = 0.05) -> Initializer:
  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, minval, maxval)

  return init


def truncated_normal(mean: float = 0.0, stddev: float = 0.05) -> Initializer:
  def init(key, shape, dtype=jnp.float32):
    return mean + stddev * jax.random.truncated_normal(key, -2.0, 2.0, shape, dtype)

  return init


def identity(gain: float = 1.0) -> Initializer:
  def init(key, shape, dtype=jnp.float32):
    del key
    if len(shape) != 2:
      raise ValueError(f"identity initializer needs a 2-D shape, got {shape}.")
    return gain * jnp.eye(*shape, dtype=dtype)

  return init


_FACTORIES: dict[str, Callable[[], Initializer]] = {
    "zeros": lambda: constant(0.0),
    "ones": lambda: constant(1.0),
    "glorot_uniform": lambda: variance_scaling(1.0, "fan_avg", "uniform"),
    "glorot_normal": lambda: variance_scaling(1.0, "fan_avg", "truncated_normal"),
    "he_uniform": lambda: variance_scaling(2.0, "fan_in", "uniform"),
    "he_normal": lambda: variance_scaling(2.0, "fan_in", "truncated_normal"),
    "lecun_uniform": lambda: variance_scaling(1.0, "fan_in", "uniform"),
    "lecun_normal": lambda: variance_scaling(1.0, "fan_in", "truncated_normal"),
    "variance_scaling": lambda: variance_scaling(1.0, "fan_in", "truncated_normal"),
    "orthogonal": orthogonal,
    "random_normal": random_normal,
    "random_uniform": random_uniform,
    "truncated_normal": truncated_normal,
    "identity": identity,
}
_ALIASES = {
    "zero": "zeros",
    "one": "ones",
    "normal": "random_normal",
    "uniform": "random_uniform",
    "orthogonal_initializer": "orthogonal",
    "identity_initializer": "identity",
}
NAMES = tuple(sorted(_FACTORIES))


def _snake_case(name: str) -> str:
  out = []
  for i, ch in enumerate(name):
    if ch.isupper() and i > 0 and name[i - 1] != "_":
      out.append("_")
    out.append(ch.lower())
  return "".join(out)


def get(initializer, *, argument: str = "initializer") -> Initializer:
  """Resolves a Keras initializer name or a `(key, shape, dtype)` callable.

  Raises:
    ValueError: an unknown name.
    TypeError: neither a string nor a callable.
  """
  if isinstance(initializer, str):
    name = _snake_case(initializer) if initializer[:1].isupper() else initializer
    name = _ALIASES.get(name, name)
    if name not in _FACTORIES:
      raise ValueError(
          f"{argument}={initializer!r} is not a known initializer; expected one of "
          f"{', '.join(NAMES)}, or a callable (key, shape, dtype) -> array."
      )
    return _FACTORIES[name]()
  if callable(initializer):
    return initializer
  raise TypeError(
      f"{argument} must be an initializer name or a callable (key, shape, dtype) -> "
      f"array; got {initializer!r} of type {type(initializer).__name__}."
  )


# Other libraries' defaults (the `initializers=` presets of the built-in cells) ----------

PRESETS = ("keras", "flax", "torch")
"""The values of the cells' `initializers=` option."""


def per_block(initializer: Initializer, blocks: int) -> Initializer:
  """`initializer` applied to each of `blocks` equal column blocks of the last axis, with
  independent keys: Flax keeps one recurrent Dense per gate, so its orthogonal
  initializer makes each gate's (U, U) block orthogonal, not the whole (U, G*U) matrix."""

  def init(key, shape, dtype=jnp.float32):
    *lead, cols = shape
    if blocks == 1:
      return initializer(key, tuple(shape), dtype)
    keys = jax.random.split(key, blocks)
    parts = [initializer(k, (*lead, cols // blocks), dtype) for k in keys]
    return jnp.concatenate(parts, axis=-1)

  return init


def uniform_sum(limit: float, terms: int) -> Initializer:
  """The sum of `terms` independent U(-limit, limit) draws per entry (PyTorch's
  `bias_ih + bias_hh` folded into one bias)."""

  def init(key, shape, dtype=jnp.float32):
    draws = jax.random.uniform(key, (terms, *shape), jnp.float32, -limit, limit)
    return draws.sum(axis=0).astype(dtype)

  return init


def torch_bias(limit: float) -> Initializer:
  """PyTorch's biases in rnnjax's layout: a 1-D bias is torch's two biases folded
  (`bias_ih + bias_hh`, each U(-limit, limit)); the GRU's (2, 3U) bias keeps the two as
  its rows, each entry U(-limit, limit)."""
  folded = uniform_sum(limit, 2)
  single = random_uniform(-limit, limit)

  def init(key, shape, dtype=jnp.float32):
    return single(key, shape, dtype) if len(shape) == 2 else folded(key, shape, dtype)

  return init


def preset(name: str, role: str, *, units: int, blocks: int = 1, conv: bool = False
           ) -> Initializer:
  """The default initializer of weight `role` ("kernel", "recurrent", "bias") under the
  preset `name` (see `PRESETS`), for a cell of `units` units (filters) with `blocks` gate
  blocks; `conv` for the ConvLSTM cells.

  keras: glorot_uniform, orthogonal (of the whole (U, G*U) matrix), zeros.
  flax:  lecun_normal, orthogonal per gate block (linen LSTMCell / GRUCell / SimpleCell);
         ConvLSTMCell: lecun_normal for both convolutions; biases zeros.
  torch: every weight U(-1/sqrt(U), 1/sqrt(U)) (nn.LSTM / nn.GRU / nn.RNN), biases as
         `torch_bias`.
  """
  if name == "keras":
    return get({"kernel": "glorot_uniform", "recurrent": "orthogonal", "bias": "zeros"}[role])
  if name == "flax":
    if role == "bias":
      return constant(0.0)
    lecun = variance_scaling(1.0, "fan_in", "truncated_normal")
    if role == "kernel" or conv:
      return lecun
    return per_block(orthogonal(), blocks)
  limit = 1.0 / math.sqrt(units)
  return torch_bias(limit) if role == "bias" else random_uniform(-limit, limit)
