"""Weight exchange with other libraries: Keras 3 (weight lists and saved files),
PyTorch state_dicts and Flax linen cells."""

from ._flax import from_flax as from_flax
from ._flax import to_flax as to_flax
from ._keras import from_keras as from_keras
from ._keras import to_keras as to_keras
from ._keras_files import load_keras_params as load_keras_params
from ._keras_files import load_keras_weights as load_keras_weights
from ._torch import from_torch as from_torch
from ._torch import to_torch as to_torch

__all__ = [
    "from_flax", "from_keras", "from_torch", "load_keras_params", "load_keras_weights",
    "to_flax", "to_keras", "to_torch",
]
