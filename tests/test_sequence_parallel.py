"""Sequence parallelism: MinGRU, MinLSTM (log space) and LRU with the time axis split over
8 virtual CPU devices (`jax.shard_map`, `sequence_axis=`) give the outputs, last output,
final state and gradients of one device, with masks, resets, go_backwards and
seq_lengths; and the compiled program never gathers the sequence: its only collectives
move per-device summaries (P, B, N), parameter-sized gradient sums, and (go_backwards)
one chunk to its mirror device. XLA_FLAGS must be set before JAX starts, so the checks
(tests/sequence_parallel_checks.py) run in one subprocess."""

import json
import os
import pathlib
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax as rj
from tests.sequence_parallel_checks import B, DEVICES, F, RUNS, T

ROOT = pathlib.Path(__file__).parents[1]
CHUNK = T // DEVICES


@pytest.fixture(scope="module")
def results():
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
         "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
  proc = subprocess.run([sys.executable, "-m", "tests.sequence_parallel_checks"], cwd=ROOT,
                        env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-4000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


def test_eight_devices(results):
  assert results["devices"] == DEVICES


@pytest.mark.parametrize("run", ["/".join(r) for r in RUNS])
def test_sharded_equals_one_device(results, run):
  scale = results[f"{run}/scale"]
  assert scale > 1.0                                   # the gradients are not trivially 0
  assert results[f"{run}/outputs"] <= 2e-6, results
  assert results[f"{run}/loss"] <= 1e-5 * max(1.0, scale), results
  assert results[f"{run}/grads"] <= 1e-6 * scale, results


def _dims(shape: str) -> list[int]:
  return [int(d) for group in re.findall(r"\[([0-9,]*)\]", shape) for d in group.split(",") if d]


@pytest.mark.parametrize("run", ["/".join(r) for r in RUNS])
def test_the_sequence_is_never_gathered(results, run):
  """No collective result has the time axis (T); all-gathers hold one summary per device
  (P, B, N); the only chunk-sized transfers are go_backwards' collective-permutes of one
  (T/P, B, U) chunk to its mirror device."""
  collectives = results[f"{run}/collectives"]
  ops = {op for op, _ in collectives}
  assert "all-gather" in ops and "all-to-all" not in ops
  for op, shape in collectives:
    dims = _dims(shape)
    assert T not in dims, (op, shape)
    if op == "all-gather":
      assert dims[0] == DEVICES and len(dims) == 3 and CHUNK not in dims, (op, shape)
    elif CHUNK in dims:
      assert op == "collective-permute" and run.endswith("backwards_lengths"), (op, shape)
  assert ("collective-permute" in ops) == run.endswith("backwards_lengths")


def test_sequence_axis_needs_the_parallel_scan():
  with pytest.raises(ValueError, match="scan='sequential' cannot run a time-sharded"):
    rj.MinGRU(4, scan="sequential", sequence_axis="time")
  layer = rj.MinGRU(4, sequence_axis="time", unroll=2)
  x = jnp.ones((B, 6, F))
  with pytest.raises(ValueError, match="unroll=2"):
    rj.kernels.which_path(layer, x)
  cell_stack = rj.RNN([rj.MinGRUCell(4, sequence_axis="time")])
  params = cell_stack.init(jax.random.key(0), x)
  with pytest.raises(ValueError, match="needs the parallel scan"):
    cell_stack.apply(params, x)


def test_one_device_mesh_in_process():
  """The same layer on a one-device mesh (fast, no subprocess) equals the plain call."""
  from jax.sharding import Mesh, PartitionSpec as P
  mesh = Mesh(np.array(jax.devices()[:1]), ("time",))
  layer = rj.LRU(F, return_sequences=True, return_state=True, sequence_axis="time")
  x = jnp.asarray(np.random.default_rng(0).normal(size=(B, 8, F)), jnp.float32)
  params = layer.init(jax.random.key(0), x)
  run = jax.shard_map(lambda p, x: layer.apply(p, x), mesh=mesh, in_specs=(P(), P(None, "time")),
                      out_specs=(P(None, "time"), P()))
  plain = rj.LRU(F, return_sequences=True, return_state=True, scan="parallel")
  for a, b in zip(jax.jit(run)(params, x), plain.apply(params, x), strict=True):
    np.testing.assert_allclose(a, b, atol=1e-6)
