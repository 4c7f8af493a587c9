"""The cell protocol's hooks: `check_config` (the one validation hook of config classes,
run by cells and by the layers built on them), `map_weight_owners` (how regularization
and constraints reach every cell), the LSTM gate math that ConvLSTM shares, and the
module graph: cells and the regularizer/constraint registries import no layer."""

import ast
import dataclasses
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax as rj

from tests import fast_jit
from tests.test_errors import raises

ROOT = pathlib.Path(rj.__file__).parent


@dataclasses.dataclass(frozen=True)
class CheckedCell(rj.Cell):
  """A custom cell that validates and normalises its config through `check_config`."""

  units: int
  scale: float = 1.0

  def check_config(self):
    if self.units <= 0:
      raise ValueError(f"units must be a positive int, got {self.units}.")
    object.__setattr__(self, "scale", float(self.scale))

  state_size = property(lambda self: self.units)
  output_size = property(lambda self: self.units)

  def init(self, key, input_shape):
    return {"kernel": jax.random.normal(key, (input_shape[-1], self.units))}

  def __call__(self, params, inputs, states, *, training=False, constants=None):
    h = jnp.tanh(self.scale * inputs @ params["kernel"] + states[0])
    return h, (h,)


def test_cells_run_check_config_on_construction():
  with raises(ValueError, "units must be a positive int, got 0."):
    CheckedCell(0)
  assert type(CheckedCell(2, scale=3).scale) is float
  assert type(dataclasses.replace(CheckedCell(2), scale=2).scale) is float


def test_cell_and_layer_validate_the_same_config():
  for make in (lambda **kw: rj.LSTMCell(3, **kw), lambda **kw: rj.LSTM(3, **kw)):
    with raises(TypeError, "unit_forget_bias must be a bool, got 1."):
      make(unit_forget_bias=1)
    with raises(ValueError, "implementation must be 1 or 2, got 3."):
      make(implementation=3)
    with raises(TypeError, "use_bias must be a bool, got 'yes'."):
      make(use_bias="yes")
  for make in (lambda **kw: rj.ConvLSTM1DCell(2, 3, **kw), lambda **kw: rj.ConvLSTM1D(2, 3, **kw)):
    with raises(TypeError, "seed must be an int or None, got 1.5."):
      make(seed=1.5)
    with raises(TypeError, "param_dtype must be a dtype or dtype name, got 'f33'."):
      make(param_dtype="f33")
    assert make(padding="SAME").padding == "same"
  with raises(ValueError, 'use_cudnn must be "auto", True or False, got 1.'):
    rj.GRU(3, use_cudnn=1)
  with raises(TypeError, "return_sequences must be a bool"):
    rj.ConvLSTM2D(2, 3, return_sequences=None)


def test_map_weight_owners_follows_the_params_structure():
  layer = rj.Bidirectional(rj.RNN([rj.LSTMCell(3), CheckedCell(2)]))
  params = jax.eval_shape(layer.init, jax.random.key(0), jax.ShapeDtypeStruct((2, 4, 5), jnp.float32))
  owners = layer.map_weight_owners(lambda cell, p: type(cell).__name__, params)
  assert owners == {"forward": ("LSTMCell", "CheckedCell"), "backward": ("LSTMCell", "CheckedCell")}
  cell = rj.GRUCell(3)
  assert cell.map_weight_owners(lambda c, p: (c, p), "p") == (cell, "p")
  with raises(TypeError, "params of StackedRNNCells must be a tuple with one entry per cell (2)"):
    layer.layer.map_weight_owners(lambda c, p: p, params["forward"][:1])


def test_regularization_and_constraints_need_a_layer():
  for call in (lambda: rj.regularization_loss({"kernel": 1}, {}),
               lambda: rj.apply_constraints(None, {}),
               lambda: rj.with_constraints(None, "lstm")):
    with raises(TypeError, "layer must be an rnnjax layer or cell", "map_weight_owners"):
      call()


def test_conv_lstm_with_a_1x1_kernel_is_an_lstm_per_position():
  """Both cells run the same gate math (`lstm_gates`): a 1-wide ConvLSTM1D on one
  position, with the LSTM's weights, is that LSTM."""
  rng = np.random.default_rng(0)
  lstm, conv = rj.LSTMCell(4), rj.ConvLSTM1DCell(4, 1)
  params = {"kernel": rng.normal(size=(3, 16)), "recurrent_kernel": rng.normal(size=(4, 16)),
            "bias": rng.normal(size=(16,))}
  params = jax.tree.map(lambda a: jnp.asarray(0.5 * a, jnp.float32), params)
  conv_params = {k: v[None] if k != "bias" else v for k, v in params.items()}
  x = jnp.asarray(rng.normal(size=(2, 3)), jnp.float32)
  h, c = (jnp.asarray(rng.normal(size=(2, 4)), jnp.float32) for _ in range(2))

  def both(x, h, c):
    return (lstm(params, x, (h, c)),
            conv(conv_params, x[:, None], (h[:, None], c[:, None])))

  (out, (h1, c1)), (conv_out, (h2, c2)) = fast_jit.run(both, x, h, c)
  np.testing.assert_allclose(conv_out[:, 0], out, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(c2[:, 0], c1, rtol=1e-5, atol=1e-6)


def _module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(ROOT.parent).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p) for p in ROOT.rglob("*.py")}


def _imported_modules(path: pathlib.Path) -> set[str]:
  """The rnnjax modules that `path` imports, at module level or inside functions."""
  package = _module_name(path).split(".")[:None if path.name == "__init__.py" else -1]
  found = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.ImportFrom):
      base = package[:len(package) - node.level + 1] if node.level else []
      module = ".".join(base + ([node.module] if node.module else []))
      found |= {module} | {f"{module}.{a.name}" for a in node.names}
    elif isinstance(node, ast.Import):
      found |= {a.name for a in node.names}
  return found & MODULES


# The cells and the modules they import: checking each one's direct imports covers the
# whole import closure.
LEAF_SIDE = sorted([*(ROOT / "cells").glob("*.py"), *(ROOT / f"_{name}.py" for name in (
    "regularizers", "constraints", "activations", "initializers", "validation")),
                    ROOT / "types.py"])   # the type aliases of the public signatures


@pytest.mark.parametrize("path", LEAF_SIDE, ids=lambda p: str(p.relative_to(ROOT)))
def test_cells_and_registries_import_no_layer(path):
  """No layer, dispatch or kernel module, directly or through a function-local import."""
  allowed = {"rnnjax"} | {_module_name(p) for p in LEAF_SIDE}
  assert _imported_modules(path) <= allowed, sorted(_imported_modules(path) - allowed)
