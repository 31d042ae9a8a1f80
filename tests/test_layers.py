"""The package's imports go one way (docs/architecture.md: the families and their layers).

Each family (and each leaf module that families below it share) has a layer; a module
may import only from lower layers or its own family, and no chain of runtime imports
comes back to where it started. Imports under ``if TYPE_CHECKING:`` are annotations
only and are not counted.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "batchgrader"

#: The layers, lowest first. A dotted key names a leaf module with its own layer,
#: below the rest of its family (``money.pricing`` is pure price math that providers
#: and planning use; ``money.budget`` and ``money.costs`` sit above planning and the
#: ledger).
LAYERS: dict[str, int] = {
    "errors": 0,
    "paths": 0,
    "masking": 0,
    "providers.names": 0,
    "manual": 1,
    "data": 1,
    "prompting.catalogue": 1,
    "money.pricing": 2,
    "money.grouping": 2,
    "settings": 3,
    "logs": 3,
    "ledger": 3,
    "prompting": 4,
    "config_report": 5,
    "providers": 5,
    "planning": 6,
    "money": 7,
    "execution": 8,
    "report": 9,
    "render": 10,
    "cli": 11,
    "__main__": 12,
    "": 0,  # batchgrader/__init__.py: the version, read lazily
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The module ``name`` is, or is in (``pkg.mod.Symbol`` -> ``pkg.mod``)."""
    while name not in MODULES:
        if "." not in name:
            return None
        name = name.rsplit(".", 1)[0]
    return name


def _runtime_imports(path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only.update(id(n) for n in ast.walk(node))
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] == "batchgrader":
                for alias in node.names:
                    yield f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.split(".")[0] == "batchgrader")


@functools.cache
def import_graph() -> dict[str, set[str]]:
    """Which modules each module imports at run time (read once, by the first test)."""
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        targets = {_resolve(name) for name in _runtime_imports(path)}
        graph[module] = {t for t in targets if t is not None and t != module}
    return graph


def layer(module: str) -> tuple[str, int]:
    """(the key of ``module``'s layer, the layer)."""
    parts = module.removeprefix("batchgrader").lstrip(".").split(".")
    for key in (".".join(parts[:2]), parts[0]):
        if key in LAYERS:
            return key, LAYERS[key]
    raise AssertionError(f"{module} is in no layer: add its family to LAYERS")


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        layer(module)


def test_imports_go_down_the_layers() -> None:
    wrong = []
    for module, targets in import_graph().items():
        home, level = layer(module)
        for target in targets:
            where, below = layer(target)
            if where != home and below >= level:
                wrong.append(f"{module} ({home}, {level}) imports {target} ({where}, {below})")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_cycles() -> None:
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(import_graph()[module]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, path)
        path.pop()
        state[module] = 2

    for module in sorted(MODULES):
        if module not in state:
            visit(module, [])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_the_layers_are_checked_against_real_imports() -> None:
    """The graph is read from the source: the run's modules import the executors, the
    CLI imports the run, and no core family imports the CLI or the renderers."""
    assert "batchgrader.execution.dispatch" in import_graph()["batchgrader.execution.run"]
    assert any(
        t.startswith("batchgrader.execution") for t in import_graph()["batchgrader.cli._run"]
    )
    core = ("data", "prompting", "planning", "providers", "execution", "ledger", "money")
    for module, targets in import_graph().items():
        if layer(module)[0].split(".")[0] in core:
            assert not {t for t in targets if layer(t)[0] in ("cli", "render")}, module
