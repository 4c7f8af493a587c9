"""The Keras arguments that every built-in cell shares, checked in one place: the
activations, the kernel / recurrent / bias initializers, regularizers and constraints,
bool flags, the two dropout rates, the seed (in [0, 2**32)) and the dtypes (floating
point). DenseConfig and ConvLSTMConfig call `check_shared_options` from their
`check_config`."""

import dataclasses
from typing import Any

import jax.numpy as jnp

from .. import _activations, _constraints, _initializers, _regularizers
from .._validation import check_bool, check_dtype, check_seed
from ._dropout import check_rate

# The Keras argument prefixes of the three weights of every Keras RNN cell.
WEIGHT_ROLES = ("kernel", "recurrent", "bias")


@dataclasses.dataclass(frozen=True)
class WeightOptions:
  """The Keras arguments every built-in cell (and its layer) has: activation, the three
  weights' initializers, regularizers and constraints, dropout, seed and dtypes."""

  _: dataclasses.KW_ONLY
  activation: Any = "tanh"
  use_bias: bool = True
  kernel_initializer: Any = "glorot_uniform"
  recurrent_initializer: Any = "orthogonal"
  bias_initializer: Any = "zeros"
  kernel_regularizer: Any = None
  recurrent_regularizer: Any = None
  bias_regularizer: Any = None
  kernel_constraint: Any = None
  recurrent_constraint: Any = None
  bias_constraint: Any = None
  dropout: float = 0.0
  recurrent_dropout: float = 0.0
  seed: int | None = None
  dtype: Any = None
  param_dtype: Any = jnp.float32


def check_shared_options(config, *, activations=("activation",), flags=("use_bias",)) -> None:
  """Raises the first error among `config`'s shared Keras arguments.

  activations: the names of the activation fields to resolve.
  flags: the names of the fields that must be Python bools.
  """
  for name in activations:
    _activations.get(getattr(config, name), argument=name)
  for name in (f"{role}_initializer" for role in WEIGHT_ROLES):
    _initializers.get(getattr(config, name), argument=name)
  for name in (f"{role}_regularizer" for role in WEIGHT_ROLES):
    _regularizers.get(getattr(config, name), argument=name)
  for name in (f"{role}_constraint" for role in WEIGHT_ROLES):
    _constraints.get(getattr(config, name), argument=name)
  for name in flags:
    check_bool(getattr(config, name), name)
  check_rate(config.dropout, "dropout")
  check_rate(config.recurrent_dropout, "recurrent_dropout")
  check_seed(config.seed)   # folded into the dropout key: a uint32
  for name in ("dtype", "param_dtype"):
    check_dtype(getattr(config, name), name, floating=True)
