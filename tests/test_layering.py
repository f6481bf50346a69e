"""The package's layers (docs/layout.md): every module of Code/ imports only from its own layer or the layers below
it, and the import graph has no cycle. Imports inside functions count: a lazy upward import is still upward."""

import ast
import os

import pytest

CODE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "Code")

# layer rank of each sub-package and of the modules at the top of Code/; siblings of one rank (data and nn, the
# models and runs, deploy and grid) do not import each other
LAYERS = {
    "core": 0,
    "data": 1, "nn": 1,
    "models": 2, "runs": 2,
    "engine": 3,
    "deploy": 4, "grid": 4,
    "cli": 5,
    "entry": 6,
}
TOP = {"TIMNET": "models", "GTCM": "models", "DCNN": "models", "Model": "models", "Common_Model": "engine",
       "main": "entry", "__init__": "entry"}


def module_name(path: str) -> str:
    """Code/engine/protocol.py -> engine.protocol; Code/core/__init__.py -> core; Code/__init__.py -> __init__."""
    parts = os.path.relpath(path, CODE)[:-3].split(os.sep)
    return ".".join(parts[:-1]) if parts[-1] == "__init__" and len(parts) > 1 else ".".join(parts)


def layer_of(module: str) -> str:
    head = module.split(".")[0]
    return TOP[head] if head in TOP else head


def imports_of(source: str, module: str, is_package: bool) -> set[str]:
    """The package's modules that ``source`` (the text of ``module``) imports, as dotted names under Code/."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):  # `import timnet_ser.engine.protocol`: the module named
            found |= {".".join(alias.name.split(".")[1:]) for alias in node.names
                      if alias.name.split(".")[0] == "timnet_ser"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
            elif (node.module or "").split(".")[0] == "timnet_ser":
                base = []
            else:
                continue
            parts = base + [p for p in (node.module or "").split(".") if p and p != "timnet_ser"]
            for alias in node.names:  # `from . import x` names a module; `from .m import f` names m
                candidate = ".".join(parts + [alias.name])
                found.add(candidate if is_module(candidate) else ".".join(parts))
    # main.py run as a script imports itself by its package name: not an edge
    return {name for name in found if name and name != module and is_module(name)}


def is_module(name: str) -> bool:
    path = os.path.join(CODE, *name.split("."))
    return os.path.isfile(path + ".py") or os.path.isfile(os.path.join(path, "__init__.py"))


def import_graph() -> dict[str, set[str]]:
    graph = {}
    for root, dirs, files in os.walk(CODE):
        dirs[:] = [d for d in dirs if os.path.isfile(os.path.join(root, d, "__init__.py"))]
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(root, name)
                module = module_name(path)
                with open(path) as f:
                    graph[module] = imports_of(f.read(), module, name == "__init__.py")
    return graph


def violations(graph: dict[str, set[str]]) -> list[str]:
    """'a -> b (layer x above y)' for every import of a higher layer or of a sibling layer."""
    found = []
    for module, targets in graph.items():
        for target in targets:
            ours, theirs = layer_of(module), layer_of(target)
            if theirs != ours and LAYERS[theirs] >= LAYERS[ours]:
                found.append(f"{module} ({ours}) imports {target} ({theirs})")
    return sorted(found)


def cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as [a, b, ..., a], or []. A package's __init__ importing its own modules is no cycle."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        stack.pop()
        state[node] = "done"
        return []

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


def test_every_module_is_in_a_layer():
    graph = import_graph()
    assert {layer_of(m) for m in graph} <= set(LAYERS), {m: layer_of(m) for m in graph if layer_of(m) not in LAYERS}
    assert len(graph) > 30  # the walk found the package


def test_no_upward_import_and_no_cycle():
    graph = import_graph()
    assert violations(graph) == []
    assert cycle(graph) == []


def test_the_check_catches_an_upward_import_and_a_cycle():
    """The check itself fails on a planted upward import (core importing the engine) and a cycle."""
    graph = import_graph()
    planted = {**graph, "core.errors": graph["core.errors"] | {"engine.protocol"}}
    assert violations(planted) == ["core.errors (core) imports engine.protocol (engine)"]
    assert cycle(planted)[0] == cycle(planted)[-1]
    assert imports_of("from ..engine import protocol\n", "core.errors", False) == {"engine.protocol"}
    assert imports_of("def f():\n    from ..cli.command_line import parse\n", "data.x", False) == {"cli.command_line"}
    assert imports_of("import timnet_ser.engine.protocol\n", "core.errors", False) == {"engine.protocol"}
    assert imports_of("import timnet_ser.engine\n", "core.errors", False) == {"engine"}


@pytest.mark.parametrize("module, forbidden", [("core", "tensorflow"), ("data", "tensorflow"), ("cli", "keras")])
def test_light_layers_do_not_import_tensorflow_at_module_level(module, forbidden):
    """core (but tensorflow_setup, which imports it only when called), data and cli import no TensorFlow or Keras at
    module level, so that flags and files are checked before it starts."""
    for name in os.listdir(os.path.join(CODE, module)):
        if name.endswith(".py"):
            with open(os.path.join(CODE, module, name)) as f:
                tree = ast.parse(f.read())
            top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
            names = {a.name.split(".")[0] for n in top if isinstance(n, ast.Import) for a in n.names} | \
                {(n.module or "").split(".")[0] for n in top if isinstance(n, ast.ImportFrom)}
            assert not names & {"tensorflow", "keras"}, f"{module}/{name}"
