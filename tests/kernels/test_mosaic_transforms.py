"""The Mosaic GPU LSTM and GRU under every JAX transform (interpret mode, float32, tiny
shapes), against the pure-JAX reference (`fused_* (implementation="reference")`, one
`lax.scan`): jvp, linearize, Hessians, grad of grad, vmap (of values and of gradients),
and reverse mode still running the Mosaic backward kernel (a `jax.custom_jvp` whose
linear map is transposed into it, see `rnnjax.pallas.mosaic._autodiff`)."""

import functools

import numpy as np
import pytest

import jax
import jax.numpy as jnp
import rnnjax as rj
from rnnjax.pallas import mosaic

F32 = jnp.float32
B, T, F, U = 2, 3, 4, 8


def _relative(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)


def _close(got, want, tol):
  got, want = jax.tree.leaves(got), jax.tree.leaves(want)
  assert len(got) == len(want)
  for a, b in zip(got, want):
    assert a.shape == b.shape and _relative(a, b) < tol, (a.shape, _relative(a, b))


def _case(cell, backwards=False, seed=0):
  """(kernel, reference, params, x, states): kernel(p, x, states) and the reference
  return (outputs, *final states); states is (h0, c0) or (h0,)."""
  keys = jax.random.split(jax.random.key(seed), 5)
  x = jax.random.normal(keys[0], (B, T, F))
  layer = rj.LSTM(U) if cell == "lstm" else rj.GRU(U)
  params = layer.init(keys[1], x)
  params = jax.tree.map(lambda a: a + 0.3 * jax.random.normal(keys[2], a.shape), params)
  n = 2 if cell == "lstm" else 1
  states = tuple(jax.random.normal(k, (B, U)) for k in keys[3:3 + n])
  fns = {"lstm": (mosaic.mosaic_lstm, rj.kernels.fused_lstm),
         "gru": (mosaic.mosaic_gru, rj.kernels.fused_gru)}[cell]

  def wrap(fn, **kw):
    def call(p, x, states):
      out, final = fn(p, x, initial_state=states if n == 2 else states[0],
                      go_backwards=backwards, dtype=F32, **kw)
      return (out,) + (tuple(final) if n == 2 else (final,))
    return call
  return (wrap(fns[0], interpret=True), wrap(fns[1], implementation="reference"), params,
          x, states)


def _scalar(fn):
  """A scalar loss of every output (nonlinear, so second derivatives are not zero)."""
  def loss(p, x, states):
    outs = fn(p, x, states)
    return sum(jnp.sum(jnp.sin(1.0 + k + o) * o) for k, o in enumerate(outs))
  return loss


