"""The shape of the rnnjax package, read from its sources with `ast` (nothing is imported):
no import cycle (function-local imports count), no module reaching into the private
modules of a package it is not inside, no file over 400 lines, and the low layers (pallas, recurrences, engine,
cells) importing nothing from the layers built on them.

Which imports make an edge, following what Python runs:
- `import a.b.c` and `from a.b.c import name`: a, a.b and a.b.c all run, so each is an
  edge, except a package the importer already sits inside (its own package and their
  parents have run before it).
- `from pkg import name`: an edge to pkg.name when that is a submodule; an edge to pkg
  itself when pkg is outside the importer, or when `name` is not a submodule (then the
  import reads a name that pkg/__init__.py binds, which a cycle can leave unbound).
Dynamic imports (`importlib.import_module`) are not seen."""

import ast
import collections
import dataclasses
import pathlib
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent / "rnnjax"
MAX_LINES = 400

# The root package's own shared private leaves: importable from anywhere in rnnjax.
SHARED_PRIVATE = frozenset({
    "rnnjax._activations", "rnnjax._constraints", "rnnjax._initializers", "rnnjax._linear_map",
    "rnnjax._platform", "rnnjax._regularizers", "rnnjax._validation",
})

UPPER = ("rnnjax.layers", "rnnjax.dispatch", "rnnjax.kernels", "rnnjax.linen", "rnnjax.nnx",
         "rnnjax.interop")
# Low layer -> the packages (and modules) it may not import from.
LAYERING = {
    "rnnjax.pallas": UPPER + ("rnnjax.cells", "rnnjax.engine"),
    "rnnjax.recurrences": UPPER + ("rnnjax.cells", "rnnjax.engine"),
    "rnnjax.engine": UPPER,
    "rnnjax.cells": UPPER,
}


@dataclasses.dataclass(frozen=True)
class Edge:
  """One module importing another, where in the source, and whether inside a function."""

  source: str
  target: str
  file: str
  line: int
  local: bool

  def __str__(self):
    where = f"{self.file}:{self.line}" + (", function-local" if self.local else "")
    return f"{self.source} -> {self.target}  ({where})"


@dataclasses.dataclass
class Tree:
  """The modules of one package tree (dotted name -> file) and the imports among them."""

  root: pathlib.Path
  modules: dict
  edges: list
  unresolved: list

  def is_package(self, name):
    return self.modules[name].name == "__init__.py"


def _within(package, module):
  return module == package or module.startswith(package + ".")


def _package_of(tree, module):
  return module if tree.is_package(module) else module.rpartition(".")[0]


class _Imports(ast.NodeVisitor):
  """Collects (node, inside a function) for every import statement of one file."""

  def __init__(self):
    self.found, self.depth = [], 0

  def _function(self, node):
    self.depth += 1
    self.generic_visit(node)
    self.depth -= 1

  visit_FunctionDef = visit_AsyncFunctionDef = _function

  def visit_Import(self, node):
    self.found.append((node, self.depth > 0))

  visit_ImportFrom = visit_Import


def read_tree(root):
  """Parses every .py file under `root` (a package directory) into a Tree."""
  root = pathlib.Path(root)
  modules = {}
  for path in sorted(root.rglob("*.py")):
    parts = path.relative_to(root.parent).with_suffix("").parts
    modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
  tree = Tree(root, modules, [], [])
  top = root.name
  for source, path in modules.items():
    rel = str(path.relative_to(root.parent))
    visitor = _Imports()
    visitor.visit(ast.parse(path.read_text(), filename=rel))
    for node, local in visitor.found:
      targets = _targets(tree, source, node, top)
      if targets is None:
        tree.unresolved.append(f"{rel}:{node.lineno}: {ast.unparse(node)}")
        continue
      for target in dict.fromkeys(targets):
        if target != source:
          tree.edges.append(Edge(source, target, rel, node.lineno, local))
  return tree


def _targets(tree, source, node, top):
  """The modules of the tree that `node` runs, or None when it names a missing one."""
  if isinstance(node, ast.Import):
    out = []
    for alias in node.names:
      if _within(top, alias.name):
        chain = _chain(tree, source, alias.name)
        if chain is None:
          return None
        out += chain
    return out
  if node.level:
    package = _package_of(tree, source).split(".")
    if node.level > len(package):
      return None
    base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
  else:
    base = node.module
  if not _within(top, base):
    return []
  chain = _chain(tree, source, base, keep_last=False)
  if chain is None:
    return None
  names = [alias.name for alias in node.names]
  submodules = [f"{base}.{n}" for n in names if f"{base}.{n}" in tree.modules]
  reads_names = len(submodules) < len(names) or not tree.is_package(base)
  if reads_names or not _within(base, source):
    chain.append(base)
  return chain + submodules


