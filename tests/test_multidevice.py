"""Data-parallel training over 8 virtual CPU devices gives the loss, gradients and
updated params of one device: jax.sharding (NamedSharding over a Mesh, auto and explicit
axis types), shard_map and pmap. XLA_FLAGS must be set before JAX starts, so the checks
(tests/multidevice_checks.py) run in one subprocess."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).parents[1]
TOLERANCE = 1e-6   # measured: <= 6e-8 (loss ~0.64, largest gradient ~0.11)


@pytest.fixture(scope="module")
def results():
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
         "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
  proc = subprocess.run([sys.executable, "-m", "tests.multidevice_checks"], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-4000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


def test_eight_devices(results):
  assert results["devices"] == 8


@pytest.mark.parametrize("mode", ["auto", "explicit"])
def test_named_sharding_data_parallel_training(results, mode):
  assert results[f"sharded_{mode}_x_devices"] == 8          # the batch really was split
  assert results["sharded_all_reduce"]                      # and gradients were reduced
  assert results[f"sharded_{mode}_grads_replicated"]
  for what in ("loss", "grads", "params_after_3_steps"):
    assert results[f"sharded_{mode}_{what}"] <= TOLERANCE, (what, results)


def test_shard_map(results):
  assert results["shard_map_loss"] <= TOLERANCE
  assert results["shard_map_grads"] <= TOLERANCE


def test_pmap(results):
  assert results["pmap_devices"] == 8
  assert results["pmap_outputs"] <= TOLERANCE
  assert results["pmap_grads"] <= TOLERANCE


def test_the_checks_can_fail(results):
  """The reference values are not trivially zero, so a difference of 0 means something."""
  assert results["loss"] > 0.1 and results["grad_scale"] > 0.01


def test_explicit_sharding_and_shard_map_in_process():
  """The same type checks on a one-device mesh (fast, no subprocess): under explicit
  sharding and inside shard_map, scan's carry must carry the inputs' sharding and
  varying axes; the engine gives the zero initial state those types."""
  import jax
  import jax.numpy as jnp
  import numpy as np
  from jax.sharding import AxisType, Mesh, NamedSharding
  from jax.sharding import PartitionSpec as P
  import rnnjax as rj

  layer = rj.LSTM(3, return_sequences=True, return_state=True)
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 4, 2)), jnp.float32)
  mask = jnp.asarray([[True] * 4, [True, True, False, False]])
  params = layer.init(jax.random.key(0), x)
  want = layer.apply(params, x, mask=mask)
  mesh = Mesh(np.array(jax.devices()[:1]), ("data",), axis_types=(AxisType.Explicit,))
  with jax.set_mesh(mesh):
    rows = NamedSharding(mesh, P("data"))
    got = jax.jit(layer.apply)(params, jax.device_put(x, rows), mask=jax.device_put(mask, rows))
  for a, b in zip(got, want, strict=True):
    np.testing.assert_allclose(a, b, atol=1e-6)
  mesh = Mesh(np.array(jax.devices()[:1]), ("data",))
  per_device = jax.shard_map(lambda p, x, m: layer.apply(p, x, mask=m), mesh=mesh,
                             in_specs=(P(), P("data"), P("data")), out_specs=P("data"))
  for a, b in zip(jax.jit(per_device)(params, x, mask), want, strict=True):
    np.testing.assert_allclose(a, b, atol=1e-6)
