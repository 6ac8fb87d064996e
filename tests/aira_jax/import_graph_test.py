"""The packages of `aira_jax` form a layered graph: no import cycle between them.

Every module is parsed with `ast` (nothing is imported); every `import x` and `from x import y`, including
those inside functions and under `if TYPE_CHECKING:`, and relative ones, is an edge from the importing module's
package to the imported one's. A package is the first name under `aira_jax` (`aira_jax.compose.scale` is
"compose", the top-level module `aira_jax.layout` is "layout"). Imports inside one package are not edges.
Dynamic imports by name (the primitive registry's lazy `importlib.import_module`) are not seen.
"""

import ast
import collections
import pathlib

import pytest

import aira_jax

ROOT_PACKAGE = "aira_jax"
PACKAGE_DIR = pathlib.Path(aira_jax.__file__).resolve().parent


def module_name(path: pathlib.Path) -> str:
  """`aira_jax/compose/scale.py` -> "aira_jax.compose.scale"; a package's `__init__.py` -> the package."""
  parts = (ROOT_PACKAGE, *path.relative_to(PACKAGE_DIR).with_suffix("").parts)
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(tree: ast.AST, module: str, is_package: bool) -> set[str]:
  """Every module (or `module.name`, for `from module import name`) that `tree` imports anywhere."""
  out = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      out.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
      if node.level:  # relative: from the module's own package, up level - 1 more
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[:len(base) - (node.level - 1)]
        source = ".".join([*base, *([node.module] if node.module else [])])
      else:
        source = node.module
      out.add(source)
      out.update(f"{source}.{alias.name}" for alias in node.names if alias.name != "*")
  return out


def package_of(module: str) -> str | None:
  """The first name under aira_jax, or None outside it (and for `aira_jax` itself)."""
  parts = module.split(".")
  return parts[1] if len(parts) > 1 and parts[0] == ROOT_PACKAGE else None


def package_graph() -> dict[tuple[str, str], list[str]]:
  """(importing package, imported package) -> the module imports that make the edge ("a.b -> c.d")."""
  edges = collections.defaultdict(list)
  for path in sorted(PACKAGE_DIR.rglob("*.py")):
    module = module_name(path)
    source = package_of(module)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for target in sorted(imported_modules(tree, module, path.name == "__init__.py")):
      destination = package_of(target)
      # `from aira_jax.agents import journal` also yields "aira_jax.agents.journal"; both give "agents".
      if source and destination and destination != source:
        edges[(source, destination)].append(f"{module} -> {target}")
  return dict(edges)


def find_cycles(edges) -> list[list[str]]:
  """One cycle per strongly connected component of more than one node, as a path that returns to its start
  (["agents", "results", "agents"]); components and paths in sorted order, so messages are stable."""
  graph = collections.defaultdict(set)
  for a, b in edges:
    if a != b:
      graph[a].add(b)
      graph.setdefault(b, set())
  index, low, on_stack, stack, components = {}, {}, set(), [], []

  def visit(v):  # Tarjan's algorithm (the graphs here have tens of nodes, so recursion is fine)
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in sorted(graph[v]):
      if w not in index:
        visit(w)
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

  for v in sorted(graph):
    if v not in index:
      visit(v)
  cycles = []
  for component in sorted(components):
    start, members = component[0], set(component)
    parents, frontier = {start: None}, [start]
    while frontier:  # breadth-first from start, inside the component, until an edge leads back to start
      next_frontier = []
      for v in frontier:
        for w in sorted(graph[v] & members):
          if w == start:
            path = [v]
            while parents[path[-1]] is not None:
              path.append(parents[path[-1]])
            cycles.append([*reversed(path), start])
            next_frontier = []
            break
          if w not in parents:
            parents[w] = v
            next_frontier.append(w)
        else:
          continue
        break
      frontier = next_frontier
  return cycles


def describe(cycle: list[str], edges) -> str:
  """ "agents -> results -> agents (aira_jax.agents.session -> aira_jax.results.store; ...)"."""
  reasons = [edges[(a, b)][0] for a, b in zip(cycle, cycle[1:])]
  return f"{' -> '.join(cycle)} ({'; '.join(reasons)})"


def test_synthetic_cycles_are_found_and_named():
  edges = {("agents", "results"): ["x"], ("results", "agents"): ["y"], ("compose", "agents"): ["z"],
           ("layers", "models"): ["u"], ("models", "tasks"): ["v"], ("tasks", "layers"): ["w"],
           ("compose", "compose"): ["self"]}
  cycles = find_cycles(edges)
  assert cycles == [["agents", "results", "agents"], ["layers", "models", "tasks", "layers"]]
  assert describe(cycles[0], edges) == "agents -> results -> agents (x; y)"
  assert find_cycles({("a", "b"): [], ("b", "c"): [], ("a", "c"): []}) == []


def test_synthetic_sources_resolve_relative_and_nested_imports():
  source = ("import aira_jax.layout\nfrom . import journal\nfrom ..results import store\n"
            "def f():\n  from aira_jax import models\n")
  found = imported_modules(ast.parse(source), "aira_jax.agents.session", is_package=False)
  assert {"aira_jax.layout", "aira_jax.agents.journal", "aira_jax.results.store", "aira_jax.models"} <= found
  assert {package_of(m) for m in found} == {"layout", "agents", "results", "models", None}  # None: aira_jax
  assert "aira_jax.agents.node" in imported_modules(ast.parse("from .node import Node\n"), "aira_jax.agents",
                                                    is_package=True)


def test_the_real_graph_is_read():
  edges = package_graph()
  assert ("compose", "agents") in edges and ("design", "agents") in edges and ("layout", "primitives") in edges
  assert module_name(PACKAGE_DIR / "compose" / "__init__.py") == "aira_jax.compose"


def test_no_import_cycle_between_packages():
  edges = package_graph()
  cycles = find_cycles(edges)
  if cycles:
    pytest.fail("import cycles between aira_jax packages:\n" + "\n".join(describe(c, edges) for c in cycles))
