"""The transforms and layers of the transform matrix (tests/test_transform_matrix.py),
shared with its multi-device run (tests/shard_map_checks.py).

A transform takes f(params, x, lengths) -> (B, T, U') outputs and returns a pytree of
arrays; the matrix compares it on a fast path with the same transform on the scan path
(use_fused=False) over the same params."""

import contextlib

import numpy as np

import jax
import jax.numpy as jnp
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P
import rnnjax as rj

B, T, F, U = 3, 5, 2, 3
LENGTHS = np.array([T, 2, 0])   # full, padded and empty rows in one batch

LAYERS = {
    "lstm": lambda use_fused: rj.LSTM(U, return_sequences=True, use_fused=use_fused),
    "gru": lambda use_fused: rj.GRU(U, return_sequences=True, use_fused=use_fused),
    "simple_rnn": lambda use_fused: rj.SimpleRNN(U, return_sequences=True, use_fused=use_fused),
    "bidirectional_lstm": lambda use_fused: rj.Bidirectional(
        rj.LSTM(U, return_sequences=True, use_fused=use_fused)),
}

# The fast paths: the context a layer is traced in, and what the dispatch reports there.
PATHS = {
    "cpu": (contextlib.nullcontext, "on the CPU"),
    "pallas": (rj.kernels.force_interpret, "Pallas interpret mode"),
}


def normal(seed, shape, scale=1.0):
  return scale * jax.random.normal(jax.random.key(seed), shape)


def tangent_like(tree, seed):
  leaves, treedef = jax.tree.flatten(tree)
  return jax.tree.unflatten(treedef, [normal(seed + i, a.shape, 0.5) for i, a in enumerate(leaves)])


def problem(layer):
  """(params with non-trivial biases, x (B, T, F))."""
  x = normal(1, (B, T, F))
  params = layer.init(jax.random.key(0), x)
  return jax.tree.map(lambda a, t: a + t, params, tangent_like(params, 100)), x


def applier(layer):
  return lambda p, x, lengths: layer.apply(p, x, seq_lengths=lengths)


def loss_of(f):
  """A scalar, nonlinear in the outputs (so that Hessians are not trivially zero), and a
  sum over rows (so that per-device losses add up to it)."""
  def loss(p, x, lengths):
    y = f(p, x, lengths)
    weights = jnp.cos(jnp.arange(y[0].size, dtype=y.dtype)).reshape(y.shape[1:])
    return jnp.sum(jnp.sin(y) * weights[None])
  return loss


def _jvp(f, p, x, lengths):
  return jax.jvp(lambda p, x: f(p, x, lengths), (p, x), (tangent_like(p, 3), tangent_like(x, 7)))


def _linearize(f, p, x, lengths):
  y, lin = jax.linearize(lambda p, x: f(p, x, lengths), p, x)
  return y, lin(tangent_like(p, 3), tangent_like(x, 7)), lin(p, x)


def _jacfwd(f, p, x, lengths):
  return jax.jacfwd(f, argnums=1)(p, x, lengths)


def _hessian_inputs(f, p, x, lengths):
  return jax.hessian(loss_of(f), argnums=1)(p, x, lengths)


def _hessian_recurrent_kernel(f, p, x, lengths):
  """The Hessian with respect to one small parameter: the first recurrent kernel."""
  leaves, treedef = jax.tree_util.tree_flatten_with_path(p)
  k = next(i for i, (path, _) in enumerate(leaves) if "recurrent_kernel" in str(path))
  flat = [a for _, a in leaves]

  def of_kernel(w):
    return loss_of(f)(jax.tree.unflatten(treedef, flat[:k] + [w] + flat[k + 1:]), x, lengths)
  return jax.hessian(of_kernel)(flat[k])


def _grad_of_grad(f, p, x, lengths):
  """Reverse over reverse: the params' gradient of the input gradient's square norm."""
  def input_grad_norm(p):
    return jnp.sum(jax.grad(loss_of(f), argnums=1)(p, x, lengths) ** 2)
  return jax.grad(input_grad_norm)(p)


