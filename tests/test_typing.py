"""Types: every public signature is annotated, and mypy (configured in pyproject.toml)
passes over the whole package, so the annotations are checked against the code.

The public API here is what users reach by name: the classes and functions in
`rnnjax.__all__`, `rnnjax.kernels.__all__`, `rnnjax.interop.__all__` and `rnnjax.checkpoint`,
with every public method and property of those classes (inherited ones included)."""

import inspect
import pathlib
import subprocess
import sys
import types

import rnnjax as rj

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _public_objects(module, names):
  for name in names:
    obj = getattr(module, name)
    if not isinstance(obj, types.ModuleType):
      yield f"{module.__name__}.{name}", obj


def _members(qualname, obj):
  """(name, function) for a function, or for each public method/property of a class
  defined in rnnjax (tuple methods of NamedTuples and dataclass machinery excluded)."""
  if not isinstance(obj, type):
    yield qualname, obj
    return
  for name in dir(obj):
    if name.startswith("_") and name not in ("__init__", "__call__"):
      continue
    member = inspect.getattr_static(obj, name)
    if isinstance(member, (staticmethod, classmethod)):
      member = member.__func__
    elif isinstance(member, property):
      member = member.fget
    if name == "__init__" and issubclass(obj, tuple):
      continue                      # a NamedTuple's generated constructor
    if callable(member) and str(getattr(member, "__module__", "")).startswith("rnnjax"):
      yield f"{qualname}.{name}", member


def missing_annotations(objects) -> dict[str, list[str]]:
  """{qualified name: [unannotated parameters, "return"]} over `objects`."""
  missing = {}
  for qualname, obj in objects:
    for name, function in _members(qualname, obj):
      try:
        signature = inspect.signature(function)
      except (TypeError, ValueError):
        continue
      bad = [p.name for p in signature.parameters.values()
             if p.name not in ("self", "cls") and p.annotation is inspect.Parameter.empty]
      if signature.return_annotation is inspect.Signature.empty:
        bad.append("return")
      if bad:
        missing[name] = bad
  return missing


def test_public_signatures_are_annotated():
  import rnnjax.checkpoint as checkpoint

  checkpoint_names = [n for n, v in vars(checkpoint).items()
                      if not n.startswith("_") and getattr(v, "__module__", None) == checkpoint.__name__]
  objects = [*_public_objects(rj, rj.__all__),
             *_public_objects(rj.kernels, rj.kernels.__all__),
             *_public_objects(rj.interop, rj.interop.__all__),
             *_public_objects(checkpoint, checkpoint_names)]
  assert len(objects) >= 40
  assert {"rnnjax.MinGRU", "rnnjax.LRUCell", "rnnjax.interop.from_torch"} <= dict(objects).keys()
  assert missing_annotations(objects) == {}


def test_the_checker_sees_a_missing_annotation():
  def f(x, y: int):
    return x

  assert missing_annotations([("f", f)]) == {"f": ["x", "return"]}


def test_mypy_passes(tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache")],
      cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stdout + result.stderr


def test_package_ships_py_typed():
  assert (ROOT / "rnnjax" / "py.typed").is_file()
  assert 'rnnjax = ["py.typed"]' in (ROOT / "pyproject.toml").read_text()
