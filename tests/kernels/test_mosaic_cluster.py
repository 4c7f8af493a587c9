"""The cluster split of the Mosaic GPU LSTM forward (W_hh over 4 CTAs, h exchanged every
step behind a cluster barrier): interpret mode against the reference in a subprocess with
enough CPU-client workers (tests/mosaic_cluster_checks.py says why), and the lowering for
an abstract H100 (cluster barriers, wgmma, shared memory within the limit)."""

import os
import pathlib
import subprocess
import sys

import pytest

import jax
import jax.numpy as jnp
from rnnjax.pallas import mosaic

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_cluster_forward_matches_the_reference():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-m", "tests.mosaic_cluster_checks"], cwd=ROOT,
                        env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "units 256: cluster of 4 matches the reference" in proc.stdout


def test_cluster_forward_lowers_for_h100_and_its_gradient_says_why_not():
  fwd, bwd = mosaic.plans(64, 256, jnp.bfloat16)
  assert (fwd.cluster, fwd.hs, bwd) == (4, 64, None)
  text = mosaic.lowered_text(64, 8, 256)
  assert set(text) == {"forward"}
  assert "barrier.cluster.wait" in text["forward"]
  assert "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16" in text["forward"]
  x = jnp.ones((2, 3, 4), jnp.bfloat16)
  params = {"kernel": jnp.zeros((4, 1024), jnp.bfloat16),
            "recurrent_kernel": jnp.zeros((256, 1024), jnp.bfloat16)}
  with pytest.raises(ValueError, match="no gradient: the Mosaic GPU LSTM backward"):
    jax.grad(lambda p: mosaic.mosaic_lstm(p, x, interpret=True)[1][0].sum())(params)
