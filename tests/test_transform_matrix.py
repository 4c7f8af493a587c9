"""Every JAX transform on every path: jvp, linearize, jacfwd, Hessians (inputs, one
parameter), grad of grad, vmap over stacked params and over inputs, jax.checkpoint and
shard_map, on the CPU recurrence and on the Pallas kernels (interpret mode), each equal
to the same transform on the scan path (use_fused=False) with the same params; with and
without seq_lengths. Layers without a fast path (stacked cells; a float64 SimpleRNN, which
the float32-only CPU recurrence declines) and the float64 scan are checked against finite
differences (`check_grads`). Transforms and
layers: tests/transform_cases.py."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import jax
import jax.numpy as jnp
from jax.test_util import check_grads
import rnnjax as rj

from tests import fast_jit
from tests.transform_cases import (B, F, LENGTHS, PATHS, SECOND_ORDER, T, TRANSFORMS,
                                   applier, fast_and_scan, loss_of, max_difference, normal,
                                   problem, tangent_like)

ROOT = pathlib.Path(__file__).parents[1]
ALL = tuple(TRANSFORMS)
# Every transform with seq_lengths (the masked recurrence) on the LSTM's two fast paths;
# the rest samples: without seq_lengths, the two-direction layer, the GRU kernel and the
# GRU and SimpleRNN CPU recurrences (the LSTM's mechanism, other cells). Pallas interpret
# mode is slow.
CASES = (
    [("lstm", "cpu", t, LENGTHS) for t in ALL]
    + [("lstm", "cpu", t, None) for t in ("jvp", "hessian_inputs", "vmap_inputs", "shard_map")]
    + [("bidirectional_lstm", "cpu", t, LENGTHS)
       for t in ("jvp", "jacfwd", "hessian_recurrent_kernel", "grad_of_grad", "vmap_params",
                 "checkpoint")]
    + [("bidirectional_lstm", "cpu", "linearize", None)]
    + [("gru", "cpu", t, LENGTHS)
       for t in ("jvp", "linearize", "hessian_inputs", "grad_of_grad", "vmap_params", "shard_map")]
    + [("simple_rnn", "cpu", t, LENGTHS) for t in ("jvp", "hessian_recurrent_kernel",
                                                   "grad_of_grad", "checkpoint")]
    + [("lstm", "pallas", t, LENGTHS) for t in ALL]
    + [("lstm", "pallas", "grad_of_grad", None)]
    + [("gru", "pallas", t, LENGTHS)
       for t in ("jvp", "hessian_inputs", "grad_of_grad", "vmap_params", "shard_map")]
    + [("gru", "pallas", "jvp", None)]
    + [("bidirectional_lstm", "pallas", t, LENGTHS)
       for t in ("jvp", "hessian_inputs", "vmap_params")]
)


def _id(case):
  name, path, transform, lengths = case
  return f"{name}-{path}-{transform}-{'lengths' if lengths is not None else 'full'}"


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_transform_on_the_fast_path_equals_the_scan(case):
  name, path, transform, lengths = case
  got, want, choice = fast_and_scan(name, path, transform, lengths, jit=fast_jit.jit)
  assert choice.path == "fused" and PATHS[path][1] in choice.reason, choice
  tolerance = 1e-4 if transform in SECOND_ORDER else 2e-5
  scale = max(1.0, max(float(np.max(np.abs(np.asarray(a)))) for a in jax.tree.leaves(want)))
  assert max_difference(got, want) <= tolerance * scale, (max_difference(got, want), scale)


SCAN_ONLY = {
    "simple_rnn": lambda: rj.SimpleRNN(3, return_sequences=True, param_dtype=jnp.float64),
    "stacked_lstm_gru": lambda: rj.RNN([rj.LSTMCell(3, param_dtype=jnp.float64),
                                        rj.GRUCell(3, param_dtype=jnp.float64)],
                                       return_sequences=True),
}


@pytest.mark.parametrize("name", SCAN_ONLY)
def test_scan_layers_check_grads_forward_mode_in_float64(name):
  """Forward mode to second order (jvp of jvp) against finite differences, with
  seq_lengths (reverse mode to second order: tests/test_transforms.py)."""
  with jax.enable_x64(True):
    layer = SCAN_ONLY[name]()
    x = normal(1, (B, T, F)).astype(jnp.float64)
    params = layer.init(jax.random.key(0), x)

    def loss(params, x):
      y = layer.apply(params, x, seq_lengths=LENGTHS)
      return jnp.sum(jnp.sin(y) * jnp.cos(jnp.arange(y.size).reshape(y.shape)))

    check_grads(jax.jit(loss), (params, x), order=2, modes=["fwd"], atol=1e-5, rtol=1e-5)


def test_scan_only_layers_under_vmap_checkpoint_and_shard_map():
  """The transforms check_grads does not cover, on a layer without a fast path, against
  the untransformed computation: vmap against a loop over the params, checkpoint and
  shard_map against plain autodiff."""
  layer = rj.RNN([rj.LSTMCell(3), rj.GRUCell(3)], return_sequences=True)
  params, x = problem(layer)
  f = applier(layer)
  loss = loss_of(f)
  second = jax.tree.map(lambda a, t: a + t, params, tangent_like(params, 11))
  plain = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
  jvp = jax.jit(lambda p, x, t: jax.jvp(lambda x: f(p, x, LENGTHS), (x,), (t,)))
  run = lambda transform: fast_jit.jit(TRANSFORMS[transform], static_argnums=0)(   # noqa: E731
      f, params, x, LENGTHS)

  values, grads = run("vmap_params")
  for i, p in enumerate((params, second)):
    want_value, (want_grads, _) = plain(p, x, LENGTHS)
    got = (values[i], jax.tree.map(lambda a: a[i], grads))
    assert max_difference(got, (want_value, want_grads)) < 1e-5

  value_and_grads, tangent = run("checkpoint")
  assert max_difference(value_and_grads, plain(params, x, LENGTHS)) < 1e-5
  assert max_difference(tangent, jvp(params, x, tangent_like(x, 7))) < 1e-5

  (value, grads), y, dy = run("shard_map")
  want_value, (want_grads, _) = plain(params, x, LENGTHS)
  assert max_difference((value, grads), (want_value, want_grads)) < 1e-5
  assert max_difference((y, dy), jvp(params, x, jnp.cos(x))) < 1e-5


def test_shard_map_on_three_devices():
  """The fast paths inside shard_map with the batch split over 3 virtual CPU devices
  (tests/shard_map_checks.py, in a subprocess: the device count is fixed at start-up)."""
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=3",
         "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
  proc = subprocess.run([sys.executable, "-m", "tests.shard_map_checks"], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-4000:]
  results = json.loads(proc.stdout.strip().splitlines()[-1])
  assert results["devices"] == 3 and results["mesh"] == 3
  for case, r in results.items():
    if isinstance(r, dict):
      assert r["path"] == "fused", case
      assert r["scale"] > 0.1 and r["difference"] <= 2e-5 * r["scale"], (case, r)
      assert r["unsharded_difference"] <= 2e-5 * r["scale"], (case, r)
