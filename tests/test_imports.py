"""The package's imports go one way, down its layers (README's Layout says the same):

    front   cli, plugin, api, checks, campaign, submit, the package    may import every layer
    engine  engine.*                                  worker, base
    report  report.*                                  analysis, base
    analysis                                          base
    worker  worker.*                                  base
    base    spec, messages, protocol, records, storage, checkpoint, display, stats

No module reaches, even inside a function, a module that reaches it back, none imports
above its layer, and none takes another module's private names."""

import ast
import os

import pytest

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "sacred_ray")


def _modules():
    found = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, os.path.dirname(PACKAGE))[:-3].replace(os.sep, ".")
                found[rel[: -len(".__init__")] if rel.endswith(".__init__") else rel] = path
    return found


def _imports(module, path, modules):
    """(imported module, names taken from it) for every import statement, at any depth."""
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    tree = ast.parse(open(path).read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("sacred_ray"):
                    yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("sacred_ray"):
                continue
            names = [a.name for a in node.names]
            submodules = [f"{target}.{n}" for n in names if f"{target}.{n}" in modules]
            for sub in submodules:
                yield sub, []
            rest = [n for n in names if f"{target}.{n}" not in modules]
            if rest or not submodules:
                yield target, rest


def _graph():
    modules = _modules()
    graph = {m: set() for m in modules}
    private = []
    for module, path in modules.items():
        for target, names in _imports(module, path, modules):
            if target != module and target in modules:
                graph[module].add(target)
            private += [f"{module} takes {target}.{n}" for n in names if n.startswith("_")]
    return graph, private


def test_no_import_cycle():
    graph, _ = _graph()
    cycles = []

    def visit(node, stack, on_stack, seen):
        seen.add(node)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt in on_stack:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in seen:
                visit(nxt, stack, on_stack, seen)
        stack.pop()
        on_stack.discard(node)

    seen = set()
    for node in sorted(graph):
        if node not in seen:
            visit(node, [], set(), seen)
    # the package's __init__ is where users enter; its lazy names reach the engine
    cycles = [c for c in cycles if not c.startswith("sacred_ray -> ") and " -> sacred_ray -> " not in c]
    assert cycles == []


@pytest.mark.slow
def test_no_private_name_is_taken_from_another_module():
    _, private = _graph()
    assert private == []


@pytest.mark.parametrize("low", ["sacred_ray.spec", "sacred_ray.protocol", "sacred_ray.display", "sacred_ray.stats"])
def test_the_shared_modules_import_nothing_above_them(low):
    graph, _ = _graph()
    above = ("sacred_ray.cli", "sacred_ray.plugin", "sacred_ray.engine", "sacred_ray.worker", "sacred_ray.checks")
    reached = {t for m, targets in graph.items() if m == low or m.startswith(low + ".") for t in targets}
    assert not [t for t in reached if t.startswith(above)]


def test_every_searcher_a_file_may_name_has_an_entry_in_the_engine():
    """spec validates files without importing the engine; the two lists must agree."""
    from sacred_ray.engine.searchers import SEARCHERS as BUILT
    from sacred_ray.spec.settings import SEARCHERS as NAMED

    assert set(NAMED) == set(BUILT)


LAYERS = {  # layer -> the layers its modules may import (their own included)
    "front": {"front", "engine", "report", "analysis", "worker", "base"},
    "engine": {"engine", "worker", "base"},
    "report": {"report", "analysis", "base"},
    "analysis": {"analysis", "base"},
    "worker": {"worker", "base"},
    "base": {"base"},
}
BASE = ("spec", "messages", "protocol", "records", "storage", "checkpoint", "display", "stats")
FRONT = ("cli", "plugin", "api", "checks", "campaign", "submit")


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "front"  # the package itself: where users enter
    top = parts[1]
    if top in BASE:
        return "base"
    if top in FRONT:
        return "front"
    if top in ("engine", "report", "analysis", "worker"):
        return top
    raise AssertionError(f"{module} has no layer: add it to tests/test_imports.py and README's Layout")


def layer_violations(graph: dict) -> list:
    return sorted(f"{m} ({layer_of(m)}) imports {t} ({layer_of(t)})"
                  for m, targets in graph.items() for t in targets if layer_of(t) not in LAYERS[layer_of(m)])


def test_every_module_imports_only_its_own_layer_and_those_below():
    graph, _ = _graph()
    assert layer_violations(graph) == []


def test_the_layer_check_refuses_an_engine_module_that_imports_the_report():
    graph = {"sacred_ray.engine.session": {"sacred_ray.report", "sacred_ray.engine.folder"},
             "sacred_ray.report.data": {"sacred_ray.engine.folder"}, "sacred_ray.analysis": {"sacred_ray.engine"},
             "sacred_ray.api": {"sacred_ray.report", "sacred_ray.engine.sweep"}}
    assert layer_violations(graph) == [
        "sacred_ray.analysis (analysis) imports sacred_ray.engine (engine)",
        "sacred_ray.engine.session (engine) imports sacred_ray.report (report)",
        "sacred_ray.report.data (report) imports sacred_ray.engine.folder (engine)",
    ]


def test_every_scheduler_a_file_may_name_is_built_by_the_engine():
    from sacred_ray.engine.searchers import BUILDERS
    from sacred_ray.spec.settings import SCHEDULERS

    assert set(SCHEDULERS) == set(BUILDERS)
