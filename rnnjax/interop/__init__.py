"""Weight exchange with other libraries."""

from ._keras import from_keras as from_keras
from ._keras import to_keras as to_keras

__all__ = ["from_keras", "to_keras"]
