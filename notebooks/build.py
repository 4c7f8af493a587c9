"""Builds the notebooks: `notebooks/src/*.py` (jupytext percent format, the reviewable
source) -> `notebooks/*.ipynb`, executed with nbclient so their outputs are saved.

    python notebooks/build.py                 # every notebook
    python notebooks/build.py custom_cells    # one

CI re-executes the committed notebooks with nbmake (`pytest --nbmake`); the
`RNNJAX_NOTEBOOK_SMALL=1` environment variable, which nbmake runs set through
conftest, shrinks their problem sizes.
"""

import pathlib
import sys

import jupytext
import nbclient

HERE = pathlib.Path(__file__).resolve().parent


def build(name: str) -> pathlib.Path:
  source = HERE / "src" / f"{name}.py"
  notebook = jupytext.read(source)
  notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
  nbclient.NotebookClient(notebook, timeout=900, kernel_name="python3",
                          resources={"metadata": {"path": str(HERE)}}).execute()
  target = HERE / f"{name}.ipynb"
  jupytext.write(notebook, target)
  return target


if __name__ == "__main__":
  names = sys.argv[1:] or sorted(p.stem for p in (HERE / "src").glob("*.py"))
  for name in names:
    print(f"built {build(name)}")
