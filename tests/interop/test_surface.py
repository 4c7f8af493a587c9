"""rj.interop's public names: listed in __all__, present and documented."""

import rnnjax as rj

EXPECTED = {"from_keras", "to_keras", "load_keras_weights", "load_keras_params",
            "from_torch", "to_torch", "from_flax", "to_flax"}


def test_interop_all():
  assert set(rj.interop.__all__) == EXPECTED
  for name in EXPECTED:
    assert getattr(rj.interop, name).__doc__, name
