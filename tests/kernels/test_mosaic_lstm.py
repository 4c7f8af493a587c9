"""The Mosaic GPU (Hopper) LSTM kernels on a CPU: Mosaic GPU interpret mode (which
simulates shared memory, TMA, barriers, wgmma and warpgroups) against the pure-JAX
reference, forward values and gradients; and the kernels lowered for an abstract H100
(the Mosaic GPU module with its wgmma instructions, and Mosaic's own shared-memory check).

float32 runs in interpret mode only (compiled, its wgmma cannot read the transposed
operands): there the kernels must match the reference to rounding, which checks their
logic; bfloat16 matches within bfloat16's tolerance (the kernels round dz to bfloat16 for
the recurrent wgmma, the reference's cotangent stays float32)."""

import dataclasses
import functools

import numpy as np
import pytest

import jax
import jax.numpy as jnp
import rnnjax as rj
from rnnjax.pallas import mosaic

F32 = jnp.float32
B, T, F, U = 5, 4, 7, 24


def _problem(seed=0, b=B, t=T, u=U):
  keys = jax.random.split(jax.random.key(seed), 5)
  x = jax.random.normal(keys[0], (b, t, F))
  params = rj.LSTM(u).init(keys[1], x)
  params = jax.tree.map(lambda a: a + 0.1 * jax.random.normal(keys[2], a.shape), params)
  state = (jax.random.normal(keys[3], (b, u)), jax.random.normal(keys[4], (b, u)))
  return params, x, state


def _loss(fn, params, x, h0, c0):
  out, (h, c) = fn(params, x, (h0, c0))
  weights = jnp.cos(jnp.arange(out.size, dtype=F32)).reshape(out.shape)
  return jnp.sum(out.astype(F32) * weights) + jnp.sum(1.3 * h) + jnp.sum(0.7 * c)


def _both(dtype, backwards):
  def kernel(p, x, s):
    return mosaic.mosaic_lstm(p, x, initial_state=s, go_backwards=backwards, dtype=dtype,
                              interpret=True)

  def reference(p, x, s):
    return rj.kernels.fused_lstm(p, x, initial_state=s, go_backwards=backwards, dtype=dtype,
                                 implementation="reference")
  return kernel, reference


def _relative(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)


@pytest.mark.parametrize("dtype, backwards, fwd_tol, grad_tol", [
    ("float32", False, 1e-6, 1e-5),
    ("bfloat16", True, 1e-2, 1e-2),
])
def test_values_and_gradients_match_the_reference(dtype, backwards, fwd_tol, grad_tol):
  params, x, (h0, c0) = _problem()
  kernel, reference = _both(jnp.dtype(dtype), backwards)
  got, want = kernel(params, x, (h0, c0)), reference(params, x, (h0, c0))
  assert got[0].dtype == jnp.dtype(dtype) and got[0].shape == (B, T, U)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    assert _relative(a, b) < fwd_tol
  grads = [jax.grad(functools.partial(_loss, fn), argnums=(0, 1, 2, 3))(params, x, h0, c0)
           for fn in (kernel, reference)]
  for a, b in zip(*(jax.tree.leaves(g) for g in grads)):
    assert np.all(np.isfinite(np.asarray(a, np.float64)))
    assert _relative(a, b) < grad_tol


def _loop_forward(xp, w_t, h0, c0):
  """The forward recurrence on kernel layouts as a plain per-step loop (float32)."""
  hs, h, c = [], h0.astype(F32), c0
  for t in range(xp.shape[0]):
    z = [jnp.dot(w_t[k].astype(F32), h, precision="highest") + xp[t, k] for k in range(4)]
    c = jax.nn.sigmoid(z[1]) * c + jax.nn.sigmoid(z[0]) * jnp.tanh(z[2])
    h = jax.nn.sigmoid(z[3]) * jnp.tanh(c)
    hs.append(h)
  return jnp.stack(hs), h, c


