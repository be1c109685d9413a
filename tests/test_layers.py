"""Imports flow one way: core -> data -> predict -> train / report -> inference / evaluate ->
workflow / cli (docs/design.md, "Layers"), and no module imports itself in a cycle.

Checked on the source (AST), function-local imports included, so a cycle cannot hide
behind a late import.
"""
import ast
import os

from tests.conftest import REPO

PACKAGE = os.path.join(REPO, "dbsn_jax")
# Module-name prefixes by layer, lowest first; the most specific prefix wins.
LAYERS = (
    ("core", ("dbsn_jax.prng", "dbsn_jax.dihedral", "dbsn_jax.linalg", "dbsn_jax.losses",
              "dbsn_jax.noise", "dbsn_jax.noise_estimate", "dbsn_jax.metrics", "dbsn_jax.realworld",
              "dbsn_jax.defaults", "dbsn_jax.models", "dbsn_jax.xla_cpu",
              "dbsn_jax.baselines")),
    ("data", ("dbsn_jax.data",)),
    ("predict", ("dbsn_jax.predict",)),
    ("train / report", ("dbsn_jax.train", "dbsn_jax.report")),
    ("inference / evaluate", ("dbsn_jax.inference", "dbsn_jax.evaluate")),
    ("workflow / cli", ("dbsn_jax.workflow", "dbsn_jax.cli", "dbsn_jax.pretrained")),
)


def _modules():
  out = {}
  for d, _, files in os.walk(PACKAGE):
    for f in files:
      if f.endswith(".py"):
        path = os.path.join(d, f)
        name = os.path.relpath(path[:-3], REPO).replace(os.sep, ".")
        out[name[:-len(".__init__")] if name.endswith(".__init__") else name] = path
  return out


def _imports(modules):
  """{module: {imported dbsn_jax module}} over every import statement in its source."""
  edges = {}
  for name, path in modules.items():
    found = set()
    for node in ast.walk(ast.parse(open(path).read(), path)):
      if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        for alias in node.names:
          full = f"{node.module}.{alias.name}"
          found.add(full if full in modules else node.module)
      elif isinstance(node, ast.Import):
        found.update(a.name for a in node.names)
    edges[name] = {m for m in found if m in modules and m != name}
  return edges


def _layer(name):
  best = None
  for rank, (_, prefixes) in enumerate(LAYERS):
    for p in prefixes:
      if (name == p or name.startswith(p + ".")) and (best is None or len(p) > best[1]):
        best = (rank, len(p))
  return None if best is None else best[0]


def test_every_import_points_down_or_sideways():
  modules = _modules()
  unplaced = sorted(m for m in modules if m != "dbsn_jax" and _layer(m) is None)
  assert not unplaced, f"give these modules a layer in LAYERS: {unplaced}"
  upward = [f"{m} ({LAYERS[_layer(m)][0]}) imports {i} ({LAYERS[_layer(i)][0]})"
            for m, deps in _imports(modules).items() if m != "dbsn_jax"
            for i in sorted(deps) if _layer(i) > _layer(m)]
  assert not upward, "\n".join(upward)


def test_no_import_cycles():
  edges = _imports(_modules())
  edges.pop("dbsn_jax")  # The package root re-exports the top layer's API.
  state, stack, cycles = {}, [], []

  def visit(m):  # Depth-first search; a grey node met again closes a cycle.
    state[m] = "grey"
    stack.append(m)
    for n in sorted(edges.get(m, ())):
      if state.get(n) == "grey":
        cycles.append(stack[stack.index(n):] + [n])
      elif n not in state:
        visit(n)
    stack.pop()
    state[m] = "black"

  for m in sorted(edges):
    if m not in state:
      visit(m)
  assert not cycles, "\n".join(" -> ".join(c) for c in cycles)
