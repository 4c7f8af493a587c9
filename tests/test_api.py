"""The public surface: `__all__` matches DESIGN.md's contract, and every public name
has a docstring."""

import rnnjax as rj

CONTRACT = {
    "SimpleRNN", "GRU", "LSTM", "RNN", "SimpleRNNCell", "GRUCell", "LSTMCell",
    "StackedRNNCells", "Cell", "interop",
    # Second wave: the linear recurrences.
    "MinGRU", "MinLSTM", "LRU", "MinGRUCell", "MinLSTMCell", "LRUCell",
}


def test_all_lists_the_contract_and_exists():
  assert CONTRACT <= set(rj.__all__)
  for name in rj.__all__:
    assert hasattr(rj, name), name


def test_public_names_are_documented():
  for name in rj.__all__:
    assert getattr(rj, name).__doc__, name


def test_interop_contract():
  assert callable(rj.interop.from_keras) and callable(rj.interop.to_keras)


def test_layers_are_hashable_static_configuration():
  a, b = rj.LSTM(8, return_sequences=True), rj.LSTM(8, return_sequences=True)
  assert a == b and hash(a) == hash(b)
  assert rj.LSTM(8) != rj.LSTM(9)
