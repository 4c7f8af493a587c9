"""The Linear Recurrent Unit (Orvieto et al. 2023, "Resurrecting Recurrent Neural
Networks for Long Sequences"): a complex diagonal linear recurrence with a real readout.

  lambda = exp(-exp(nu_log) + i exp(theta_log))                       (N,), |lambda| < 1
  x_t = lambda * x_{t-1} + exp(gamma_log) * (u_t @ B)                 complex (B, N)
  y_t = Re(x_t @ C) + D * u_t                                          real (B, U)

Initialisation (the paper's code): |lambda| uniform on the ring [r_min, r_max] by area,
u1, u2 ~ U(0, 1), nu_log = log(-log(u1 (r_max^2 - r_min^2) + r_min^2) / 2), theta_log =
log(max_phase u2); gamma_log = log(sqrt(1 - |lambda|^2)) (the normalisation, trained from
there); B = (N(0, 1) + i N(0, 1)) / sqrt(2F), C = (N(0, 1) + i N(0, 1)) / sqrt(N),
D ~ N(0, 1). Params are stored real, in the `x @ kernel` layout: B_re, B_im (F, N),
C_re, C_im (N, U). The skip D * u needs F = U (the LRU maps a width-U sequence to
width U; put a Dense layer before it to change widths).

The state is exposed as one real array (B, 2, N): [:, 0] the real part of x, [:, 1] its
imaginary part.
"""

import dataclasses
import math

import jax
import jax.numpy as jnp

from .._validation import check_positive_int
from ..types import Array, DTypeLike, Key, Params, ShapeTree, State
from ._dropout import DropoutMasks
from ._linear import LinearCell, LinearOptions

PARAM_NAMES = ("nu_log", "theta_log", "gamma_log", "B_re", "B_im", "C_re", "C_im", "D")


def _check_float(value: object, argument: str) -> float:
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    raise TypeError(f"{argument} must be a float, got {value!r}.")
  return float(value)


@dataclasses.dataclass(frozen=True)
class LRUConfig(LinearOptions):
  """The LRU's arguments: units U (input and output width), state_units N (the complex
  state size; None: U), the ring r_min <= |lambda| <= r_max and phases in [0, max_phase]."""

  units: int
  _: dataclasses.KW_ONLY
  state_units: int | None = None
  r_min: float = 0.0
  r_max: float = 1.0
  max_phase: float = 6.28

  def check_config(self) -> None:
    check_positive_int(self.units, "units")
    if self.state_units is not None:
      check_positive_int(self.state_units, "state_units")
    r_min, r_max = _check_float(self.r_min, "r_min"), _check_float(self.r_max, "r_max")
    if not 0.0 <= r_min < r_max <= 1.0:
      raise ValueError(f"r_min and r_max must satisfy 0 <= r_min < r_max <= 1, got "
                       f"r_min={self.r_min!r}, r_max={self.r_max!r}.")
    if _check_float(self.max_phase, "max_phase") <= 0.0:
      raise ValueError(f"max_phase must be > 0, got {self.max_phase!r}.")
    self.check_options()

  @property
  def n_state(self) -> int:
    return self.units if self.state_units is None else self.state_units


