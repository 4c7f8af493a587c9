"""PyTorch nn.LSTM / nn.GRU / nn.RNN state_dicts <-> rnnjax: outputs equal to what real
PyTorch computed (fixtures made by tests/fixtures/make_torch_fixtures.py; torch is not
needed here), both directions, every structure (num_layers, bidirectional, bias=False)."""

import pathlib

import numpy as np
import pytest

import jax.numpy as jnp
import rnnjax as rj

from tests import torch_reference
from tests.test_errors import raises

FIXTURES = np.load(pathlib.Path(__file__).parents[1] / "fixtures" / "torch_rnns.npz")
ATOL = 2e-5

# name: (kind, num_layers, bidirectional, nonlinearity, bias), as in make_torch_fixtures.py
CASES = {
    "lstm": ("lstm", 1, False, "tanh", True),
    "lstm_stacked_bidirectional": ("lstm", 2, True, "tanh", True),
    "lstm_no_bias": ("lstm", 1, False, "tanh", False),
    "gru": ("gru", 1, False, "tanh", True),
    "gru_stacked": ("gru", 2, False, "tanh", True),
    "gru_bidirectional": ("gru", 1, True, "tanh", True),
    "rnn_tanh": ("rnn", 1, False, "tanh", True),
    "rnn_relu_stacked": ("rnn", 2, False, "relu", True),
    "rnn_bidirectional_no_bias": ("rnn", 1, True, "tanh", False),
}


def fixture(name):
  prefix = f"{name}/"
  out = {}
  for key in FIXTURES.files:
    if key.startswith(prefix + "sd/"):
      out.setdefault("sd", {})[key[len(prefix) + 3:]] = FIXTURES[key]
    elif key.startswith(prefix):
      out[key[len(prefix):]] = FIXTURES[key]
  return out


def make_cell(kind, units, nonlinearity, bias):
  if kind == "lstm":
    return rj.LSTMCell(units, use_bias=bias)
  if kind == "gru":
    return rj.GRUCell(units, use_bias=bias)
  return rj.SimpleRNNCell(units, activation=nonlinearity, use_bias=bias)


def torch_like(name, params, x, h0=None, c0=None):
  """Runs rnnjax with converted params the way the torch module runs: (out, h_n, c_n)."""
  kind, layers, bidirectional, nonlinearity, bias = CASES[name]
  units = FIXTURES[f"{name}/h_n"].shape[-1]
  cell = make_cell(kind, units, nonlinearity, bias)
  lstm = kind == "lstm"
  directions = 2 if bidirectional else 1

  def start(i):
    if h0 is None:
      return None
    return [h0[i], c0[i]] if lstm else [h0[i]]

  if not bidirectional:
    if layers == 1:
      layer = rj.RNN(cell, return_sequences=True, return_state=True)
      out, *states = layer.apply(params, x, initial_state=start(0))
      states = [tuple(states)]
    else:  # num_layers > 1 is a stacked RNN
      layer = rj.RNN([cell] * layers, return_sequences=True, return_state=True)
      initial = None if h0 is None else [start(i) for i in range(layers)]
      out, *states = layer.apply(params, x, initial_state=initial)
  else:  # two directions per level, concatenated (rj.Bidirectional's concat merge)
    levels = [params] if layers == 1 else params
    states, inputs = [], x
    for level, p in enumerate(levels):
      fwd = rj.RNN(cell, return_sequences=True, return_state=True)
      bwd = rj.RNN(cell, return_sequences=True, return_state=True, go_backwards=True)
      out_f, *s_f = fwd.apply(p["forward"], inputs, initial_state=start(level * directions))
      out_b, *s_b = bwd.apply(p["backward"], inputs, initial_state=start(level * directions + 1))
      inputs = jnp.concatenate([out_f, out_b[:, ::-1]], axis=-1)
      states += [tuple(s_f), tuple(s_b)]
    out = inputs
  h_n = np.stack([s[0] for s in states])
  c_n = np.stack([s[1] for s in states]) if lstm else None
  return np.asarray(out), h_n, c_n


