"""The one backend probe of rnnjax: which platform JAX computes on. Every choice that
depends on the hardware (the dispatch's fast paths, the engine's projection placement,
Pallas interpret mode) asks here."""

import jax


def backend() -> str:
  """`jax.default_backend()`: "cpu", "gpu" or "tpu"."""
  return jax.default_backend()


def on_gpu() -> bool:
  return backend() == "gpu"


def on_cpu() -> bool:
  return backend() == "cpu"
