"""Do the peers compute the same function? Each peer's recurrent output on its own
weights against rnnjax's (the engine scan, `use_fused=False`, an independent reference)
on the same weights converted to rnnjax's layout (`Model.to_rnnjax`: rnnjax's interop
for Flax and Keras; the hand-written scans use that layout). Peers whose weights cannot be
converted (Haiku, Equinox) or that are not installed are reported as unchecked. For the
hand-written scans the gradients of the train loss are compared too, and for the mask /
reset workloads the outputs at the valid steps (Flax leaves padded steps unspecified)."""

import jax
import jax.numpy as jnp
import numpy as np

import _gru_peers
import _lstm_peers
import _workload_peers
from _peer_model import data, rnnjax_layer

TOL = 2e-5


def _error(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b)))))


def _grad_error(apply, params, x, aux, reference):
  loss = lambda fn: lambda p: jnp.mean(fn(p, x, *aux) ** 2)  # noqa: E731
  g, g_ref = jax.grad(loss(apply))(params), jax.grad(loss(reference))(params)
  return max(_error(a, b) for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_ref)))


def check_cells(kind, shape=(3, 5, 4, 6), peers=None):
  """{peer: error or the reason it is unchecked} for the cell table of `kind` (the
  reference, rnnjax with use_fused=False, is left out)."""
  b, t, d, h = shape
  table = _lstm_peers.PEERS if kind == "lstm" else _gru_peers.PEERS
  ref_layer = rnnjax_layer(kind, h, use_fused=False)
  x = data(b, t, d)
  out = {}
  for name, build in table.items():
    if name == "rnnjax scan (use_fused=False)" or peers is not None and name not in peers:
      continue
    if not hasattr(build, "model"):
      out[name] = "unchecked (times Keras's own loop)"
      continue
    try:
      model = build.model(b, t, d, h)
    except ImportError as e:
      out[name] = f"unchecked (not installed: {e.name})"
      continue
    if model.to_rnnjax is None:
      out[name] = "unchecked (no weight conversion)"
      continue
    rj_params = model.to_rnnjax(model.params)
    err = _error(model.apply(model.params, x), ref_layer.apply(rj_params, x))
    if name.startswith("scan") or name.startswith("rnnjax"):
      err = max(err, _grad_error(model.apply, model.params, x, (), ref_layer.apply))
    out[name] = err
  return out


def check_workloads(kind, shape=(4, 9, 3, 5), peers=None):
  """{(workload, peer): error or reason} for the mask / reset workloads."""
  b, t, d, h = shape
  x = data(b, t, d)
  aux = _workload_peers.aux_arrays(b, t)
  aux["reset"] = aux["reset"].at[:, t // 2].set(True)  # resets to check, at this small size
  valid = np.asarray(aux["mask"])[..., None]
  out = {}
  for workload in _workload_peers.WORKLOADS:
    arg = _workload_peers.AUX[workload]
    extra = () if arg is None else (aux[arg],)
    ref = _workload_peers.model("rnnjax scan (use_fused=False)", kind, b, t, d, h, workload)
    for peer in _workload_peers.PEERS:
      if peer == "rnnjax scan (use_fused=False)" or peers is not None and peer not in peers:
        continue  # the reference itself, or not asked for
      try:
        model = _workload_peers.model(peer, kind, b, t, d, h, workload)
      except ImportError as e:
        out[workload, peer] = f"unchecked (not installed: {e.name})"
        continue
      if model is None:
        continue
      rj_params = model.to_rnnjax(model.params)
      got, want = model.apply(model.params, x, *extra), ref.apply(rj_params, x, *extra)
      if arg in ("mask", "seq_lengths") and peer.startswith("flax"):
        got, want = got * valid, want * valid
      err = _error(got, want)
      if not peer.startswith("flax"):
        err = max(err, _grad_error(model.apply, model.params, x, extra,
                                   lambda p, x, *a: ref.apply(p, x, *a)))
      out[workload, peer] = err
  return out


def agree(results) -> bool:
  """Whether every checked peer is within TOL."""
  return all(v <= TOL for v in results.values() if isinstance(v, float))


def summary(results) -> str:
  """One line: the largest error of the checked peers and the unchecked ones."""
  errors = {k: v for k, v in results.items() if isinstance(v, float)}
  bad = sorted(str(k) for k, v in errors.items() if not v <= TOL)
  unchecked = sorted(f"{k}: {v}" for k, v in results.items() if not isinstance(v, float))
  text = (f"{len(errors)} checked, largest relative error {max(errors.values(), default=0):.1e}"
          + (f", OVER {TOL:g}: {', '.join(bad)}" if bad else f" (tolerance {TOL:g})"))
  return text + (f"; {'; '.join(unchecked)}" if unchecked else "")
