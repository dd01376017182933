"""The house rules a reader relies on, checked over the source: no module or folder imports one that
imports it back (type-only imports included), and no function is longer than a reader can hold."""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "gateway"
MAX_FUNCTION_LINES = 60
# Declarative tables: one statement per metric, nothing to follow but the list.
TABLES = {("gateway/observability/metrics.py", "__init__")}


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def imports(path: Path, name: str, known: Iterable[str]) -> set[str]:
    """The gateway modules a module imports, at any level (inside TYPE_CHECKING and functions too)."""
    known = set(known)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            targets = [base, *(f"{base}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        found.update(t for t in targets if t in known and t != name)
    return found


def cycles(graph: Mapping[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = set()
            while True:
                other = stack.pop()
                component.add(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in list(graph):
        if node not in index:
            visit(node)
    return found


def folder(path: Path) -> str:
    """A module's folder (gateway/upstream); a module directly in gateway/ stands for itself."""
    relative = path.relative_to(ROOT)
    return str(relative.parent) if relative.parent != Path("gateway") else str(relative.with_suffix(""))


def test_no_module_imports_one_that_imports_it_back() -> None:
    found = modules()
    graph = {name: imports(path, name, found) for name, path in found.items()}
    assert cycles(graph) == []


def test_no_folder_imports_one_that_imports_it_back() -> None:
    found = modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in found.items():
        for other in imports(path, name, found):
            if folder(found[other]) != folder(path):
                graph[folder(path)].add(folder(found[other]))
    assert cycles(graph) == []


@pytest.mark.parametrize("package", ["gateway", "token_sidecar"])
def test_no_function_is_longer_than_a_reader_can_hold(package: str) -> None:
    long = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                where = (str(path.relative_to(ROOT)), node.name)
                if lines > MAX_FUNCTION_LINES and where not in TABLES:
                    long.append(f"{where[0]}:{node.lineno} {node.name} ({lines} lines)")
    assert long == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    assert cycles({"a": {"b"}, "b": set()}) == []


def top_level_imports(package: str) -> set[str]:
    found: set[str] = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
            elif isinstance(node, ast.Import):
                found.update(a.name.split(".")[0] for a in node.names)
    return found


@pytest.mark.parametrize(
    ("package", "must_not_import"),
    [("foundry_common", {"gateway", "token_sidecar"}), ("token_sidecar", {"gateway"}), ("gateway", {"token_sidecar"})],
)
def test_each_image_needs_only_its_own_package_and_the_shared_one(package: str, must_not_import: set[str]) -> None:
    """The gateway image carries gateway/ and foundry_common/, the sidecar's token_sidecar/ and foundry_common/."""
    assert top_level_imports(package) & must_not_import == set()
