"""What each transform runs on a GPU, read from the Triton custom calls of the program
lowered for an abstract H100 on this CPU-only machine (as tests/kernels/test_lowering.py
does): reverse mode runs the forward and the backward kernel (the custom JVP's tangent
is transposed into the backward kernel, also under vmap and shard_map); forward mode
runs the forward kernel and a plain-JAX tangent scan; higher orders differentiate the
kernels' plain-JAX twins, so no kernel is left in a Hessian."""

import re

import pytest

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import rnnjax as rj

S = jax.ShapeDtypeStruct
B, T, F, U = 4, 5, 3, 8
TRITON = "__gpu$xla.gpu.triton"
H100 = jax.sharding.AbstractDevice(device_kind="NVIDIA H100 80GB HBM3", num_cores=132,
                                   platform="gpu")
MESH = jax.sharding.AbstractMesh((1,), ("x",), abstract_device=H100)
FUSED = {"lstm": (rj.LSTM, rj.kernels.fused_lstm), "gru": (rj.GRU, rj.kernels.fused_gru)}


def kernels(fn, *args) -> list[str]:
  """The names of the Triton kernels in `fn` lowered for an H100, in program order."""
  with jax.sharding.use_abstract_mesh(MESH):
    text = jax.jit(fn).trace(*args).lower(lowering_platforms=("cuda",)).as_text()
  return [re.search(r'name = "([^"]*)"', line).group(1)
          for line in text.splitlines() if TRITON in line]


def _problem(kind):
  layer, fused = FUSED[kind]
  params = jax.eval_shape(layer(U).init, jax.random.key(0), jnp.ones((B, T, F)))

  def f(p, x):
    out, _ = fused(p, x, seq_lengths=jnp.array([T, 3, 1, 0]), implementation="pallas",
                   interpret=False)
    return out

  return f, (lambda p, x: jnp.sum(jnp.sin(f(p, x)))), params, S((B, T, F), jnp.float32)


@pytest.mark.parametrize("kind", FUSED)
def test_reverse_mode_runs_the_backward_kernel(kind):
  f, loss, params, x = _problem(kind)
  fwd, bwd = f"rnnjax_{kind}_fwd", f"rnnjax_{kind}_bwd"
  assert kernels(jax.grad(loss, argnums=(0, 1)), params, x) == [fwd, bwd]
  stacked = jax.tree.map(lambda a: S((2,) + a.shape, a.dtype), params)
  assert kernels(jax.vmap(jax.grad(loss), in_axes=(0, None)), stacked, x) == [fwd, bwd]
  rows = S(x.shape, x.dtype, sharding=NamedSharding(MESH, P("x")))
  local = jax.shard_map(jax.grad(loss, argnums=1), mesh=MESH, in_specs=(P(), P("x")),
                        out_specs=P("x"))   # check_vma=True: the kernels state their types
  assert kernels(local, params, rows) == [fwd, bwd]


@pytest.mark.parametrize("kind", FUSED)
def test_forward_mode_runs_the_forward_kernel_only(kind):
  f, _, params, x = _problem(kind)
  tangent = jax.tree.map(lambda a: jnp.ones(a.shape, a.dtype), params)
  jvp = lambda p, x: jax.jvp(f, (p, x), (tangent, jnp.ones(x.shape)))   # noqa: E731
  assert kernels(jvp, params, x) == [f"rnnjax_{kind}_fwd"]


def test_second_order_differentiates_the_plain_twins():
  f, loss, params, x = _problem("lstm")
  assert kernels(jax.hessian(loss, argnums=1), params, x) == []
  # jvp of grad (a Hessian-vector product) likewise
  hvp = lambda p, x: jax.jvp(lambda x: jax.grad(loss, argnums=1)(p, x), (x,),   # noqa: E731
                             (jnp.ones(x.shape),))
  assert kernels(hvp, params, x) == []