def test_forward_kernel_with_warpgroups_tiles_and_directions():
  """Two warpgroups of 64 units meeting at the per-step barrier, two batch tiles, two
  directions in one launch; every output element written (poisoned beforehand by
  random data: outputs are fresh arrays, so a missed write shows as garbage)."""
  from rnnjax.pallas.mosaic import _lstm_forward, _plan
  # float32 W of 128 units would not fit shared memory on a GPU; interpret mode does not
  # mind, and float32 makes the comparison exact.
  plan = _plan.Plan(hp=128, bt=64, bp=128, rows=64, depth=3, units=4)
  assert (plan.warpgroups, plan.tiles) == (2, 2)
  d, t, hp, bp = 2, 3, plan.hp, plan.bp
  keys = jax.random.split(jax.random.key(7), 4)
  xp = jax.random.normal(keys[0], (d, t, 4, hp, bp))
  w_t = 0.1 * jax.random.normal(keys[1], (d, 4, hp, hp))
  h0, c0 = (jax.random.normal(k, (d, hp, bp)) for k in keys[2:])
  hs, h, c = _lstm_forward.forward(plan, xp, w_t, h0, c0, save=False, interpret=True)
  for i in range(d):
    want = _loop_forward(xp[i], w_t[i], h0[i], c0[i])
    for a, b in zip((hs[i], h[i], c[i]), want):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_bad_arguments_raise():
  params, x, _ = _problem()
  with pytest.raises(ValueError, match="float32 only in interpret mode"):
    mosaic.mosaic_lstm(params, x, interpret=False)
  with pytest.raises(ValueError, match="block_b must be None or one of"):
    mosaic.mosaic_lstm(params, x.astype(jnp.bfloat16), block_b=32, interpret=True)
  big, xb, _ = _problem(u=320)
  with pytest.raises(ValueError, match="does not stay resident in a cluster of 8 CTAs"):
    mosaic.mosaic_lstm(big, xb.astype(jnp.bfloat16), interpret=True)
  with pytest.raises(ValueError, match="lengths must be None"):
    mosaic.run_lstm(jnp.zeros((B, T, 1, 4 * U)), jnp.zeros((1, U, 4 * U)),
                    *(jnp.zeros((1, B, U)),) * 2, jnp.full((B,), T),
                    dtype=jnp.bfloat16, directions=(False,))


def test_lowers_for_h100_with_wgmma_within_shared_memory():
  """The largest resident plan in bfloat16 (U=128, batch tile 64) lowers for an abstract
  H100: Mosaic sizes its shared memory (raising past 227 KiB) and emits bf16 wgmma for
  both kernels. A ring one slot deeper would not fit: Mosaic raises, so the plan's
  budget is the real limit, not a guess."""
  text = mosaic.lowered_text(64, 8, 128)
  for name in ("forward", "backward"):
    assert "mosaic_gpu_v2" in text[name]
    assert "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16" in text[name]
  from rnnjax.pallas.mosaic import _lstm_forward
  fwd, _ = mosaic.plans(64, 128, jnp.bfloat16)
  deeper = dataclasses.replace(fwd, depth=fwd.depth + 1)
  s = jax.ShapeDtypeStruct
  args = (s((1, 8, 4, 128, 64), F32), s((1, 4, 128, 128), jnp.bfloat16),
          s((1, 128, 64), jnp.bfloat16), s((1, 128, 64), F32))
  device = jax.sharding.AbstractDevice(device_kind="NVIDIA H100 80GB HBM3", num_cores=132,
                                       platform="gpu")
  mesh = jax.sharding.AbstractMesh((1,), ("x",), abstract_device=device)
  with jax.sharding.use_abstract_mesh(mesh), pytest.raises(ValueError, match="shared memory"):
    jax.jit(lambda *a: _lstm_forward.forward(deeper, *a, save=False, interpret=False)
            ).trace(*args).lower(lowering_platforms=("cuda",))


def test_ptx_compile_needs_the_cuda_plugin():
  """Compiling the Mosaic GPU module to PTX/cubin runs in the CUDA plugin (its
  `_mosaic_gpu_ext` passes and ptxas); without the plugin wheel this is skipped."""
  try:
    from jax._src.lib import mosaic_gpu  # noqa: F401
  except ImportError as e:
    pytest.skip(f"no Mosaic GPU compiler on this machine (jax-cuda plugin absent: {e})")
  pytest.skip("the plugin is present but compiling needs a GPU device to target")


def test_two_directions_in_one_launch():
  """`run_lstm` with directions (False, True): one launch (grid over directions) whose
  outputs, final states and gradients match two reference calls (float32, exact)."""
  b, t, u = 5, 4, 16
  keys = jax.random.split(jax.random.key(11), 3)
  x = jax.random.normal(keys[0], (b, t, F))
  pf, pb = (rj.LSTM(u).init(k, x) for k in keys[1:])

  def kernel(pf, pb, x):
    projected = jnp.stack([x @ p["kernel"] + p["bias"][None, None] for p in (pf, pb)], axis=2)
    zeros = jnp.zeros((2, b, u))
    return mosaic.run_lstm(projected, jnp.stack([pf["recurrent_kernel"],
                                                 pb["recurrent_kernel"]]),
                           zeros, zeros, None, dtype=F32, directions=(False, True),
                           interpret=True)

  def reference(pf, pb, x):
    runs = [rj.kernels.fused_lstm(p, x, go_backwards=rev, implementation="reference")
            for p, rev in ((pf, False), (pb, True))]
    return (jnp.stack([r[0] for r in runs], axis=2), jnp.stack([r[1][0] for r in runs]),
            jnp.stack([r[1][1] for r in runs]))

  def loss(fn):
    return lambda *a: sum(jnp.sum(jnp.sin(o)) for o in fn(*a))
  for a, b_ in zip(kernel(pf, pb, x), reference(pf, pb, x)):
    assert _relative(a, b_) < 1e-6
  grads = [jax.grad(loss(fn), argnums=(0, 1, 2))(pf, pb, x) for fn in (kernel, reference)]
  for a, b_ in zip(*(jax.tree.leaves(g) for g in grads)):
    assert _relative(a, b_) < 1e-5
