"""The import layer order of WORKSPACE.md, enforced by parsing every import of motion_sim/ and
export/ (module-level and function-level alike: a lazy import is still a dependency).

A module may import modules of its own layer or of layers below it, never above; library
modules (everything below `export`) therefore never import `export/`. Separately, no two
modules may import each other through any chain (no cycles, within a layer too).

A new module of an existing package is placed by its package. A new top-level module or
package must be added to LAYERS below (and to the layer order at the top of WORKSPACE.md):
the test fails until it is, so the order stays complete.
"""

from __future__ import annotations

import ast
import os

from tests.fixtures import REPO

# Lowest first. A module belongs to the layer of the longest prefix that names it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("data", ("motion_sim", "motion_sim.data")),
    ("tokenizer", ("motion_sim.tokenizer",)),
    # The preprocessing job reports the tokenizer's reconstruction error of every scene it
    # writes, so it sits above the tokenizer although it lives in motion_sim/data.
    ("preprocess", ("motion_sim.data.preprocess", "motion_sim.data.shard_writer")),
    ("layers", ("motion_sim.layers",)),
    ("models", ("motion_sim.models",)),
    ("sampler", ("motion_sim.sampler",)),
    ("rl / losses", ("motion_sim.rl", "motion_sim.losses")),
    ("viz", ("motion_sim.viz",)),
    ("learner", ("motion_sim.learner",)),
    ("metrics", ("motion_sim.metrics",)),
    ("agents", ("motion_sim.agents",)),
    ("planning", ("motion_sim.planning",)),
    ("export", ("export",)),
    (
        "binaries",
        (
            "motion_sim.train",
            "motion_sim.evaluate",
            "motion_sim.evaluate_split",
            "motion_sim.closed_loop_eval",
            "motion_sim.visualize",
            "motion_sim.policy_eval",
            "motion_sim.experiment",
            "motion_sim.experiment_config",
            "motion_sim.experiment_data",
            "motion_sim.benchmarks",
        ),
    ),
]
PACKAGES = ("motion_sim", "export")


def _modules() -> dict[str, str]:
    """Dotted module name -> file path, for every .py file under the packages."""
    out = {}
    for package in PACKAGES:
        for dirpath, dirnames, filenames in os.walk(os.path.join(REPO, package)):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            for filename in filenames:
                if filename.endswith(".py"):
                    path = os.path.join(dirpath, filename)
                    parts = os.path.relpath(path, REPO)[:-3].split(os.sep)
                    if parts[-1] == "__init__":
                        parts = parts[:-1]
                    out[".".join(parts)] = path
    return out


def _imports(name: str, path: str, modules: dict[str, str]) -> set[str]:
    """The project modules `name` imports (`from p import m` counts as importing p.m)."""
    is_package = path.endswith("__init__.py")
    found = set()
    for node in ast.walk(ast.parse(open(path).read(), path)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                package = name.split(".") if is_package else name.split(".")[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join(package + ([base] if base else []))
            # `from p import m` imports the module p.m; `from m import function`, the module m.
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            if target.split(".")[0] not in PACKAGES:
                continue
            while target and target not in modules:  # `import p.m.function`-like leftovers
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _layer(name: str) -> int | None:
    best, best_len = None, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    # Only the package roots themselves may fall back to the bare `motion_sim` prefix.
    if best_len == len("motion_sim") and name.count(".") == 1:
        return None
    return best


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def test_every_module_has_a_layer():
    unknown = sorted(name for name in _graph() if _layer(name) is None)
    assert not unknown, (
        f"modules in no import layer: {unknown}. Add each to LAYERS in "
        f"tests/test_import_layers.py and to the layer order at the top of WORKSPACE.md."
    )


def test_imports_only_go_down():
    upward = []
    for name, imported in sorted(_graph().items()):
        own = _layer(name)
        for target in sorted(imported):
            if own is not None and _layer(target) is not None and _layer(target) > own:
                upward.append(
                    f"{name} ({LAYERS[own][0]}) imports {target} ({LAYERS[_layer(target)][0]})"
                )
    assert not upward, "imports against the layer order:\n" + "\n".join(upward)


def test_no_import_cycles():
    graph = _graph()
    # Tarjan's strongly connected components: any component of 2+ modules is a cycle.
    index, low, on_stack, stack, cycles, counter = {}, {}, set(), [], [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for succ in graph.get(node, ()):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert not cycles, f"import cycles: {cycles}"


def test_the_checker_sees_lazy_and_relative_imports(tmp_path):
    """The parser counts a function-level import and resolves `from . import x`."""
    pkg = tmp_path / "export"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from export import b\n")
    (pkg / "b.py").write_text("from . import a\nfrom motion_sim.data.datatypes import NUM_STEPS\n")
    modules = {
        "export": str(pkg / "__init__.py"),
        "export.a": str(pkg / "a.py"),
        "export.b": str(pkg / "b.py"),
        "motion_sim.data.datatypes": "x",
    }
    assert _imports("export.a", str(pkg / "a.py"), modules) == {"export.b"}
    assert _imports("export.b", str(pkg / "b.py"), modules) == {
        "export.a",
        "motion_sim.data.datatypes",
    }
    assert _layer("motion_sim.data.shard_writer") == 2  # the most specific prefix wins
    assert _layer("motion_sim.something_new") is None
    assert _layer("motion_sim.metrics.anything_new") == 9