def check_like_torch(name, params, fix):
  lstm = CASES[name][0] == "lstm"
  out, h_n, c_n = torch_like(name, params, fix["x"])
  np.testing.assert_allclose(out, fix["out"], atol=ATOL)
  np.testing.assert_allclose(h_n, fix["h_n"], atol=ATOL)
  if lstm:
    np.testing.assert_allclose(c_n, fix["c_n"], atol=ATOL)
  out, h_n, c_n = torch_like(name, params, fix["x"], fix["h0"], fix.get("c0"))
  np.testing.assert_allclose(out, fix["out_from_h0"], atol=ATOL)
  np.testing.assert_allclose(h_n, fix["h_n_from_h0"], atol=ATOL)
  if lstm:
    np.testing.assert_allclose(c_n, fix["c_n_from_h0"], atol=ATOL)


def oracle(name, sd, x, h0=None, c0=None):
  kind, layers, bidirectional, nonlinearity, _ = CASES[name]
  return torch_reference.run(kind, sd, x, h0, c0, num_layers=layers,
                             bidirectional=bidirectional, nonlinearity=nonlinearity)


@pytest.mark.parametrize("name", CASES)
def test_numpy_oracle_matches_real_torch(name):
  fix = fixture(name)
  out, h_n, c_n = oracle(name, fix["sd"], fix["x"], fix["h0"], fix.get("c0"))
  np.testing.assert_allclose(out, fix["out_from_h0"], atol=1e-5)
  np.testing.assert_allclose(h_n, fix["h_n_from_h0"], atol=1e-5)
  if "c_n" in fix:
    np.testing.assert_allclose(c_n, fix["c_n_from_h0"], atol=1e-5)


@pytest.mark.parametrize("name", CASES)
def test_from_torch_gives_torch_outputs(name):
  fix = fixture(name)
  params = rj.interop.from_torch(CASES[name][0], fix["sd"])
  check_like_torch(name, params, fix)


@pytest.mark.parametrize("name", CASES)
def test_to_torch_gives_torch_outputs(name):
  fix = fixture(name)
  kind = CASES[name][0]
  sd = rj.interop.to_torch(kind, rj.interop.from_torch(kind, fix["sd"]))
  assert sorted(sd) == sorted(fix["sd"])
  for key, value in sd.items():
    assert isinstance(value, np.ndarray) and value.shape == fix["sd"][key].shape, key
  out, h_n, _ = oracle(name, sd, fix["x"], fix["h0"], fix.get("c0"))
  np.testing.assert_allclose(out, fix["out_from_h0"], atol=ATOL)
  np.testing.assert_allclose(h_n, fix["h_n_from_h0"], atol=ATOL)
  if kind == "gru":  # the GRU keeps both biases: the round trip is exact
    for key, value in sd.items():
      np.testing.assert_array_equal(value, fix["sd"][key])
  if kind == "lstm" and CASES[name][4]:  # folded: bias_hh = 0, bias_ih = b_ih + b_hh
    np.testing.assert_array_equal(sd["bias_hh_l0"], 0.0)
    np.testing.assert_allclose(sd["bias_ih_l0"], fix["sd"]["bias_ih_l0"] + fix["sd"]["bias_hh_l0"],
                               rtol=1e-6)


def test_layer_forms_give_the_same_params():
  """An rnnjax layer, its cell, a stacked RNN or a list of layers name the structure."""
  fix = fixture("gru_stacked")
  from_kind = rj.interop.from_torch("gru", fix["sd"])
  stacked = rj.interop.from_torch(rj.RNN([rj.GRUCell(4), rj.GRUCell(4)]), fix["sd"])
  as_list = rj.interop.from_torch([rj.GRU(4, return_sequences=True), rj.GRUCell(4)], fix["sd"])
  assert isinstance(stacked, tuple) and isinstance(as_list, list)
  for a, b, c in zip(from_kind, stacked, as_list):
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])
      np.testing.assert_array_equal(a[key], c[key])
  single = fixture("lstm")
  p = rj.interop.from_torch(rj.LSTM(4), single["sd"])
  np.testing.assert_array_equal(p["kernel"], single["sd"]["weight_ih_l0"].T)
  sd = rj.interop.to_torch([rj.GRU(4), rj.GRU(4)], as_list)
  for key, value in sd.items():
    np.testing.assert_array_equal(value, fix["sd"][key])


