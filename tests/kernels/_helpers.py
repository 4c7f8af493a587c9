"""Shared pieces of the kernel tests: random Keras-layout problems, the rnnjax scan engine
as the oracle (Keras-parity tested in tests/parity), tolerances, and one jitted function
that returns a call's primal outputs (the inference kernel) and its gradients (the
residual-saving forward kernel plus the backward kernel)."""

import dataclasses

import numpy as np

import jax
import jax.numpy as jnp
import rnnjax as rj

F32 = jnp.float32
GATES = {"lstm": 4, "gru": 3}


@dataclasses.dataclass(frozen=True)
class Case:
  """One problem: B, T, F, U, dtype, lengths pattern, go_backwards, zero_output_for_mask,
  initial states given, use_bias, time_major, block_b, block_h."""

  b: int
  t: int
  u: int
  f: int = 5
  dtype: str = "float32"
  lengths: bool = True
  backwards: bool = False
  zero_output: bool = False
  init: bool = True
  bias: bool = True
  time_major: bool = False
  block_b: int | None = None
  block_h: int | None = None

  def __str__(self):
    flags = [n for n, on in (("len", self.lengths), ("bwd", self.backwards),
                             ("zero", self.zero_output), ("init", self.init),
                             ("nobias", not self.bias), ("tm", self.time_major)) if on]
    bb = f"-bb{self.block_b}" if self.block_b else ""
    bb += f"-bh{self.block_h}" if self.block_h else ""
    return f"B{self.b}-T{self.t}-U{self.u}-{self.dtype}{bb}-" + "-".join(flags)


def lengths_pattern(b: int, t: int, seed: int = 0) -> np.ndarray:
  """(B,) lengths starting 0, 1, T (as far as B goes), then random in [0, T]."""
  rng = np.random.default_rng(seed)
  head = [0, 1, t][:b]
  return np.array(head + list(rng.integers(0, t + 1, size=b - len(head))), np.int32)


def problem(kind: str, case: Case, seed: int = 0):
  """(params, x, states, lengths): random non-symmetric weights and biases, float32."""
  g = GATES[kind]
  rng = np.random.default_rng(seed)
  u, f = case.u, case.f

  def normal(*shape, scale=1.0):
    return jnp.asarray(scale * rng.normal(size=shape), F32)

  params = {"kernel": normal(f, g * u, scale=0.6), "recurrent_kernel": normal(u, g * u, scale=0.25)}
  if case.bias:
    params["bias"] = normal(*((2, g * u) if kind == "gru" else (g * u,)), scale=0.5)
  shape = (case.t, case.b, f) if case.time_major else (case.b, case.t, f)
  x = normal(*shape)
  n_states = 2 if kind == "lstm" else 1
  states = tuple(normal(case.b, u, scale=0.5) for _ in range(n_states)) if case.init else None
  lengths = jnp.asarray(lengths_pattern(case.b, case.t, seed)) if case.lengths else None
  return params, x, states, lengths


def scan_oracle(kind: str, params, x, states, lengths, *, go_backwards=False,
                zero_output_for_mask=False, time_major=False, dtype="float32"):
  """The rnnjax scan engine with the built-in cell: (outputs, final state tuple)."""
  cell_type = rj.LSTMCell if kind == "lstm" else rj.GRUCell
  cell = cell_type(params["recurrent_kernel"].shape[0], dtype=dtype,
                   use_bias="bias" in params)
  b, t = (x.shape[1], x.shape[0]) if time_major else x.shape[:2]
  if states is None:
    states = cell.initial_state(b, F32)
  mask = None
  if lengths is not None:
    mask = jnp.arange(t)[None, :] < lengths[:, None]
    mask = mask.T if time_major else mask
  result = rj.engine.rnn(cell, params, x, tuple(s.astype(F32) for s in states), mask=mask,
                         go_backwards=go_backwards, time_major=time_major,
                         zero_output_for_mask=zero_output_for_mask, return_sequences=True)
  return result.outputs, tuple(result.final_state)


def flat_outputs(out):
  """(outputs, states) of any fused function as a flat list of arrays."""
  return jax.tree.leaves(out)


def cotangents(tree):
  """Fixed random cotangents shaped like `tree`'s leaves (NumPy-made: random numbers
  drawn inside the jitted function would cost seconds of CPU compile time)."""
  rng = np.random.default_rng(100)
  return jax.tree.map(lambda a: jnp.asarray(rng.normal(size=a.shape), a.dtype), tree)


def with_grads(fn, *args, primal: bool = False):
  """Jitted: (outputs, gradients) of fn at args, the gradients being the VJP of fixed
  random cotangents w.r.t. every argument. With `primal`, the outputs come from a plain
  call (for the kernels: the inference variant) rather than from the VJP's forward."""
  cts = cotangents(jax.eval_shape(fn, *args))

  def both(cts, *a):
    out, vjp = jax.vjp(fn, *a)
    return (fn(*a) if primal else out), vjp(cts)

  return jax.jit(both)(cts, *args)


def assert_close(got, want, dtype: str, what: str = ""):
  """float32: |got - want| <= 1e-5 (1 + |want|) elementwise; bfloat16: relative error
  ||got - want|| / ||want|| <= 1e-2 per array."""
  got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
  assert got.shape == want.shape, (what, got.shape, want.shape)
  if dtype == "float32":
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=what)
  else:
    err = np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-6)
    assert err <= 1e-2, f"{what}: relative error {err:.3g} > 1e-2"


def assert_trees_close(got, want, dtype: str, what: str = ""):
  g, w = jax.tree.leaves(got), jax.tree.leaves(want)
  assert len(g) == len(w), (what, len(g), len(w))
  for i, (a, b) in enumerate(zip(g, w)):
    assert_close(a, b, dtype, f"{what} leaf {i}")
