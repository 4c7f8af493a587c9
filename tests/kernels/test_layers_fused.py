"""The LSTM and GRU layers on the fused path (Pallas interpret mode, forced) against the
same layers on the scan path: outputs, states and gradients, through `layer.apply`."""

import numpy as np
import pytest

import jax
import jax.numpy as jnp
import rnnjax as rj
from rnnjax.dispatch import REGISTRY

from tests.kernels._helpers import assert_trees_close, with_grads

B, T, F, U = 3, 6, 4, 20
LENGTHS = np.array([0, T, 3], np.int32)

CASES = [
    ("lstm", dict(go_backwards=True, zero_output_for_mask=True), "float32"),
    # Input dropout in training: applied to the projection outside the kernel, same masks.
    ("gru", dict(time_major=True, return_sequences=False, dropout=0.4, implementation=1),
     "float32"),
    ("lstm", dict(dtype="bfloat16"), "bfloat16"),
]


def _setup(kind, options, seed=0):
  cls = rj.LSTM if kind == "lstm" else rj.GRU
  options = {"return_sequences": True, "return_state": True, **options}
  rng = np.random.default_rng(seed)
  shape = (T, B, F) if options.get("time_major") else (B, T, F)
  x = jnp.asarray(rng.normal(size=shape), jnp.float32)
  params = cls(U).init(jax.random.key(seed), x)
  params = {k: v + 0.3 * jnp.asarray(rng.normal(size=v.shape), v.dtype) for k, v in params.items()}
  states = [jnp.asarray(rng.normal(size=(B, U)), jnp.float32)
            for _ in range(2 if kind == "lstm" else 1)]
  return cls, options, x, params, states


@pytest.fixture
def fused_calls(monkeypatch):
  """The layers whose calls (traces) took a fused implementation of the registry."""
  calls = []
  for implementations in REGISTRY.values():
    for impl in implementations:
      def spy(call, original=impl.run):
        calls.append(call.spec.layer_name)
        return original(call)
      monkeypatch.setattr(impl, "run", spy)
  return calls


@pytest.mark.parametrize("kind, options, dtype", CASES, ids=lambda v: str(v))
def test_layer_fused_path_matches_scan_path(kind, options, dtype, fused_calls):
  cls, options, x, params, states = _setup(kind, options)

  training = "dropout" in options
  rng = jax.random.key(7) if training else None

  def apply(use_fused):
    layer = cls(U, use_fused=use_fused, **options)
    return lambda p, x, s: layer.apply(p, x, initial_state=s, seq_lengths=LENGTHS,
                                       training=training, rng=rng)

  with rj.kernels.force_interpret():
    got, got_grads = with_grads(apply("auto"), params, x, states)
  taken = len(fused_calls)
  assert taken > 0
  want, want_grads = with_grads(apply(False), params, x, states)
  assert len(fused_calls) == taken
  assert jax.tree.map(lambda a: a.dtype, got) == jax.tree.map(lambda a: a.dtype, want)
  assert_trees_close(got, want, dtype, "forward")
  assert_trees_close(got_grads, want_grads, dtype, "gradient")
