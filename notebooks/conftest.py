"""pytest settings for the notebooks, which `pytest --nbmake` (in addopts) re-executes.

While a notebook runs, its kernel gets RNNJAX_NOTEBOOK_SMALL=1 (small problem sizes, so
the notebooks cost CI about a minute each) and this checkout on PYTHONPATH (so it
imports this checkout's rnnjax, as the tests do, not another installed copy). The
notebook sources in src/ and build.py are not test modules (--doctest-modules would
import src/*.py, i.e. run the notebooks at collection).
"""

import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

collect_ignore = ["build.py", "src"]


def notebook_environment() -> dict:
  """The environment variables a notebook kernel runs with in CI."""
  path = os.environ.get("PYTHONPATH")
  return {"RNNJAX_NOTEBOOK_SMALL": "1",
          "PYTHONPATH": str(ROOT) + (os.pathsep + path if path else "")}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
  """Sets the notebook environment for the duration of each notebook item only."""
  saved = {name: os.environ.get(name) for name in ("RNNJAX_NOTEBOOK_SMALL", "PYTHONPATH")}
  os.environ.update(notebook_environment())
  try:
    return (yield)
  finally:
    for name, value in saved.items():
      if value is None:
        os.environ.pop(name, None)
      else:
        os.environ[name] = value
