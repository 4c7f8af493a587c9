"""Each saved notebook was built from its current source: `notebooks/build.py` records the
SHA-256 of `notebooks/src/NAME.py` in the notebook's metadata, and this test fails when
the source has changed since (the saved outputs and prose would then be of other code).
CI re-executes the notebooks as well (nbmake), but that does not update what is saved."""

import hashlib
import json
import pathlib

import pytest

NOTEBOOKS = pathlib.Path(__file__).resolve().parents[1] / "notebooks"
SOURCES = sorted((NOTEBOOKS / "src").glob("*.py"))


def test_every_source_has_a_notebook_and_back():
  assert {p.stem for p in SOURCES} == {p.stem for p in NOTEBOOKS.glob("*.ipynb")}
  assert SOURCES


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_notebook_built_from_current_source(source):
  notebook = json.loads((NOTEBOOKS / f"{source.stem}.ipynb").read_text())
  recorded = notebook["metadata"].get("rnnjax", {})
  current = hashlib.sha256(source.read_bytes()).hexdigest()
  assert recorded.get("source") == f"src/{source.stem}.py"
  assert recorded.get("source_sha256") == current, (
      f"notebooks/{source.stem}.ipynb was built from another version of "
      f"notebooks/src/{source.stem}.py; rebuild it: python notebooks/build.py {source.stem}")