def _vmap_params(f, p, x, lengths):
  stacked = jax.tree.map(lambda a, t: jnp.stack([a, a + t]), p, tangent_like(p, 11))
  return jax.vmap(jax.value_and_grad(loss_of(f)), in_axes=(0, None, None))(stacked, x, lengths)


def _vmap_inputs(f, p, x, lengths):
  xs = jnp.stack([x, jnp.cos(x)])
  value_and_grad = jax.value_and_grad(loss_of(f), argnums=(0, 1))
  jvp = jax.vmap(lambda x: jax.jvp(lambda x: f(p, x, lengths), (x,), (jnp.sin(x),)))
  return jax.vmap(value_and_grad, in_axes=(None, 0, None))(p, xs, lengths), jvp(xs)


def _checkpoint(f, p, x, lengths):
  loss = jax.checkpoint(loss_of(f))
  y = jax.jvp(jax.checkpoint(lambda x: f(p, x, lengths)), (x,), (tangent_like(x, 7),))
  return jax.value_and_grad(loss, argnums=(0, 1))(p, x, lengths), y


def mesh_size() -> int:
  """Devices for the batch axis: all of them when they divide B, else one."""
  n = jax.device_count()
  return n if B % n == 0 else 1


def shard_map(f, p, x, lengths, *, check_vma=True):
  """Data parallel inside shard_map: per-device loss, gradients (summed over devices)
  and a jvp of the outputs."""
  loss = loss_of(f)

  def local(p, x, lengths):
    if check_vma:   # per-device gradients of the replicated params, summed below
      p = jax.tree.map(lambda a: jax.lax.pcast(a, ("data",), to="varying"), p)
    value, grads = jax.value_and_grad(loss)(p, x, lengths)
    y, dy = jax.jvp(lambda x: f(p, x, lengths), (x,), (jnp.cos(x),))
    return jax.lax.psum((value, grads), "data"), y, dy

  mesh = Mesh(np.array(jax.devices()[:mesh_size()]), ("data",))
  rows = P("data")
  return jax.shard_map(local, mesh=mesh, in_specs=(P(), rows, None if lengths is None else rows),
                       out_specs=(P(), rows, rows), check_vma=check_vma)(p, x, lengths)


TRANSFORMS = {
    "jvp": _jvp,
    "linearize": _linearize,
    "jacfwd": _jacfwd,
    "hessian_inputs": _hessian_inputs,
    "hessian_recurrent_kernel": _hessian_recurrent_kernel,
    "grad_of_grad": _grad_of_grad,
    "vmap_params": _vmap_params,
    "vmap_inputs": _vmap_inputs,
    "checkpoint": _checkpoint,
    "shard_map": shard_map,
}
SECOND_ORDER = ("hessian_inputs", "hessian_recurrent_kernel", "grad_of_grad")


def max_difference(a, b) -> float:
  la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
  assert len(la) == len(lb) and all(u.shape == v.shape for u, v in zip(la, lb))
  return max(float(np.max(np.abs(np.asarray(u) - np.asarray(v)), initial=0.0))
             for u, v in zip(la, lb))


def fast_and_scan(layer_name, path, transform, lengths, jit=jax.jit):
  """(the transform's result on the fast path, on the scan path, the path's report)."""
  context, _ = PATHS[path]
  fast, scan = LAYERS[layer_name]("auto"), LAYERS[layer_name](False)
  params, x = problem(fast)
  kw = {"check_vma": False} if (transform == "shard_map" and path == "pallas") else {}
  # Pallas interpret mode cannot run inside shard_map with check_vma=True (JAX's
  # interpreter slices a varying block with unvarying program ids); compiled kernels
  # can (tests/kernels/test_transform_lowering.py).
  fn = TRANSFORMS[transform]
  with context():
    choice = rj.kernels.which_path(fast, x, seq_lengths=lengths)
    got = jit(lambda p, x, l: fn(applier(fast), p, x, l, **kw))(params, x, lengths)
  key = (layer_name, transform, lengths is None, tuple(kw.items()))
  if key not in _SCAN_RESULTS:   # the reference, shared by the paths
    _SCAN_RESULTS[key] = jit(lambda p, x, l: fn(applier(scan), p, x, l, **kw))(params, x, lengths)
  return got, _SCAN_RESULTS[key], choice


_SCAN_RESULTS = {}
