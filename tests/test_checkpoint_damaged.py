"""Damaged Orbax checkpoints: every one is a ValueError naming the checkpoint and what is
wrong (Orbax itself answers with AttributeError, KeyError or JSONDecodeError), and a
checkpoint that declares far more than it stores is not restored without `like`."""

import gc
import os
import shutil

import pytest

import jax
import jax.numpy as jnp
import rnnjax as rj
import rnnjax.checkpoint as ckpt

from tests.test_errors import raises

# A restore that fails half-way leaves Orbax coroutines never awaited; they are collected
# (and their warnings dropped) in this module, not in a later test.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@pytest.fixture(autouse=True)
def _collect_orbax_leftovers():
  yield
  gc.collect()


LAYER = rj.LSTM(4, stateful=True)
PARAMS = LAYER.init(jax.random.key(0), jnp.ones((2, 5, 3)))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
  folder = tmp_path_factory.mktemp("ckpt")
  ckpt.save(folder / "plain", PARAMS)
  ckpt.save(folder / "steps", PARAMS, step=3)
  return folder


def damaged(saved, tmp_path, name, edit, source="plain"):
  """A copy of a saved checkpoint with `edit(directory)` applied."""
  target = tmp_path / name
  shutil.copytree(saved / source, target)
  edit(target / "3" / "default" if source == "steps" else target)
  return str(target)


def write(relative, data: bytes):
  def edit(directory):
    (directory / relative).write_bytes(data)
  return edit


@pytest.mark.parametrize("name, edit, fragments", [
    ("garbage", write("_METADATA", b"\x00garbage"), ["damaged or missing metadata", "got none"]),
    ("removed", lambda d: os.remove(d / "_METADATA"), ["damaged or missing metadata"]),
    ("a_list", write("_METADATA", b"[1, 2]"), ["has damaged metadata", "AttributeError"]),
    ("no_tree", write("_METADATA", b"{}"), ["has damaged metadata", "KeyError", "tree_metadata"]),
    ("array_metadata", write("array_metadatas/process_0", b"zz"),
     ["cannot be read (damaged or truncated?)", "JSONDecodeError"]),
])
@pytest.mark.parametrize("with_like", [False, True])
def test_damaged_checkpoints_are_value_errors(saved, tmp_path, name, edit, fragments, with_like):
  path = damaged(saved, tmp_path, name, edit)
  with raises(ValueError, f"the checkpoint at {path}", *fragments):
    ckpt.restore(path, like=PARAMS if with_like else None)


def test_a_damaged_step_checkpoint_names_the_step(saved, tmp_path):
  path = damaged(saved, tmp_path, "steps", write("_METADATA", b"[]"), source="steps")
  with raises(ValueError, f"the checkpoint at {path} (step 3) has damaged metadata"):
    ckpt.restore(path)


def test_a_checkpoint_declaring_far_more_than_it_stores(saved, monkeypatch):
  path = str(saved / "plain")
  monkeypatch.setattr(ckpt, "BOMB_FLOOR_BYTES", 0)
  monkeypatch.setattr(ckpt, "MAX_EXPANSION", 1e-3)   # any checkpoint now looks like a bomb
  with raises(ValueError, f"the checkpoint at {path} declares arrays of", "shape bomb",
              "pass like="):
    ckpt.restore(path)
  restored = ckpt.restore(path, like=PARAMS)   # the shapes the caller asked for are restored
  assert jax.tree.all(jax.tree.map(lambda a, b: bool((a == b).all()), restored.params, PARAMS))
