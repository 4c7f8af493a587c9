"""The Keras arguments that every built-in cell shares, checked in one place: the
activations, the kernel / recurrent / bias initializers (and the `initializers=` preset
that gives their defaults), regularizers and constraints, bool flags, the two dropout rates, the seed (in [0, 2**32)) and the dtypes (floating
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


# The Keras default of each weight's initializer field.
KERAS_DEFAULTS = {"kernel": "glorot_uniform", "recurrent": "orthogonal", "bias": "zeros"}


@dataclasses.dataclass(frozen=True)
class WeightOptions:
  """The Keras arguments every built-in cell (and its layer) has: activation, the three
  weights' initializers, regularizers and constraints, dropout, seed and dtypes.

  initializers: whose default initialization the weights start from: "keras" (the
    default: kernel glorot_uniform, recurrent_kernel orthogonal, bias zeros), "flax"
    (Flax linen's cells: kernel lecun_normal, recurrent_kernel orthogonal per gate
    block, bias zeros) or "torch" (PyTorch's nn.LSTM / nn.GRU / nn.RNN: every weight
    U(-1/sqrt(U), 1/sqrt(U)), a one-row bias the sum of torch's two biases). A
    `kernel_initializer`, `recurrent_initializer` or `bias_initializer` other than its
    Keras default (the field defaults stay Keras's, "glorot_uniform", "orthogonal",
    "zeros") wins over the preset; pass a callable to pin a Keras default under
    another preset. Keras's `unit_forget_bias` (LSTM, ConvLSTM) is a
    Keras scheme: under "flax" and "torch" the LSTM cell starts without it, as those
    libraries do; Flax's ConvLSTMCell adds 1 to its forget gate, so ConvLSTM keeps it
    under "flax". PyTorch has no ConvLSTM: "torch" is rejected there.
  """

  _: dataclasses.KW_ONLY
  activation: Any = "tanh"
  use_bias: bool = True
  initializers: str = "keras"
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

  def weight_initializer(self, role: str, *, units: int, blocks: int = 1,
                         conv: bool = False) -> _initializers.Initializer:
    """The initializer of weight `role` ("kernel", "recurrent", "bias"): the
    `<role>_initializer` field, unless it is left at its Keras default (or None) under
    another preset: then the `initializers` preset's (`rnnjax._initializers.preset`)
    for `units` units with `blocks` gate blocks."""
    given = getattr(self, f"{role}_initializer")
    at_default = given is None or (self.initializers != "keras"
                                   and given == KERAS_DEFAULTS[role])
    if not at_default:
      return _initializers.get(given, argument=f"{role}_initializer")
    return _initializers.preset(self.initializers, role, units=units, blocks=blocks, conv=conv)


def check_preset(initializers, argument: str = "initializers") -> str:
  """One of `rnnjax._initializers.PRESETS` ("keras", "flax", "torch")."""
  if not isinstance(initializers, str) or initializers not in _initializers.PRESETS:
    raise ValueError(
        f"{argument} must be one of {', '.join(map(repr, _initializers.PRESETS))} (whose "
        f"default initialization the weights start from), got {initializers!r}."
    )
  return initializers


def check_shared_options(config, *, activations=("activation",), flags=("use_bias",)) -> None:
  """Raises the first error among `config`'s shared Keras arguments.

  activations: the names of the activation fields to resolve.
  flags: the names of the fields that must be Python bools.
  """
  for name in activations:
    _activations.get(getattr(config, name), argument=name)
  check_preset(config.initializers)
  for name in (f"{role}_initializer" for role in WEIGHT_ROLES):
    if getattr(config, name) is not None:   # None: the preset's
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
