"""Multi-device checks, run in a subprocess by tests/test_multidevice.py.

JAX reads `XLA_FLAGS=--xla_force_host_platform_device_count=8` once, when it starts, so
these checks run in a fresh interpreter with 8 virtual CPU devices:

  XLA_FLAGS=--xla_force_host_platform_device_count=8 JAX_PLATFORMS=cpu \
      python -m tests.multidevice_checks

It prints one JSON line: the largest absolute difference of each multi-device result
from the same computation on one device (and a few facts showing the work really was
split across devices). The test asserts on them.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

import rnnjax as rj

jax.config.update("jax_numpy_rank_promotion", "raise")

DEVICES = 8
B, T, F, U = 16, 7, 3, 5    # B: 2 rows per device
LAYER = rj.LSTM(U, return_sequences=True)
GRU = rj.GRU(U)


def make_data():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(B, T, F)).astype(np.float32)
  y = rng.normal(size=(B, T, 1)).astype(np.float32)
  lengths = rng.integers(1, T + 1, size=B)
  mask = np.arange(T)[None, :] < lengths[:, None]     # ragged rows, split across devices
  return jnp.asarray(x), jnp.asarray(y), jnp.asarray(mask)


def init_params(x):
  k1, k2 = jax.random.split(jax.random.key(0))
  return {"rnn": LAYER.init(k1, x), "w": 0.3 * jax.random.normal(k2, (U, 1)),
          "b": jnp.zeros((1,))}


def loss_fn(params, x, y, mask):
  h = LAYER.apply(params["rnn"], x, mask=mask)                   # (B, T, U)
  pred = jnp.einsum("btu,uo->bto", h, params["w"]) + params["b"].reshape(1, 1, 1)
  err = jnp.where(mask[..., None], pred - y, 0.0)
  return jnp.sum(err**2) / (B * T)                                # a global mean over rows


OPT = optax.adam(1e-2)


def train_step(params, opt_state, x, y, mask):
  loss, grads = jax.value_and_grad(loss_fn)(params, x, y, mask)
  updates, opt_state = OPT.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state, loss, grads


def max_diff(a, b) -> float:
  pairs = list(zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))
  return float(max(np.max(np.abs(np.asarray(u) - np.asarray(v))) for u, v in pairs))


def train(step, params, x, y, mask, steps=3):
  """params after `steps` steps, the losses, and the first step's gradients."""
  opt_state = OPT.init(params)
  losses, first_grads = [], None
  for _ in range(steps):
    params, opt_state, loss, grads = step(params, opt_state, x, y, mask)
    losses.append(loss)
    first_grads = grads if first_grads is None else first_grads
  return params, losses, first_grads


def main():
  assert jax.device_count() == DEVICES, jax.devices()
  x, y, mask = make_data()
  params = init_params(x)
  out = {"devices": jax.device_count()}

  # One device: the reference.
  one = jax.devices()[0]
  single = jax.jit(train_step)
  p1, losses1, grads1 = train(single, *jax.device_put((params, x, y, mask), one))
  loss1 = losses1[0]

  # Data parallel with NamedSharding (GSPMD): the batch split over a 1-D mesh, params
  # replicated, the same jitted step.
  for axis_type in (AxisType.Auto, AxisType.Explicit):
    tag = axis_type.name.lower()
    mesh = Mesh(np.array(jax.devices()), ("data",), axis_types=(axis_type,))
    rows, replicated = NamedSharding(mesh, P("data")), NamedSharding(mesh, P())
    xs, ys, ms = (jax.device_put(a, rows) for a in (x, y, mask))
    ps = jax.device_put(params, replicated)
    with jax.set_mesh(mesh):
      step = jax.jit(train_step)
      p8, losses8, g8 = train(step, ps, xs, ys, ms)
      if axis_type == AxisType.Auto:
        hlo = step.lower(ps, OPT.init(ps), xs, ys, ms).compile().as_text()
        out["sharded_all_reduce"] = "all-reduce" in hlo    # gradients really are reduced
    out[f"sharded_{tag}_loss"] = max_diff(losses8, losses1)
    out[f"sharded_{tag}_grads"] = max_diff(g8, grads1)
    out[f"sharded_{tag}_params_after_3_steps"] = max_diff(p8, p1)
    out[f"sharded_{tag}_x_devices"] = len(xs.sharding.device_set)
    out[f"sharded_{tag}_grads_replicated"] = all(
        g.sharding.is_fully_replicated for g in jax.tree.leaves(g8))

  # shard_map: each device computes its rows' loss and gradients, then a mean over devices.
  mesh = Mesh(np.array(jax.devices()), ("data",))

  def local(params, x, y, mask):
    # loss_fn divides by the global B*T, so the per-device parts sum to the global value.
    # The params are the same on every device (invariant), so shard_map's transpose
    # already sums their gradient over "data" (no psum of the grads here).
    loss, grads = jax.value_and_grad(loss_fn)(params, x, y, mask)
    return jax.lax.psum(loss, "data"), grads

  sharded = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=(P(), P("data"), P("data"), P("data")),
                                  out_specs=(P(), P())))
  loss_sm, grads_sm = sharded(params, x, y, mask)
  out["shard_map_loss"] = max_diff(loss_sm, loss1)
  out["shard_map_grads"] = max_diff(grads_sm, grads1)

  # pmap: the layer over a leading device axis, and gradients averaged with pmean.
  xr = x.reshape(DEVICES, B // DEVICES, T, F)
  mr = mask.reshape(DEVICES, B // DEVICES, T)
  gru_params = GRU.init(jax.random.key(1), x)
  pmapped = jax.pmap(lambda p, xb, mb: GRU.apply(p, xb, mask=mb), in_axes=(None, 0, 0))
  out["pmap_outputs"] = max_diff(pmapped(gru_params, xr, mr).reshape(B, U),
                                 GRU.apply(gru_params, x, mask=mask))

  def pmap_grads(p, xb, yb, mb):
    return jax.lax.psum(jax.grad(loss_fn)(p, xb, yb, mb), "d")

  yr = y.reshape(DEVICES, B // DEVICES, T, 1)
  g_pmap = jax.pmap(pmap_grads, axis_name="d", in_axes=(None, 0, 0, 0))(params, xr, yr, mr)
  out["pmap_grads"] = max_diff(jax.tree.map(lambda g: g[0], g_pmap), grads1)
  out["pmap_devices"] = len(g_pmap["w"].sharding.device_set)

  out["loss"] = float(loss1)
  out["grad_scale"] = float(max(jnp.max(jnp.abs(g)) for g in jax.tree.leaves(grads1)))
  print(json.dumps(out))


if __name__ == "__main__":
  main()
