"""A property of the whole public call, over random valid and invalid arguments: a layer
built and applied either gives what the NumPy loop of tests/numpy_reference.py gives, or
raises a ValueError / TypeError that names one of the arguments made invalid; never
another exception, never a result for an invalid call.

Each example draws a layer kind, its options, the inputs, mask, seq_lengths, initial
state, training and rng, and spoils a few of them (`bad` names the spoilt ones). Shapes
are tiny and few, so compilations repeat across examples."""

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jax
import jax.numpy as jnp
import rnnjax as rj

from tests import numpy_reference as ref

KINDS = {   # layer, NumPy step, number of states
    "lstm": (rj.LSTM, ref.lstm_step, 2),
    "gru": (rj.GRU, ref.gru_step, 1),
    "simple_rnn": (rj.SimpleRNN, ref.simple_step, 1),
}
F = 2
FLAGS = ("return_sequences", "return_state", "go_backwards", "zero_output_for_mask")
SETTINGS = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

class Later:
  """A spoilt value whose construction itself raises: built inside the test's try."""

  def __init__(self, make, *args):
    self.make, self.args = make, args

  def __repr__(self):
    return f"{self.make.__name__}{self.args}"


def built(options):
  return {k: v.make(*v.args) if isinstance(v, Later) else v for k, v in options.items()}


# Spoilt values of each constructor argument.
BAD_OPTIONS = {
    "units": [0, -2, 2.5, "3", True],
    "dtype": ["int32", "float33", "complex64", 7],
    "carry_dtype": ["int8", "float33", "bool"],
    "param_dtype": ["int16", "float99"],
    "seed": [-1, 2**32, 1.5],
    "dropout": [-0.1, 1.0, "0.5", float("nan")],
    "unroll": [0, 2.5, "yes"],
    "use_fused": ["yes", 1, None],
    # a constraint out of its domain names its own argument (max_value) as it is built
    "kernel_constraint": [Later(rj.MaxNorm, -1.0), Later(rj.MinMaxNorm, 2.0, 1.0),
                          "max_norm_2"],
    "activation": ["tanhh", 3],
}


@st.composite
def calls(draw):
  bad = set()
  kind = draw(st.sampled_from(sorted(KINDS)))
  b, t, u = draw(st.sampled_from([1, 2])), draw(st.sampled_from([1, 3])), 2
  options = {name: draw(st.booleans()) for name in FLAGS}
  options["use_fused"] = draw(st.sampled_from(["auto", False]))
  units = u
  # Two in five examples are valid; the others spoil options, call arguments or both.
  mode = draw(st.sampled_from(["valid", "valid", "options", "call", "both"]))
  spoil_options = mode in ("options", "both")
  for name in draw(st.lists(st.sampled_from(sorted(BAD_OPTIONS) + ["flag"]), min_size=1,
                            max_size=2, unique=True)) if spoil_options else []:
    if name == "flag":
      name = draw(st.sampled_from(FLAGS))
      options[name] = draw(st.sampled_from(["yes", 1, None]))
    elif name == "units":
      units = draw(st.sampled_from(BAD_OPTIONS["units"]))
    else:
      options[name] = draw(st.sampled_from(BAD_OPTIONS[name]))
    bad |= {name, "max_value"} if name == "kernel_constraint" else {name}

  rng = np.random.default_rng(draw(st.integers(0, 2**16)))
  call = dict(x=rng.normal(size=(b, t, F)).astype("float32"), mask=None, seq_lengths=None,
              initial_state=None, training=draw(st.booleans()), rng=None)
  n_states = KINDS[kind][2]

  spoil = draw(st.sets(st.sampled_from(["inputs", "mask", "seq_lengths", "initial_state",
                                        "training", "rng"]), min_size=1, max_size=2)
               ) if mode in ("call", "both") else set()
  masking = draw(st.sampled_from([None, "mask", "seq_lengths", "seq_lengths"]
                                 + (["both"] if mode != "valid" else [])))
  if masking in ("mask", "both"):
    call["mask"] = rng.random((b, t)) < 0.7
  if masking in ("seq_lengths", "both"):
    call["seq_lengths"] = rng.integers(0, t + 1, size=b).astype("int32")
  if masking == "both":
    bad |= {"mask", "seq_lengths"}
  if draw(st.booleans()):
    call["initial_state"] = [rng.normal(size=(b, u)).astype("float32") for _ in range(n_states)]
  if draw(st.booleans()):
    call["rng"] = jax.random.key(draw(st.integers(0, 3)))
  if draw(st.booleans()):   # valid variants of the inputs: integers and bools are numbers
    call["x"] = draw(st.sampled_from([lambda x: x, lambda x: (x > 0).astype("int32"),
                                      lambda x: x > 0]))(call["x"])

  for name in spoil:
    if name == "inputs":
      x = call["x"]
      call["x"] = draw(st.sampled_from([x[:, :, 0], x[:, :0], np.concatenate([x, x], -1),
                                        x.astype("complex64"), np.full(x.shape, "a"), list(x)]))
    elif name == "mask":
      call["mask"] = draw(st.sampled_from([np.ones((b, t + 1), bool),
                                           np.ones((b, t), "float32"), np.ones((t,), bool)]))
      call["seq_lengths"] = None
    elif name == "seq_lengths":
      call["seq_lengths"] = draw(st.sampled_from([np.full((b,), t + 1), np.full((b,), -1),
                                                  np.ones((b + 1,), "int32"),
                                                  np.ones((b,), "float32")]))
      call["mask"] = None
    elif name == "initial_state":
      good = [np.zeros((b, u), "float32")] * n_states
      call["initial_state"] = draw(st.sampled_from([
          good + good[:1], [np.zeros((b, u + 1), "float32")] * n_states,
          [np.zeros((b + 1, u), "float32")] * n_states,
          [np.zeros((b, u), "complex64")] * n_states]))
    elif name == "training":
      call["training"] = draw(st.sampled_from([1, "yes", None]))
    elif name == "rng":
      call["rng"] = draw(st.sampled_from([jax.random.split(jax.random.key(0), 2),
                                          np.ones(2, "float32"), "key"]))
  bad |= spoil
  return kind, units, options, call, bad


