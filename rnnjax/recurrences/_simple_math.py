"""The SimpleRNN cell's math for the generic recurrence (`_driver.py`):
h' = act(x_t + h @ W), act tanh, relu or linear; tangent dh' = act'(.) (a_t + dh @ W)."""

import dataclasses

import jax
import jax.numpy as jnp

from ._driver import SummedHoist

ACTIVATIONS = ("tanh", "relu", "linear")


@dataclasses.dataclass(frozen=True)
class SimpleMath(SummedHoist):
  """State (h,), (B, U); x, hw (B, U). `activation`: one of ACTIVATIONS."""

  activation: str = "tanh"
  gates = 1
  states = 1

  def step(self, x, hw, state, save: bool):
    del state
    pre = x + hw
    if self.activation == "tanh":
      h_new = jnp.tanh(pre)
      slope = 1.0 - h_new * h_new
    elif self.activation == "relu":
      h_new = jax.nn.relu(pre)
      slope = (pre > 0).astype(pre.dtype)
    else:
      h_new, slope = pre, None
    return (h_new,), ((slope,) if save and slope is not None else None)

  def tangent(self, coefficients, a_t, dhw, dstate):
    del dstate
    dz = dhw if a_t is None else a_t + dhw
    return (dz if coefficients is None else coefficients[0] * dz,)

  def transpose(self, coefficients, g):
    (gh,) = g
    gz = gh if coefficients is None else coefficients[0] * gh
    return gz, gz, (None,)


def simple_math(activation: str) -> SimpleMath:
  if activation not in ACTIVATIONS:
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}.")
  return SimpleMath(activation)
