"""Ciao's packages stand in layers, and every import goes down: a package never imports
one that stands above it, and no modules import each other in a circle (imports inside
functions count: they are deferred, not absent)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "ciao"

#: Bottom to top. A module may import its own layer's modules and those below.
LAYERS: list[set[str]] = [
    {"ciao", "errors", "constants", "names", "launch", "secrets", "hp"},
    {"protocol"},
    {"interpreter"},
    {"config_file", "config_keys", "config_pod", "config"},
    {"s2i"},
    {"backend"},
    {"registry"},
    {"manager"},
    {"tune"},
    {"session"},
    {"kernel"},
    {"app", "api", "gateway", "gateway_ws", "runner", "install", "__main__"},
]

#: `import ciao` is the public API's face: its lazy attributes (`ciao.run`) import the
#: API at first use, the one import that runs up from the bottom layer.
PUBLIC_FACE = ("ciao", "api")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """Every ciao module and the ciao modules it imports (anywhere in it)."""
    found: dict[str, set[str]] = defaultdict(set)
    for path in ROOT.rglob("*.py"):
        name = module_name(path)
        found[name]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            found[name] |= {t for t in targets if t == "ciao" or t.startswith("ciao.")}
    return found


def layer(module: str) -> int:
    """The module's layer; -1 for a package LAYERS does not place."""
    top = module.split(".")[1] if "." in module else "ciao"
    return next((i for i, names in enumerate(LAYERS) if top in names), -1)


def test_every_package_has_a_layer():
    assert [module for module in imports() if layer(module) < 0] == []


def test_no_import_runs_back_up_the_layers():
    upward = [
        f"{module} -> {target}"
        for module, targets in imports().items()
        for target in targets
        if layer(target) > layer(module) and (module, target.split(".")[1]) != PUBLIC_FACE
    ]
    assert upward == []


def test_no_modules_import_each_other_in_a_circle():
    graph = imports()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if target not in graph:
                continue  # a package's __init__ that is not a module of its own
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif state.get(target) is None:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_every_test_module_has_a_basename_of_its_own():
    """pytest imports test modules by basename (no __init__.py in tests/): two files of one
    name make the second an import error that only a whole run shows."""
    from collections import Counter

    tests = Path(__file__).resolve().parent
    names = Counter(path.name for path in tests.rglob("test_*.py"))
    assert [name for name, count in names.items() if count > 1] == []