def test_gate_order_is_permuted_for_the_gru():
  """torch r, z, n -> Keras z, r, h, seen on the arrays themselves."""
  sd = fixture("gru")["sd"]
  p = rj.interop.from_torch(rj.GRU(4), sd)
  w_r, w_z, w_n = np.split(sd["weight_ih_l0"], 3)
  np.testing.assert_array_equal(np.asarray(p["kernel"]), np.concatenate([w_z, w_r, w_n]).T)
  b_r, b_z, b_n = np.split(sd["bias_hh_l0"], 3)
  np.testing.assert_array_equal(np.asarray(p["bias"][1]), np.concatenate([b_z, b_r, b_n]))


def test_prefix_selects_a_module_inside_a_larger_state_dict():
  fix = fixture("lstm")
  sd = {f"encoder.rnn.{k}": v for k, v in fix["sd"].items()}
  sd["decoder.weight"] = np.ones((2, 2), np.float32)
  params = rj.interop.from_torch(rj.LSTM(4), sd, prefix="encoder.rnn.")
  check_like_torch("lstm", params, fix)
  back = rj.interop.to_torch(rj.LSTM(4), params, prefix="encoder.rnn.")
  assert sorted(back) == sorted(k for k in sd if k.startswith("encoder."))


def test_params_take_the_layers_param_dtype():
  fix = fixture("rnn_tanh")
  params = rj.interop.from_torch(rj.SimpleRNN(4, param_dtype=jnp.bfloat16), fix["sd"])
  assert {p.dtype for p in params.values()} == {jnp.dtype(jnp.bfloat16)}


# Bad input -----------------------------------------------------------------------------


def test_from_torch_bad_arguments():
  sd = fixture("lstm")["sd"]
  with raises(TypeError, "state_dict", "mapping", "list"):
    rj.interop.from_torch(rj.LSTM(4), [1, 2])
  with raises(TypeError, "prefix", "str", "int"):
    rj.interop.from_torch(rj.LSTM(4), sd, prefix=3)
  with raises(ValueError, "prefix 'enc.'", "weight_ih_l0"):
    rj.interop.from_torch(rj.LSTM(4), sd, prefix="enc.")
  with raises(TypeError, "layer", "SimpleRNN, GRU or LSTM", "int"):
    rj.interop.from_torch(3, sd)
  with raises(ValueError, "layer", "'lstm'", "'conv'"):
    rj.interop.from_torch("conv", sd)
  with raises(ValueError, "layer", "empty list"):
    rj.interop.from_torch([], sd)
  with raises(TypeError, "state_dict['weight_ih_l0']", "floating-point", "<U"):
    rj.interop.from_torch(rj.LSTM(4), {**sd, "weight_ih_l0": np.array(["a"])})


def test_from_torch_wrong_keys_and_shapes():
  sd = fixture("lstm")["sd"]
  with raises(ValueError, "state_dict['weight_ih_l0']", "(16, 3)", "expected (24, F)",
              "GRUCell(units=8)", "4 x hidden size 4 is an nn.LSTM"):
    rj.interop.from_torch(rj.GRU(8), sd)
  with raises(ValueError, "state_dict['weight_hh_l0']", "(16, 5)", "expected (16, 4)"):
    rj.interop.from_torch(rj.LSTM(4), {**sd, "weight_hh_l0": np.ones((16, 5), np.float32)})
  with raises(ValueError, "no 'weight_hh_l0'", "torch layer 0"):
    rj.interop.from_torch(rj.LSTM(4), {k: v for k, v in sd.items() if k != "weight_hh_l0"})
  with raises(ValueError, "use_bias=False", "bias_ih_l0"):
    rj.interop.from_torch(rj.LSTM(4, use_bias=False), sd)
  with raises(ValueError, "no 'bias_ih_l0'"):
    rj.interop.from_torch(rj.LSTM(4), fixture("lstm_no_bias")["sd"])
  with raises(ValueError, "does not use", "weight_ih_l1", "num_layers"):
    rj.interop.from_torch(rj.GRU(4), fixture("gru_stacked")["sd"])
  with raises(ValueError, "does not use", "weight_ih_l0_reverse", "bidirectional=True"):
    rj.interop.from_torch(rj.GRU(4), fixture("gru_bidirectional")["sd"])
  with raises(ValueError, "weight_hr_l0", "proj_size"):
    rj.interop.from_torch(rj.LSTM(4), {**sd, "weight_hr_l0": np.ones((4, 4), np.float32)})
  with raises(ValueError, "weight_ih_l1", "(16, 3)", "expected (16, 4)"):  # level 1 reads level 0
    rj.interop.from_torch(rj.RNN([rj.LSTMCell(4), rj.LSTMCell(4)]), {
        **sd, **{k.replace("l0", "l1"): v for k, v in sd.items()}})
  with raises(ValueError, "weight_ih_l0 ... weight_ih_l{num_layers-1}"):
    rj.interop.from_torch("lstm", {"weight_ih_l1": sd["weight_ih_l0"]})