@pytest.mark.parametrize("cell, backwards", [("lstm", False), ("gru", True)])
def test_jvp_and_linearize_match_the_reference(cell, backwards):
  kernel, reference, params, x, states = _case(cell, backwards)
  primals = (params, x, states)
  tangents = jax.tree.map(lambda a: jnp.cos(jnp.arange(a.size, dtype=F32)).reshape(a.shape),
                          primals)
  (got, dgot), (want, dwant) = (jax.jit(functools.partial(jax.jvp, f))(primals, tangents)
                                for f in (kernel, reference))
  _close(got, want, 1e-5)
  _close(dgot, dwant, 1e-5)
  out, linear = jax.linearize(kernel, *primals)
  _close(out, want, 1e-5)
  _close(linear(*tangents), dwant, 1e-5)
  twice = jax.tree.map(lambda a: 2.0 * a, tangents)
  _close(linear(*twice), jax.tree.map(lambda a: 2.0 * a, dwant), 1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_hessian_and_grad_of_grad_match_the_reference(cell):
  kernel, reference, params, x, states = _case(cell, seed=1)

  def of_h0(fn):   # the loss as a function of the initial h alone (B * U = 16 inputs)
    return lambda h0: _scalar(fn)(params, x, (h0,) + states[1:])
  _close(*(jax.jit(jax.hessian(of_h0(f)))(states[0]) for f in (kernel, reference)), 1e-4)

  def grad_norm(fn):   # grad of a function of the gradient (w.r.t. x and the weights)
    def f(p, x):
      g = jax.grad(_scalar(fn), argnums=(0, 1))(p, x, states)
      return sum(jnp.sum(a * a) for a in jax.tree.leaves(g))
    return jax.grad(f, argnums=(0, 1))
  _close(*(jax.jit(grad_norm(f))(params, x) for f in (kernel, reference)), 1e-4)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_vmap_of_values_and_per_example_gradients(cell):
  """vmap over a leading axis of the inputs (the kernels get a new grid axis) and of the
  initial states; vmap of grad batches the linear map's transpose (the backward kernel)."""
  kernel, reference, params, x, states = _case(cell, seed=2)
  xs = jnp.stack([x, jnp.flip(x, 1), 0.5 * x])
  ss = jax.tree.map(lambda s: jnp.stack([s, -s, 2.0 * s]), states)
  vmapped = [jax.jit(jax.vmap(f, in_axes=(None, 0, 0)))(params, xs, ss)
             for f in (kernel, reference)]
  _close(*vmapped, 1e-5)
  per_example = [jax.jit(jax.vmap(jax.grad(_scalar(f)), in_axes=(None, 0, 0)))(params, xs, ss)
                 for f in (kernel, reference)]
  _close(*per_example, 1e-5)
  # and each row of the batched result is the unbatched call's
  _close(jax.tree.map(lambda a: a[1], vmapped[0]),
         kernel(params, xs[1], jax.tree.map(lambda s: s[1], ss)), 1e-6)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_reverse_mode_runs_the_backward_kernel(cell, monkeypatch):
  """grad equals the reference's; and its numbers come from the Mosaic backward kernel:
  scaling that kernel's results by 2 (patched) scales every gradient by 2, while forward
  mode (plain JAX tangents) does not change. The jaxpr holds the transposed map."""
  kernel, reference, params, x, states = _case(cell, seed=3)
  grad = functools.partial(jax.jit(jax.grad(_scalar(kernel), argnums=(0, 1, 2))), params, x,
                           states)
  want = jax.grad(_scalar(reference), argnums=(0, 1, 2))(params, x, states)
  _close(grad(), want, 1e-5)
  jaxpr = str(jax.make_jaxpr(grad)())
  assert "rnnjax_linear_map" in jaxpr and "transposed=True" in jaxpr

  from rnnjax.pallas.mosaic import _gru_backward, _lstm_backward
  module = _lstm_backward if cell == "lstm" else _gru_backward
  real, calls = module.backward, []

  def doubled(*args, **kwargs):
    calls.append(1)
    return tuple(2.0 * a for a in real(*args, **kwargs))
  monkeypatch.setattr(module, "backward", doubled)
  jax.clear_caches()   # eager primitives are compiled once per parameters: retrace
  _close(grad(), jax.tree.map(lambda a: 2.0 * a, want), 1e-5)
  assert calls
  tangents = jax.tree.map(jnp.ones_like, (params, x, states))
  _close(*(jax.jit(functools.partial(jax.jvp, f))((params, x, states), tangents)[1]
           for f in (kernel, reference)), 1e-5)


def test_vmapped_gradients_and_tangents_lower_for_h100():
  """Compiled (bfloat16, interpret=False), vmap of grad (the saving forward and the
  backward kernel, each with a new grid axis) and vmap of jvp lower for an abstract H100
  with the kernels' wgmma (nothing here compiles them to PTX or runs them)."""
  x = jnp.ones((3, 2, 4, F), jnp.bfloat16)
  params = rj.LSTM(16).init(jax.random.key(0), x[0])

  def loss(p, x):
    out, (h, c) = mosaic.mosaic_lstm(p, x, dtype=jnp.bfloat16, interpret=False)
    return jnp.sum(out.astype(F32)) + jnp.sum(h * c)

  device = jax.sharding.AbstractDevice(device_kind="NVIDIA H100 80GB HBM3", num_cores=132,
                                       platform="gpu")
  mesh = jax.sharding.AbstractMesh((1,), ("x",), abstract_device=device)
  tangent = jax.vmap(lambda p, x: jax.jvp(functools.partial(loss, p), (x,), (x,)),
                     in_axes=(None, 0))
  for fn in (jax.vmap(jax.grad(loss), in_axes=(None, 0)), tangent):
    with jax.sharding.use_abstract_mesh(mesh):
      text = jax.jit(fn).trace(params, x).lower(lowering_platforms=("cuda",)).as_text()
    assert "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16" in text
