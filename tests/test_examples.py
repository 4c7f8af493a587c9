"""The ports of Flax's examples (examples/seq2seq.py, examples/sst2.py) run at their small
size, and the seq2seq port computes what Flax's own example computes: started from the
same weights (Flax's, converted), the two train identically."""

import importlib.util
import os
import pathlib
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def run(script: str) -> str:
  # The rnnjax of this checkout, whatever the environment has installed.
  path = os.pathsep.join([str(EXAMPLES.parent), os.environ.get("PYTHONPATH", "")])
  done = subprocess.run([sys.executable, str(EXAMPLES / script), "--small"], capture_output=True,
                        text=True, timeout=600, cwd=EXAMPLES.parent,
                        env={**os.environ, "PYTHONPATH": path})
  assert done.returncode == 0, done.stderr[-3000:]
  return done.stdout


def load(name: str):
  spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_seq2seq_small_runs_and_learns():
  out = run("seq2seq.py")
  losses = [float(v) for v in re.findall(r"loss (\d+\.\d+)", out)]
  assert len(losses) == 5 and losses[-1] < 0.8 * losses[0], out
  assert len(re.findall(r"\(correct\)|\(wrong", out)) == 5, out


def test_sst2_small_learns_the_synthetic_sentiment():
  out = run("sst2.py")
  accuracy = float(re.search(r"final eval accuracy (\d+\.\d+)%", out).group(1))
  assert accuracy > 70.0, out


def test_seq2seq_port_trains_exactly_as_flax_from_the_same_weights():
  seq2seq = load("seq2seq")
  table = seq2seq.CharacterTable()
  model = seq2seq.Seq2seq(16, table.vocab_size, impl="flax")
  init_key, lstm_key = jax.random.split(jax.random.key(0))
  flax_params = model.init({"params": init_key, "lstm": lstm_key},
                           jnp.ones((1, table.max_input_len, table.vocab_size)),
                           jnp.ones((1, table.max_output_len, table.vocab_size)))["params"]
  sizes = dict(steps=12, hidden=16, batch=16)
  flax_run, _ = seq2seq.train(impl="flax", **sizes)
  ours, _ = seq2seq.train(impl="rnnjax", params=seq2seq.from_flax_params(flax_params), **sizes)
  np.testing.assert_allclose(ours["loss"], flax_run["loss"], rtol=1e-5)
  np.testing.assert_array_equal(ours["accuracy"], flax_run["accuracy"])