def test_configurations_torch_cannot_express():
  gru = fixture("gru")["sd"]
  with raises(ValueError, "reset_after=True", "reset_after=False"):
    rj.interop.from_torch(rj.GRU(4, reset_after=False), gru)
  with raises(ValueError, "nn.LSTM", "'sigmoid'", "recurrent_activation='hard_sigmoid'"):
    rj.interop.from_torch(rj.LSTM(4, recurrent_activation="hard_sigmoid"), fixture("lstm")["sd"])
  with raises(ValueError, "nn.RNN", "'tanh' or 'relu'", "activation='sigmoid'"):
    rj.interop.from_torch(rj.SimpleRNN(4, activation="sigmoid"), fixture("rnn_tanh")["sd"])
  params = rj.GRU(4, reset_after=False).init(jax_key(), jnp.ones((1, 2, 3)))
  with raises(ValueError, "reset_after=False"):
    rj.interop.to_torch("gru", params)


def test_to_torch_bad_params():
  layer = rj.LSTM(4)
  params = layer.init(jax_key(), jnp.ones((1, 2, 3)))
  with raises(ValueError, "params['bias']", "(16,)", "(12,)"):
    rj.interop.to_torch(layer, {**params, "bias": jnp.zeros(12)})
  with raises(ValueError, "keys", "'bias'", "'kernel'", "'w'"):
    rj.interop.to_torch(layer, {"w": 1})
  with raises(TypeError, "params", "dict", "list"):
    rj.interop.to_torch(layer, [params])
  with raises(TypeError, "tuple with 2 entries"):
    rj.interop.to_torch(rj.RNN([rj.LSTMCell(4), rj.LSTMCell(4)]), (params,))
  with raises(ValueError, "3 input features", "reads the 4 outputs of layer 0"):
    rj.interop.to_torch("lstm", (params, params))
  with raises(TypeError, "params", "recurrent_kernel", "str"):
    rj.interop.to_torch("lstm", "p")
  with raises(TypeError, "params", "['backward', 'forward']", "['forward']"):
    rj.interop.to_torch([Twin(rj.LSTM(4), rj.LSTM(4))], [{"forward": params}])
  with raises(TypeError, "prefix", "str"):
    rj.interop.to_torch(layer, params, prefix=None)


class Twin:
  """A stand-in two-direction wrapper (Keras's forward_layer / backward_layer names)."""

  def __init__(self, forward_layer, backward_layer):
    self.forward_layer, self.backward_layer = forward_layer, backward_layer


def test_two_direction_layers_use_the_reverse_keys():
  fix = fixture("gru_bidirectional")
  params = rj.interop.from_torch(Twin(rj.GRU(4), rj.GRU(4, go_backwards=True)), fix["sd"])
  check_like_torch("gru_bidirectional", params, fix)
  fix = fixture("lstm_stacked_bidirectional")
  twins = [Twin(rj.LSTM(4), rj.LSTM(4)), Twin(rj.LSTM(4), rj.LSTM(4))]
  params = rj.interop.from_torch(twins, fix["sd"])
  check_like_torch("lstm_stacked_bidirectional", params, fix)
  sd = rj.interop.to_torch(twins, params)
  assert sorted(sd) == sorted(fix["sd"])


def jax_key():
  import jax
  return jax.random.key(0)
