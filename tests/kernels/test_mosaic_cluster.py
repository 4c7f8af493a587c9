"""The cluster split of the Mosaic GPU LSTM (W_hh over 4 CTAs; the forward exchanges h
and the backward reduces partial dh every step behind a cluster barrier): interpret mode
against the reference, values and gradients, in a subprocess with enough CPU-client
workers (tests/mosaic_cluster_checks.py says why), and the lowering for an abstract H100
(cluster barriers, wgmma, shared memory within the limit)."""

import os
import pathlib
import subprocess
import sys

import jax.numpy as jnp
from rnnjax.pallas import mosaic

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_cluster_forward_matches_the_reference():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-m", "tests.mosaic_cluster_checks"], cwd=ROOT,
                        env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "units 256: cluster of 4 forward matches the reference" in proc.stdout
  assert "units 256: cluster of 4 gradients match the reference" in proc.stdout
  assert "units 256: clustered backward (float32) matches jax.vjp" in proc.stdout


def test_cluster_kernels_lower_for_h100():
  fwd, bwd = mosaic.plans(64, 256, jnp.bfloat16)
  assert (fwd.cluster, fwd.hs, bwd.cluster, bwd.hs) == (4, 64, 4, 64)
  text = mosaic.lowered_text(64, 8, 256)
  for name in ("forward", "backward"):
    assert "barrier.cluster.wait" in text[name]
    assert "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16" in text[name]