def _chain(tree, source, name, keep_last=True):
  """`name` and the packages above it that importing it runs (none the source is inside)."""
  if name not in tree.modules:
    return None
  parts = name.split(".")
  prefixes = [".".join(parts[:i]) for i in range(1, len(parts))]
  out = [p for p in prefixes if not _within(p, source)]
  return out + [name] if keep_last else out


# Checks -------------------------------------------------------------------------------


def cycles(tree):
  """One line block per strongly connected component of more than one module: its
  members, one shortest cycle through them, and every import edge inside it."""
  graph = collections.defaultdict(set)
  for e in tree.edges:
    graph[e.source].add(e.target)
  index, low, stack, on_stack, components = {}, {}, [], set(), []

  def connect(v):  # Tarjan's algorithm
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in sorted(graph[v]):
      if w not in index:
        connect(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        component.append(w)
        if w == v:
          break
      if len(component) > 1:
        components.append(sorted(component))

  for v in sorted(tree.modules):
    if v not in index:
      connect(v)
  out = []
  for component in sorted(components):
    members = set(component)
    inside = [e for e in tree.edges if e.source in members and e.target in members]
    path = _shortest_path(tree, component[0], lambda m: m == component[0], members)
    out.append(f"cycle among {len(component)} modules: {', '.join(component)}\n"
               f"    e.g. {' -> '.join([component[0]] + [e.target for e in path])}:\n"
               + "".join(f"      {e}\n" for e in path)
               + "    every import inside it:\n"
               + "".join(f"      {line}\n" for line in _grouped(inside)))
  return out


def _grouped(edges):
  """One line per (source, target) pair, with all the lines that import it."""
  where = collections.defaultdict(list)
  for e in edges:
    where[(e.source, e.target, e.file)].append(f"{e.line}" + (" function-local" if e.local else ""))
  return [f"{s} -> {t}  ({f}:{', '.join(lines)})" for (s, t, f), lines in where.items()]


def _shortest_path(tree, start, is_goal, allowed=None):
  """The edges of a shortest non-empty path from `start` to a module where is_goal holds
  (through `allowed` modules only, when given), or None."""
  first = {}
  for e in tree.edges:
    first.setdefault((e.source, e.target), e)
  graph = collections.defaultdict(list)
  for (s, t), e in sorted(first.items()):
    if allowed is None or t in allowed:
      graph[s].append(e)
  queue, came = collections.deque([start]), {}
  while queue:
    v = queue.popleft()
    for e in graph[v]:
      if is_goal(e.target):
        path = [e]
        while path[0].source != start:
          path.insert(0, came[path[0].source])
        return path
      if e.target not in came and e.target != start:
        came[e.target] = e
        queue.append(e.target)
  return None


def private_imports(tree, shared=SHARED_PRIVATE):
  """Edges into a private module (a name component starting with "_") of a package the
  importer is not inside (its own package or one of its subpackages may use it), unless
  the module is one of the `shared` leaves."""
  out = []
  for e in tree.edges:
    parts = e.target.split(".")
    private = next((i for i in range(1, len(parts)) if parts[i].startswith("_")), None)
    if private is None:
      continue
    owner, module = ".".join(parts[:private]), ".".join(parts[:private + 1])
    if not _within(owner, _package_of(tree, e.source)) and module not in shared:
      out.append(str(e))
  return out


def long_files(tree, limit=MAX_LINES):
  out = []
  for path in tree.modules.values():
    lines = len(path.read_text().splitlines())
    if lines > limit:
      out.append(f"{path.relative_to(tree.root.parent)}: {lines} lines (limit {limit})")
  return sorted(out)


def layer_violations(tree, layering=LAYERING, transitive=False):
  """For each module of a low layer, its import of a forbidden package: the direct edges,
  or (transitive) the shortest import chain that reaches one."""
  out = []
  for low, forbidden in layering.items():
    def banned(m, forbidden=forbidden):
      return any(_within(f, m) for f in forbidden)
    for source in sorted(m for m in tree.modules if _within(low, m)):
      if transitive:
        path = _shortest_path(tree, source, banned)
        if path and len(path) > 1:
          out.append(" -> ".join([source] + [e.target for e in path]) + "\n"
                     + "".join(f"    {e}\n" for e in path))
      else:
        out += [str(e) for e in tree.edges if e.source == source and banned(e.target)]
  return out


def _fail_if(problems, title):
  if problems:
    pytest.fail(f"{title} ({len(problems)}):\n  " + "\n  ".join(problems), pytrace=False)


# The rnnjax tree ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tree():
  return read_tree(ROOT)


def test_the_source_tree_is_read_and_every_internal_import_resolves(tree):
  assert {"rnnjax", "rnnjax.cells", "rnnjax.cells._base", "rnnjax.layers._base",
          "rnnjax.pallas.lstm._api"} <= set(tree.modules)
  assert any(e.source == "rnnjax" and e.target == "rnnjax.cells" and not e.local for e in tree.edges)
  _fail_if(tree.unresolved, "imports of rnnjax modules that do not exist")


def test_no_import_cycles(tree):
  _fail_if(cycles(tree), "import cycles (function-local imports included)")


def test_no_imports_of_another_packages_private_modules(tree):
  _fail_if(private_imports(tree), "imports of another package's private module "
           f"(allowed from anywhere: {', '.join(sorted(SHARED_PRIVATE))})")


def test_no_file_over_the_line_limit(tree):
  _fail_if(long_files(tree), f"files over {MAX_LINES} lines")


def test_low_layers_import_nothing_from_the_layers_above(tree):
  _fail_if(layer_violations(tree), "low-layer imports of a forbidden package")


def test_low_layers_reach_no_layer_above_through_other_modules(tree):
  _fail_if(layer_violations(tree, transitive=True),
           "low-layer modules that reach a forbidden package through other modules")


# The checks themselves, on a small made-up package ----------------------------------------


def _write(root, files):
  for name, text in files.items():
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


@pytest.fixture
def toy(tmp_path):
  _write(tmp_path / "toy", {
      "__init__.py": "from .a import f\nfrom . import b\n",
      "_leaf.py": "X = 1\n",
      "a.py": "import os\n\ndef f():\n  from .sub import g\n  return g\n",
      "b.py": "from . import _leaf\nfrom .sub import _impl\nfrom .sub._impl import g\n",
      "sub/__init__.py": "from ._impl import g\nfrom . import _impl\n",
      "sub/_impl.py": "from .. import a, _leaf\n\ndef g():\n  return a\n",
      "low/__init__.py": "",
      "low/x.py": "from .. import _leaf\nimport toy.c\n",
      "c.py": "from .sub import g\n" + "# filler\n" * 5,
      "bad.py": "from ... import nothing\nfrom .missing import y\n",
  })
  return read_tree(tmp_path / "toy")


def test_toy_edges_follow_what_python_runs(toy):
  edges = {(e.source, e.target, e.local) for e in toy.edges}
  assert edges == {
      ("toy", "toy.a", False), ("toy", "toy.b", False),
      ("toy.a", "toy.sub", True),
      ("toy.b", "toy._leaf", False), ("toy.b", "toy.sub", False), ("toy.b", "toy.sub._impl", False),
      ("toy.sub", "toy.sub._impl", False),
      ("toy.sub._impl", "toy.a", False), ("toy.sub._impl", "toy._leaf", False),
      ("toy.low.x", "toy._leaf", False), ("toy.low.x", "toy.c", False),
      ("toy.c", "toy.sub", False),
  }
  assert toy.unresolved == ["toy/bad.py:1: from ... import nothing",
                            "toy/bad.py:2: from .missing import y"]


def test_toy_checks_find_what_was_planted(toy):
  (cycle,) = cycles(toy)
  assert cycle.startswith("cycle among 3 modules: toy.a, toy.sub, toy.sub._impl\n"
                          "    e.g. toy.a -> toy.sub -> toy.sub._impl -> toy.a:\n"
                          "      toy.a -> toy.sub  (toy/a.py:4, function-local)\n")
  assert "      toy.sub -> toy.sub._impl  (toy/sub/__init__.py:1, 2)\n" in cycle
  # toy.low.x and toy.sub._impl sit inside toy, so toy._leaf is theirs to use.
  assert private_imports(toy, shared=frozenset()) == [
      "toy.b -> toy.sub._impl  (toy/b.py:2)", "toy.b -> toy.sub._impl  (toy/b.py:3)"]
  assert private_imports(toy, shared=frozenset({"toy._leaf"})) == [
      "toy.b -> toy.sub._impl  (toy/b.py:2)", "toy.b -> toy.sub._impl  (toy/b.py:3)"]
  assert long_files(toy, limit=5) == ["toy/c.py: 6 lines (limit 5)"]
  layering = {"toy.low": ("toy.sub",)}
  assert layer_violations(toy, layering) == []
  (chain,) = layer_violations(toy, layering, transitive=True)
  assert chain.startswith("toy.low.x -> toy.c -> toy.sub\n")
  assert layer_violations(toy, {"toy.low": ("toy.c",)}) == ["toy.low.x -> toy.c  (toy/low/x.py:2)"]