def expected(kind, options, params, call):
  """What Keras semantics give, from the NumPy loop (the last valid output when
  return_sequences is False, rnnjax's documented choice)."""
  _, step, n_states = KINDS[kind]
  x = np.asarray(call["x"], np.float64)
  b, t = x.shape[:2]
  mask = call["mask"]
  if call["seq_lengths"] is not None:
    mask = np.arange(t)[None, :] < np.asarray(call["seq_lengths"])[:, None]
  units = params["recurrent_kernel"].shape[0]
  state = call["initial_state"] or [np.zeros((b, units))] * n_states
  outputs, last, final = ref.run(step, {k: np.asarray(v) for k, v in params.items()}, x,
                                 state, mask=mask, go_backwards=options["go_backwards"],
                                 zero_output_for_mask=options["zero_output_for_mask"])
  out = outputs if options["return_sequences"] else last
  return (out, *final) if options["return_state"] else out


@SETTINGS
@given(calls())
def test_a_call_equals_the_reference_or_names_what_is_wrong(example):
  kind, units, options, call, bad = example
  try:
    layer = KINDS[kind][0](units, **built(options))
    x = call["x"]
    shape = (len(x), *np.shape(x[0])) if isinstance(x, list) else np.shape(x)
    params = layer.init(jax.random.key(1), jax.ShapeDtypeStruct(
        (shape[0], max(shape[1], 1), F) if len(shape) == 3 else (1, 1, F), jnp.float32))
    out = layer.apply(params, x, initial_state=call["initial_state"], mask=call["mask"],
                      training=call["training"], rng=call["rng"],
                      seq_lengths=call["seq_lengths"])
  except (ValueError, TypeError) as error:
    assert bad, f"a valid call raised {error!r}"
    assert any(name in str(error) for name in bad), f"{error!r} names none of {sorted(bad)}"
    return
  assert not bad, f"spoilt {sorted(bad)} accepted: {options}, {call}"
  want = expected(kind, options, params, call)
  for got, ref_value in zip(jax.tree.leaves(out), jax.tree.leaves(want), strict=True):
    np.testing.assert_allclose(got, ref_value, rtol=1e-4, atol=1e-5)


numbers = st.one_of(st.floats(width=32), st.integers(-3, 3),
                    st.sampled_from(["1", None, True, [1.0]]))


@SETTINGS
@given(max_value=numbers, min_value=numbers, rate=numbers, l1=numbers)
def test_constraint_and_regularizer_arguments(max_value, min_value, rate, l1):
  """Built only inside their domains; otherwise an error naming the argument."""
  def real(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

  for make, names, ok in [
      (lambda: rj.MaxNorm(max_value), ["max_value"], real(max_value) and max_value > 0),
      (lambda: rj.MinMaxNorm(min_value, max_value, rate), ["min_value", "max_value", "rate"],
       all(map(real, (min_value, max_value, rate)))
       and 0 <= min_value <= max_value and 0 < rate <= 1),
      (lambda: rj.L1(l1), ["l1"], real(l1) and l1 >= 0),
  ]:
    try:
      made = make()
    except (ValueError, TypeError) as error:
      assert not ok, f"{error!r} for valid arguments"
      assert any(str(error).startswith(f"{n} must be") for n in names), repr(error)
    else:
      assert ok, f"{made} accepted"
      w = jnp.array([[3.0, -1.0], [4.0, 0.5]])
      assert bool(jnp.isfinite(made(w)).all())
