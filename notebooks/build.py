"""Builds the notebooks: `notebooks/src/*.py` (jupytext percent format, the reviewable
source) -> `notebooks/*.ipynb`, executed with nbclient so their outputs are saved.

    python notebooks/build.py                 # every notebook
    python notebooks/build.py custom_cells    # one

CI re-executes the committed notebooks with nbmake (`pytest --nbmake`); the
`RNNJAX_NOTEBOOK_SMALL=1` environment variable, which nbmake runs set through
conftest, shrinks their problem sizes.
"""

import hashlib
import os
import pathlib
import sys
import time

import jupytext
import nbclient

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent


def use_this_checkout() -> None:
  """Kernels started from here import this checkout's rnnjax (and not, say, another
  editable install): its root goes first on PYTHONPATH, which kernels inherit."""
  path = os.environ.get("PYTHONPATH")
  os.environ["PYTHONPATH"] = str(ROOT) + (os.pathsep + path if path else "")


def source_hash(source: pathlib.Path) -> str:
  """The SHA-256 of a notebook source, as recorded in the notebook built from it."""
  return hashlib.sha256(source.read_bytes()).hexdigest()


def build(name: str) -> pathlib.Path:
  source = HERE / "src" / f"{name}.py"
  notebook = jupytext.read(source)
  notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
  # What tests/test_notebook_sources.py compares with the source, to catch a stale notebook.
  notebook.metadata["rnnjax"] = {"source": f"src/{name}.py", "source_sha256": source_hash(source)}
  nbclient.NotebookClient(notebook, timeout=900, kernel_name="python3",
                          resources={"metadata": {"path": str(HERE)}}).execute()
  target = HERE / f"{name}.ipynb"
  jupytext.write(notebook, target)
  return target


if __name__ == "__main__":
  use_this_checkout()
  names = sys.argv[1:] or sorted(p.stem for p in (HERE / "src").glob("*.py"))
  for name in names:
    start = time.perf_counter()
    target = build(name)
    print(f"built {target} in {time.perf_counter() - start:.0f} s", flush=True)