@dataclasses.dataclass(frozen=True)
class LRUCell(LRUConfig, LinearCell):
  """Linear Recurrent Unit (Orvieto et al. 2023): `x = lambda * x + gamma * (u @ B)`,
  `y = Re(x @ C) + D * u` (see the module docstring for the parameterisation).

  Params: `nu_log`, `theta_log`, `gamma_log` (N,); `B_re`, `B_im` (F, N) with F = U;
  `C_re`, `C_im` (N, U); `D` (U,). State: `(x,)` with x (B, 2, N) real (real and
  imaginary parts). Output (B, U).

  >>> import jax, jax.numpy as jnp, rnnjax as rj
  >>> cell = rj.LRUCell(4, state_units=6, r_min=0.9, r_max=0.999)
  >>> params = cell.init(jax.random.key(0), (4,))
  >>> out, (x,) = cell(params, jnp.ones((2, 4)), cell.initial_state(2))
  >>> out.shape, x.shape
  ((2, 4), (2, 2, 6))
  >>> radius = jnp.exp(-jnp.exp(params["nu_log"]))
  >>> bool(((radius >= 0.9) & (radius <= 0.999)).all())
  True
  """

  @property
  def state_size(self) -> tuple[tuple[int, int]]:
    return ((2, self.n_state),)

  @property
  def output_size(self) -> int:
    return self.units

  def init(self, key: Key, input_shape: ShapeTree) -> dict[str, Array]:
    features = tuple(input_shape)[-1]
    self._check_width(features)
    n, u = self.n_state, self.units
    dt = jnp.dtype(self.param_dtype)
    k1, k2, kb1, kb2, kc1, kc2, kd = jax.random.split(key, 7)
    # U(0, 1) without its endpoint 0, where log(u1 * ...) with r_min = 0 would be -inf.
    tiny = jnp.finfo(jnp.float32).tiny
    u1 = jax.random.uniform(k1, (n,), jnp.float32, tiny, 1.0)
    u2 = jax.random.uniform(k2, (n,), jnp.float32)
    r_min, r_max = float(self.r_min), float(self.r_max)
    nu_log = jnp.log(-0.5 * jnp.log(u1 * (r_max**2 - r_min**2) + r_min**2))
    theta_log = jnp.log(self.max_phase * u2)
    radius = jnp.exp(-jnp.exp(nu_log))
    gamma_log = jnp.log(jnp.sqrt(jnp.maximum(1.0 - radius**2, tiny)))
    b_scale, c_scale = 1.0 / math.sqrt(2 * features), 1.0 / math.sqrt(n)
    params = {
        "nu_log": nu_log, "theta_log": theta_log, "gamma_log": gamma_log,
        "B_re": b_scale * jax.random.normal(kb1, (features, n)),
        "B_im": b_scale * jax.random.normal(kb2, (features, n)),
        "C_re": c_scale * jax.random.normal(kc1, (n, u)),
        "C_im": c_scale * jax.random.normal(kc2, (n, u)),
        "D": jax.random.normal(kd, (u,)),
    }
    return {k: params[k].astype(dt) for k in PARAM_NAMES}

  def _check_width(self, features: int) -> None:
    if features != self.units:
      raise ValueError(
          f"LRUCell(units={self.units}) maps width {self.units} to width {self.units} (the "
          f"skip D * u needs inputs of {self.units} features), got inputs with {features} "
          "features; project them to units features first (e.g. a Dense layer).")

  def validate_inputs(self, params: Params, input_shape: ShapeTree) -> None:
    self.check_params_dict(params, PARAM_NAMES)
    self.check_rank(input_shape)
    self._check_width(input_shape[-1])

  def lam(self, params: Params, dtype: DTypeLike) -> jax.Array:
    """lambda (N,) complex."""
    nu, theta = (params[k].astype(dtype) for k in ("nu_log", "theta_log"))
    return jnp.exp(jax.lax.complex(-jnp.exp(nu), jnp.exp(theta)))

  def project(self, params: Params, inputs: Array, *,
              dropout: DropoutMasks | None = None) -> tuple[Array, Array, Array]:
    """(u @ B_re, u @ B_im, u) for inputs u (..., U): the x-only work, real arrays."""
    md = self.math_dtype(inputs)
    u = self.dropped(inputs.astype(md), dropout)
    return (u @ params["B_re"].astype(md), u @ params["B_im"].astype(md), u)

  def coefficients(self, params: Params, projected: tuple[Array, Array, Array]
                   ) -> tuple[Array, Array]:
    """(a, b) = (lambda, gamma * (u @ B)), complex (..., N) (a broadcast to b's shape)."""
    bu_re, bu_im, _ = projected
    gamma = jnp.exp(params["gamma_log"].astype(bu_re.dtype))
    gamma = gamma.reshape((1,) * (bu_re.ndim - 1) + gamma.shape)
    b = jax.lax.complex(gamma * bu_re, gamma * bu_im)
    return jnp.broadcast_to(self.lam(params, bu_re.dtype), b.shape), b

  def readout(self, params: Params, projected: tuple[Array, Array, Array],
              h: Array) -> Array:
    """y = Re(h @ C) + D * u: (..., N) complex -> (..., U) real."""
    u = projected[2]
    md = u.dtype
    d = params["D"].astype(md)
    return (jnp.real(h) @ params["C_re"].astype(md) - jnp.imag(h) @ params["C_im"].astype(md)
            + d.reshape((1,) * (u.ndim - 1) + d.shape) * u)

  def carrier(self, states: State) -> jax.Array:
    (x,) = states
    x = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    return jax.lax.complex(x[:, 0], x[:, 1])

  def states_of(self, h: Array) -> tuple[Array]:
    return (jnp.stack([jnp.real(h), jnp.imag(h)], axis=-2),)
